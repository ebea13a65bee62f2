"""What a preview finds wrong with a dashboard, as ``Finding``s.

- ``layout``: a panel past column 24 of Grafana's grid, or two panels
  sharing a cell (panels inside a collapsed row are checked among
  themselves, as Grafana lays them out when the row opens);
- ``unit``: a stat, gauge or bar gauge with no ``fieldConfig.defaults.unit``
  (an explicit ``none`` counts as a decision and passes);
- ``no-data``: a query that returns no series from the Prometheus the
  preview reads, or an error (a misspelt metric or label, a bad function);
- ``fit``: text that the browser measured wider or taller than its box at
  phone width (a title cut off, a value that spills out of its panel).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from .queries import Result, all_panels

GRID_WIDTH = 24
VALUE_PANELS = ("stat", "gauge", "bargauge")


@dataclass(frozen=True)
class Finding:
    dashboard: str
    panel: str
    check: str
    message: str

    def __str__(self) -> str:
        where = f"{self.dashboard}: panel {self.panel!r}" if self.panel else self.dashboard
        return f"{where}: {self.check}: {self.message}"

    def as_dict(self) -> dict:
        return asdict(self)


def _cells(panel: dict) -> set[tuple[int, int]]:
    g = panel.get("gridPos") or {}
    x, y, w, h = (int(g.get(k, 0)) for k in ("x", "y", "w", "h"))
    return {(cx, cy) for cx in range(x, x + w) for cy in range(y, y + h)}


def _grid(uid: str, panels: list[dict]) -> list[Finding]:
    found, owner = [], {}
    for panel in panels:
        title = panel.get("title", "")
        g = panel.get("gridPos")
        if not g:
            found.append(Finding(uid, title, "layout", "has no gridPos"))
            continue
        x, w, h = int(g.get("x", 0)), int(g.get("w", 0)), int(g.get("h", 0))
        if x < 0 or w <= 0 or h <= 0 or x + w > GRID_WIDTH:
            found.append(Finding(uid, title, "layout",
                                 f"spans columns {x}..{x + w} (x={x}, w={w}, h={h}); the grid has {GRID_WIDTH} columns"))
        clash = sorted({owner[c] for c in _cells(panel) if c in owner})
        for other in clash:
            found.append(Finding(uid, title, "layout", f"overlaps panel {other!r} (gridPos {g})"))
        for c in _cells(panel):
            owner.setdefault(c, title)
    return found


def layout(dashboard: dict) -> list[Finding]:
    uid = dashboard.get("uid", "?")
    top = dashboard.get("panels", [])
    found = _grid(uid, top)
    for row in top:
        if row.get("type") == "row" and row.get("collapsed") and row.get("panels"):
            found += _grid(uid, row["panels"])
    return found


def units(dashboard: dict) -> list[Finding]:
    found = []
    for panel in all_panels(dashboard):
        if panel.get("type") in VALUE_PANELS:
            unit = ((panel.get("fieldConfig") or {}).get("defaults") or {}).get("unit")
            if not unit:
                found.append(Finding(dashboard.get("uid", "?"), panel.get("title", ""), "unit",
                                     f"a {panel['type']} panel without fieldConfig.defaults.unit "
                                     "(set one, e.g. s, percentunit, bytes, reqps, or none for a plain count)"))
    return found


def data(dashboard: dict, results: dict[int, list[Result]]) -> list[Finding]:
    found = []
    for panel in all_panels(dashboard):
        for r in results.get(panel.get("id"), []):
            if r.error:
                found.append(Finding(dashboard.get("uid", "?"), panel.get("title", ""), "no-data",
                                     f"query {r.ref_id} fails: {r.error} (query: {r.query})"))
            elif r.empty:
                found.append(Finding(dashboard.get("uid", "?"), panel.get("title", ""), "no-data",
                                     f"query {r.ref_id} returns no data (query: {r.query})"))
    return found


def fit(uid: str, measured: list[dict]) -> list[Finding]:
    """Findings from the overflow measurements the phone page records in the browser, one per panel and kind of text."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for m in measured:
        groups.setdefault((m.get("panel", ""), m.get("what", "text")), []).append(m)
    found = []
    for (panel, what), ms in groups.items():
        worst = max(ms, key=lambda m: m.get("need", 0) - m.get("have", 0))
        more = f" (and {len(ms) - 1} more)" if len(ms) > 1 else ""
        found.append(Finding(uid, panel, "fit", f"{what} {worst.get('text', '')!r}{more} needs {worst.get('need')}px "
                                                f"but has {worst.get('have')}px at phone width"))
    return found


def static(dashboard: dict) -> list[Finding]:
    return layout(dashboard) + units(dashboard)
