"""Dashboard checks: our own lint, Grafana's schema, and PromQL that parses.

- ``structural``: unique panel ids; every panel with a title and a
  description; every target with a unique ``refId``, an expression and the
  ``${datasource}`` variable (no hard-coded datasource name or uid anywhere);
  panels inside the 24 columns and never overlapping; stat and gauge panels
  with a unit; no deprecated panel types or fields; links to dashboards that
  exist; every query parses (the Prometheus grammar, ``promql.syntax_error``). Run by the render, so a
  broken dashboard never reaches ``chart/``.
- ``schema_problems``: the dashboard against the JSON Schema generated from
  Grafana's own TypeScript types (npm ``@grafana/schema``, see
  ``scripts/grafana-schema``), and each panel's ``options`` and
  ``fieldConfig.defaults.custom`` against its panel plugin's types.
  Relaxed only where Grafana accepts more than the types say: a panel
  plugin's options and custom field config may leave out fields (the
  TypeScript types mark every option required, Grafana fills missing ones
  with the plugin's defaults), so ``required`` is dropped from those two.
- ``chain_problems``: no sum over nodes of a chain-level metric (catalog
  ``scope: chain``, world fact 4) without the per-instance dedupe of the
  ``chainwide`` macro, read from the syntax tree (``promqlcheck``).
- ``promql_problems``: every expression parsed by promtool (as recording
  rules in a scratch rule file, Grafana's variables replaced by values of
  the same shape).

``generator lint`` runs all three on ``chart/files/dashboards/*.json``.
"""
from __future__ import annotations

import copy
import functools
import json
import re
import tempfile
from pathlib import Path

from . import promql, tools
from .errors import ToolError

GRID_WIDTH = 24
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
BUILTIN_ANNOTATION_DS = {"type": "grafana", "uid": "-- Grafana --"}
DEPRECATED_PANELS = {"graph", "singlestat", "table-old", "grafana-piechart-panel", "grafana-worldmap-panel"}
DEPRECATED_FIELDS = {"style", "rows", "nav", "hideControls", "sharedCrosshair"}
NEEDS_UNIT = {"stat", "gauge", "bargauge"}
NO_QUERIES = {"text", "dashlist", "news"}
LINK = re.compile(r"/d/([A-Za-z0-9_-]+)")
# a decimal written with more digits than anyone means: binary float noise (0.1 + 0.2 = 0.30000000000000004)
MAX_DIGITS = 12
INCREASE_WINDOW = re.compile(r"increase\([^\[]*\[(\d+[smhdwy])\]\)")
# Prometheus 3 stores a whole-number bucket bound or quantile as "10.0" where Prometheus 2 stored "10"
WHOLE_BOUND = re.compile(r'\b(le|quantile)\s*=\s*"(\d+)"')
NOISE_IN_TEXT = re.compile(r"\d\.\d{%d,}" % (MAX_DIGITS + 1))


def float_noise(value) -> bool:
    """True for a float whose shortest form has more than ``MAX_DIGITS`` significant digits."""
    if not isinstance(value, float) or value != value or value in (float("inf"), float("-inf")):
        return False
    mantissa = repr(abs(value)).split("e")[0].replace(".", "").lstrip("0")
    return len(mantissa) > MAX_DIGITS


def _panels(dashboard: dict):
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", []) if panel.get("type") == "row" else []


def _walk(node, path=""):
    if isinstance(node, dict):
        for k, v in node.items():
            yield f"{path}.{k}" if path else k, k, v
            yield from _walk(v, f"{path}.{k}" if path else k)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _walk(v, f"{path}[{i}]")


