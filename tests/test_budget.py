"""Size budgets (generator/budget.py, values/_budgets.yaml): `generator lint`
fails before anything is installed when a release or an object outgrows
its share of the Kubernetes limits, and says by how much and what to do."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from conftest import run_generator

OVERSIZED_UID = "oversized-test"


def plant_oversized_dashboard(project: Path, size: int = 400_000) -> None:
    """A copy of the first dashboard with a description of ``size`` bytes; the
    render-time limit on one dashboard's JSON is raised so that the object
    budget of lint is what must catch it."""
    budgets = project / "values" / "_budgets.yaml"
    budgets.write_text(budgets.read_text().replace("maxBytes: 200000", "maxBytes: 5000000"))
    assert "maxBytes: 5000000" in budgets.read_text()
    source = sorted((project / "templates_src" / "dashboards").glob("*.yaml.j2"))[0]
    text = source.read_text()
    text, n = re.subn(r"^uid:.*$", f"uid: {OVERSIZED_UID}", text, count=1, flags=re.M)
    assert n == 1, f"{source.name} has no top-level uid line to rename"
    text = re.sub(r"^title:.*$", "title: Oversized test dashboard", text, count=1, flags=re.M)
    words = " ".join(f"validator{i % 997}" for i in range(size // 12))
    text = re.sub(r"^description:.*\n", "", text, flags=re.M)
    text = text.replace(f"uid: {OVERSIZED_UID}\n", f"uid: {OVERSIZED_UID}\ndescription: \"{words}\"\n", 1)
    (project / "templates_src" / "dashboards" / f"{OVERSIZED_UID}.yaml.j2").write_text(text)


def lint_budget(project: Path):
    return run_generator(project, "lint", "--only", "size-budget")


def test_an_oversized_dashboard_fails_lint_with_its_size_the_limit_and_what_to_do(project):
    plant_oversized_dashboard(project)
    rendered = run_generator(project, "render")
    assert rendered.returncode == 0, rendered.stderr
    proc = lint_budget(project)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    message = proc.stderr
    assert "Traceback" not in message
    line = next(line for line in message.splitlines() if OVERSIZED_UID in line)
    size = int(re.search(r"is ([\d,]+) bytes", line).group(1).replace(",", ""))
    assert size > 400_000
    assert "262,144 bytes" in line and "object.maxShare" in line and "values/_budgets.yaml" in line
    assert "To fix:" in message and "dashboards.items.<uid>.enabled: false" in message
    assert "gzipJson" in message and "split the release" in message
    for env in ("dev", "staging", "prod"):
        assert f"{env}: ConfigMap/" in message and OVERSIZED_UID in message


def test_the_oversized_dashboard_passes_once_the_object_budget_allows_it(project):
    plant_oversized_dashboard(project)
    assert run_generator(project, "render").returncode == 0
    (project / "values" / "_budgets.yaml").write_text("object:\n  maxShare: 0.9\ndashboard:\n  maxBytes: 5000000\n")
    proc = lint_budget(project)
    assert proc.returncode == 0, proc.stderr
    assert "size budget:" in proc.stdout and OVERSIZED_UID in proc.stdout


def test_a_release_over_its_share_fails_lint_for_every_environment(project):
    (project / "values" / "_budgets.yaml").write_text("release:\n  maxShare: 0.001\n")
    proc = lint_budget(project)
    assert proc.returncode == 1
    for env in ("dev", "staging", "prod"):
        line = next(line for line in proc.stderr.splitlines() if line.strip().startswith(f"{env}: the stored"))
        stored = int(re.search(r"would be ([\d,]+) bytes", line).group(1).replace(",", ""))
        assert stored > 0.001 * 1024 * 1024
        assert "budget is 0%" in line and "(1,048 bytes" in line and "release.maxShare" in line


def test_the_default_content_is_within_its_budgets(project):
    assert run_generator(project, "render").returncode == 0
    proc = lint_budget(project)
    assert proc.returncode == 0, proc.stderr
    share = float(re.search(r"\(([\d.]+)% of 1 MiB", proc.stdout).group(1))
    budget = re.search(r"budget (\d+)%\)", proc.stdout).group(1)
    assert budget == "25", proc.stdout   # values/_budgets.yaml: release.maxShare, the target
    assert 0 < share < 25


@pytest.mark.parametrize("settings, key, expected", [
    ("releases:\n  maxShare: 0.5\n", "releases", "allowed: release, object, dashboard"),
    ("release:\n  share: 0.5\n", "release.share", "allowed: maxShare"),
    ("object:\n  maxShare: 0\n", "object.maxShare", "a number in (0, 1]"),
    ("object:\n  maxShare: 1.5\n", "object.maxShare", "a number in (0, 1]"),
    ("release:\n  maxShare: half\n", "release.maxShare", "a number in (0, 1]"),
    ("release: 0.5\n", "release", "expected a mapping with maxShare"),
])
def test_a_mistyped_budget_setting_fails_lint_naming_the_file_and_key(project, settings, key, expected):
    (project / "values" / "_budgets.yaml").write_text(settings)
    proc = lint_budget(project)
    assert proc.returncode == 1
    assert f"values/_budgets.yaml: {key}:" in proc.stderr
    assert expected in proc.stderr and "Traceback" not in proc.stderr
