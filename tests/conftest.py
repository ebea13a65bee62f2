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


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the project's sources (templates_src, values, chart) to break safely."""
    for name in ("templates_src", "values", "chart", "docs"):
        if (ROOT / name).exists():
            shutil.copytree(ROOT / name, tmp_path / name)
    return tmp_path


def run_generator(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "generator", "--root", str(root), *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)


def tree_bytes(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}
