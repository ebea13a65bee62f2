"""Rule lint on what Helm renders: ``generator lint`` check ``rules``.

For every environment (``values/<env>.yaml``) and both Helm majors, the
chart is rendered with ``helm template``; the rule groups are extracted from
the ``PrometheusRule`` resources (or the rule ConfigMaps) and checked after
the environment's overrides are applied:

- alert names CamelCase, at most 40 characters; at most 20 rules a group;
- ``severity`` in critical/warning/info; ``summary`` and ``description``
  present, ``summary`` static (no ``{{``);
- ``runbook_url`` ends in ``/<AlertName>.md`` and ``docs/runbooks/<AlertName>.md``
  exists; ``dashboard_url`` opens a dashboard the chart ships and sets only
  variables that dashboard has;
- every metric of every expression is in the metrics catalog, every
  recording rule used is defined;
- every aggregation keeps ``cluster`` (``by (cluster, ...)``), read from the syntax tree;
- ``promtool check rules --lint=duplicate-rules --lint-fatal`` on the
  extracted file.

``extract_groups`` and ``render_rules`` are what the tests use too, so the
promtool unit tests run on the chart's output, never on a copy.
"""
from __future__ import annotations

import re
import tempfile
from pathlib import Path

import yaml

from . import tools
from .errors import ValidationError

ALERT_NAME = re.compile(r"^[A-Z][A-Za-z0-9]{2,39}$")
SEVERITIES = ("critical", "warning", "info", "none")
MAX_RULES = 20


def extract_groups(manifests: list[dict]) -> list[dict]:
    """Rule groups of the rendered PrometheusRules or rule ConfigMaps, in order."""
    groups = []
    for doc in manifests:
        if doc.get("kind") == "PrometheusRule":
            groups += doc["spec"]["groups"]
        elif doc.get("kind") == "ConfigMap" and any(k.endswith(".rules.yaml") for k in doc.get("data") or {}):
            for key, text in sorted(doc["data"].items()):
                groups += yaml.safe_load(text)["groups"]
    return groups


def render_rules(root: Path, env: str | None, major: int = 3, extra: list[str] | None = None) -> list[dict]:
    cmd = [tools.helm(major), "template", "vemon", str(root / "chart"), "--namespace", "monitoring"]
    if env:
        cmd += ["-f", str(root / "values" / f"{env}.yaml")]
    proc = tools.run(cmd + (extra or []))
    return extract_groups([d for d in yaml.safe_load_all(proc.stdout) if d])


def write_rule_file(groups: list[dict], folder: Path, name: str = "rules.yaml") -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False), encoding="utf-8")
    return path


def aggregations_without_cluster(expr: str) -> list[str]:
    """Aggregations that drop the ``cluster`` label (``sum(...)``, ``max by (job) (...)``), read from the syntax
    tree (``promql.parse``): ``by`` without cluster, ``without (cluster)``, or no grouping at all (topk, bottomk,
    quantile and count_values keep their input's labels without one)."""
    from . import promql
    from .promqlcheck import _grouping
    parsed = promql.parse(str(expr))
    bad = []
    for agg in parsed.tree.find("AggregateExpr"):
        op = agg.child("AggregateOp").text.lower()
        mode, labels = _grouping(agg.child("AggregateModifier"))
        modifier = agg.child("AggregateModifier")
        head = f"{op} {modifier.text}" if modifier is not None else op
        if mode == "without":
            if "cluster" in labels:
                bad.append(head)
            continue
        if op in ("topk", "bottomk", "quantile", "count_values", "limitk", "limit_ratio") and not mode:
            continue
        if mode != "by" or "cluster" not in labels:
            bad.append(head)
    return bad


