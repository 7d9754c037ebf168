"""The ``archcheck`` command line.

Subcommands live in ``archcheck.commands.<name>`` and are imported only when used,
so ``archcheck summary`` never pays for the executor (NumPy) or networkx.
"""

from __future__ import annotations

import importlib
import importlib.util
import keyword
import os
import sys

import click

from archcheck import __version__

COMMANDS = {
    "summary": "Per-layer shapes, parameters, MACs, memory and receptive field.",
    "lint": "Check specs against CNN design rules (for CI).",
    "diff": "Compare two versions of a network: layers, totals and findings.",
    "rules": "List the lint rules.",
    "explain": "Print a rule's documentation.",
    "run": "Execute a spec in NumPy on a sample batch.",
    "train": "Overfit one small batch: a trainability sanity check.",
    "export": "Write a spec as a standard ONNX model.",
    "import": "Read an ONNX model and write it as a spec (and its weights).",
    "report": "Write an HTML report: the figures, findings and plots on one page.",
}


def _module(name: str) -> str:
    """The module of a command: ``import`` is a keyword, so its module and function are ``import_``."""
    return f"archcheck.commands.{name}_" if keyword.iskeyword(name) else f"archcheck.commands.{name}"


class LazyGroup(click.Group):
    def main(self, *args, **kwargs):
        try:
            return super().main(*args, **kwargs)
        finally:  # what is still buffered for a reader that left: drop it quietly, keep the exit code
            try:
                sys.stdout.flush()
            except BrokenPipeError:
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())

    def list_commands(self, ctx):
        return [name for name in COMMANDS if importlib.util.find_spec(_module(name))]

    def get_command(self, ctx, name):
        if name not in COMMANDS or not importlib.util.find_spec(_module(name)):
            return None
        return getattr(importlib.import_module(_module(name)), _module(name).rsplit(".", 1)[1])

    def format_commands(self, ctx, formatter):
        rows = [(name, COMMANDS[name]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="archcheck")
def main():
    """archcheck: a linter and calculator for convolutional network architectures.

    Describe a CNN in a small YAML spec; archcheck computes every layer's shape,
    parameters, MACs, memory and receptive field, lints the design, and runs it in NumPy.

    Exit codes, for every command: 0 success; 1 findings (lint and run --grad: a finding at or
    above --fail-on, and in lint an invalid spec is one; train: the loss did not fall; diff: a figure
    named by --fail-on-increase grew); 2 invalid
    input (spec, configuration, data, weights, option); 3 internal error, a bug in archcheck.
    """

