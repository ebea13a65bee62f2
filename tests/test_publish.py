"""Publishing: `python -m generator publish` to a real OCI registry, and the version discipline.

The registry is Debian's docker-registry (distribution 2.8) started here on
127.0.0.1 with a temporary storage folder and stopped at the end.
"""
from __future__ import annotations

import re
import shutil
import subprocess

import pytest
import requests

from conftest import ENVIRONMENTS, HELM_MAJORS, ROOT, run_generator
from generator import tools
from generator.servers import Servers, free_port

CHART = "virtengine-observability"


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    with Servers(tmp_path_factory.mktemp("registry")) as group:
        yield f"127.0.0.1:{group.registry().port}"


@pytest.fixture(scope="module")
def published(registry, snapshot):
    proc = run_generator(snapshot, "publish", "--registry", f"{registry}/charts", "--plain-http")
    assert proc.returncode == 0, proc.stderr
    version = re.search(r"(?m)^version: (\S+)", (snapshot / "chart" / "Chart.yaml").read_text()).group(1)
    assert f"pushed oci://{registry}/charts/{CHART}:{version} sha256:" in proc.stdout
    return f"oci://{registry}/charts/{CHART}", version


def template(major: int, chart: str, env: str, *extra: str) -> str:
    proc = tools.run([tools.helm(major), "template", "vemon", chart, "--namespace", "monitoring",
                      "-f", str(ROOT / "values" / f"{env}.yaml"), *extra], timeout=120)
    return proc.stdout


@pytest.mark.parametrize("major", HELM_MAJORS)
def test_pulled_and_remote_chart_render_the_same_manifests_as_the_local_chart(published, snapshot, tmp_path, major):
    ref, version = published
    helm = tools.helm(major)
    tools.run([helm, "pull", ref, "--version", version, "--plain-http", "--untar", "--destination", str(tmp_path)])
    pulled = tmp_path / CHART
    assert (pulled / "values.schema.json").read_bytes() == (snapshot / "chart" / "values.schema.json").read_bytes()
    for env in ENVIRONMENTS:
        local = template(major, str(snapshot / "chart"), env)
        assert template(major, str(pulled), env) == local
        assert template(major, ref, env, "--version", version, "--plain-http") == local


def test_publishing_the_same_version_twice_fails_with_a_clear_message(published, registry, snapshot):
    ref, version = published
    proc = run_generator(snapshot, "publish", "--registry", f"{registry}/charts", "--plain-http", "--helm", "4")
    assert proc.returncode == 1
    assert f"version {version} is already published" in proc.stderr and "bump version" in proc.stderr
    tags = requests.get(f"http://{registry}/v2/charts/{CHART}/tags/list", timeout=5).json()["tags"]
    assert tags == [version]


def test_a_bumped_version_publishes_beside_the_old_one(published, registry, snapshot, tmp_path):
    ref, version = published
    bumped = tmp_path / "project"
    for name in ("templates_src", "values"):
        shutil.copytree(snapshot / name, bumped / name)
    meta = bumped / "templates_src" / "chart" / "Chart.yaml"
    meta.write_text(re.sub(r"(?m)^version: .*$", "version: 99.0.0", meta.read_text()))
    assert run_generator(bumped, "render").returncode == 0
    proc = run_generator(bumped, "publish", "--registry", f"{registry}/charts", "--plain-http")
    assert proc.returncode == 0, proc.stderr
    tags = requests.get(f"http://{registry}/v2/charts/{CHART}/tags/list", timeout=5).json()["tags"]
    assert sorted(tags) == sorted([version, "99.0.0"])


def test_publish_refuses_a_chart_that_differs_from_its_sources(registry, snapshot, tmp_path):
    stale = tmp_path / "project"
    for name in ("templates_src", "values", "chart"):
        shutil.copytree(snapshot / name, stale / name)
    (stale / "chart" / "values.yaml").write_text((stale / "chart" / "values.yaml").read_text() + "# edited\n")
    proc = run_generator(stale, "publish", "--registry", f"{registry}/other", "--plain-http")
    assert proc.returncode == 1 and "python -m generator render" in proc.stderr


