"""Dashboards: ``templates_src/dashboards/<uid>.yaml.j2`` -> Grafana JSON.

A dashboard template renders a short document (uid, title, folder, tags,
variables and panels built with the macros of ``templates_src/lib/``). This
module applies what every dashboard shares, once: the ``datasource``
variable (type prometheus, defaulting to the Prometheus datasource uid) and
its use by every panel, target and variable; panel ids and refIds; the
layout on Grafana's 24-column grid; the current ``schemaVersion``; links to
the other VirtEngine dashboards; the chart-wide refresh, time range and
timezone as placeholders the chart fills from values. It then checks every
query against the metrics catalog, runs the dashboard lint
(``generator/dashlint.py``), and writes ``chart/files/dashboards/<uid>.json``
(compact canonical JSON: sorted keys, no whitespace) plus an index the chart
reads. Helm stores the chart's files base64-encoded in every release record,
where gzip finds little to compress: indentation would cost each release
about 50 KiB (a sixth of it), so every dashboard ships compact; ``render
--check`` pretty-prints them in its diff for review. Each dashboard's size
is reported and one over the budget (``values/_budgets.yaml``:
``dashboard.maxBytes``) fails with the figure.
"""
from __future__ import annotations

import copy
import json
import re

from .. import dashlint, promql, toolcache
from ..errors import ValidationError
from ..yamlio import dump_json, json_exact, load_yaml_file

YAML_UNSAFE = re.compile("[\x7f-\x9f\u2028\u2029\ufeff\ufffe\uffff]")

# the schemaVersion Grafana gives a new dashboard (@grafana/schema 13.2.3;
# tests compare it with the one scripts/grafana-schema extracts)
SCHEMA_VERSION = 42
GRID_WIDTH = 24
DATASOURCE_UID = "prometheus"          # the Prometheus datasource every environment provides (datasources.py)
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
UID = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")
TOP_FIELDS = {"uid", "title", "folder", "tags", "description", "variables", "panels", "links", "time"}
# chart-wide settings the chart puts in place from values (templates/grafana/_dashboards.tpl)
PLACEHOLDERS = {"refresh": "@@VEMON_REFRESH@@", "from": "@@VEMON_TIME_FROM@@", "timezone": "@@VEMON_TIMEZONE@@"}
DEFAULT_BUDGET = 200_000
BUDGETS_FILE = "values/_budgets.yaml"
SLOS_FILE = "templates_src/slos.yaml"


def datasource_variable() -> dict:
    return {
        "name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus",
        "description": "Prometheus to read from; defaults to the chart's Prometheus datasource",
        "current": {"text": "Prometheus", "value": DATASOURCE_UID}, "hide": 0, "refresh": 1,
        "regex": "", "options": [], "includeAll": False, "multi": False,
    }


def layout(panels: list[dict], where: str) -> None:
    """Flows panels left to right, top to bottom; a row starts a new line."""
    x = y = line_height = 0
    for panel in panels:
        w = panel.pop("w", None) or panel.get("gridPos", {}).get("w", 12)
        h = panel.pop("h", None) or panel.get("gridPos", {}).get("h", 8)
        if panel.get("type") == "row":
            w, h = GRID_WIDTH, 1
        if not (isinstance(w, int) and 0 < w <= GRID_WIDTH):
            raise ValidationError(f"{where}: panel {panel.get('title')!r} is {w} wide; the grid has {GRID_WIDTH} columns")
        if not (isinstance(h, int) and 0 < h <= 40):
            raise ValidationError(f"{where}: panel {panel.get('title')!r} is {h} high; allowed 1 to 40 rows")
        if panel.get("type") == "row" or x + w > GRID_WIDTH:
            y += line_height
            x = line_height = 0
        panel["gridPos"] = {"x": x, "y": y, "w": w, "h": h}
        x += w
        line_height = max(line_height, h)
        if panel.get("type") == "row":
            y += 1
            x = line_height = 0


