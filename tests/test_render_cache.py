"""The verdict cache of the render's external tools (generator/toolcache.py): the PromQL grammar (Node) and
``promtool check rules``. A warm cache must never let through what the tools refuse: the key is the exact
text the tool would receive and the tool's version, a corrupt entry is ignored, and it can be turned off.

Each test renders a copy of the project with the real generator, Node grammar and promtool, its cache in a
folder of its own (``VEMON_CACHE_DIR``)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT

RULES = "templates_src/rules/warning.yaml.j2"
GOOD = "max by (cluster) (virtengine_veid_pending_verifications) > ${threshold}"
# the grammar refuses it (a parenthesis left open)
UNPARSED = "max by (cluster) (virtengine_veid_pending_verifications > ${threshold}"
# the grammar reads it; promtool refuses it (max over a range vector)
PROMTOOL_ONLY = "max by (cluster) (virtengine_veid_pending_verifications[5m]) > ${threshold}"

# a render in this process, reporting which tools it started: the grammar's Node processes and promtool runs
PROBE = """
import json, sys
from generator import promql, tools
runs = []
real_run = tools.run
def counting_run(cmd, **kw):
    runs.append(cmd[0].rsplit("/", 1)[-1])
    return real_run(cmd, **kw)
tools.run = counting_run
from generator.cli import main
code = main(["--root", sys.argv[1], "render", *sys.argv[2:]])
print(json.dumps({"code": code, "node": promql.processes_started(), "tools": runs}))
sys.exit(code)
"""


def render(root: Path, cache: Path, *args: str, env: dict | None = None) -> tuple[subprocess.CompletedProcess, dict]:
    environ = {k: v for k, v in os.environ.items() if k != "VEMON_NO_CACHE"}
    environ.update({"VEMON_CACHE_DIR": str(cache), **(env or {})})
    proc = subprocess.run([sys.executable, "-c", PROBE, str(root), *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=600, env=environ)
    lines = proc.stdout.strip().splitlines()
    result = json.loads(lines[-1]) if lines and lines[-1].startswith("{") else {}
    return proc, result


def plant(root: Path, expr: str) -> None:
    path = root / RULES
    text = path.read_text()
    assert GOOD in text
    path.write_text(text.replace(GOOD, expr))


def grammar_file(cache: Path) -> Path:
    files = list((cache / "tools").glob("promql-*.json"))
    assert len(files) == 1, files
    return files[0]


def with_integrations(root: Path) -> None:
    """The generated integration files too, so ``render --check`` of the copy compares everything."""
    shutil.copytree(ROOT / "integrations", root / "integrations")


@pytest.fixture
def warm(project: Path, tmp_path: Path) -> tuple[Path, Path]:
    """The project copy rendered once with an empty cache: every verdict recorded."""
    with_integrations(project)
    cache = tmp_path / "cache"
    proc, result = render(project, cache, "--check")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert result["node"] == 1 and result["tools"].count("promtool") == 1, result
    assert grammar_file(cache).stat().st_size > 0 and list((cache / "tools" / "promtool").rglob("*.json"))
    return project, cache


def test_a_warm_cache_asks_no_tool_and_changes_no_byte(warm):
    root, cache = warm
    proc, result = render(root, cache, "--check")   # --check: the output is byte for byte what is on disk
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert result["node"] == 0, "every expression was parsed before: the grammar must not be started"
    assert "promtool" not in result["tools"], "every group passed promtool before: it must not run again"


def test_a_planted_unparsable_expression_is_refused_with_a_warm_cache(warm):
    root, cache = warm
    plant(root, UNPARSED)
    proc, result = render(root, cache)
    assert proc.returncode == 1, proc.stdout
    assert "templates_src/rules/warning.yaml.j2" in proc.stderr and "does not parse" in proc.stderr, proc.stderr
    assert result["node"] == 1, "the changed expression goes to the grammar"


def test_a_planted_expression_promtool_refuses_is_refused_with_a_warm_cache(warm):
    root, cache = warm
    plant(root, PROMTOOL_ONLY)
    proc, result = render(root, cache)
    assert proc.returncode == 1, proc.stdout
    assert "virtengine.warning" in proc.stderr and "VEIDVerificationQueue" in proc.stderr, proc.stderr
    assert "promtool" in result["tools"]
    # and refused again: a refusal is never recorded as a verdict
    proc, result = render(root, cache)
    assert proc.returncode == 1 and "VEIDVerificationQueue" in proc.stderr, proc.stderr
    # back to the original: the cached verdicts serve again, the output is the committed chart
    (root / RULES).write_text((ROOT / RULES).read_text())
    proc, result = render(root, cache, "--check")
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_corrupt_grammar_entries_are_ignored_not_trusted(warm):
    root, cache = warm
    path = grammar_file(cache)
    data = json.loads(path.read_text())
    # every answer altered to report a parse error at offset 0, checksums left as they were
    for entry in data["entries"].values():
        answer = json.loads(entry[1])
        answer["errors"] = [{"from": 0, "to": 1}]
        entry[1] = json.dumps(answer)
    path.write_text(json.dumps(data))
    proc, result = render(root, cache, "--check")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert result["node"] == 1, "entries failing their checksum must be parsed again"
    # a file that is not JSON at all (a write cut short): ignored, rewritten
    path.write_text(path.read_text()[: 1000])
    proc, result = render(root, cache, "--check")
    assert proc.returncode == 0 and result["node"] == 1, proc.stderr[-2000:]
    json.loads(grammar_file(cache).read_text())


def test_a_forged_promtool_verdict_without_its_checksum_is_not_trusted(warm):
    root, cache = warm
    plant(root, PROMTOOL_ONLY)
    # a verdict file for every key there is, claiming "ok" with a wrong checksum; and the real ones truncated
    for verdict in (cache / "tools" / "promtool").rglob("*.json"):
        data = json.loads(verdict.read_text())
        verdict.write_text(json.dumps({**data, "checksum": "0" * 64}))
    proc, result = render(root, cache)
    assert proc.returncode == 1 and "VEIDVerificationQueue" in proc.stderr, proc.stderr


@pytest.mark.parametrize("how", ["flag", "env"])
def test_the_cache_can_be_turned_off(project: Path, tmp_path: Path, how: str):
    with_integrations(project)
    cache = tmp_path / "cache"
    args, env = (["--check", "--no-cache"], None) if how == "flag" else (["--check"], {"VEMON_NO_CACHE": "1"})
    for _ in range(2):
        proc, result = render(project, cache, *args, env=env)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert result["node"] == 1 and result["tools"].count("promtool") == 1, result
    assert not cache.exists() or not any(cache.rglob("*.json")), list(cache.rglob("*"))