def structural(dashboard: dict, uids: set[str]) -> list[str]:
    """Our own dashboard lint; returns the problems found."""
    problems: list[str] = []
    # every query of the dashboard parsed in one request to the parser process (promql.parse_many)
    promql.parse_many([str(t.get("expr")) for p in _panels(dashboard) for t in (p.get("targets") or [])
                       if str(t.get("expr", "")).strip()])
    uid = dashboard.get("uid")
    if uid not in uids:
        uids = uids | {uid}
    for field in sorted(DEPRECATED_FIELDS & set(dashboard)):
        problems.append(f"deprecated dashboard field {field!r}")
    variables = dashboard.get("templating", {}).get("list", [])
    if not variables or variables[0].get("name") != "datasource" or variables[0].get("type") != "datasource" \
            or variables[0].get("query") != "prometheus":
        problems.append("the first variable must be 'datasource' of type datasource for prometheus")
    names = [v.get("name") for v in variables]
    for name in sorted({n for n in names if names.count(n) > 1}):
        problems.append(f"variable {name!r} is defined twice")
    seen_ids: dict = {}
    boxes: list[tuple[str, dict]] = []
    for panel in _panels(dashboard):
        title = panel.get("title")
        label = f"panel {panel.get('id')} {title!r}"
        pid = panel.get("id")
        if pid in seen_ids:
            problems.append(f"{label}: id {pid} is also used by panel {seen_ids[pid]!r}")
        seen_ids[pid] = title
        if not title:
            problems.append(f"{label}: no title")
        kind = panel.get("type")
        if kind in DEPRECATED_PANELS:
            problems.append(f"{label}: panel type {kind!r} is deprecated")
        pos = panel.get("gridPos") or {}
        if not all(isinstance(pos.get(k), int) for k in ("x", "y", "w", "h")):
            problems.append(f"{label}: gridPos needs integer x, y, w and h")
            continue
        if pos["x"] < 0 or pos["y"] < 0 or pos["w"] <= 0 or pos["h"] <= 0 or pos["x"] + pos["w"] > GRID_WIDTH:
            problems.append(f"{label}: gridPos {pos} is outside the {GRID_WIDTH}-column grid")
        for other_label, other in boxes:
            if (pos["x"] < other["x"] + other["w"] and other["x"] < pos["x"] + pos["w"]
                    and pos["y"] < other["y"] + other["h"] and other["y"] < pos["y"] + pos["h"]):
                problems.append(f"{label}: overlaps {other_label} ({pos} and {other})")
        boxes.append((label, pos))
        if kind == "row":
            continue
        if not panel.get("description"):
            problems.append(f"{label}: no description (say in one line what the panel means)")
        if kind in NO_QUERIES:
            continue
        if False:
            problems.append(f"{label}: no description (say in one line what the panel means)")
        if panel.get("datasource") != DATASOURCE:
            problems.append(f"{label}: datasource must be {DATASOURCE}, got {panel.get('datasource')!r}")
        if kind in NEEDS_UNIT and not (panel.get("fieldConfig", {}).get("defaults", {}).get("unit")):
            problems.append(f"{label}: no unit")
        targets = panel.get("targets") or []
        if not targets:
            problems.append(f"{label}: no queries")
        refs = [t.get("refId") for t in targets]
        for t in targets:
            if not t.get("refId"):
                problems.append(f"{label}: a target has no refId")
            elif refs.count(t["refId"]) > 1:
                problems.append(f"{label}: refId {t['refId']!r} is used twice")
            if t.get("datasource") != DATASOURCE:
                problems.append(f"{label}: target {t.get('refId')} datasource must be {DATASOURCE}, "
                                f"got {t.get('datasource')!r}")
            if not str(t.get("expr", "")).strip():
                problems.append(f"{label}: target {t.get('refId')} has no expr")
            else:
                broken = promql.syntax_error(str(t["expr"]))
                if broken:
                    problems.append(f"{label}: target {t.get('refId')}: the query does not parse: {broken}")
            for m in WHOLE_BOUND.finditer(str(t.get("expr", ""))):
                problems.append(f"{label}: target {t.get('refId')} selects {m.group(0)}, which matches nothing on "
                                f"Prometheus 3 (it stores {m.group(1)}=\"{m.group(2)}.0\"); match both: "
                                f"{m.group(1)}=~\"{m.group(2)}|{m.group(2)}\\\\.0\"")
        defaults = panel.get("fieldConfig", {}).get("defaults", {})
        if kind == "timeseries" and (defaults.get("custom") or {}).get("drawStyle") == "bars":
            for t in targets:
                for window in sorted(set(INCREASE_WINDOW.findall(str(t.get("expr", ""))))):
                    if panel.get("interval") != window or t.get("interval") != window:
                        problems.append(f"{label}: bars of increase(...[{window}]) need the panel's and the query's "
                                        f"interval {window!r} (got {panel.get('interval')!r} / {t.get('interval')!r}); "
                                        "otherwise each bar is a rolling window overlapping the next")
        if kind == "table" and len(targets) > 1 and defaults.get("unit") not in (None, "", "none", "short"):
            problems.append(f"{label}: unit {defaults.get('unit')!r} applies to every column of a table of "
                            f"{len(targets)} queries (labels and status included); give each value column its unit "
                            "(the table macro's columns=)")
    for path, key, value in _walk(dashboard):
        if key == "datasource" and value not in (DATASOURCE, BUILTIN_ANNOTATION_DS) \
                and not path.startswith("templating.list[0]"):
            if not (isinstance(value, dict) and value.get("uid") == "${datasource}"):
                problems.append(f"{path}: hard-coded datasource {value!r}; use the ${{datasource}} variable")
        if float_noise(value):
            problems.append(f"{path}: {value!r} is float noise; write the number exactly (round it in the template; "
                            "the threshold macros of lib/thresholds.j2 do)")
        if isinstance(value, str) and key in ("expr", "query", "interval") and NOISE_IN_TEXT.search(value):
            problems.append(f"{path}: {NOISE_IN_TEXT.search(value).group(0)!r} in the query is float noise; "
                            "write the number exactly (round it in the template)")
        if isinstance(value, str):
            for linked in LINK.findall(value):
                if linked not in uids:
                    problems.append(f"{path}: links to dashboard {linked!r}, which does not exist")
    problems += variable_reference_problems(dashboard)
    return sorted(set(problems), key=problems.index)