def _links(doc: dict, titles: dict[str, str]) -> list[dict]:
    links = [{"title": "VirtEngine dashboards", "type": "dashboards", "tags": ["virtengine"], "asDropdown": True,
              "includeVars": True, "keepTime": True, "icon": "external link", "targetBlank": False, "tooltip": ""}]
    for uid in doc.get("links", []):
        links.append({"title": titles.get(uid, uid), "type": "link", "url": f"/d/{uid}", "tags": [],
                      "asDropdown": False, "includeVars": True, "keepTime": True, "icon": "dashboard",
                      "targetBlank": False, "tooltip": f"Open {titles.get(uid, uid)}"})
    return links


def _check_ids(panels: list, where: str) -> None:
    """Panel ids are assigned here, in panel order; a template that sets its own would be silently renumbered."""
    seen: dict = {}
    for panel in panels:
        if isinstance(panel, dict) and "id" in panel:
            title = panel.get("title")
            if panel["id"] in seen:
                raise ValidationError(f"{where}: panels {seen[panel['id']]!r} and {title!r} both have id {panel['id']}; "
                                      "panel ids are assigned by the generator in panel order: remove 'id'")
            seen[panel["id"]] = title
    if seen:
        panel_id, title = next(iter(seen.items()))
        raise ValidationError(f"{where}: panel {title!r} sets id {panel_id}; panel ids are assigned by the generator "
                              "in panel order: remove 'id'")


def _copy(node, memo: dict | None = None):
    """``copy.deepcopy`` for parsed YAML (dicts, lists, scalars), several times faster: the
    same result, LineDict line numbers and objects shared by YAML aliases included."""
    if memo is None:
        memo = {}
    if isinstance(node, dict):
        if id(node) in memo:
            return memo[id(node)]
        new = memo[id(node)] = type(node)()
        for key, value in node.items():
            new[key] = _copy(value, memo)
        if hasattr(node, "lines"):
            new.lines = dict(node.lines)
        return new
    if isinstance(node, list):
        if id(node) in memo:
            return memo[id(node)]
        new = memo[id(node)] = []
        new.extend(_copy(value, memo) for value in node)
        return new
    if isinstance(node, (str, int, float, bool, type(None))):
        return node
    return copy.deepcopy(node, {})


def complete(doc: dict, where: str, titles: dict[str, str] | None = None) -> dict:
    """A template's short document -> the full Grafana dashboard."""
    unknown = set(doc) - TOP_FIELDS
    if unknown:
        raise ValidationError(f"{where}: unknown field {sorted(unknown)[0]!r}; allowed: {', '.join(sorted(TOP_FIELDS))}")
    for req in ("uid", "title", "panels"):
        if not doc.get(req):
            raise ValidationError(f"{where}: missing {req!r}")
    if not UID.match(str(doc["uid"])):
        raise ValidationError(f"{where}: uid {doc['uid']!r} must be lowercase letters, digits and '-', at most 40")
    variables = [datasource_variable()]
    for var in _copy(doc.get("variables") or []):
        if not isinstance(var, dict) or "name" not in var:
            raise ValidationError(f"{where}: each variable comes from a macro of templates_src/lib/variables.j2, got {var!r}")
        if var.get("allValue") is None:
            var.pop("allValue", None)
        var["datasource"] = dict(DATASOURCE)
        variables.append(var)
    panels = _copy(doc["panels"])
    _check_ids(panels, where)
    layout(panels, where)
    for number, panel in enumerate(panels, start=1):
        panel["id"] = number
        if panel.get("type") != "row":
            panel["datasource"] = dict(DATASOURCE)
        for index, target in enumerate(panel.get("targets", [])):
            target.setdefault("refId", chr(ord("A") + index))
            target["datasource"] = dict(DATASOURCE)
    time = doc.get("time") or {"from": PLACEHOLDERS["from"], "to": "now"}
    return {
        "uid": doc["uid"],
        "title": doc["title"],
        "description": str(doc.get("description", "")),
        "tags": sorted(set(["virtengine"] + list(doc.get("tags", [])))),
        "editable": False,
        "graphTooltip": 1,
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "id": None,
        "time": time,
        "refresh": PLACEHOLDERS["refresh"],
        "timezone": PLACEHOLDERS["timezone"],
        "timepicker": {"refresh_intervals": ["30s", "1m", "5m", "15m", "1h"]},
        "fiscalYearStartMonth": 0,
        "weekStart": "",
        "liveNow": False,
        "annotations": {"list": [{
            "builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"}, "enable": True, "hide": True,
            "iconColor": "rgba(0, 211, 255, 1)", "name": "Annotations & Alerts", "type": "dashboard"}]},
        "links": _links(doc, titles or {}),
        "templating": {"list": variables},
        "panels": panels,
    }


