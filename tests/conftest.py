"""Shared fixtures: the real tools and rendered charts.

Tests use the real helm 3 and helm 4, promtool and amtool installed by
``scripts/bootstrap``; a missing tool is an error, not a skip.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from generator import tools  # noqa: E402

ENVIRONMENTS = ("dev", "staging", "prod")
HELM_MAJORS = (3, 4)


def helm_template(env: str | None = "prod", major: int = 3, *, chart: Path | str = ROOT / "chart",
                  extra: list[str] | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """``helm template`` of the chart with ``values/<env>.yaml``."""
    cmd = [tools.helm(major), "template", "vemon", str(chart), "--namespace", "monitoring"]
    if env:
        cmd += ["-f", str(ROOT / "values" / f"{env}.yaml")]
    cmd += extra or []
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError(f"helm {major} template failed:\n{proc.stderr}")
    return proc


def manifests(text: str) -> list[dict]:
    return [d for d in yaml.safe_load_all(text) if d]


@pytest.fixture(scope="session")
def rendered() -> dict:
    """``{(env, major): [manifest, ...]}`` for every environment and helm major."""
    return {(env, major): manifests(helm_template(env, major).stdout)
            for env in ENVIRONMENTS for major in HELM_MAJORS}


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory) -> Path:
    """The sources copied once per test module and rendered: one consistent chart for its tests."""
    root = tmp_path_factory.mktemp("project")
    for name in ("templates_src", "values"):
        shutil.copytree(ROOT / name, root / name)
    proc = run_generator(root, "render")
    assert proc.returncode == 0, proc.stderr
    return root


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the project's sources (templates_src, values, chart) to break safely."""
    for name in ("templates_src", "values", "chart", "docs", "tests/rules"):
        if (ROOT / name).exists():
            shutil.copytree(ROOT / name, tmp_path / name)
    for name in ("CHANGELOG.md", "ct.yaml"):
        if (ROOT / name).exists():
            shutil.copy(ROOT / name, tmp_path / name)
    return tmp_path


def run_generator(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "generator", "--root", str(root), *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)


def tree_bytes(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def pytest_addoption(parser):
    parser.addoption("--update-golden", action="store_true",
                     help="rewrite golden files under tests/golden/ from the current output")


@pytest.fixture
def golden(request):
    """``golden(name, text)``: compares with tests/golden/<name>; a missing file fails."""
    update = request.config.getoption("--update-golden")

    def check(name: str, text: str) -> None:
        path = ROOT / "tests" / "golden" / name
        if update:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            return
        assert path.exists(), f"golden file {path} is missing; create it with pytest --update-golden"
        assert text == path.read_text(), f"output differs from {path}; if intended, run pytest --update-golden"
    return check


def write_tree(root: Path, files: dict[str, str]) -> Path:
    """Builds an input tree inline: ``{relative path: text}``."""
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


PLANTED = {
    "templates_src/dashboards/zz-passthrough.yaml.j2": (
        '<% from "lib/panels.j2" import timeseries %>\n'
        'uid: zz-passthrough\ntitle: Passthrough\nfolder: Test\ndescription: Braces pass through.\n'
        'variables: []\npanels:\n'
        '  - << timeseries("Workloads", [["sum by (state) (virtengine_provider_workloads)", "{{state}}"]], '
        '"Workloads by state.", unit="short") >>\n'),
    "templates_src/rules/zz-passthrough.yaml.j2": (
        "groups:\n"
        "  - name: zz.passthrough\n"
        "    rules:\n"
        "      - alert: PassthroughTargetDown\n"
        "        expr: min by (cluster, instance) (up) == ${floor}\n"
        "        for: 5m\n"
        "        severity: warning\n"
        "        team: sre\n"
        "        summary: A target is down.\n"
        "        description: '{{ $labels.instance }} is down'\n"
        "        meaning: A scrape target does not answer.\n"
        "        params: {floor: 0}\n"
        "        dashboard: {uid: zz-passthrough}\n"),
    "docs/runbooks/PassthroughTargetDown.md": "# PassthroughTargetDown\n\nA test alert.\n",
}


def mini_project(root: Path) -> Path:
    """A copy of the project with one planted dashboard and alert whose braces must pass through."""
    for name in ("templates_src", "values", "docs"):
        shutil.copytree(ROOT / name, root / name)
    write_tree(root, PLANTED)
    return root
