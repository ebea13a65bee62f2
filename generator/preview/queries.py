"""A panel's queries, made concrete and run against Prometheus's HTTP API.

Grafana fills in template variables before it sends a query; the preview
does the same: a multi-value or "All" variable becomes its ``allValue``
(``.*`` by default, the dashboards use ``=~``), a custom / constant /
interval variable its current value, the ``datasource`` variable drops out.
Grafana's own variables get the values Grafana would compute for the
preview's time range and width: ``$__interval`` (the step),
``$__rate_interval`` (max(4 x scrape interval, step + scrape interval)),
``$__range``. Range queries use ``/api/v1/query_range``, instant ones
(``instant: true`` and no ``range``) ``/api/v1/query``.
"""
from __future__ import annotations

import json
import math
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field

from ..errors import GeneratorError

VAR = re.compile(r"\$\{(\w+)(?::\w+)?\}|\[\[(\w+)(?::\w+)?\]\]|\$(\w+)")
SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
MAX_POINTS = 240


class PrometheusError(GeneratorError):
    pass


def parse_duration(text: str, what: str = "duration") -> float:
    total, rest = 0.0, str(text).strip()
    for number, unit in re.findall(r"(\d+)(ms|s|m|h|d|w|y)", rest):
        total += int(number) * SECONDS[unit]
    if not rest or re.sub(r"(\d+)(ms|s|m|h|d|w|y)", "", rest):
        raise GeneratorError(f"{what}: expected a duration like 30s, 5m or 1h30m, got {text!r}")
    return total


def prom_duration(seconds: float) -> str:
    """Seconds as a PromQL duration (whole seconds, at least 1s)."""
    s = max(1, int(math.ceil(seconds)))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s % size == 0:
            return f"{s // size}{unit}"
    return f"{s}s"


@dataclass
class Window:
    """The time range and resolution a dashboard is previewed at."""
    end: float
    seconds: float
    scrape_interval: float = 30.0
    points: int = MAX_POINTS

    @property
    def start(self) -> float:
        return self.end - self.seconds

    @property
    def step(self) -> float:
        return max(1.0, math.ceil(self.seconds / self.points))

    def builtins(self) -> dict[str, str]:
        step = self.step
        rate = max(4 * self.scrape_interval, step + self.scrape_interval)
        return {"__interval": prom_duration(step), "__interval_ms": str(int(step * 1000)),
                "__rate_interval": prom_duration(rate), "__range": prom_duration(self.seconds),
                "__range_s": str(int(self.seconds)), "__range_ms": str(int(self.seconds * 1000))}


def variable_values(dashboard: dict) -> dict[str, str]:
    """The value each dashboard variable takes in a preview."""
    values: dict[str, str] = {}
    for var in dashboard.get("templating", {}).get("list", []):
        name, kind = var.get("name"), var.get("type")
        current = (var.get("current") or {}).get("value")
        if isinstance(current, list):
            current = current[0] if len(current) == 1 else "$__all"
        if kind == "datasource":
            continue
        if kind in ("query", "custom") and (var.get("includeAll") or var.get("multi")) and current in (None, "$__all", ""):
            values[name] = var.get("allValue") or ".*"
        elif current not in (None, "", "$__all"):
            values[name] = str(current)
        elif kind in ("custom", "interval", "constant") and var.get("query"):
            values[name] = str(var["query"]).split(",")[0].strip()
        else:
            values[name] = var.get("allValue") or ".*"
    return values


def resolve(expr: str, values: dict[str, str], window: Window) -> str:
    """``expr`` with every ``$var``, ``${var}`` and ``[[var]]`` replaced; unknown names stay."""
    table = {**window.builtins(), **values}

    def sub(m: re.Match) -> str:
        name = m.group(1) or m.group(2) or m.group(3)
        return table.get(name, m.group(0))
    return VAR.sub(sub, expr)


@dataclass
class Series:
    labels: dict[str, str]
    points: list[tuple[float, float]]
    name: str = ""


@dataclass
class Result:
    ref_id: str
    expr: str
    query: str
    instant: bool
    series: list[Series] = field(default_factory=list)
    error: str = ""

    @property
    def empty(self) -> bool:
        return not any(s.points for s in self.series)