# --- variable references --------------------------------------------------------

# $name, ${name}, ${name:format}, [[name]] (Grafana's variable syntaxes); $1 in label_replace is no variable
VAR_REF = re.compile(r"\$\{([A-Za-z_]\w*)(?:[:.][^}]*)?\}|\$([A-Za-z_]\w*)|\[\[([A-Za-z_]\w*)(?::[^\]]*)?\]\]")


def variable_reference_problems(dashboard: dict) -> list[str]:
    """Every ``$variable`` a panel or variable uses is defined by the dashboard (``$__...`` are Grafana's own)."""
    defined = {v.get("name") for v in (dashboard.get("templating") or {}).get("list", [])}
    names = sorted(n for n in defined if n)
    problems = []

    def scan(node, where: str) -> None:
        for path, _key, value in _walk(node):
            if not isinstance(value, str):
                continue
            for m in VAR_REF.finditer(value):
                name = m.group(1) or m.group(2) or m.group(3)
                if name.startswith("__") or name in defined:
                    continue
                problems.append(f"{where}: {path} uses ${name}, which is not a variable of this dashboard "
                                f"(variables: {', '.join(names)}); add the variable or drop it from the query")

    for var in (dashboard.get("templating") or {}).get("list", []):
        scan(var, f"variable {var.get('name')!r}")
    for panel in _panels(dashboard):
        scan({k: v for k, v in panel.items() if k != "panels"}, f"panel {panel.get('id')} {panel.get('title')!r}")
    scan(dashboard.get("links") or [], "dashboard links")
    return problems


# --- chain-level metrics ------------------------------------------------------

