"""Dashboards: ``templates_src/dashboards/<uid>.yaml.j2`` -> Grafana JSON.

A dashboard template renders a short document (uid, title, folder, tags,
variables, panels built with the macros of ``templates_src/lib/``). This
module applies what every dashboard shares, once: panel ids, the layout on
Grafana's 24-column grid, the ``datasource`` variable on every panel and
target, refIds, the current schema version, links between dashboards. It
then checks every query against the metrics catalog and writes
``chart/files/dashboards/<uid>.json`` plus an index the chart reads.
"""
from __future__ import annotations

import copy
import re

from ..errors import ValidationError
from ..yamlio import dump_json

SCHEMA_VERSION = 41
GRID_WIDTH = 24
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
UID = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")
TOP_FIELDS = {"uid", "title", "folder", "tags", "description", "variables", "panels", "links", "time", "refresh"}


def _variables(names: list[str]) -> list[dict]:
    out = [{
        "name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus",
        "current": {"text": "Prometheus", "value": "prometheus"}, "hide": 0, "refresh": 1,
        "regex": "", "options": [],
    }]
    chain = {"cluster": "up", "namespace": 'up{cluster=~"$cluster"}',
             "chain_id": 'cometbft_consensus_height{cluster=~"$cluster"}',
             "instance": 'cometbft_consensus_height{cluster=~"$cluster", chain_id=~"$chain_id"}'}
    for name in names:
        if name not in chain:
            raise ValidationError(f"unknown variable {name!r}; allowed: {', '.join(chain)}")
        out.append({
            "name": name, "label": name, "type": "query", "datasource": DATASOURCE,
            "query": {"query": f"label_values({chain[name]}, {name})", "refId": f"{name}-var"},
            "definition": f"label_values({chain[name]}, {name})",
            "includeAll": True, "multi": True, "allValue": ".*",
            "current": {"text": "All", "value": "$__all"}, "refresh": 2, "sort": 1, "hide": 0,
            "regex": "", "options": [],
        })
    return out


def _layout(panels: list[dict], where: str) -> None:
    """Flows panels left to right, top to bottom; a row starts a new line."""
    x = y = row_height = 0
    for panel in panels:
        w = panel.pop("w", None) or panel.get("gridPos", {}).get("w", 12)
        h = panel.pop("h", None) or panel.get("gridPos", {}).get("h", 8)
        if panel.get("type") == "row":
            w, h = GRID_WIDTH, 1
        if not 0 < w <= GRID_WIDTH:
            raise ValidationError(f"{where}: panel {panel.get('title')!r} is {w} wide; the grid is {GRID_WIDTH}")
        if panel.get("type") == "row" or x + w > GRID_WIDTH:
            y += row_height
            x = row_height = 0
        panel["gridPos"] = {"x": x, "y": y, "w": w, "h": h}
        x += w
        row_height = max(row_height, h)
        if panel.get("type") == "row":
            y += 1
            x = row_height = 0


def complete(doc: dict, where: str) -> dict:
    unknown = set(doc) - TOP_FIELDS
    if unknown:
        raise ValidationError(f"{where}: unknown field {sorted(unknown)[0]!r}; allowed: {', '.join(sorted(TOP_FIELDS))}")
    for req in ("uid", "title", "panels"):
        if not doc.get(req):
            raise ValidationError(f"{where}: missing {req!r}")
    if not UID.match(doc["uid"]):
        raise ValidationError(f"{where}: uid {doc['uid']!r} must be lowercase letters, digits and '-', at most 40")
    panels = copy.deepcopy(doc["panels"])
    _layout(panels, where)
    for number, panel in enumerate(panels, start=1):
        panel["id"] = number
        if panel.get("type") != "row":
            panel["datasource"] = DATASOURCE
        for index, target in enumerate(panel.get("targets", [])):
            target.setdefault("refId", chr(ord("A") + index))
            target["datasource"] = DATASOURCE
    return {
        "__generated": "by python -m generator render from templates_src/dashboards; do not edit",
        "uid": doc["uid"],
        "title": doc["title"],
        "description": doc.get("description", ""),
        "tags": sorted(set(["virtengine"] + list(doc.get("tags", [])))),
        "editable": False,
        "graphTooltip": 1,
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "time": doc.get("time", {"from": "now-6h", "to": "now"}),
        "refresh": doc.get("refresh", "30s"),
        "timezone": "browser",
        "timepicker": {},
        "fiscalYearStartMonth": 0,
        "weekStart": "",
        "liveNow": False,
        "annotations": {"list": []},
        "links": [{"title": "VirtEngine dashboards", "type": "dashboards", "tags": ["virtengine"],
                   "asDropdown": True, "includeVars": True, "keepTime": True}] + list(doc.get("links", [])),
        "templating": {"list": _variables(list(doc.get("variables", [])))},
        "panels": panels,
    }


def build(src, out) -> None:
    catalog = out.shared["catalog"]
    dashboards: dict[str, dict] = {}
    index: dict[str, dict] = {}
    folder = src.templates / "dashboards"
    for path in sorted(folder.glob("*.yaml.j2")):
        name = str(path.relative_to(src.templates))
        display = src.renderer.display(name)
        doc = src.renderer.render_data(name, {})
        if not isinstance(doc, dict):
            raise ValidationError("a dashboard template renders a mapping", file=display)
        dashboard = complete(doc, display)
        uid = dashboard["uid"]
        if uid in dashboards:
            raise ValidationError(f"dashboard uid {uid!r} is used twice", file=display)
        for panel in dashboard["panels"]:
            for target in panel.get("targets", []):
                catalog.check_expr(target.get("expr", ""), f"dashboard {uid}, panel {panel.get('title')!r}",
                                   recorded=out.shared.get("recorded", set()), file=display)
        dashboards[uid] = dashboard
        index[uid] = {"title": dashboard["title"], "folder": doc.get("folder", "VirtEngine")}
        out.add(f"chart/files/dashboards/{uid}.json", dump_json(dashboard))
    out.add("chart/files/dashboards-index.json", dump_json(index))
    out.shared["dashboards"] = dashboards
    out.schema_extensions[("dashboards", "items")] = {
        uid: {"type": "object", "additionalProperties": False,
              "description": f"{meta['title']} (uid {uid})",
              "properties": {
                  "enabled": {"type": "boolean", "default": True, "description": "ship this dashboard"},
                  "folder": {"type": "string", "default": meta["folder"], "minLength": 1,
                             "description": "Grafana folder for this dashboard"}}}
        for uid, meta in index.items()}
