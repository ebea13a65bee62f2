"""The verdict cache of the render's external tools (generator/toolcache.py): the PromQL grammar (Node) and
``promtool check rules``. A warm cache must never let through what the tools refuse: the key is the exact
text the tool would receive and the tool's version, a corrupt entry is ignored, and it can be turned off.

Each test renders a copy of the project with the real generator, Node grammar and promtool, its cache in a
folder of its own (``VEMON_CACHE_DIR``), and reads what the render sent to the tools: the tests of a refusal or
a re-check also show that the cache answered for everything else (a render without the cache sends every
expression and every group)."""
from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT

from generator import tools
from generator.promql import substitute

RULES = "templates_src/rules/warning.yaml.j2"
GOOD = "max by (cluster) (virtengine_veid_pending_verifications) > ${threshold}"
# the grammar refuses it (a parenthesis left open)
UNPARSED = "max by (cluster) (virtengine_veid_pending_verifications > ${threshold}"
# the grammar reads it; promtool refuses it (max over a range vector)
PROMTOOL_ONLY = "max by (cluster) (virtengine_veid_pending_verifications[5m]) > ${threshold}"

# a render in this process, reporting which tools it started and what they were sent: the grammar's Node
# processes and the expressions written to them, the tool runs (promtool check rules) and the groups checked
PROBE = """
import json, sys
import yaml
from generator import promql, tools
runs, groups, sent = [], [], []
real_run = tools.run
def counting_run(cmd, **kw):
    runs.append(cmd[0].rsplit("/", 1)[-1])
    if cmd[1:3] == ["check", "rules"]:
        for path in cmd[3:]:
            with open(path, encoding="utf-8") as f:
                groups.extend(g["name"] for g in yaml.safe_load(f)["groups"])
    return real_run(cmd, **kw)
tools.run = counting_run
class Tee:
    def __init__(self, pipe):
        self.pipe = pipe
    def write(self, text):
        sent.extend(json.loads(text))
        return self.pipe.write(text)
    def __getattr__(self, name):
        return getattr(self.pipe, name)
real_start = promql._Service._start
def counting_start(service):
    proc = real_start(service)
    proc.stdin = Tee(proc.stdin)
    return proc
promql._Service._start = counting_start
from generator.cli import main
code = main(["--root", sys.argv[1], "render", *sys.argv[2:]])
print(json.dumps({"code": code, "node": promql.processes_started(), "sent": sent, "tools": runs, "groups": groups}))
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


def refused(root: Path, cache: Path, *needles: str) -> tuple[str, dict]:
    """A render of the copy that must fail, its message naming every one of ``needles``: (message, report)."""
    proc, result = render(root, cache)
    assert proc.returncode == 1, proc.stdout + proc.stderr[-2000:]
    assert all(n in proc.stderr for n in needles), (needles, proc.stderr[-2000:])
    return proc.stderr, result


def chart_groups() -> list[str]:
    return sorted(json.loads(p.read_text())["name"] for p in (ROOT / "chart" / "files" / "rules").glob("*.json"))


def tools_with_promtool(folder: Path, version: str) -> Path:
    """A tools folder (``VEMON_TOOLS_BIN``) whose promtool is the real one reporting another ``--version``: a
    promtool upgraded in place. Written through a rename, as an installer does (a new file, a new identity);
    the other tools of the real tools folder are linked as they are."""
    real = tools.find("promtool")
    folder.mkdir(parents=True, exist_ok=True)
    for tool in tools._tools_bin().glob("*"):
        if tool.name != "promtool" and not (folder / tool.name).exists():
            (folder / tool.name).symlink_to(tool.resolve())
    tmp = folder / ".promtool.tmp"
    tmp.write_text(f'#!/bin/sh\nif [ "$1" = "--version" ]; then echo {shlex.quote("promtool, version " + version)}; '
                   f'exit 0; fi\nexec {shlex.quote(real)} "$@"\n')
    tmp.chmod(0o755)
    os.replace(tmp, folder / "promtool")
    return folder


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
    assert sorted(result["groups"]) == chart_groups(), result["groups"]
    assert grammar_file(cache).stat().st_size > 0 and list((cache / "tools" / "promtool").rglob("*.json"))
    return project, cache


def test_a_warm_cache_asks_no_tool_and_changes_no_byte(warm):
    root, cache = warm
    proc, result = render(root, cache, "--check")   # --check: the output is byte for byte what is on disk
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert result["node"] == 0, "every expression was parsed before: the grammar must not be started"
    assert "promtool" not in result["tools"], "every group passed promtool before: it must not run again"


def test_a_planted_unparsable_expression_is_refused_and_stays_refused_from_the_cache(warm):
    root, cache = warm
    plant(root, UNPARSED)
    message, result = refused(root, cache, RULES, "does not parse")
    assert result["node"] == 1 and [e.strip() for e in result["sent"]] == [substitute(UNPARSED)], \
        "only the changed expression goes to the grammar: every other answer is the cache's"
    # the grammar's answer, its errors with it, was kept: the second render reads it and refuses the same way
    again, result = refused(root, cache, RULES, "does not parse")
    assert result["node"] == 0 and result["sent"] == [], "the cached answer must serve, without the grammar"
    assert again == message


def test_a_planted_expression_promtool_refuses_is_refused_again_and_the_other_verdicts_serve(warm):
    root, cache = warm
    plant(root, PROMTOOL_ONLY)
    for attempt in range(2):   # the second: a refusal is never recorded as a verdict, promtool judges it again
        _, result = refused(root, cache, "virtengine.warning", "VEIDVerificationQueue")
        assert result["groups"] == ["virtengine.warning"], \
            f"render {attempt + 1}: only the changed group goes to promtool, every other group's pass is the cache's"
    # back to the original: the cached verdicts serve again, nothing is run, the output is the committed chart
    (root / RULES).write_text((ROOT / RULES).read_text())
    proc, result = render(root, cache, "--check")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert result["node"] == 0 and "promtool" not in result["tools"], result


def test_another_promtool_version_checks_every_group_again(project: Path, tmp_path: Path):
    """The promtool verdicts are keyed on what ``promtool --version`` prints: another promtool judges again."""
    with_integrations(project)
    cache, folder = tmp_path / "cache", tmp_path / "tools"
    env = {"VEMON_TOOLS_BIN": str(tools_with_promtool(folder, "2.42.0 (branch: HEAD, revision: a)"))}
    proc, result = render(project, cache, "--check", env=env)
    assert proc.returncode == 0 and sorted(result["groups"]) == chart_groups(), proc.stderr[-2000:]
    proc, result = render(project, cache, "--check", env=env)   # the same promtool: its verdicts serve
    assert proc.returncode == 0 and "promtool" not in result["tools"], (proc.stderr[-2000:], result)
    tools_with_promtool(folder, "2.53.1 (branch: HEAD, revision: b)")
    proc, result = render(project, cache, "--check", env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert sorted(result["groups"]) == chart_groups(), \
        "every group passed the old promtool only: the new version must check them all again"
    assert result["node"] == 0, "the grammar did not change: its answers still serve"


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
    _, result = refused(root, cache, "VEIDVerificationQueue")
    assert sorted(result["groups"]) == chart_groups(), "no forged verdict may spare a group from promtool"


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
