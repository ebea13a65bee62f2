"""The render's memoised pure functions (``toolcache.Memo``): the YAML of rendered templates, the secrets scan of
each generated file, the CI values files, the dashboard lint verdict and the global-view YAML. A result comes
from the cache only under a key over its whole input and the generator's code: a changed input or a changed
generator computes again, a damaged entry is ignored, and a render with the cache equals one without, byte for
byte."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import ROOT
from generator import secrets, toolcache
from generator.build import build
from generator.content import environments, globalview
from generator.errors import ValidationError
from generator.render import Renderer
from generator.values import Environment

MEMOS = ("yaml", "secrets", "ci-values", "dashboard-lint", "global-yaml")


@pytest.fixture
def cache(tmp_path: Path, monkeypatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("VEMON_CACHE_DIR", str(folder))
    monkeypatch.delenv("VEMON_NO_CACHE", raising=False)
    return folder


@pytest.fixture
def counted(monkeypatch) -> dict:
    """Hits and misses of every memo, by name."""
    counts: dict[str, list[int]] = {}
    real_get = toolcache.Memo.get

    def get(self, key):
        value = real_get(self, key)
        counts.setdefault(self.name, [0, 0])[value is None] += 1
        return value
    monkeypatch.setattr(toolcache.Memo, "get", get)
    return counts


def test_a_render_from_the_cache_equals_one_without_it_byte_for_byte(cache: Path, counted: dict, monkeypatch):
    monkeypatch.setenv("VEMON_NO_CACHE", "1")
    uncached = build(ROOT).files
    assert not counted or all(hits == 0 for hits, _ in counted.values())
    monkeypatch.delenv("VEMON_NO_CACHE")
    cold = build(ROOT).files          # fills the cache
    counted.clear()
    warm = build(ROOT).files          # served from it
    assert cold == uncached
    assert warm == uncached
    for name in MEMOS:
        hits, misses = counted.get(name, [0, 0])
        assert hits > 0 and misses == 0, f"memo {name}: {hits} hits, {misses} misses on an unchanged render"


def test_the_code_version_changes_with_any_byte_of_the_generator(tmp_path: Path):
    shutil.copytree(ROOT / "generator", tmp_path / "generator", ignore=shutil.ignore_patterns("__pycache__"))
    probe = ["-c", "from generator import toolcache; print(toolcache.code_version())"]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}

    def version() -> str:
        return subprocess.run([sys.executable, *probe], cwd=tmp_path, env=env, capture_output=True, text=True,
                              check=True).stdout.strip()
    first = version()
    assert first == version()
    path = tmp_path / "generator" / "content" / "dashboards.py"
    path.write_text(path.read_text() + "\n# one more line\n")
    assert version() != first


def test_a_memo_key_covers_every_part_and_the_code(cache: Path, monkeypatch):
    memo = toolcache.Memo("probe")
    key = memo.key("a", "b")
    memo.put(key, b"value")
    assert memo.get(key) == b"value"
    assert memo.get(memo.key("a", "c")) is None and memo.get(memo.key("ab")) is None
    monkeypatch.setattr(toolcache, "_CODE_VERSION", ["another generator"])
    assert memo.key("a", "b") != key and memo.get(memo.key("a", "b")) is None


def test_damaged_memo_entries_are_ignored(cache: Path):
    memo = toolcache.Memo("probe")
    key = memo.key("input")
    memo.put(key, b"right")
    toolcache.save_memos()
    import marshal
    path = toolcache.folder() / "memo-probe.bin"
    entries = marshal.loads(path.read_bytes())
    entries[key] = (b"forged", entries[key][1])            # value changed, checksum kept
    path.write_bytes(marshal.dumps(entries))
    assert toolcache.Memo("probe").get(key) is None
    path.write_bytes(path.read_bytes()[:20])                # a write cut short
    assert toolcache.Memo("probe").get(key) is None
    path.write_bytes(b"not marshal at all")
    assert toolcache.Memo("probe").get(key) is None


def test_the_yaml_of_a_changed_template_is_read_again(cache: Path, tmp_path: Path):
    src = tmp_path / "templates_src"
    src.mkdir()
    template = src / "doc.yaml.j2"
    template.write_text("a: 1\nb:\n  c: << value >>\n")
    first = Renderer(src).render_data("doc.yaml.j2", {"value": "x"})
    toolcache.save_memos()
    again = Renderer(src).render_data("doc.yaml.j2", {"value": "x"})          # from the cache
    assert again == first == {"a": 1, "b": {"c": "x"}}
    assert again.lines == first.lines == {"a": 1, "b": 2} and again["b"].lines == {"c": 3}
    assert Renderer(src).render_data("doc.yaml.j2", {"value": "2"}) == {"a": 1, "b": {"c": 2}}
    template.write_text("\na: 1\nb:\n  c: << value >>\n")
    moved = Renderer(src).render_data("doc.yaml.j2", {"value": "x"})
    assert moved == first and moved.lines == {"a": 2, "b": 3}


def test_a_secret_in_a_file_scanned_clean_before_is_found(cache: Path):
    files = {"chart/values.yaml": b"receiver:\n  routing_key_file: /etc/keys/pd\n"}
    secrets.check_generated(files)
    toolcache.save_memos()
    secrets.check_generated(files)                       # the clean verdict, from the cache
    planted = {"chart/values.yaml": b"receiver:\n  routing_key: Q2hhcnRlZEtleTEyMzQ1Njc4OTBhYmNkZWY\n"}
    with pytest.raises(ValidationError, match="chart/values.yaml:2: receiver.routing_key"):
        secrets.check_generated(planted)
    with pytest.raises(ValidationError, match="chart/values.yaml:2: receiver.routing_key"):
        secrets.check_generated(planted)                 # a finding kept in the cache is a finding again
    with pytest.raises(ValidationError, match="docs/x.yaml:2"):
        secrets.check_generated({"docs/x.yaml": planted["chart/values.yaml"]})


def test_a_changed_environment_file_gives_a_changed_ci_values_file(cache: Path):
    class Out:
        def __init__(self):
            self.files = {}

        def add(self, path, data):
            self.files[path] = data

    class Src:
        def __init__(self, text):
            self.envs = {"dev": Environment("dev", "values/dev.yaml", {}, text)}

    def render(text: str) -> str:
        out = Out()
        environments.build(Src(text), out)
        toolcache.save_memos()
        return out.files["chart/ci/dev-values.yaml"]
    first = render("a: 1  # kept\n_hidden: 2\n")
    assert render("a: 1  # kept\n_hidden: 2\n") == first
    assert "a: 1  # kept" in first and "_hidden" not in first
    assert "a: 3" in render("a: 3  # kept\n_hidden: 2\n")


def test_global_view_yaml_tells_apart_values_of_the_same_text(cache: Path):
    samples = [{"v": 1}, {"v": 1.0}, {"v": True}, {"v": "1"}, {"v": [1]}, {"v": None}, {"v": "a\nb"}]
    expected = [yaml.dump(s, Dumper=globalview._Dumper, sort_keys=True, default_flow_style=False, width=4096,
                          allow_unicode=False) for s in samples]
    for _ in range(2):   # computed, then from the cache
        globalview._MEMO.append(toolcache.Memo("global-yaml"))
        try:
            assert [globalview._yaml(s) for s in samples] == expected
        finally:
            toolcache.save_memos()
            globalview._MEMO.pop()


def test_a_dashboard_lint_problem_is_found_with_a_warm_cache(project: Path, tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if k != "VEMON_NO_CACHE"}
    env["VEMON_CACHE_DIR"] = str(tmp_path / "cache")
    cmd = [sys.executable, "-m", "generator", "--root", str(project), "render"]
    assert subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True).returncode == 0
    path = project / "templates_src" / "dashboards" / "business-metrics.yaml.j2"
    text = path.read_text()
    # a variable defined twice, in a dashboard whose clean verdict is in the cache
    assert "variables: [<< cluster() >>," in text
    path.write_text(text.replace("variables: [<< cluster() >>,", "variables: [<< cluster() >>, << cluster() >>,"))
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    assert proc.returncode == 1 and "dashboard lint" in proc.stderr and "defined twice" in proc.stderr, proc.stderr


SCALARS = ["yes", "No", "on", "OFF", "true", "False", "~", "null", "", "0", "-0", "0o17", "0x1F", "017", "1_000",
           "+12", "1.5", "-.5", ".inf", "-.Inf", ".nan", "6.8523015e+5", "1:20", "2001-12-14", "2001-12-14t21:59:43.10-05:00",
           "a", "12abc", "y", "n", "1e3"]


def test_yaml_tag_resolver_memo_reads_every_scalar_as_pyyaml_does():
    """``yamlio``'s remembered scalar tags give the data PyYAML's safe loader gives, on a first read and a
    second (answered from the memo), for plain and quoted forms of every kind of implicit scalar."""
    from generator import yamlio
    text = "".join(f"k{i}: {s}\nq{i}: '{s}'\nl{i}: [{s or '~'}]\n" for i, s in enumerate(SCALARS))
    expected = yaml.load(text, Loader=yaml.SafeLoader)   # noqa: S506 - PyYAML's pure-Python safe loader
    yamlio._RESOLVED.clear()
    first = yamlio.loads_yaml(text, "x.yaml")
    assert yamlio._RESOLVED, "the scalar tags were not remembered"
    second = yamlio.loads_yaml(text, "x.yaml")
    assert first == expected and second == expected
    assert [type(v) for v in second.values()] == [type(v) for v in expected.values()]
    # a text read before as a string is still a number where the document writes it unquoted, and the reverse
    assert yamlio.loads_yaml("a: '12'\nb: 12\n", "y.yaml") == {"a": "12", "b": 12}
    assert yamlio.loads_yaml("a: 12\nb: '12'\n", "y.yaml") == {"a": 12, "b": "12"}
