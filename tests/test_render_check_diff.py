"""`render --check` shows what a render would change as a readable unified diff, file by file.

Rule groups are stored as one-line JSON (`chart/files/rules/*.json`); a changed threshold used to print as
two 9,000-character lines. The diff pretty-prints JSON, goes from what is on disk to what render writes,
and gives every file its own header and its own line budget, so one big change does not hide the others.
"""
from __future__ import annotations

import shutil

import pytest

from conftest import ROOT, run_generator

LONGEST = 400   # a description or a multi-line expression is one JSON string; the file is 9,000 characters


@pytest.fixture
def project(tmp_path):
    for name in ("templates_src", "values", "chart", "docs", "integrations"):
        shutil.copytree(ROOT / name, tmp_path / name)
    assert run_generator(tmp_path, "render", "--check").returncode == 0
    return tmp_path


def _edit(path, old, new):
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def _file_diff(err: str, rel: str) -> list[str]:
    """The lines of ``rel``'s section of the diff (from its --- header to the next file's)."""
    lines = err.splitlines()
    start = lines.index(f"--- {rel} (on disk)")
    assert lines[start + 1] == f"+++ {rel} (after render)"
    end = next((i for i in range(start + 2, len(lines)) if lines[i].startswith("--- ")), len(lines))
    return lines[start:end]


def test_a_changed_threshold_in_a_one_line_rule_file_shows_as_short_readable_lines(project):
    _edit(project / "templates_src/rules/warning.yaml.j2", "minPeersValidator: 2, minPeersOther: 5",
          "minPeersValidator: 2, minPeersOther: 7")
    proc = run_generator(project, "render", "--check")
    assert proc.returncode == 1
    section = _file_diff(proc.stderr, "chart/files/rules/virtengine.warning.json")
    changed = [line for line in section[2:] if line.startswith(("-", "+"))]
    assert changed, section
    assert all(len(line) <= LONGEST for line in section), [len(line) for line in section]
    assert any(line.startswith("-") and "< 5" in line for line in changed)
    assert any(line.startswith("+") and "< 7" in line for line in changed)
    assert '+      "minPeersOther": 7,' in _file_diff(proc.stderr, "chart/files/rule-templates/virtengine.warning.json")
    assert "run `python -m generator render`" in proc.stderr


def test_a_dashboard_change_is_a_pretty_printed_json_diff_from_disk_to_render(project):
    _edit(project / "templates_src/dashboards/k8s-nodes.yaml.j2", '"Not ready"', '"Nodes not ready"')
    proc = run_generator(project, "render", "--check")
    assert proc.returncode == 1
    section = _file_diff(proc.stderr, "chart/files/dashboards/k8s-nodes.json")
    assert '-      "title": "Not ready",' in section and '+      "title": "Nodes not ready",' in section, section


def test_every_changed_file_gets_its_own_diff_and_a_long_one_is_cut_per_file(project):
    values = project / "chart" / "values.yaml"
    values.write_text(values.read_text() + "".join(f"# hand edit {i}\n" for i in range(500)))
    _edit(project / "templates_src/dashboards/k8s-nodes.yaml.j2", '"Not ready"', '"Nodes not ready"')
    proc = run_generator(project, "render", "--check")
    assert proc.returncode == 1
    section = _file_diff(proc.stderr, "chart/values.yaml")
    assert any("more lines of chart/values.yaml" in line for line in section), section[-3:]
    assert len(section) < 120
    dash = _file_diff(proc.stderr, "chart/files/dashboards/k8s-nodes.json")
    assert '+      "title": "Nodes not ready",' in dash
