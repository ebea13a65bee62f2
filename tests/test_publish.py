"""Publishing: `python -m generator publish` to a real OCI registry, and the version discipline.

The registry is Debian's docker-registry (distribution 2.8) started here on
127.0.0.1 with a temporary storage folder and stopped at the end.
"""
from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path

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


def git(repo, *args):
    return subprocess.run(["git", "-C", str(repo), "-c", "user.email=t@example.com", "-c", "user.name=t", *args],
                          capture_output=True, text=True, check=True)


def committed(source: Path, folder: Path) -> Path:
    """A git repository holding the project ``source`` in one commit, and a clone of it (what is returned)."""
    origin = folder / "origin"
    shutil.copytree(source, origin, ignore=shutil.ignore_patterns(".cache", ".git"))
    shutil.copy(ROOT / "CHANGELOG.md", origin / "CHANGELOG.md")
    (origin / ".gitignore").write_text(".cache/\n__pycache__/\n")
    git(origin, "init", "-q", "-b", "main")
    git(origin, "add", ".")
    git(origin, "commit", "-q", "-m", "release")
    subprocess.run(["git", "clone", "-q", str(origin), str(folder / "clone")], check=True, capture_output=True)
    return folder / "clone"


def tags(registry: str, path: str) -> list[str]:
    """The tags the real registry holds for ``path``; [] when it holds nothing there."""
    answer = requests.get(f"http://{registry}/v2/{path}/tags/list", timeout=5)
    if answer.status_code == 404:
        return []
    answer.raise_for_status()
    return answer.json()["tags"] or []


@pytest.fixture(scope="module")
def clone(snapshot, tmp_path_factory) -> Path:
    """A clean clone of a repository holding the rendered snapshot: what publish accepts."""
    return committed(snapshot, tmp_path_factory.mktemp("git"))


@pytest.fixture(scope="module")
def published(registry, snapshot, clone):
    proc = run_generator(clone, "publish", "--registry", f"{registry}/charts", "--plain-http")
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


def readme_lines(prefix: str) -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return [line.strip() for block in re.findall(r"```(?:sh|bash)?\n(.*?)```", text, re.S)
            for line in block.splitlines() if line.strip().startswith(prefix)]


@pytest.mark.parametrize("major", HELM_MAJORS)
def test_oci_users_get_the_environment_files_with_the_readme_commands(published, snapshot, tmp_path, major):
    """The README's `helm pull --untar` gives an OCI user the environment files; its install line uses them."""
    ref, version = published
    pulls = [line for line in readme_lines("helm pull oci://") if "--untar" in line]
    installs = [line for line in readme_lines("helm upgrade --install") if f"{CHART}/ci/" in line]
    assert pulls and installs, "README shows no `helm pull ... --untar` and install with the shipped environment file"
    argv = shlex.split(pulls[0])
    argv = [ref if a.startswith("oci://") else version if i and argv[i - 1] == "--version" else a
            for i, a in enumerate(argv)]
    tools.run([tools.helm(major), *argv[1:], "--plain-http"], cwd=tmp_path)
    install = shlex.split(installs[0])
    shown = install[install.index("-f") + 1]
    assert shown.startswith(f"{CHART}/ci/") and shown.endswith("-values.yaml"), shown
    for env in ENVIRONMENTS:
        shipped = tmp_path / shown.replace("prod", env)
        assert shipped.is_file(), f"{shipped.relative_to(tmp_path)} is not in the package"
        assert shipped.read_bytes() == (snapshot / "chart" / "ci" / f"{env}-values.yaml").read_bytes()
        remote = tools.run([tools.helm(major), "template", "vemon", ref, "--version", version, "--plain-http",
                            "--namespace", "monitoring", "-f", str(shipped)], timeout=120).stdout
        assert remote == template(major, str(snapshot / "chart"), env), \
            f"{env}: the shipped environment file renders differently from values/{env}.yaml"


def test_publishing_the_same_version_twice_fails_with_a_clear_message(published, registry, clone):
    ref, version = published
    proc = run_generator(clone, "publish", "--registry", f"{registry}/charts", "--plain-http", "--helm", "4")
    assert proc.returncode == 1
    assert f"version {version} is already published" in proc.stderr and "bump version" in proc.stderr
    tags = requests.get(f"http://{registry}/v2/charts/{CHART}/tags/list", timeout=5).json()["tags"]
    assert tags == [version]


def test_a_bumped_version_publishes_beside_the_old_one(published, registry, snapshot, tmp_path):
    ref, version = published
    bumped = committed(snapshot, tmp_path)
    meta = bumped / "templates_src" / "chart" / "Chart.yaml"
    meta.write_text(re.sub(r"(?m)^version: .*$", "version: 99.0.0", meta.read_text()))
    assert run_generator(bumped, "render").returncode == 0
    git(bumped, "commit", "-q", "-am", "99.0.0")
    proc = run_generator(bumped, "publish", "--registry", f"{registry}/charts", "--plain-http")
    assert proc.returncode == 0, proc.stderr
    tags = requests.get(f"http://{registry}/v2/charts/{CHART}/tags/list", timeout=5).json()["tags"]
    assert sorted(tags) == sorted([version, "99.0.0"])


