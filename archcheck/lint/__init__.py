"""The lint engine: load the rules, choose them, run them over specs, honour suppressions.

A rule is a module: ``CODE``, ``SLUG``, ``SEVERITY``, ``OPTIONS``, ``SUMMARY``, a
docstring in fixed sections and ``check(analysis, options)`` yielding ``Report`` s.
A rule of ``KIND = "dynamic"`` checks one forward and backward pass instead:
``check(run, options)`` on the executor's run record (``archcheck.executor.Run``); ``lint``
runs the static rules, ``run --grad`` the dynamic ones (``check_run``), each through a
``Plan`` made for its kind.
Rules come from three places and load alike into one ``{code: Rule}`` registry (the
yamllint way): the built-in ``archcheck.rules`` package (``archcheck/rules/``),
a configured directory of custom rule modules, and the ``archcheck.rules``
entry-point group of installed plugins. Modules named ``_*`` are helpers, not rules.

The engine owns AC000-AC009: spec problems (AC001-AC003, errors whose file the rules
then skip), a rule that crashed (AC000) and suppression comments that do nothing
(AC004). Rules read the ``Analysis`` only; the engine reads the spec's raw lines for
``# archcheck: ignore[...]`` comments, never its YAML.

One module per concern, in the order a run uses them; this package re-exports their public names:

- ``rule``: what a rule is to the engine (``Rule``) and the engine's own codes (``ENGINE``);
- ``load``: the rules from their three places (``load_rules``, ``rule_from_module``);
- ``plan``: which rules run on which files, with what severity and options (``make_plan``, ``Plan``);
- ``paths``: which spec files a run checks (``collect``);
- ``run``: the rules over each spec or run record (``lint_paths``, ``lint_file``, ``lint_analysis``, ``check_run``);
- ``suppress``: the ``# archcheck:`` comments (AC004 for those that do nothing);
- ``memo``: the facts rules share about one analysis, in a memo the engine hangs on it for one run
  (``memo_for``), so no rule module keeps an analysis.
"""

from archcheck.lint.load import load_rules, rule_from_module
from archcheck.lint.paths import collect
from archcheck.lint.plan import Plan, find_rule, make_plan, match
from archcheck.lint.rule import ENGINE, Rule
from archcheck.lint.run import Result, check_run, fails, lint_analysis, lint_file, lint_paths

__all__ = ["ENGINE", "Plan", "Result", "Rule", "check_run", "collect", "fails", "find_rule", "lint_analysis",
           "lint_file", "lint_paths", "load_rules", "make_plan", "match", "rule_from_module"]