def fill_placeholders(data: bytes, settings: dict) -> bytes:
    """A dashboard's JSON with the chart-wide settings of ``settings`` (values' ``dashboards``) in place, as
    the chart does at install; for forms Helm cannot edit (the precompressed Grafana Operator dashboards)."""
    text = data.decode()
    for key, token in (("refresh", "refresh"), ("timeFrom", "from"), ("timezone", "timezone")):
        text = text.replace(json.dumps(PLACEHOLDERS[token]), json.dumps(settings[key]))
    return text.encode()


def budget(root) -> int:
    path = root / BUDGETS_FILE
    if not path.is_file():
        return DEFAULT_BUDGET
    data = load_yaml_file(path, BUDGETS_FILE) or {}
    value = (data.get("dashboard") or {}).get("maxBytes", DEFAULT_BUDGET) if isinstance(data, dict) else DEFAULT_BUDGET
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValidationError(f"expected a positive number of bytes, got {value!r}", file=BUDGETS_FILE,
                              key="dashboard.maxBytes")
    return value


def minified(dashboard: dict) -> str:
    return json.dumps(dashboard, sort_keys=True, separators=(",", ":"), ensure_ascii=False) + "\n"


def slos(src, out) -> dict[str, dict]:
    """The SLOs (templates_src/slos.yaml, owned by the rules) as the SLA dashboards show them."""
    specs = out.shared.get("slos")
    if specs is None:
        path = src.root / SLOS_FILE
        data = load_yaml_file(path, SLOS_FILE) if path.is_file() else {}
        specs = (data.get("slos") or {}) if isinstance(data, dict) else {}
    result = {}
    for name, spec in (specs or {}).items():
        if isinstance(spec, dict) and isinstance(spec.get("objective"), (int, float)):
            result[str(name)] = {"objective": float(spec["objective"]), "summary": str(spec.get("summary", name)),
                                 "window": str(spec.get("window", "30d"))}
    return result


_LINK = re.compile(r"^/d/([a-z0-9-]+)(?:[?/#]|$)")


def link_targets(dashboard: dict) -> list[str]:
    """The uids of the dashboards this one links to: its links and its panels' data links (the chart drops
    the links to a dashboard turned off, templates/grafana/_grafana.tpl)."""
    found: set[str] = set()
    panels = list(dashboard.get("panels", []))
    panels += [p for row in dashboard.get("panels", []) for p in row.get("panels", []) or []]
    links = list(dashboard.get("links", []))
    links += [link for p in panels for link in ((p.get("fieldConfig") or {}).get("defaults") or {}).get("links", [])]
    for link in links:
        m = _LINK.match(str(link.get("url", "")))
        if m and m.group(1) != dashboard.get("uid"):
            found.add(m.group(1))
    return sorted(found)


