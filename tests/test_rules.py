"""The rule catalogue as code: the module contract, the docs' examples, option validation, the samples,
and the dynamic rules' documented examples run through the executor.

Each rule's own cases (a spec that triggers it, one that does not, options, expected findings) live in
its fixture file, tests/rules/<CODE>.yaml, run by tests/test_rule_fixtures.py. What stays here needs
Python: the docstring's sections and examples of every module, ``validate`` raising, whole sample
networks against every rule, and real forward and backward passes with edited weights.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
import sys
import textwrap
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # the same parser, as a package, before Python 3.11
    import tomli as tomllib

import archcheck.rules
from archcheck import budgets
from archcheck.budgets import RULES as BUDGET_RULES
from archcheck.config import Config
from archcheck.findings import SEVERITIES, Report
from archcheck.pipeline import analyze

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
ALL = {info.name: importlib.import_module(f"archcheck.rules.{info.name}")
       for info in pkgutil.iter_modules(archcheck.rules.__path__) if not info.name.startswith("_")}
MODULES = {name: m for name, m in ALL.items() if getattr(m, "KIND", "static") == "static"}
DYNAMIC = {name: m for name, m in ALL.items() if getattr(m, "KIND", "static") == "dynamic"}
SECTIONS = ("## What it does", "## Why is this bad?", "## Example", "## Use instead", "## Options", "## References")


def run(module, tmp_path: Path, text: str, **options) -> list[Report]:
    path = tmp_path / "spec.yaml"
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return list(module.check(analyze(path), {**module.OPTIONS, **options}))


def budgeted(module) -> bool:
    """A budget rule (AC9xx): its limit comes from the configuration's [budgets] table."""
    return module.SLUG in BUDGET_RULES.values()


# -- the module contract ------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(ALL))
def test_contract(name):
    module = ALL[name]
    assert module.SLUG == name.replace("_", "-")
    assert re.fullmatch(r"AC8\d\d" if name in DYNAMIC else r"AC9\d\d" if budgeted(module) else r"AC[1-7]\d\d",
                        module.CODE)
    assert getattr(module, "KIND", "static") in ("static", "dynamic")
    assert module.SEVERITY in SEVERITIES
    assert isinstance(module.OPTIONS, dict)
    assert module.SUMMARY.strip() and "\n" not in module.SUMMARY
    doc = module.__doc__
    positions = [doc.find(section) for section in SECTIONS]
    assert -1 not in positions and positions == sorted(positions), f"sections missing or out of order: {positions}"
    options_doc = doc[doc.index("## Options"):doc.index("## References")]
    for option in module.OPTIONS:
        assert f"`{option}`" in options_doc
    if not module.OPTIONS:
        assert "None." in options_doc
    why = doc[doc.index("## Why is this bad?"):doc.index("## Example")]
    assert "not apply" in why, "say where the practice does not apply"
    assert "```yaml" in doc[doc.index("## Example"):doc.index("## Use instead")]
    assert callable(module.check)


def _yaml(doc: str, section: str) -> str:
    part = doc[doc.index(section):]
    return re.search(r"```yaml\n(.*?)```", part, re.S).group(1)


@pytest.mark.parametrize("name", sorted(MODULES))
def test_documented_examples(name, tmp_path):
    """The docs' Example triggers the rule and its Use instead does not: both are complete specs. A budget
    rule's Example gives the [budgets] table it is checked with."""
    module = MODULES[name]
    options = {}
    if budgeted(module):
        part = module.__doc__[module.__doc__.index("## Example"):module.__doc__.index("## Use instead")]
        table = tomllib.loads(re.search(r"```toml\n(.*?)```", part, re.S).group(1))["budgets"]
        options["budget"] = budgets.parse(table, Config())[next(k for k in table if k in BUDGET_RULES)]
    assert run(module, tmp_path, _yaml(module.__doc__, "## Example"), **options)
    assert run(module, tmp_path, _yaml(module.__doc__, "## Use instead"), **options) == []


def test_codes_and_slugs_are_unique():
    assert set(DYNAMIC) == {"dead_relu", "saturated_activation_runtime", "vanishing_gradient", "exploding_gradient",
                            "non_finite_values"}
    codes = [m.CODE for m in ALL.values()]
    slugs = [m.SLUG for m in ALL.values()]
    assert len(set(codes)) == len(codes) and len(set(slugs)) == len(slugs)


# -- option values ------------------------------------------------------------------------------

def test_pool_window_rejects_malformed_pairs():
    with pytest.raises(ValueError) as err:
        MODULES["pool_window"].validate({"allowed": [2, 3]})
    assert err.value.args == ("allowed", "[window, stride] pairs of whole numbers of at least 1, such as "
                                         "[[2, 2], [3, 2]]")


# -- the samples ----------------------------------------------------------------------------------

def _sample_findings(sample: str) -> dict[str, list[str]]:
    analysis = analyze(SAMPLES / f"{sample}.yaml")
    out: dict[str, list[str]] = {}
    for module in MODULES.values():
        for report in module.check(analysis, dict(module.OPTIONS)):
            out.setdefault(f"{module.SEVERITY} {module.SLUG}", []).append(report.layer.name)
    return out


PROJECTIONS18 = ["basic_3.add_1.1.conv_1", "basic_5.add_1.1.conv_1", "basic_7.add_1.1.conv_1"]
PROJECTIONS50 = [f"stage_{i}.bottleneck_1.add_1.1.conv_1" for i in (2, 3, 4)]