def chain_sum_problems(expr: str, chain: set[str]) -> list[str]:
    """Sums (and counts) over nodes of a chain-level metric, read from the expression's syntax tree
    (``promqlcheck.chain_sum_nodes``): every full node exports the same value, so a sum without ``instance`` in
    its grouping counts each event once per node. The ``chainwide`` macro sums per node
    (``by (..., instance)``) and then takes the highest node."""
    from . import promql, promqlcheck
    if not str(expr).strip():
        return []
    parsed = promql.parse(str(expr))
    if parsed.errors:
        return []   # the syntax check reports it

    def resolve(name: str) -> str | None:
        for suffix in ("_bucket", "_count", "_sum"):
            if name.endswith(suffix) and name[:-len(suffix)] in chain:
                return name[:-len(suffix)]
        return name if name in chain else None
    return [f"{message}; {promqlcheck.CHAIN_FIX}" for _, message in promqlcheck.chain_sum_nodes(parsed.tree, chain, resolve)]


def chain_problems(dashboard: dict, chain: set[str]) -> list[str]:
    """``chain_sum_problems`` for every query of a dashboard, by panel."""
    problems = []
    from . import promql
    promql.parse_many([str(t.get("expr", "")) for p in _panels(dashboard) for t in p.get("targets", [])
                       if str(t.get("expr", "")).strip()])
    for panel in _panels(dashboard):
        for target in panel.get("targets", []):
            for p in chain_sum_problems(str(target.get("expr", "")), chain):
                problems.append(f"panel {panel.get('id')} {panel.get('title')!r}, target {target.get('refId')}: {p}")
    return sorted(set(problems), key=problems.index)


# --- Grafana's schema -------------------------------------------------------

def schema_dir() -> Path:
    return tools._tools_bin().parent / "grafana-schema"


def _drop_required(node):
    if isinstance(node, dict):
        node.pop("required", None)
        for v in node.values():
            _drop_required(v)
    elif isinstance(node, list):
        for v in node:
            _drop_required(v)
    return node


@functools.lru_cache(maxsize=None)
def _load(name: str) -> dict | None:
    path = schema_dir() / name
    if not path.is_file():
        return None
    return json.loads(path.read_text())


def versions() -> dict:
    data = _load("versions.json")
    if data is None:
        raise ToolError(f"no Grafana schema in {schema_dir()}; run `scripts/bootstrap` (or scripts/grafana-schema)")
    return data


@functools.lru_cache(maxsize=None)
def _validator(name: str, relax: bool):
    import jsonschema
    schema = _load(name)
    if schema is None:
        return None
    schema = copy.deepcopy(schema)
    if relax:
        _drop_required(schema)
    return jsonschema.Draft7Validator(schema)


def _errors(validator, data, prefix: str) -> list[str]:
    out = []
    for e in sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path)):
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in e.absolute_path)
        message = e.message if len(e.message) < 300 else e.message[:300] + "..."
        out.append(f"{prefix}{where}: {message}")
    return out


def schema_problems(dashboard: dict) -> list[str]:
    """Validation errors against Grafana's dashboard and panel schemas."""
    versions()
    problems = _errors(_validator("dashboard.schema.json", False), dashboard, "dashboard")
    for panel in _panels(dashboard):
        kind = panel.get("type")
        if kind == "row":
            continue
        label = f"panel {panel.get('id')} {panel.get('title')!r} ({kind})"
        options = _validator(f"panels/{kind}.options.json", True)
        if options is None:
            problems.append(f"{label}: no schema for panel type {kind!r} (scripts/grafana-schema PANELS)")
            continue
        problems += _errors(options, panel.get("options", {}), f"{label} options")
        custom = _validator(f"panels/{kind}.fieldconfig.json", True)
        if custom is not None:
            problems += _errors(custom, panel.get("fieldConfig", {}).get("defaults", {}).get("custom", {}),
                                f"{label} fieldConfig.defaults.custom")
    return problems


# --- PromQL -----------------------------------------------------------------

_GRAFANA_RANGE = re.compile(r"\$__(rate_interval|interval|range)\b|\$\{__(rate_interval|interval|range)\}")
_GRAFANA_VAR = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)")