def build(src, out) -> None:
    catalog = out.shared["catalog"]
    context = {"slos": slos(src, out), "denoms": [vars(d) for d in catalog.denoms]}
    recorded = out.shared.get("recorded", set())
    chain = {m.name for m in catalog.metrics.values() if m.scope == "chain"}
    docs: dict[str, tuple[dict, str]] = {}
    for path in sorted((src.templates / "dashboards").glob("*.yaml.j2")):
        name = str(path.relative_to(src.templates))
        display = src.renderer.display(name)
        doc = src.renderer.render_data(name, context)
        if not isinstance(doc, dict):
            raise ValidationError("a dashboard template renders a mapping", file=display)
        uid = str(doc.get("uid", ""))
        if uid in docs:
            raise ValidationError(f"dashboard uid {uid!r} is used twice (also {docs[uid][1]})", file=display)
        if path.name != f"{uid}.yaml.j2":
            raise ValidationError(f"the file of dashboard {uid!r} must be named {uid}.yaml.j2", file=display)
        docs[uid] = (doc, display)
    titles = {uid: str(doc.get("title", uid)) for uid, (doc, _) in docs.items()}
    dashboards: dict[str, dict] = {}
    index: dict[str, dict] = {}
    limit = budget(src.root)
    memo = toolcache.Memo("dashboard-lint")
    for uid, (doc, display) in docs.items():
        dashboard = complete(doc, display, titles)
        # the dashboard's queries parsed in one request to the PromQL parser process (promql.parse_many)
        promql.parse_many([str(t.get("expr")) for p in dashboard["panels"] for t in p.get("targets", [])
                           if str(t.get("expr", "")).strip()])
        for var in dashboard["templating"]["list"][1:]:
            query = str((var.get("query") or {}).get("query", "")) if isinstance(var.get("query"), dict) else ""
            selector = re.match(r"label_values\((.*),\s*\w+\)$", query)
            catalog.check_expr(selector.group(1) if selector else query,
                               f"dashboard {uid}, variable {var['name']!r}", recorded=recorded, file=display)
        for panel in dashboard["panels"]:
            for target in panel.get("targets", []):
                catalog.check_expr(target.get("expr", ""), f"dashboard {uid}, panel {panel.get('title')!r}",
                                   recorded=recorded, file=display)
        exact = json_exact(dashboard)
        # the lint is a pure function of the dashboard, the uids and the chain-level metrics: a clean verdict
        # is kept in the cache under all three (the dashboard as its exact JSON) and the generator's code
        key = memo.key(exact, "\n".join(sorted(docs)), "\n".join(sorted(chain))) if exact is not None else None
        if key is None or memo.get(key) is None:
            problems = dashlint.structural(dashboard, set(docs)) + dashlint.chain_problems(dashboard, chain)
            if problems:
                raise ValidationError("dashboard lint:\n  " + "\n  ".join(problems), file=display)
            if key is not None:
                memo.put(key, b"clean")
        text = minified(dashboard)
        # the chart pastes the JSON into a YAML literal block: characters YAML reads as line breaks or
        # refuses (only ever inside JSON strings) go in as JSON escapes, the same JSON value
        text = YAML_UNSAFE.sub(lambda m: "\\u%04x" % ord(m.group(0)), text)
        size = len(text.encode())
        if size > limit:
            raise ValidationError(f"dashboard {uid} is {size:,} bytes, over the budget of {limit:,} "
                                  f"({BUDGETS_FILE}: dashboard.maxBytes); split it or remove panels", file=display)
        out.report.append(f"dashboard {uid}: {size:,} bytes, "
                          f"budget {limit:,}, {sum(p['type'] != 'row' for p in dashboard['panels'])} panels")
        dashboards[uid] = dashboard
        index[uid] = {"title": dashboard["title"], "folder": str(doc.get("folder") or "VirtEngine"),
                      "links": link_targets(dashboard)}
        out.add(f"chart/files/dashboards/{uid}.json", text)
    out.add("chart/files/dashboards-index.json", dump_json(
        {"__generated": "by python -m generator render from templates_src/dashboards; do not edit",
         "dashboards": index}))
    out.shared["dashboards"] = dashboards
    out.shared["dashboard_index"] = {u: {k: v for k, v in m.items() if k != "links"} for u, m in index.items()}
    out.schema_extensions[("dashboards", "items")] = {
        uid: {"type": "object", "additionalProperties": False,
              "description": f"{meta['title']} (uid {uid})",
              "properties": {
                  "enabled": {"type": "boolean", "default": True, "description": "ship this dashboard"},
                  "folder": {"type": "string", "default": meta["folder"], "minLength": 1, "maxLength": 100,
                             "pattern": "^[^\"\\\\{}]+$",
                             "description": "Grafana folder for this dashboard"}}}
        for uid, meta in index.items()}