def legend(fmt: str, labels: dict[str, str], expr: str) -> str:
    if fmt and fmt != "__auto":
        return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), fmt)
    shown = {k: v for k, v in labels.items() if k != "__name__"}
    if not shown:
        return labels.get("__name__", expr if len(expr) < 40 else expr[:37] + "...")
    inner = ", ".join(f'{k}="{v}"' for k, v in sorted(shown.items()))
    return f"{labels.get('__name__', '')}{{{inner}}}"


class Prometheus:
    """The few HTTP API calls a preview needs; errors name the URL and query."""

    def __init__(self, url: str, timeout: float = 20):
        self.url = url.rstrip("/")
        self.timeout = timeout

    def _get(self, path: str, params: dict) -> dict:
        url = f"{self.url}{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=self.timeout) as resp:
                body = json.load(resp)
        except urllib.error.HTTPError as e:
            try:
                body = json.load(e)
            except ValueError:
                raise PrometheusError(f"{self.url}{path}: HTTP {e.code}") from None
        except (urllib.error.URLError, OSError, ValueError) as e:
            raise PrometheusError(f"cannot reach Prometheus at {self.url} ({e}); start one or pass --prometheus URL") from None
        if body.get("status") != "success":
            raise PrometheusError(f"{body.get('errorType', 'error')}: {body.get('error', body)}")
        return body["data"]

    def scrape_interval(self, default: float = 30.0) -> float:
        """The global scrape interval from Prometheus's loaded configuration."""
        try:
            import yaml
            conf = yaml.safe_load(self._get("/api/v1/status/config", {})["yaml"]) or {}
            return parse_duration((conf.get("global") or {}).get("scrape_interval", "1m"))
        except (PrometheusError, GeneratorError, KeyError, TypeError):
            return default

    def ready(self) -> bool:
        try:
            self._get("/api/v1/query", {"query": "1"})
            return True
        except PrometheusError:
            return False

    def run(self, ref_id: str, expr: str, query: str, instant: bool, window: Window,
            legend_format: str = "") -> Result:
        result = Result(ref_id=ref_id, expr=expr, query=query, instant=instant)
        try:
            if instant:
                data = self._get("/api/v1/query", {"query": query, "time": f"{window.end:.3f}"})
            else:
                data = self._get("/api/v1/query_range", {"query": query, "start": f"{window.start:.3f}",
                                                          "end": f"{window.end:.3f}", "step": f"{window.step:g}"})
        except PrometheusError as e:
            if str(e).startswith("cannot reach"):
                raise
            result.error = str(e)
            return result
        kind, rows = data.get("resultType"), data.get("result", [])
        if kind == "scalar":
            rows = [{"metric": {}, "value": rows}]
        for row in rows:
            raw = row.get("values") or ([row["value"]] if "value" in row else [])
            points = [(float(t), float(v)) for t, v in raw]
            labels = row.get("metric", {})
            result.series.append(Series(labels=labels, points=points, name=legend(legend_format, labels, expr)))
        return result


def panel_queries(panel: dict, values: dict[str, str], window: Window) -> list[tuple[dict, str, bool]]:
    """``(target, resolved query, instant)`` for each visible Prometheus target of a panel."""
    out = []
    for target in panel.get("targets", []):
        if target.get("hide") or not target.get("expr"):
            continue
        instant = bool(target.get("instant")) and not target.get("range")
        out.append((target, resolve(target["expr"], values, window), instant))
    return out


def fetch(prom: Prometheus, dashboard: dict, window: Window) -> dict[int, list[Result]]:
    """Every panel's query results, keyed by panel id (rows' nested panels too)."""
    values = variable_values(dashboard)
    results: dict[int, list[Result]] = {}
    for panel in all_panels(dashboard):
        rs = []
        for target, query, instant in panel_queries(panel, values, window):
            rs.append(prom.run(target.get("refId", "A"), target["expr"], query, instant, window,
                               target.get("legendFormat", "")))
        results[panel.get("id")] = rs
    return results


def all_panels(dashboard: dict) -> list[dict]:
    """Top-level panels and the panels inside collapsed rows, in order."""
    out = []
    for panel in dashboard.get("panels", []):
        out.append(panel)
        out.extend(panel.get("panels", []) if panel.get("type") == "row" else [])
    return out


def wait_for_data(prom: Prometheus, query: str = "count(up)", timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if prom._get("/api/v1/query", {"query": query}).get("result"):
                return
        except PrometheusError:
            pass
        time.sleep(0.5)
    raise PrometheusError(f"Prometheus at {prom.url} has no data for {query} after {timeout:.0f}s")
