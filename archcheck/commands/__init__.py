"""One module per subcommand; shared option parsing, configuration loading and error handling live here."""

from __future__ import annotations

import os
import re
import sys
from contextlib import contextmanager
from pathlib import Path

import click

from archcheck.errors import EXIT_INTERNAL, EXIT_OK, ArchcheckError
from archcheck.propagate import DTYPES, EXECUTOR_DTYPES, MAX_BATCH


@contextmanager
def reported_errors():
    """The one way a command fails. A command raises an ``ArchcheckError`` (a spec's problems, bad
    configuration, data, weights, files, options): it is printed with its fix and the command exits with
    its code (2). Anything else is a bug in archcheck: exit 3, with no traceback."""
    try:
        yield
    except ArchcheckError as exc:
        from archcheck.render.problems import print_error

        print_error(exc)
        sys.exit(exc.exit_code)
    except BrokenPipeError:
        closed_pipe()
    except (KeyboardInterrupt, click.exceptions.Exit, click.ClickException, SystemExit):
        raise
    except Exception as exc:  # a bug in archcheck, not in the user's input
        click.echo(f"archcheck: internal error: {type(exc).__name__}: {exc}\n"
                   "This is a bug in archcheck; please report it with the spec that caused it.", err=True)
        sys.exit(EXIT_INTERNAL)


def decided(code: int) -> None:
    """Record the exit code a command has decided on before it prints its results, so a reader that
    closes the pipe early (`archcheck lint | head`) does not turn findings into success."""
    click.get_current_context().meta["archcheck.exit"] = code


def closed_pipe() -> None:
    """The reader closed our output (`| head -1`): normal use, so stop quietly with the exit code the
    command had decided on (0 if none). Standard output goes to /dev/null so that the interpreter's
    last flush cannot fail again."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    ctx = click.get_current_context(silent=True)
    sys.exit(ctx.meta.get("archcheck.exit", EXIT_OK) if ctx else EXIT_OK)


def parse_shape(ctx, param, value):
    """``--input 3,224,224`` or ``3x224x224`` -> (3, 224, 224)."""
    if value is None:
        return None
    parts = [p for p in re.split(r"[,x\s]+", value.strip("[]() ")) if p]
    try:
        dims = tuple(int(p) for p in parts)
    except ValueError:
        raise click.BadParameter(f"expected sizes like 3,224,224, received '{value}'") from None
    if not 2 <= len(dims) <= 4 or min(dims) < 1:
        raise click.BadParameter(f"expected 2 to 4 positive sizes (channels first, no batch axis), received '{value}'")
    return dims


spec_argument = click.argument("spec", type=click.Path(dir_okay=False, path_type=str))
batch_option = click.option("--batch", "-b", type=click.IntRange(1, MAX_BATCH), default=1, show_default=True,
                            help="Batch size for memory figures.")
dtype_option = click.option("--dtype", type=click.Choice(list(DTYPES)), default="float32", show_default=True,
                            help="Element type for memory figures.")
input_option = click.option("--input", "input_shape", callback=parse_shape, metavar="C,H,W",
                            help="Override the spec's input shape (no batch axis), e.g. 3,160,160.")


def _max_memory(ctx, param, value):
    from archcheck.files import default_max_memory, parse_size

    if value is None:
        return default_max_memory()
    try:
        return parse_size(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


max_memory_option = click.option(
    "--max-memory", callback=_max_memory, metavar="SIZE",
    help="Refuse work whose arrays (weights, activations, gradients, data read) would need more memory than this, "
         "e.g. 8GiB or 500MB [default: half of this machine's memory].")


def execution_options(batch_default: int):
    """The options of the commands that execute a spec (``run``, ``train``): data, weights, labels, loss."""
    options = [
        click.option("--data", type=click.Path(), metavar="PATH",
                     help="A .npy/.npz array (N, *input), an image, or a directory of images [default: random data]."),
        click.option("--batch", "-b", type=click.IntRange(1, 100_000), default=None,
                     help=f"Random batch size [default: {batch_default}]; with --data, the first N samples."),
        click.option("--weights", type=click.Path(dir_okay=False), metavar="W.npz",
                     help="Weights under state_dict names [default: an .onnx's own, else initialised with --seed]."),
        click.option("--labels", metavar="LABELS",
                     help="Class indices (3,0,7), or a .npy/.npz file of labels/targets [default: random]."),
        click.option("--loss", "loss_kind", type=click.Choice(["cross-entropy", "mse"]), default="cross-entropy",
                     show_default=True, help="The loss to back-propagate."),
        click.option("--seed", type=int, default=0, show_default=True,
                     help="Seed for weights, random data, labels and dropout."),
        click.option("--dtype", type=click.Choice(EXECUTOR_DTYPES), default="float32", show_default=True),
        max_memory_option,
        click.option("--threads", type=click.IntRange(1, 1024), default=None,
                     help="Threads to run on, NumPy's BLAS held to one thread meanwhile: at inference the batch is cut "
                          "into one part per thread, in training the convolutions, batchnorms and max-pools cut "
                          "theirs [default: as many as "
                          "NumPy's BLAS runs on: OPENBLAS_NUM_THREADS, OMP_NUM_THREADS, else the cores]. One where "
                          "NumPy's BLAS is not OpenBLAS."),
    ]

    def apply(command):
        for option in reversed(options):
            command = option(command)
        return command

    return apply


def config_options(command):
    """The options of every command that reads the configuration (lint, rules, explain, run)."""
    options = [
        click.option("--config", "config_path", type=click.Path(dir_okay=False), metavar="FILE",
                     help="Use this archcheck.toml or pyproject.toml instead of searching for one."),
        click.option("--no-config", is_flag=True, help="Ignore configuration files; use the defaults."),
        click.option("--no-custom-rules", is_flag=True, envvar="ARCHCHECK_NO_CUSTOM_RULES",
                     help="Import no custom rules from the checkout (the configuration's `custom-rules`), e.g. in CI "
                          "on untrusted pull requests; also set by ARCHCHECK_NO_CUSTOM_RULES=1."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def setup(config_path: str | None, no_config: bool, start: Path, no_custom_rules: bool = False):
    """The configuration and the registry of rules it implies; ConfigError when either is broken.

    The configuration's `custom-rules` is Python from the checkout: ``no_custom_rules`` leaves it unimported
    (and the configuration's references to rules it does not know, which may be those, unresolved)."""
    from archcheck.config import find_config, load_config
    from archcheck.lint import load_rules

    if config_path:
        cfg = load_config(config_path)
    else:
        cfg = load_config(None if no_config else find_config(start))
    if no_custom_rules and cfg.custom_rules is not None:
        cfg.custom_rules, cfg.custom_rules_off = None, True
    return cfg, load_rules(cfg.custom_rules)
