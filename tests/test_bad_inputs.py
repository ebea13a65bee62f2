"""Bad input gets a clear error, and nothing is lost.

Every case of ``tests/bad_inputs/cases.yaml`` is planted into a copy of the
project; ``python -m generator render`` must exit 1 with the case's error
(file, line or key path, the allowed values), print no traceback, and leave
``chart/`` and ``docs/`` byte-for-byte as they were. Hostile files that are
generated rather than stored (a file over the size limit, one just under
it, deep nesting) are here too, with their time and memory measured.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, run_generator, tree_bytes

BAD = Path(__file__).resolve().parent / "bad_inputs"
CASES = yaml.safe_load((BAD / "cases.yaml").read_text(encoding="utf-8"))
# A hostile file may cost the generator at most this many clean renders of CPU time. Both are the generator's own
# CPU seconds as the kernel counts them (rusage), which other work on a busy machine does not inflate the way it
# inflates wall time; the clean render is measured in the same run, so a slower machine moves both.
CPU_FACTOR = 4
MEMORY_BOUND_MB = 400      # peak resident memory of the generator on a hostile file (a clean render: about 90 MB)


def outputs(root: Path) -> dict:
    """Everything a render writes: chart/, docs/, and any leftover at the root."""
    return {"chart": tree_bytes(root / "chart"), "docs": tree_bytes(root / "docs"),
            "leftovers": sorted(p.name for p in root.iterdir() if p.name.startswith(".chart"))}


@pytest.fixture(scope="module")
def names(tmp_path_factory) -> dict:
    """An alert with a threshold, that threshold and a dashboard uid, from a fresh render."""
    import shutil
    root = tmp_path_factory.mktemp("baseline")
    for folder in ("templates_src", "values"):
        shutil.copytree(ROOT / folder, root / folder)
    proc = run_generator(root, "render")
    if proc.returncode != 0:
        pytest.fail(f"the project does not render before any bad input is planted:\n{proc.stderr}")
    schema = json.loads((root / "chart/values.schema.json").read_text())
    alerts = schema["properties"]["rules"]["properties"]["alerts"]["properties"]
    alert = next(name for name, sub in sorted(alerts.items())
                 if sub["properties"]["thresholds"].get("properties"))
    param = sorted(alerts[alert]["properties"]["thresholds"]["properties"])[0]
    dashboard = sorted(schema["properties"]["dashboards"]["properties"]["items"]["properties"])[0]
    return {"alert": alert, "param": param, "dashboard": dashboard}


def fill(text: str, names: dict) -> str:
    for key, value in names.items():
        text = text.replace("{" + key + "}", value)
    return text


def plant(root: Path, case: dict, names: dict) -> dict:
    """Applies the case to ``root``; returns the placeholders of appended lines."""
    lines = {}
    for target, source in (case.get("plant") or {}).items():
        raw = (BAD / source).read_bytes()
        try:
            raw = fill(raw.decode("utf-8"), names).encode("utf-8")
        except UnicodeDecodeError:
            pass  # the non-UTF-8 files are planted as they are
        (root / target).parent.mkdir(parents=True, exist_ok=True)
        (root / target).write_bytes(raw)
    for target, text in (case.get("append") or {}).items():
        old = (root / target).read_text(encoding="utf-8")
        if not old.endswith("\n"):
            old += "\n"
        text = fill(text, names)
        start = old.count("\n") + 1 + (len(text) - len(text.lstrip("\n")))
        (root / target).write_text(old + text, encoding="utf-8")
        lines = {"line": str(start), "line+1": str(start + 1)}
    for target in case.get("delete") or []:
        (root / target).unlink()
    return lines


def test_the_corpus_holds_every_kind_of_bad_input_the_issue_names():
    ids = " ".join(case["id"] for case in CASES)
    for kind in ("syntax", "duplicate", "number where a string", "unknown top-level", "unknown alert setting",
                 "unknown threshold", "invalid name", "empty", "alias bomb", "UTF-8", "undefined variable",
                 "macro", "not YAML", "not valid JSON", "panels with one id", "unclosed parenthesis"):
        assert kind in ids, f"no bad-input case about {kind!r}"
    assert len(CASES) >= 60


def test_every_corpus_file_is_planted_by_some_case():
    used = {source for case in CASES for source in (case.get("plant") or {}).values()}
    stored = {str(p.relative_to(BAD)) for p in BAD.rglob("*") if p.is_file() and p.name != "cases.yaml"}
    assert stored - used == set(), "corpus files no case plants"
    assert used - stored == set(), "cases planting files that do not exist"


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_bad_input_is_refused_by_name_and_changes_nothing(case, project, names):
    before = outputs(project)
    lines = plant(project, case, names)
    proc = run_generator(project, "render")
    expected = fill(fill(case["error"], names), lines)
    assert proc.returncode == 1, f"exit {proc.returncode}, expected 1\n{proc.stdout}{proc.stderr}"
    assert "Traceback" not in proc.stderr + proc.stdout
    first = proc.stderr.splitlines()[0] if proc.stderr else ""
    assert first.startswith("error: " + expected), f"\nexpected: error: {expected}\n     got: {first}"
    for mention in case.get("mentions") or []:
        assert fill(mention, names) in proc.stderr, f"{mention!r} not in the error"
    assert outputs(project) == before, "a failed render changed chart/ or docs/"


@pytest.fixture(scope="module")
def clean_cpu(tmp_path_factory) -> float:
    """CPU seconds of a clean render of the project (cold, like the hostile runs)."""
    import shutil
    root = tmp_path_factory.mktemp("clean")
    for folder in ("templates_src", "values"):
        shutil.copytree(ROOT / folder, root / folder)
    proc, cpu, _ = _measure_rss(root)
    assert proc.returncode == 0, proc.stderr
    return cpu


def _measure_rss(root: Path) -> tuple[subprocess.CompletedProcess, float, float]:
    """Runs render; returns the process, its CPU seconds and the peak resident MB of that process alone."""
    start = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "generator", "--root", str(root), "render"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    # read the pipes on threads so a chatty child cannot block, then reap it with wait4 for its rusage
    import threading
    chunks = {"out": b"", "err": b""}

    def drain(stream, key):
        chunks[key] = stream.read()
    threads = [threading.Thread(target=drain, args=(proc.stdout, "out")),
               threading.Thread(target=drain, args=(proc.stderr, "err"))]
    for t in threads:
        t.start()
    _, status, usage = os.wait4(proc.pid, 0)
    for t in threads:
        t.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    elapsed = time.monotonic() - start
    cpu = usage.ru_utime + usage.ru_stime
    rss_mb = usage.ru_maxrss / 1024  # kilobytes on Linux
    done = subprocess.CompletedProcess(proc.args, proc.returncode, chunks["out"].decode(), chunks["err"].decode())
    print(f"\n[figures] {root.name}: {cpu:.2f}s CPU ({elapsed:.2f}s wall), peak {rss_mb:.0f} MB, exit {proc.returncode}")
    return done, cpu, rss_mb


def test_a_values_file_over_the_size_limit_is_refused_fast_and_small(project, clean_cpu):
    from generator.yamlio import MAX_BYTES
    before = outputs(project)
    big = "global:\n  environment: prod\n  cluster: virtengine-prod\n_notes: |\n" + ("  " + "x" * 98 + "\n") * (
        MAX_BYTES // 100 + 10)
    (project / "values/prod.yaml").write_text(big)
    proc, cpu, rss = _measure_rss(project)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith(f"error: values/prod.yaml: file is {len(big)} bytes; the limit is {MAX_BYTES} bytes")
    assert cpu < clean_cpu, f"refusing by size took {cpu:.1f}s CPU, more than a whole clean render ({clean_cpu:.1f}s)"
    assert rss < MEMORY_BOUND_MB
    assert outputs(project) == before


def test_a_values_file_just_under_the_limit_is_read_in_bounded_time_and_memory(project, clean_cpu):
    from generator.yamlio import MAX_BYTES
    before = outputs(project)
    head = "global:\n  environment: prod\n  cluster: virtengine-prod\n_inventory:\n"
    entry = "  - validator-000000.eu-1.virtengine.example\n"
    count = (MAX_BYTES - len(head) - 200) // len(entry)
    body = "".join(entry.replace("000000", f"{i:06d}") for i in range(count))
    text = head + body + "bogus: 1\n"
    assert len(text) < MAX_BYTES
    (project / "values/prod.yaml").write_text(text)
    proc, cpu, rss = _measure_rss(project)
    last_line = text.count("\n")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith(f"error: values/prod.yaml:{last_line}: bogus: unknown key 'bogus'"), proc.stderr
    print(f"[figures] {len(text)} bytes, {count} entries: {cpu:.2f}s CPU (clean render {clean_cpu:.2f}s), "
          f"peak {rss:.0f} MB")
    assert cpu < CPU_FACTOR * clean_cpu, f"{cpu:.1f}s CPU, over {CPU_FACTOR} clean renders ({clean_cpu:.1f}s)"
    assert rss < MEMORY_BOUND_MB, f"{rss:.0f} MB"
    assert outputs(project) == before


def test_the_alias_bomb_is_refused_in_bounded_time_and_memory(project, clean_cpu):
    (project / "values/prod.yaml").write_bytes((BAD / "values/alias_bomb.yaml").read_bytes())
    proc, cpu, rss = _measure_rss(project)
    assert proc.returncode == 1 and "document expands to more than" in proc.stderr
    assert cpu < clean_cpu, f"the alias bomb took {cpu:.1f}s CPU, more than a clean render ({clean_cpu:.1f}s)"
    assert rss < MEMORY_BOUND_MB


@pytest.mark.parametrize("depth", [70, 1000, 50_000], ids=lambda d: f"{d} levels")
def test_deeply_nested_values_are_refused_without_a_traceback(project, depth):
    before = outputs(project)
    (project / "values/prod.yaml").write_text("_deep: " + "[" * depth + "]" * depth + "\n")
    proc = run_generator(project, "render")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    # our own limit, or libyaml's where it stops first
    assert re.match(r"error: values/prod\.yaml(:1)?: invalid YAML: (nested more than \d+ levels deep|"
                    r"while increasing flow level: exceeded maximum nesting depth)", proc.stderr), proc.stderr
    assert outputs(project) == before


def test_an_unknown_environment_is_named_with_the_allowed_ones(project):
    from generator.build import build
    from generator.errors import ValuesError
    with pytest.raises(ValuesError) as err:
        build(project, ["qa"])
    envs = sorted(p.stem for p in (project / "values").glob("*.yaml") if p.name != "defaults.yaml" and not p.name.startswith("_"))
    assert {"dev", "staging", "prod"} <= set(envs)
    assert str(err.value) == f"unknown environment 'qa'; allowed: {', '.join(envs)}"


# (expression, rejected by the render's syntax check): every rejection must be one promtool makes too
PROMQL_TABLE = [
    ("max by (chain_id) (rate(cometbft_consensus_height[5m]) == 0", True),
    ('cometbft_consensus_height{chain_id="virtengine-1" == 0', True),
    ("changes(cometbft_consensus_height[5 minutes]) == 0", True),
    ('cometbft_consensus_height{chain_id=virtengine} == 0', True),
    ('cometbft_consensus_height{chain_id="unterminated} == 0', True),
    ("sum(rate(cometbft_consensus_height[5m])) by (chain_id)) > 0", True),
    ("max_over_time(cometbft_consensus_height[1h:5m]) > 0", False),
    ('sum by (cluster) (rate(cometbft_consensus_height{job=~"a|b", chain_id!=""}[5m] offset 1h)) > 1', False),
    ('label_replace(up, "x", "$1", "instance", "(.*)") # a comment with ( and "', False),
]


@pytest.mark.parametrize("expr,rejected", PROMQL_TABLE, ids=[e for e, _ in PROMQL_TABLE])
def test_the_render_syntax_check_rejects_only_what_promtool_rejects(expr, rejected, tmp_path):
    from generator import tools
    from generator.promql import syntax_error
    assert (syntax_error(expr) is not None) == rejected
    rules = tmp_path / "r.yaml"
    rules.write_text(yaml.safe_dump({"groups": [{"name": "g", "rules": [{"alert": "A", "expr": expr}]}]}))
    proc = subprocess.run([tools.find("promtool"), "check", "rules", str(rules)], capture_output=True, text=True)
    assert (proc.returncode != 0) == rejected, proc.stdout + proc.stderr