def dashboard_variables(folder: Path) -> dict[str, set[str]]:
    """uid -> template variable names of each dashboard the chart ships (``chart/files/dashboards``)."""
    import json
    found = {}
    for path in sorted(folder.glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        data = data.get("dashboard", data)
        found[data.get("uid") or path.stem] = {v["name"] for v in (data.get("templating") or {}).get("list", [])}
    return found


def lint_groups(groups: list[dict], *, catalog, runbooks: Path, dashboards: dict[str, set[str] | None],
                where: str) -> int:
    """Raises ValidationError on the first broken rule; returns the number of alerts.

    ``dashboards`` maps each shipped dashboard uid to its variables (None: not checked)."""
    recorded = {r["record"] for g in groups for r in g["rules"] if "record" in r}
    from . import promql
    promql.parse_many([r["expr"] for g in groups for r in g["rules"]])   # one request to the parser process
    alerts = 0
    for group in groups:
        name = group["name"]
        if len(group["rules"]) > MAX_RULES:
            raise ValidationError(f"{where}: group {name} has {len(group['rules'])} rules; at most {MAX_RULES}")
        for rule in group["rules"]:
            ident = rule.get("alert") or rule.get("record")
            catalog.check_expr(rule["expr"], f"{where}: {ident}", recorded=recorded)
            dropped = aggregations_without_cluster(rule["expr"])
            if dropped:
                raise ValidationError(f"{where}: {ident}: aggregation {dropped[0]!r} drops the cluster label; "
                                      "aggregate by (cluster, ...)")
            if "alert" not in rule:
                continue
            alerts += 1
            alert = rule["alert"]
            if not ALERT_NAME.match(alert):
                raise ValidationError(f"{where}: alert name {alert!r} must be CamelCase, at most 40 characters")
            labels, ann = rule.get("labels") or {}, rule.get("annotations") or {}
            if labels.get("severity") not in SEVERITIES:
                raise ValidationError(f"{where}: alert {alert}: severity {labels.get('severity')!r}; allowed: "
                                      f"{', '.join(SEVERITIES)}")
            for key in ("summary", "description", "runbook_url", "dashboard_url"):
                if not str(ann.get(key, "")).strip():
                    raise ValidationError(f"{where}: alert {alert}: annotation {key} is missing")
            if "{{" in ann["summary"]:
                raise ValidationError(f"{where}: alert {alert}: summary must be static (values go in description)")
            if not ann["runbook_url"].endswith(f"/{alert}.md"):
                raise ValidationError(f"{where}: alert {alert}: runbook_url {ann['runbook_url']!r} does not point "
                                      f"at {alert}.md")
            if not (runbooks / f"{alert}.md").is_file():
                raise ValidationError(f"{where}: alert {alert}: no runbook docs/runbooks/{alert}.md")
            uid = re.search(r"/d/([^?/]+)", ann["dashboard_url"])
            if not uid or uid.group(1) not in dashboards:
                raise ValidationError(f"{where}: alert {alert}: dashboard_url {ann['dashboard_url']!r} opens no "
                                      f"dashboard of the chart ({', '.join(sorted(dashboards))})")
            known = dashboards[uid.group(1)]
            for var in re.findall(r"(?:[?&]|\}\})var-([A-Za-z0-9_]+)=", ann["dashboard_url"]):
                if known is not None and var not in known:
                    raise ValidationError(f"{where}: alert {alert}: dashboard {uid.group(1)} has no variable {var!r} "
                                          f"(it has: {', '.join(sorted(known))})")
    return alerts


def check(ctx) -> None:
    """The ``rules`` lint check: every environment, both Helm majors, then promtool."""
    from .build import load_sources
    from .content import catalog as catalog_mod
    src = load_sources(ctx.root)
    catalog = catalog_mod.load(src)
    dashboards = dashboard_variables(ctx.chart / "files" / "dashboards")
    promtool = tools.find("promtool")
    for env in sorted(src.envs):
        count = 0
        for major in ctx.helm_majors:
            where = f"values/{env}.yaml (helm {major})"
            groups = render_rules(ctx.root, env, major)
            if not groups:
                continue
            count = lint_groups(groups, catalog=catalog, runbooks=ctx.root / "docs" / "runbooks",
                                dashboards=dashboards, where=where)
            with tempfile.TemporaryDirectory() as tmp:
                path = write_rule_file(groups, Path(tmp), f"{env}.rules.yaml")
                proc = tools.run([promtool, "check", "rules", "--lint=duplicate-rules", "--lint-fatal", str(path)],
                                 check=False)
                if proc.returncode != 0:
                    raise ValidationError(f"{where}: promtool check rules failed:\n{(proc.stdout + proc.stderr).strip()}")
        ctx.notes.append(f"rules of {env}: {count} alerts linted, promtool check rules passed")