def test_an_unreachable_registry_is_reported_as_such_not_as_an_existing_version(snapshot):
    proc = run_generator(snapshot, "publish", "--registry", f"127.0.0.1:{free_port()}/charts", "--plain-http")
    assert proc.returncode == 1
    assert "cannot ask" in proc.stderr and "already published" not in proc.stderr


def test_credentials_come_from_the_environment_and_land_in_no_file(registry, snapshot, tmp_path):
    import os
    home = tmp_path / "home"
    home.mkdir()
    env = dict(os.environ, HELM_REGISTRY_USERNAME="ci", HELM_REGISTRY_PASSWORD="not-a-real-secret", HOME=str(home),
               XDG_CONFIG_HOME=str(home / ".config"), HELM_REGISTRY_CONFIG=str(home / "registry.json"))
    before = {p: p.stat().st_mtime for p in snapshot.rglob("*") if p.is_file()}
    proc = subprocess.run([__import__("sys").executable, "-m", "generator", "--root", str(snapshot), "publish",
                           "--registry", f"{registry}/creds", "--plain-http"],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    after = {p: p.stat().st_mtime for p in snapshot.rglob("*") if p.is_file()}
    assert after == before
    assert "not-a-real-secret" not in proc.stdout + proc.stderr
    import base64
    marks = (b"not-a-real-secret", base64.b64encode(b"ci:not-a-real-secret"))
    leaked = [p for p in home.rglob("*") if p.is_file() and any(m in p.read_bytes() for m in marks)]
    assert leaked == []


def git(repo, *args):
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True)


def test_a_chart_change_without_a_version_bump_fails_lint_against_main(snapshot, tmp_path):
    repo = tmp_path / "repo"
    for name in ("templates_src", "values", "chart"):
        shutil.copytree(snapshot / name, repo / name)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "-c", "user.email=t@example.com", "-c", "user.name=t", "add", ".")
    git(repo, "-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-q", "-m", "release")
    defaults = repo / "values" / "defaults.yaml"
    defaults.write_text(defaults.read_text().replace("interval: 30s", "interval: 20s", 1))
    assert run_generator(repo, "render").returncode == 0
    proc = run_generator(repo, "lint", "--check-version-increment", "main", "--only", "version-increment")
    assert proc.returncode == 1 and "did not increase" in proc.stderr
    meta = repo / "templates_src" / "chart" / "Chart.yaml"
    meta.write_text(re.sub(r"(?m)^version: (\d+)\.(\d+)\.(\d+)$",
                           lambda m: f"version: {m[1]}.{int(m[2]) + 1}.0", meta.read_text()))
    assert run_generator(repo, "render").returncode == 0
    proc = run_generator(repo, "lint", "--check-version-increment", "main", "--only", "version-increment")
    assert proc.returncode == 0, proc.stderr
    assert "version bumped" in proc.stdout


@pytest.mark.parametrize("changelog,message", [
    (None, "no '## 99.0.0' section"),
    ("## 99.0.0\n\n- fixed: something else\n", "artifacthub.io/changes differs"),
])
def test_a_version_without_a_matching_changelog_entry_fails_lint(snapshot, tmp_path, changelog, message):
    root = tmp_path / "project"
    for name in ("templates_src", "values"):
        shutil.copytree(snapshot / name, root / name)
    shutil.copy(ROOT / "CHANGELOG.md", root / "CHANGELOG.md")
    meta = root / "templates_src" / "chart" / "Chart.yaml"
    meta.write_text(re.sub(r"(?m)^version: .*$", "version: 99.0.0", meta.read_text()))
    if changelog:
        (root / "CHANGELOG.md").write_text(changelog)
    assert run_generator(root, "render").returncode == 0
    proc = run_generator(root, "lint", "--only", "changelog")
    assert proc.returncode == 1 and message in proc.stderr


def test_the_current_version_has_a_changelog_entry_equal_to_its_annotation():
    from generator import lint
    ctx = lint.LintContext(root=ROOT)
    from generator.publish import check_changelog
    check_changelog(ctx)
    assert ctx.notes and "agree" in ctx.notes[0]
