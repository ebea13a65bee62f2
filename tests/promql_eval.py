"""Evaluate PromQL on a small world with the real promtool.

``evaluate(exprs, series, at)`` runs each expression at ``at`` over the input
series with ``promtool test rules`` and returns what Prometheus computed: one
list of ``(labels, value)`` per expression. promtool has no "print the result"
mode; each expression is given an expectation no query can meet (a sample of
a metric that does not exist) and the ``got:`` line of its failure report is
read back. The values are promtool's own float formatting (full precision).
"""
from __future__ import annotations

import re
import subprocess
import tempfile
from pathlib import Path

import yaml

from generator import tools

_SENTINEL = '{__name__="promql_eval_no_such_series"}'
_SERIES = re.compile(r'\{((?:[^{}"]|"(?:\\.|[^"\\])*")*)\} ([^,\s]+)')
_LABEL = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)="((?:\\.|[^"\\])*)"')


def _parse_got(text: str) -> list[tuple[dict, float]]:
    out = []
    for m in _SERIES.finditer(text):
        labels = {k: bytes(v, "utf-8").decode("unicode_escape") for k, v in _LABEL.findall(m.group(1))}
        out.append((labels, float(m.group(2))))
    return out


def evaluate(exprs: list[str], series: list[tuple[str, str]], at: str = "1d",
             interval: str = "1m", rules: dict | None = None) -> list[list[tuple[dict, float]]]:
    """Each expression's result at ``at``; ``series`` are promtool input series ``(selector, values)``;
    ``rules`` (a rule file's ``{"groups": [...]}``) are evaluated every ``interval`` too, so an expression can
    read the series they record."""
    tests = [{"expr": e, "eval_time": at, "exp_samples": [{"labels": _SENTINEL, "value": -1}]} for e in exprs]
    doc = {"rule_files": ["rules.yaml"] if rules else [], "evaluation_interval": interval,
           "tests": [{"interval": interval, "input_series": [{"series": s, "values": v} for s, v in series],
                      "promql_expr_test": tests}]}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "eval.test.yaml"
        if rules:
            (Path(tmp) / "rules.yaml").write_text(yaml.safe_dump(rules, sort_keys=False))
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        proc = subprocess.run([tools.find("promtool"), "test", "rules", path.name], capture_output=True, text=True,
                              timeout=300, cwd=tmp)
    output = proc.stdout + proc.stderr
    if "FAILED" not in output:
        raise AssertionError(f"promtool did not evaluate the expressions:\n{output}")
    # one block per expression, in order: `expr: "...", time: ...` then `exp:` and `got:`
    blocks = re.split(r"\n\s*expr: ", output)[1:]
    if len(blocks) != len(exprs):
        raise AssertionError(f"promtool answered {len(blocks)} of {len(exprs)} expressions:\n{output}")
    results = []
    for block in blocks:
        got = re.search(r"\n\s*got: ?(.*)", block)
        if got is None:
            raise AssertionError(f"no result in promtool's answer:\n{block}")
        results.append(_parse_got(got.group(1)))
    return results


def legend(fmt: str, labels: dict) -> str:
    """A Grafana legend format with the series' labels in place (``{{denom}}`` -> its value)."""
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), fmt)