def promql_text(expr: str) -> str:
    """An expression with Grafana's variables replaced by values of the same shape."""
    text = _GRAFANA_RANGE.sub("5m", expr)
    text = re.sub(r"\$__range_s\b", "3600", text)
    return _GRAFANA_VAR.sub(".*", text)


def promql_problems(dashboards: dict[str, dict]) -> list[str]:
    """Every target expression of every dashboard, parsed by promtool."""
    import yaml
    places: list[str] = []
    rules = []
    for uid, dashboard in sorted(dashboards.items()):
        for panel in _panels(dashboard):
            for target in panel.get("targets", []):
                places.append(f"dashboard {uid}, panel {panel.get('id')} {panel.get('title')!r}, "
                              f"target {target.get('refId')}")
                rules.append({"record": f"dashboard:check:{len(rules)}", "expr": promql_text(target.get("expr", ""))})
        for var in dashboard.get("templating", {}).get("list", []):
            query = var.get("query")
            m = re.match(r"label_values\((.*),\s*\w+\)$", str(query.get("query", "")) if isinstance(query, dict) else "")
            if m and "{" in m.group(1) or (m and re.match(r"^[a-zA-Z_:][\w:]*$", m.group(1))):
                places.append(f"dashboard {uid}, variable {var['name']!r}")
                rules.append({"record": f"dashboard:check:{len(rules)}", "expr": promql_text(m.group(1))})
    problems = []
    promtool = tools.find("promtool")
    # one rule per group, so promtool's message names the one that fails
    groups = [{"name": str(i), "rules": [r]} for i, r in enumerate(rules)]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "dashboards.rules.yaml"
        path.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
        proc = tools.run([promtool, "check", "rules", str(path)], check=False)
        if proc.returncode == 0:
            return []
        output = proc.stdout + proc.stderr
        for m in re.finditer(r'group "(\d+)", rule \d+, "[^"]*": (.*)', output):
            problems.append(f"{places[int(m.group(1))]}: {m.group(2).strip()}")
        if not problems:
            problems.append(f"promtool check rules failed:\n{output.strip()}")
    return problems


def load_chart_dashboards(chart: Path) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in sorted((chart / "files" / "dashboards").glob("*.json"))}


def chain_metrics(root: Path) -> set[str]:
    """The chain-level metrics (``scope: chain``) of the catalog under ``root``."""
    from types import SimpleNamespace
    from .content import catalog
    if not (root / "templates_src" / "metrics").is_dir():
        return set()
    loaded = catalog.load(SimpleNamespace(templates=root / "templates_src", root=root))
    return {m.name for m in loaded.metrics.values() if m.scope == "chain"}


def lint_check(ctx) -> None:
    """``generator lint`` check ``dashboards``: our lint, Grafana's schema, promtool, on the chart's dashboards."""
    from .errors import ValidationError
    dashboards = load_chart_dashboards(ctx.chart)
    if not dashboards:
        raise ValidationError("no dashboards in chart/files/dashboards; render first")
    problems = []
    chain = chain_metrics(ctx.root)
    for uid, dashboard in dashboards.items():
        problems += [f"{uid}: {p}" for p in structural(dashboard, set(dashboards))]
        problems += [f"{uid}: {p}" for p in chain_problems(dashboard, chain)]
        problems += [f"{uid}: {p}" for p in schema_problems(dashboard)]
    problems += promql_problems(dashboards)
    if problems:
        raise ValidationError("dashboard lint:\n  " + "\n  ".join(problems[:50])
                              + (f"\n  ... {len(problems) - 50} more" if len(problems) > 50 else ""))
    targets = sum(len(p.get("targets", [])) for d in dashboards.values() for p in _panels(d))
    ctx.notes.append(f"dashboards: {len(dashboards)} valid against Grafana's schema (@grafana/schema "
                     f"{versions()['version']}), lint clean, {targets} PromQL queries parsed by promtool")
