"""`generator lint`: chart-testing's checks with yamale, yamllint and helm 3 / helm 4."""
import re

import pytest

import yaml

from conftest import ROOT, run_generator


def test_lint_passes_on_the_generated_chart_with_both_helm_majors(project):
    proc = run_generator(project, "lint")
    assert proc.returncode == 0, proc.stderr
    assert "helm 3 lint --strict: 3 values files" in proc.stdout
    assert "helm 4 lint --strict: 3 values files" in proc.stdout
    assert "Chart.yaml matches chart-testing's schema" in proc.stdout


@pytest.mark.parametrize("edit,expected", [
    (lambda t: t.replace("maintainers:\n  - name: VirtEngine SRE\n    email: sre@virtengine.io\n", ""),
     "maintainers: Required field missing"),
    (lambda t: re.sub(r"(?m)^version: .*$", "version: one", t), "version: 'one' is not a SemVer 2 version"),
    (lambda t: t.replace("apiVersion: v2", "apiVersion: v1"), "apiVersion: 'v1' not in ('v2',)"),
], ids=["maintainers missing", "version not semver", "old apiVersion"])
def test_chart_yaml_faults_fail_the_yamale_schema(project, edit, expected):
    chart_yaml = project / "chart" / "Chart.yaml"
    chart_yaml.write_text(edit(chart_yaml.read_text()))
    proc = run_generator(project, "lint", "--only", "chart-yaml-schema")
    assert proc.returncode == 1
    assert expected in proc.stderr


def test_yamllint_finds_trailing_spaces_in_ci_values(project):
    ci = project / "chart" / "ci" / "dev-values.yaml"
    ci.write_text(ci.read_text() + "extra: 1   \n")
    proc = run_generator(project, "lint", "--only", "yamllint")
    assert proc.returncode == 1
    assert "chart/ci/dev-values.yaml" in proc.stderr and "trailing spaces" in proc.stderr


def test_helm_lint_failure_names_the_values_file_and_helm_major(project):
    ci = project / "chart" / "ci" / "staging-values.yaml"
    ci.write_text(ci.read_text() + "rules:\n  format: Plain\n")
    proc = run_generator(project, "lint", "--only", "helm-lint", "--helm", "4")
    assert proc.returncode == 1
    assert "helm 4 lint --strict with chart/ci/staging-values.yaml failed" in proc.stderr
    assert "format" in proc.stderr


def test_lint_without_a_rendered_chart_says_to_render(tmp_path):
    (tmp_path / "templates_src").mkdir()
    (tmp_path / "values").mkdir()
    proc = run_generator(tmp_path, "lint")
    assert proc.returncode == 1 and "run `python -m generator render` first" in proc.stderr


def test_lint_only_with_an_unknown_check_fails_and_lists_the_checks(project):
    proc = run_generator(project, "lint", "--only", "helmlint")
    assert proc.returncode == 1, "a misspelt --only ran nothing and passed"
    assert "'helmlint'" in proc.stderr and "helm-lint" in proc.stderr and "Traceback" not in proc.stderr


# ---- alerts documented and tested: runbooks and promtool cases ---------------------------------------------------

def test_a_missing_runbook_names_the_alert_template_file_not_an_environment(project):
    (project / "docs" / "runbooks" / "NodeLowPeers.md").unlink()
    proc = run_generator(project, "lint")
    assert proc.returncode == 1
    assert "templates_src/rules/warning.yaml.j2: alert NodeLowPeers: no runbook docs/runbooks/NodeLowPeers.md" \
        in proc.stderr, proc.stderr
    assert "values/dev.yaml" not in proc.stderr


STUB = "# NodeLowPeers\n\nA node has too few peers.\n"
HALF = """# NodeLowPeers

## What it means

A node has fewer peers than its role needs.

## Impact

TODO

## Diagnose

Look at the peers.

## Mitigate

Restart the node after checking its address book.

## Escalate
"""


@pytest.mark.parametrize("text,expected", [
    (STUB, ["no '## What it means' section", "no '## Escalate' section"]),
    (HALF, ["'## Impact' is a placeholder (TODO)", "'## Escalate' has no content",
            "'## Diagnose' shows no query or command"]),
], ids=["three-line stub", "sections without content"])
def test_a_runbook_without_its_sections_or_their_content_fails_lint(project, text, expected):
    (project / "docs" / "runbooks" / "NodeLowPeers.md").write_text(text)
    proc = run_generator(project, "lint", "--only", "runbooks")
    assert proc.returncode == 1
    assert "docs/runbooks/NodeLowPeers.md (alert NodeLowPeers of templates_src/rules/warning.yaml.j2)" in proc.stderr
    for message in expected:
        assert message in proc.stderr, proc.stderr
    assert "1 runbook finding(s)" in proc.stderr, "only the broken runbook is named"


@pytest.mark.parametrize("alert,source,test_file", [
    ("NodeLowPeers", "templates_src/rules/warning.yaml.j2", "tests/rules/warning.test.yaml"),
    ("SLOVEIDResponseTime", "templates_src/slos.yaml", "tests/rules/slo.test.yaml"),
])
def test_an_alert_without_promtool_cases_is_a_lint_finding_naming_the_test_file(project, alert, source, test_file):
    for path in (project / "tests" / "rules").glob("*.test.yaml"):
        doc = yaml.safe_load(path.read_text())
        for test in doc["tests"]:
            test["alert_rule_test"] = [c for c in test.get("alert_rule_test") or [] if c["alertname"] != alert]
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
    proc = run_generator(project, "lint", "--only", "promtool-cases")
    assert proc.returncode == 1
    assert (f"{source}: alert {alert} has no firing and no silent promtool case: add firing and silent "
            f"alert_rule_test cases to {test_file}") in proc.stderr, proc.stderr
    assert "1 alert(s) without promtool cases" in proc.stderr


def test_every_alert_of_the_repository_has_its_runbook_and_promtool_cases():
    proc = run_generator(ROOT, "lint", "--only", "runbooks", "--only", "promtool-cases")
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"runbooks: \d+ alerts", proc.stdout) and "fires and stays silent" in proc.stdout
