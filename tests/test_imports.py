"""The package's import graph has no cycle, counting imports inside functions too: a cycle means two
modules each hold a part of the other's facts (weights.py and executor.py once did)."""

import ast
import json
import shutil
import subprocess
import sys
from pathlib import Path

import networkx as nx

ROOT = Path(__file__).resolve().parents[1]


def _modules() -> dict[str, Path]:
    found = {}
    for path in (ROOT / "archcheck").rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def import_graph() -> nx.DiGraph:
    modules = _modules()
    graph = nx.DiGraph()
    for name, path in modules.items():
        graph.add_node(name)
        package = name if path.stem == "__init__" else name.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[:len(package.split(".")) - node.level + 1]
                    base = ".".join(parts + ([base] if base else []))
                targets = [base, *(f"{base}.{alias.name}" for alias in node.names)]
            else:
                continue
            graph.add_edges_from((name, t) for t in targets if t in modules and t != name)
    return graph


def test_the_package_has_no_import_cycle():
    graph = import_graph()
    assert graph.number_of_edges() > 50  # the walk found the imports
    cycles = list(nx.simple_cycles(graph))
    assert not cycles, "import cycles: " + "; ".join(" -> ".join([*c, c[0]]) for c in cycles)



def test_a_plain_checkout_runs_without_installing(tmp_path):
    """The package and its rules are one directory tree, so a copy of ``archcheck/`` runs as it is
    (``python -m archcheck`` from a checkout, pytest before ``pip install``): nothing is mapped in from
    another folder at install time."""
    shutil.copytree(ROOT / "archcheck", tmp_path / "archcheck", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "samples" / "resnet50.yaml", tmp_path / "model.yaml")
    probe = subprocess.run([sys.executable, "-c", "import archcheck.rules; print(archcheck.rules.__file__)"],
                           cwd=tmp_path, capture_output=True, text=True, check=True)
    assert Path(probe.stdout.strip()).is_relative_to(tmp_path)  # the copy, not an installed package
    run = subprocess.run([sys.executable, "-m", "archcheck", "lint", "model.yaml", "--format", "json"],
                         cwd=tmp_path, capture_output=True, text=True)
    assert run.returncode in (0, 1), run.stderr
    assert {f["code"] for f in json.loads(run.stdout)["findings"]} >= {"AC201", "AC202"}


def test_summary_and_lint_of_a_spec_never_import_onnx_or_the_report():
    """A spec file is told from a model by its suffix alone: the importer and onnx load only for models; the
    report's libraries (Graphviz, Bokeh) load only for the report and the drawn formats."""
    code = ("import sys, contextlib, io\n"
            "from archcheck.cli import main\n"
            "for args in (['summary', sys.argv[1]], ['lint', sys.argv[1]]):\n"
            "    with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
            "        main(args)\n"
            "print(sorted(m for m in ('onnx', 'archcheck.importers.onnx', 'archcheck.importers.load', 'bokeh', "
            "'pygraphviz', 'playwright', 'PIL', 'archcheck.render.drawing', 'archcheck.render.report') "
            "if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code, str(ROOT / "samples" / "resnet50.yaml")], capture_output=True,
                          text=True, check=True, cwd=ROOT)
    assert done.stdout.strip().splitlines()[-1] == "[]"
