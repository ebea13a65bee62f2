"""Lint checks that every alert is documented and tested where people look for it.

- ``runbooks``: each alert has ``docs/runbooks/<runbook>.md`` with the sections every
  runbook has (What it means, Impact, Diagnose, Mitigate, Escalate), each with content, and a
  fenced query or command under Diagnose. A finding names the alert's template file, the one
  to change together with the runbook.
- ``promtool-cases``: each alert has a promtool case where it fires and one where it stays
  silent in ``tests/rules/*.test.yaml``; a finding names the test file to add them to
  (``templates_src/rules/<group>.yaml.j2`` -> ``tests/rules/<group>.test.yaml``,
  ``templates_src/slos.yaml`` -> ``tests/rules/slo.test.yaml``).
"""
from __future__ import annotations

import functools
import re
from pathlib import Path

import yaml

from .errors import ValidationError

SECTIONS = ("What it means", "Impact", "Diagnose", "Mitigate", "Escalate")
MIN_WORDS = 3
PLACEHOLDER = re.compile(r"\b(TODO|TBD|FIXME|XXX)\b|lorem ipsum", re.I)
EXAMPLE = "docs/runbooks/NodeLowPeers.md"
# fires all the time by design (a dead man's switch): no silent case exists
ALWAYS_FIRING = {"Watchdog"}
TEST_DIR = "tests/rules"


@functools.lru_cache(maxsize=4)
def _alerts(root: Path) -> dict[str, dict]:
    from .build import build
    return build(root).shared.get("alerts", {})


def runbook_problems(text: str) -> list[str]:
    """What a runbook lacks: missing sections, empty or placeholder sections, Diagnose without a query."""
    found: dict[str, str] = {}
    for part in re.split(r"(?m)^## ", text)[1:]:
        title, _, body = part.partition("\n")
        found[title.strip()] = body
    problems = []
    for section in SECTIONS:
        if section not in found:
            problems.append(f"no '## {section}' section")
            continue
        body = re.sub(r"```.*?```", " ", found[section], flags=re.S)
        if PLACEHOLDER.search(found[section]):
            problems.append(f"'## {section}' is a placeholder ({PLACEHOLDER.search(found[section]).group(0)})")
        elif len(re.findall(r"[A-Za-z]{2,}", body)) < MIN_WORDS:
            problems.append(f"'## {section}' has no content")
    if "Diagnose" in found and "```" not in found["Diagnose"]:
        problems.append("'## Diagnose' shows no query or command (a ```promql or ```sh block)")
    return problems


def check_runbooks(ctx) -> None:
    findings = []
    alerts = _alerts(ctx.root)
    for name, alert in sorted(alerts.items()):
        runbook = f"docs/runbooks/{alert.get('runbook', name)}.md"
        source = alert.get("source", "templates_src/rules/")
        path = ctx.root / runbook
        if not path.is_file():
            findings.append(f"{source}: alert {name}: no runbook {runbook}; write it with the sections "
                            f"{', '.join(SECTIONS)} (like {EXAMPLE})")
            continue
        problems = runbook_problems(path.read_text(encoding="utf-8"))
        if problems:
            findings.append(f"{runbook} (alert {name} of {source}): {'; '.join(problems)}")
    if findings:
        raise ValidationError(f"{len(findings)} runbook finding(s):\n  " + "\n  ".join(findings))
    ctx.notes.append(f"runbooks: {len(alerts)} alerts, each runbook with {', '.join(SECTIONS)}")


def test_file_for(source: str) -> str:
    stem = Path(source).name.split(".", 1)[0]
    return f"{TEST_DIR}/{'slo' if stem == 'slos' else stem}.test.yaml"


def promtool_cases(folder: Path) -> dict[str, dict[str, int]]:
    """alert -> {"firing": n, "silent": n} over every ``*.test.yaml`` in ``folder``."""
    found: dict[str, dict[str, int]] = {}
    for path in sorted(folder.glob("*.test.yaml")):
        try:
            doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as e:
            raise ValidationError(f"not YAML: {e}", file=str(path)) from None
        for test in doc.get("tests") or []:
            for case in test.get("alert_rule_test") or []:
                kind = "firing" if case.get("exp_alerts") else "silent"
                counts = found.setdefault(str(case.get("alertname")), {"firing": 0, "silent": 0})
                counts[kind] += 1
    return found


def check_promtool_cases(ctx) -> None:
    alerts = _alerts(ctx.root)
    cases = promtool_cases(ctx.root / TEST_DIR)
    findings = []
    for name, alert in sorted(alerts.items()):
        have = cases.get(name, {"firing": 0, "silent": 0})
        kinds = [k for k in ("firing", "silent") if not have[k] and not (k == "silent" and name in ALWAYS_FIRING)]
        if kinds:
            source = alert.get("source", "")
            findings.append(f"{source}: alert {name} has no {' and no '.join(kinds)} promtool case: add "
                            f"{' and '.join(kinds)} alert_rule_test cases to {test_file_for(source)}")
    if findings:
        raise ValidationError(f"{len(findings)} alert(s) without promtool cases:\n  " + "\n  ".join(findings)
                              + "\nthen run: .venv/bin/python -m pytest -q tests/test_rules_promtool.py")
    ctx.notes.append(f"promtool cases: each of {len(alerts)} alerts fires and stays silent in {TEST_DIR}/")
