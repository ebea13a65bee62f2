"""Chart metadata: what `helm lint` and Artifact Hub read from Chart.yaml (icon, links, version)."""
from __future__ import annotations

import re

import pytest
import yaml

from conftest import ENVIRONMENTS, HELM_MAJORS, ROOT
from generator import tools

REPO_RAW = "https://raw.githubusercontent.com/virtengine/virtengine-observability/main/"


def chart_yaml() -> dict:
    return yaml.safe_load((ROOT / "chart" / "Chart.yaml").read_text())


@pytest.mark.parametrize("env", ENVIRONMENTS)
@pytest.mark.parametrize("major", HELM_MAJORS)
def test_helm_lint_prints_no_info_notes(major, env):
    """helm lint's [INFO] notes (icon is recommended, ...) are what Artifact Hub shows as missing metadata."""
    proc = tools.run([tools.helm(major), "lint", str(ROOT / "chart"), "-f", str(ROOT / "chart" / "ci" / f"{env}-values.yaml")])
    notes = [line for line in (proc.stdout + proc.stderr).splitlines() if re.search(r"\[(INFO|WARNING|ERROR)\]", line)]
    assert notes == [], f"helm {major} lint notes: {notes}"
    assert "1 chart(s) linted, 0 chart(s) failed" in proc.stdout


def test_the_icon_is_a_file_of_this_repository():
    icon = chart_yaml().get("icon", "")
    assert icon.startswith(REPO_RAW), f"icon {icon!r} is not served from the repository"
    path = ROOT / icon.removeprefix(REPO_RAW)
    assert path.is_file(), f"icon URL names {path.relative_to(ROOT)}, which does not exist"
    assert path.read_text().lstrip().startswith("<svg") and 'viewBox="' in path.read_text()


def test_artifacthub_links_name_the_source_runbooks_and_changelog():
    raw = chart_yaml()["annotations"].get("artifacthub.io/links")
    assert raw, "no artifacthub.io/links annotation"
    links = yaml.safe_load(raw)
    assert isinstance(links, list) and all(set(link) == {"name", "url"} for link in links), links
    urls = {link["name"]: link["url"] for link in links}
    assert all(u.startswith("https://") for u in urls.values()), urls
    assert urls.get("source") == chart_yaml()["home"]
    # each link into the repository names a file or folder that exists
    tree = "https://github.com/virtengine/virtengine-observability/blob/main/"
    for name, url in urls.items():
        if url.startswith(tree):
            assert (ROOT / url.removeprefix(tree)).exists(), f"link {name}: {url} names nothing in the repository"
    assert any("runbooks" in u for u in urls.values()) and any("CHANGELOG.md" in u for u in urls.values())


def test_chart_and_generator_versions_agree():
    import tomllib
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    meta = chart_yaml()
    assert meta["version"] == project["version"] == str(meta["appVersion"]) == "0.2.0"