# What the catalogue says about the classic networks: no errors, and only warnings a reviewer accepts.
CLASSICS = {
    "vgg16": {"info dense-dominates": ["dense_1"]},  # fc6 holds 74% of the parameters
    "alexnet": {"info dense-dominates": ["dense_1"], "info strided-conv": ["conv_relu_1.conv_1"]},
    "resnet18": {"warning uneven-stride-coverage": PROJECTIONS18, "info strided-conv": 7},  # ResNet-D's fix
    "resnet50": {"warning uneven-stride-coverage": PROJECTIONS50, "info strided-conv": 7},
    "googlenet": {"info strided-conv": ["basic_conv_1.conv_1"]},
    "mobilenetv2": {"info strided-conv": 5},
    "lenet5": {"info shrinking-conv": ["stage_1.conv_1", "stage_2.conv_1"],  # valid 5x5 convolutions
               "info non-power-of-two-channels": ["stage_1.conv_1"]},  # 6 filters
}


@pytest.mark.parametrize("sample", sorted(CLASSICS))
def test_classic_samples(sample):
    got = _sample_findings(sample)
    assert not [key for key in got if key.startswith("error")]
    expected = CLASSICS[sample]
    assert set(got) == set(expected)
    for key, layers in expected.items():
        assert (len(got[key]) if isinstance(layers, int) else got[key]) == layers


@pytest.mark.parametrize("sample, slug", [
    ("bad_pool_early", "pool-too-early"), ("bad_pool_near_output", "pool-near-output"),
    ("bad_strided", "strided-conv"), ("bad_even_kernel", "even-kernel"),
    ("bad_channels", "non-power-of-two-channels"), ("bad_sigmoid", "saturating-activation"),
])
def test_bad_samples_trigger_their_rule(sample, slug):
    assert any(key.endswith(f" {slug}") for key in _sample_findings(sample))


# -- the dynamic rules ----------------------------------------------------------------------------

def test_dynamic_rules_import_no_numpy():
    """Lint loads every rule module and must not import NumPy; the run record is plain Python."""
    import subprocess
    import sys

    code = ("import sys\n" + "".join(f"import archcheck.rules.{name}\n" for name in DYNAMIC) +
            "print('numpy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# -- the dynamic rules' documented examples, through the executor ----------------------------------

def _scale(**factors):
    def edit(params):
        for name, factor in factors.items():
            params[name] *= factor
    return edit


def _positive(name, factor):
    """Weights of one sign, so an overflow gives Inf whatever order the BLAS sums in (mixed signs: Inf - Inf)."""
    def edit(params):
        params[name][...] = abs(params[name]) * factor
    return edit


def _bias(params):
    params["conv_1.bias"][:3] = -50.0


# rule: (batch, data transform, weight edit for the Example, weight edit for Use instead), as the docs state them
DYNAMIC_EXAMPLES = {
    "dead_relu": (2, None, _bias, _bias),
    "saturated_activation_runtime": (2, lambda x: (x * 64 + 128).clip(0, 255), None, None),
    "vanishing_gradient": (2, None, None, None),
    "exploding_gradient": (2, None, _scale(**{"conv_1.weight": 1e-3, "conv_2.weight": 10, "conv_3.weight": 10,
                                              "conv_4.weight": 10}), None),
    "non_finite_values": (1, None, lambda p: (_scale(**{"conv_1.weight": 1e20})(p),
                                              _positive("conv_2.weight", 1e20)(p)), None),
}


def _execute(tmp_path, text, batch, data, edit):
    """One ``run --grad`` pass (random data, seed 0) as a run record."""
    import numpy as np

    from archcheck import executor
    from archcheck.spec import INPUT

    path = tmp_path / "spec.yaml"
    path.write_text(text)
    analysis = analyze(path)
    params = executor.init_params(analysis, seed=0)
    if edit:
        edit(params)
    x = np.random.default_rng(0).standard_normal((batch, *analysis.spec.input)).astype(np.float32)
    x = data(x) if data else x
    margin = DYNAMIC["saturated_activation_runtime"].OPTIONS["margin"]
    stats = {INPUT: executor.layer_stats(analysis.graph.nodes[INPUT], x, 0.0, margin)}
    tape = executor.Tape()
    with np.errstate(all="ignore"):
        outputs = executor.forward(analysis, params, x, train=True, tape=tape, on_layer=lambda node, y, seconds:
                                   stats.__setitem__(node.name, executor.layer_stats(node, y, seconds, margin)))
        targets = executor.random_targets(analysis, batch, "cross-entropy", np.random.default_rng(1))
        value, seeds = executor.loss(analysis, outputs, targets)
        return executor.record(analysis, stats, executor.backward(analysis, params, tape, seeds), value)


def check(name, run, **options) -> list[Report]:
    module = DYNAMIC[name]
    return list(module.check(run, {**module.OPTIONS, **options}))


@pytest.mark.parametrize("name", sorted(DYNAMIC))
def test_documented_dynamic_examples(name, tmp_path):
    """The Example, run as its text says, triggers the rule (with the finding its console block shows);
    the Use instead does not. Both are complete specs."""
    module = DYNAMIC[name]
    batch, data, example_edit, instead_edit = DYNAMIC_EXAMPLES[name]
    reports = check(name, _execute(tmp_path, _yaml(module.__doc__, "## Example"), batch, data, example_edit))
    assert reports
    shown = re.search(r"```console\n\$ [^\n]*\n(.*?)\n```", module.__doc__, re.S).group(1)
    assert shown.count(f": {module.CODE} ") == len(reports)
    for r in reports:
        assert (f".yaml:{r.layer.loc.line}:{r.layer.loc.col}: {module.CODE} {module.SLUG} [{module.SEVERITY}] layer "
                f"'{r.layer.name}': {r.message}\n  = fix: {r.fix}") in shown
    assert check(name, _execute(tmp_path, _yaml(module.__doc__, "## Use instead"), batch, data, instead_edit)) == []
