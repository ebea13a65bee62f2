"""`generator lint`: chart-testing's checks with yamale, yamllint and helm 3 / helm 4."""
import re

import pytest

from conftest import run_generator


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