def test_publish_refuses_a_chart_that_differs_from_its_sources(registry, snapshot, tmp_path):
    stale = committed(snapshot, tmp_path)
    (stale / "chart" / "values.yaml").write_text((stale / "chart" / "values.yaml").read_text() + "# edited\n")
    git(stale, "commit", "-q", "-am", "hand edit")   # committed, so only the source check can refuse it
    proc = run_generator(stale, "publish", "--registry", f"{registry}/other", "--plain-http")
    assert proc.returncode == 1 and "python -m generator render" in proc.stderr and "differs: chart/values.yaml" in proc.stderr
    assert tags(registry, f"other/{CHART}") == []


def test_an_unreachable_registry_is_reported_as_such_not_as_an_existing_version(clone):
    proc = run_generator(clone, "publish", "--registry", f"127.0.0.1:{free_port()}/charts", "--plain-http")
    assert proc.returncode == 1
    assert "cannot ask" in proc.stderr and "already published" not in proc.stderr


# ---- only a clean, committed tree is published ------------------------------------------------------------------

def _add_perf_environment(repo: Path) -> None:
    """What happened to 0.1.0: a local values/perf.yaml, rendered (chart/ci/perf-values.yaml), never committed."""
    (repo / "values" / "perf.yaml").write_text((repo / "values" / "staging.yaml").read_text()
                                               .replace("environment: staging", "environment: perf"))
    proc = run_generator(repo, "render")
    assert proc.returncode == 0, proc.stderr
    assert (repo / "chart" / "ci" / "perf-values.yaml").is_file()


@pytest.mark.parametrize("dirt", ["untracked environment", "uncommitted edit", "staged edit", "ignored file in chart"])
def test_publish_refuses_a_tree_that_is_not_clean_and_committed_and_names_the_files(registry, snapshot, tmp_path,
                                                                                     dirt):
    repo = committed(snapshot, tmp_path)
    if dirt == "untracked environment":
        _add_perf_environment(repo)
        named = ["untracked: values/perf.yaml", "untracked: chart/ci/perf-values.yaml"]
    elif dirt in ("uncommitted edit", "staged edit"):
        prod = repo / "values" / "prod.yaml"
        prod.write_text(prod.read_text().replace("interval: 30s", "interval: 20s", 1))
        assert run_generator(repo, "render").returncode == 0
        if dirt == "staged edit":
            git(repo, "add", "-A")
        named = [f"{'staged' if dirt == 'staged edit' else 'modified'}, not committed: values/prod.yaml"]
    else:
        (repo / ".gitignore").write_text((repo / ".gitignore").read_text() + "*.local.yaml\n")
        git(repo, "commit", "-q", "-am", "ignore local files")
        (repo / "chart" / "extra.local.yaml").write_text("a: 1\n")   # helm package would ship it
        named = ["ignored: chart/extra.local.yaml"]
    proc = run_generator(repo, "publish", "--registry", f"{registry}/dirty", "--plain-http")
    assert proc.returncode == 1, proc.stdout
    assert "publish needs a clean, committed tree" in proc.stderr and "--allow-unclean" in proc.stderr
    for line in named:
        assert line in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    assert tags(registry, f"dirty/{CHART}") == [], "a refused publish pushed something"


def test_publish_refuses_a_folder_that_is_not_a_git_checkout(registry, snapshot):
    proc = run_generator(snapshot, "publish", "--registry", f"{registry}/nogit", "--plain-http")
    assert proc.returncode == 1 and "is not a git checkout" in proc.stderr and "--allow-unclean" in proc.stderr
    assert tags(registry, f"nogit/{CHART}") == []


def test_allow_unclean_publishes_with_a_loud_warning_naming_every_file(registry, snapshot, tmp_path):
    repo = committed(snapshot, tmp_path)
    _add_perf_environment(repo)
    proc = run_generator(repo, "publish", "--registry", f"{registry}/emergency", "--plain-http", "--allow-unclean")
    assert proc.returncode == 0, proc.stderr
    assert "WARNING: --allow-unclean: publishing a tree that is NOT clean and committed" in proc.stderr
    assert "untracked: values/perf.yaml" in proc.stderr and "never be replaced" in proc.stderr
    assert "published from an unclean tree" in proc.stderr    # repeated after the push, where it is read
    assert tags(registry, f"emergency/{CHART}") != []


def test_credentials_come_from_the_environment_and_land_in_no_file(registry, clone, tmp_path):
    snapshot = clone
    import os
    home = tmp_path / "home"
    home.mkdir()
    env = dict(os.environ, HELM_REGISTRY_USERNAME="ci", HELM_REGISTRY_PASSWORD="not-a-real-secret", HOME=str(home),
               XDG_CONFIG_HOME=str(home / ".config"), HELM_REGISTRY_CONFIG=str(home / "registry.json"))
    def files(root):   # git's own index and the template cache are rewritten by any run; credentials are not there
        return {p: p.stat().st_mtime for p in root.rglob("*") if p.is_file() and not {".git", ".cache"} & set(p.parts)}
    before = files(snapshot)
    proc = subprocess.run([__import__("sys").executable, "-m", "generator", "--root", str(snapshot), "publish",
                           "--registry", f"{registry}/creds", "--plain-http"],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    after = files(snapshot)
    assert after == before
    assert "not-a-real-secret" not in proc.stdout + proc.stderr
    import base64
    marks = (b"not-a-real-secret", base64.b64encode(b"ci:not-a-real-secret"))
    leaked = [p for folder in (home, snapshot) for p in folder.rglob("*")
              if p.is_file() and any(m in p.read_bytes() for m in marks)]
    assert leaked == []


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
