"""Text a user controls (a spec's name, a custom rule's summary and documentation) is shown on the
terminal with its control characters visible, never obeyed, by the commands outside `summary` and `lint`
(whose formats are covered in test_summary_cli.py)."""

from __future__ import annotations

from click.testing import CliRunner

from archcheck.cli import main

OSC = "\x1b]0;pwned\x07"  # retitles a terminal window
RULE = f'''"""Doc{OSC} here."""
CODE = "XT901"
SLUG = "hostile"
SEVERITY = "info"
OPTIONS = {{}}
SUMMARY = "Summary{OSC}"


def check(analysis, options):
    return iter(())
'''


def invoke(*args):
    return CliRunner().invoke(main, list(args))


def test_train_shows_a_hostile_spec_name_escaped(tmp_path):
    spec = tmp_path / "net.yaml"
    spec.write_text(f'name: "{OSC.encode("unicode_escape").decode()}"\ninput: [1, 8, 8]\n'
                    "layers:\n  - flatten\n  - dense: {units: 2}\n")
    result = invoke("train", str(spec), "--steps", "2")
    assert "\x1b" not in result.stdout and "\x07" not in result.stdout
    assert result.stdout.startswith("\\x1b]0;pwned\\x07: 2 steps of"), result.stdout
    assert result.exit_code in (0, 1)


def test_rules_and_explain_show_a_hostile_custom_rule_escaped(tmp_path, monkeypatch):
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "hostile.py").write_text(RULE)
    (tmp_path / "archcheck.toml").write_text('custom-rules = "rules"\n')
    monkeypatch.chdir(tmp_path)
    shown_by = {("rules",): "Summary\\x1b]0;pwned\\x07", ("explain", "XT901"): "Doc\\x1b]0;pwned\\x07 here."}
    for args, shown in shown_by.items():
        result = invoke(*args)
        assert result.exit_code == 0, result.output
        assert "\x1b" not in result.stdout and "\x07" not in result.stdout
        assert shown in result.stdout
