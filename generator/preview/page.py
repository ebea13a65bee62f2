"""One dashboard as a static HTML page, laid out as Grafana lays it out.

Desktop: panels placed by ``gridPos`` on the 24-column grid (cells 30 px
high, 8 px apart, as react-grid-layout in Grafana). Phone: below Grafana's
mobile breakpoint (769 px) every panel is full width, stacked in reading
order (y, then x), at the height its ``gridPos.h`` gives. Sizes are computed
here, so each panel's chart is drawn at its final pixel size and the page
height is known before the browser opens it.

Every panel shows its title, the drawing of its data, and a footer line with
its unit and threshold steps. Elements marked ``data-fit`` are measured in
the browser (``MEASURE``); text that overflows its box is reported as a
``fit`` finding.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from html import escape

from . import svg
from .layout import MODES, THEMES  # noqa: F401 - page.MODES, page.THEMES as before
from .queries import Result, Window
from .units import fmt

ROW_H, MARGIN = 30, 8
HEADER_H = {"desktop": 84, "phone": 100}
PAD = {"desktop": 16, "phone": 8}
TITLE_H, FOOT_H, INNER = 30, 18, 8
CHAR_W = 0.56  # average advance of Inter digits/letters, in em

CSS = """
:root.dark{--bg:#111217;--panel:#181b1f;--border:#2a2c31;--text:#ccccdc;--muted:#9a9ba3;--grid:rgba(204,204,220,.10);--track:rgba(204,204,220,.12);--row:#ccccdc}
:root.light{--bg:#f4f5f5;--panel:#ffffff;--border:#dcdee1;--text:#24292e;--muted:#6b6f75;--grid:rgba(36,41,46,.12);--track:rgba(36,41,46,.12);--row:#24292e}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--text);font:14px Inter,"DejaVu Sans",sans-serif;position:relative;overflow:hidden}
header{position:absolute;left:0;right:0;top:0;padding:10px PADpx 0}
header h1{font-size:20px;font-weight:500;margin:0 0 6px;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
header .vars{display:flex;flex-wrap:wrap;gap:6px;font-size:12px;color:var(--muted)}
header .vars span{border:1px solid var(--border);border-radius:2px;padding:2px 6px;background:var(--panel)}
.panel{position:absolute;background:var(--panel);border:1px solid var(--border);border-radius:2px;overflow:hidden}
.panel .title{height:TITLEpx;line-height:TITLEpx;padding:0 8px;font-weight:500;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
.panel .body{position:absolute;left:INNERpx;top:TITLEpx;overflow:hidden}
.panel .foot{position:absolute;left:8px;right:8px;bottom:1px;height:FOOTpx;font-size:11px;color:var(--muted);white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
.foot i{display:inline-block;width:8px;height:8px;border-radius:1px;margin:0 3px 0 6px;vertical-align:0}
.row{position:absolute;font-size:16px;font-weight:500;color:var(--row);white-space:nowrap;overflow:hidden;text-overflow:ellipsis;line-height:30px}
.row:before{content:"\\25BE  ";color:var(--muted)}
.nodata{display:flex;align-items:center;justify-content:center;height:100%;color:var(--muted)}
.err{color:#f2495c;font-size:12px;padding:4px;white-space:normal}
.chart text.axis{fill:var(--muted);font-size:11px}
.chart line.grid{stroke:var(--grid);stroke-width:1}
.legend{display:flex;flex-wrap:wrap;gap:0 12px;font-size:12px;overflow:hidden;color:var(--text)}
.legend span{white-space:nowrap;overflow:hidden;text-overflow:ellipsis;max-width:100%;line-height:18px}
.legend i{display:inline-block;width:14px;height:4px;border-radius:1px;margin-right:5px;vertical-align:middle}
.cells{display:flex;height:100%;gap:6px}
.cell{position:relative;flex:1 1 0;min-width:0;display:flex;flex-direction:column;justify-content:center;align-items:center;border-radius:2px;overflow:hidden}
.cell .name{font-size:12px;color:var(--muted);white-space:nowrap;overflow:hidden;text-overflow:ellipsis;max-width:100%}
.cell .value{font-weight:500;white-space:nowrap;overflow:hidden;max-width:100%;line-height:1.15;z-index:1}
.cell .spark{position:absolute;left:0;bottom:0}
.cell.gauge .value{position:absolute;left:0;right:0;text-align:center}
.bars{display:flex;flex-direction:column;gap:4px;height:100%;justify-content:center}
.bar{display:flex;align-items:center;gap:8px;font-size:12px}
.bar .name{flex:0 0 30%;white-space:nowrap;overflow:hidden;text-overflow:ellipsis;color:var(--muted)}
.bar .track{flex:1;height:60%;min-height:8px;background:var(--track);border-radius:2px;overflow:hidden}
.bar .track b{display:block;height:100%}
.bar .v{flex:0 0 auto;font-weight:500}
table{border-collapse:collapse;width:100%;font-size:12px;table-layout:fixed}
td,th{border-bottom:1px solid var(--border);padding:3px 6px;text-align:left;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
th{color:var(--muted);font-weight:500}
.text{font-size:13px;line-height:1.45;overflow:hidden;height:100%}
.text h1,.text h2,.text h3{font-size:15px;margin:0 0 4px}.text p,.text ul{margin:0 0 6px}.text a{color:#5794f2}
"""

# Runs in the browser: big values (names) shrink to fit their box, down to 12 (10) px, as
# Grafana's BigValue does; then every [data-fit] element whose text needs more room than it
# has is recorded on <html data-overflow> for `chromium --dump-dom` to return.
MEASURE = """<script>
(function(){var out=[];
document.querySelectorAll('[data-autofit]').forEach(function(e){var s=parseFloat(e.style.fontSize);
var min=e.classList.contains('name')?MIN_NAME:MIN_FONT;
while(e.scrollWidth>e.clientWidth+1&&s>min){s-=1;e.style.fontSize=s+'px';}});document.querySelectorAll('[data-fit]').forEach(function(e){
var w=e.scrollWidth>e.clientWidth+1,h=e.scrollHeight>e.clientHeight+1;
if(w||h){out.push({panel:e.closest('[data-title]')?e.closest('[data-title]').dataset.title:'',what:e.dataset.fit,
text:(e.textContent||'').trim().slice(0,80),need:w?e.scrollWidth:e.scrollHeight,have:w?e.clientWidth:e.clientHeight});}});
document.documentElement.setAttribute('data-overflow',JSON.stringify(out));})();
</script>""".replace("MIN_FONT", "12").replace("MIN_NAME", "10")


@dataclass
class Box:
    left: float
    top: float
    width: float
    height: float


def panel_height(h: int) -> float:
    return h * ROW_H + (h - 1) * MARGIN


def place(panels: list[dict], mode: str) -> tuple[list[tuple[dict, Box]], float]:
    """Each visible panel with its pixel box, and the page height."""
    width, pad, head = MODES[mode], PAD[mode], HEADER_H[mode]
    placed = []
    if mode == "desktop":
        col = (width - 2 * pad - 23 * MARGIN) / 24
        for p in panels:
            g = p.get("gridPos") or {}
            x, y, w, h = (int(g.get(k, 0)) for k in ("x", "y", "w", "h"))
            placed.append((p, Box(pad + x * (col + MARGIN), head + y * (ROW_H + MARGIN),
                                  max(w * col + (w - 1) * MARGIN, 1), panel_height(max(h, 1)))))
    else:
        top = head
        order = sorted(panels, key=lambda p: ((p.get("gridPos") or {}).get("y", 0), (p.get("gridPos") or {}).get("x", 0)))
        for p in order:
            h = 1 if p.get("type") == "row" else max(int((p.get("gridPos") or {}).get("h", 8)), 1)
            placed.append((p, Box(pad, top, width - 2 * pad, panel_height(h))))
            top += panel_height(h) + MARGIN
    bottom = max((b.top + b.height for _, b in placed), default=head)
    return placed, math.ceil(bottom + pad)


def visible_panels(dashboard: dict) -> list[dict]:
    """Top-level panels; a collapsed row shows only its header, as in Grafana."""
    return list(dashboard.get("panels", []))


def _defaults(panel: dict) -> dict:
    return (panel.get("fieldConfig") or {}).get("defaults") or {}


def _steps(panel: dict) -> list[dict]:
    return ((_defaults(panel).get("thresholds") or {}).get("steps")) or []


def reduce(points: list[tuple[float, float]], calc: str) -> float | None:
    vals = [v for _, v in points if math.isfinite(v)]
    if not vals:
        return None
    return {"last": vals[-1], "lastNotNull": vals[-1], "first": vals[0], "firstNotNull": vals[0],
            "mean": sum(vals) / len(vals), "max": max(vals), "min": min(vals), "sum": sum(vals),
            "count": float(len(vals)), "range": max(vals) - min(vals)}.get(calc, vals[-1])


def footer(panel: dict, theme: str) -> str:
    d, unit = _defaults(panel), _defaults(panel).get("unit")
    parts = [f"unit {escape(unit)}" if unit else "no unit"]
    steps = _steps(panel)
    if panel.get("type") in ("stat", "gauge", "bargauge") or len(steps) > 1 or \
            (d.get("custom") or {}).get("thresholdsStyle", {}).get("mode", "off") != "off":
        chips = "".join(f'<i style="background:{svg.color(s.get("color"), theme)}"></i>'
                        f'{"base" if s.get("value") is None else escape(fmt(s["value"], unit))}' for s in steps)
        parts.append(f"thresholds{chips}" if steps else "no thresholds")
    return f'<div class="foot">{" · ".join(parts)}</div>'


def _series(results: list[Result]):
    out = []
    for r in results:
        for s in r.series:
            out.append(s)
    return out


def _legend_rows(names: list[str], width: float) -> int:
    rows, x = 1, 0.0
    for n in names:
        w = len(n) * 12 * CHAR_W + 31
        if x and x + w > width:
            rows, x = rows + 1, 0.0
        x += w
    return rows


def body_timeseries(panel, results, w, h, window: Window, theme):
    series = _series(results)
    if not any(s.points for s in series):
        return _nodata(results)
    d = _defaults(panel)
    custom = d.get("custom") or {}
    legend_opts = (panel.get("options") or {}).get("legend") or {}
    names = [s.name for s in series]
    show_legend = legend_opts.get("showLegend", True) and legend_opts.get("displayMode") != "hidden"
    legend_h = 0
    if show_legend:
        legend_h = min(_legend_rows(names, w), max(1, int(h * 0.3 // 18))) * 18
    drawn = [(s.name, svg.PALETTE[i % len(svg.PALETTE)], s.points) for i, s in enumerate(series)]
    draw = {"bars": "bars", "points": "points"}.get(custom.get("drawStyle", "line"), "line")
    chart = svg.timeseries(drawn, int(w), int(h - legend_h), unit=d.get("unit"), start=window.start, end=window.end,
                           thresholds=_steps(panel), threshold_style=(custom.get("thresholdsStyle") or {}).get("mode", "off"),
                           fill=int(custom.get("fillOpacity", 0) or 0), theme=theme, lo=d.get("min"), hi=d.get("max"),
                           draw=draw)
    legend = ""
    if show_legend:
        items = "".join(f'<span><i style="background:{c}"></i>{escape(n)}</span>' for n, c, _ in drawn)
        legend = f'<div class="legend" style="height:{legend_h}px">{items}</div>'
    return chart + legend + _errors(results)


def _nodata(results) -> str:
    return f'<div class="nodata">No data</div>{_errors(results)}'


def _errors(results) -> str:
    errs = [r for r in results if r.error]
    return "".join(f'<div class="err">{escape(r.ref_id)}: {escape(r.error[:200])}</div>' for r in errs)


def _values(panel, results) -> list[tuple[str, float | None, list]]:
    calc = (((panel.get("options") or {}).get("reduceOptions") or {}).get("calcs") or ["lastNotNull"])[0]
    series = _series(results)
    return [(s.name, reduce(s.points, calc), s.points) for s in series]


def _font(text: str, w: float, h: float, top: float = 0.55) -> int:
    by_w = w / max(len(text) * CHAR_W, 1)
    return int(max(12, min(h * top, by_w, 64)))


def grid(n: int, w: float, h: float, orientation: str = "auto") -> tuple[int, int]:
    """``(columns, rows)`` for n values: Grafana's VizRepeater auto grid, or one line when forced."""
    if orientation == "horizontal":
        return n, 1
    if orientation == "vertical":
        return 1, n
    cols = max(1, min(n, round(math.sqrt(n * w / max(h, 1)))))
    return cols, math.ceil(n / cols)


def _cells(cells: list[str], cols: int, rows: int) -> str:
    return (f'<div class="cells" style="display:grid;grid-template-columns:repeat({cols},minmax(0,1fr));'
            f'grid-template-rows:repeat({rows},minmax(0,1fr))">{"".join(cells)}</div>')


def body_stat(panel, results, w, h, theme):
    values = _values(panel, results)
    if not values:
        return _nodata(results)
    opts = panel.get("options") or {}
    unit, steps = _defaults(panel).get("unit"), _steps(panel)
    n = len(values)
    cols, rows = grid(n, w, h, opts.get("orientation", "auto"))
    cw, ch = (w - 6 * (cols - 1)) / cols, (h - 6 * (rows - 1)) / rows
    cells = []
    for name, value, points in values:
        text = fmt(value, unit, _defaults(panel).get("decimals"))
        col = svg.threshold_color(value, steps, theme)
        mode = opts.get("colorMode", "value")
        show_name = n > 1 and opts.get("textMode", "auto") in ("auto", "value_and_name", "name")
        style, value_style = "", f"color:{col}" if mode == "value" else ""
        if mode == "background":
            style, value_style = f"background:{col};", "color:#fff"
        name_h = 16 if show_name else 0
        spark = ""
        if opts.get("graphMode", "area") == "area" and len(points) > 1 and ch > 50:
            spark = svg.sparkline(points, int(cw), int(ch * 0.35), col)
        size = _font(text, cw - 8, ch - name_h - (ch * 0.2 if spark else 0))
        name_html = f'<div class="name" data-fit="series name" data-autofit style="font-size:12px">{escape(name)}</div>' if show_name else ""
        cells.append(f'<div class="cell" style="{style}">{name_html}<div class="value" data-fit="value" data-autofit '
                     f'style="font-size:{size}px;{value_style}">{escape(text)}</div>{spark}</div>')
    return _cells(cells, cols, rows) + _errors(results)


def body_gauge(panel, results, w, h, theme):
    values = _values(panel, results)
    if not values:
        return _nodata(results)
    d = _defaults(panel)
    unit, steps = d.get("unit"), _steps(panel)
    lo = d.get("min", 0)
    hi = d.get("max", 1 if unit == "percentunit" else 100)
    n = len(values)
    cols, rows = grid(n, w, h, (panel.get("options") or {}).get("orientation", "auto"))
    cw, ch = (w - 6 * (cols - 1)) / cols, (h - 6 * (rows - 1)) / rows
    cells = []
    for name, value, _ in values:
        text = fmt(value, unit, d.get("decimals"))
        name_h = 16 if n > 1 else 0
        arc = svg.gauge(value, int(cw), int(ch - name_h), unit=unit, lo=lo, hi=hi, thresholds=steps, theme=theme,
                        show_markers=(panel.get("options") or {}).get("showThresholdMarkers", True))
        radius = min(cw, (ch - name_h) * 1.35) * 0.42
        size = int(max(12, min(radius * 0.45, (radius * 1.3) / max(len(text) * CHAR_W, 1))))
        top = (ch - name_h) / 2 + radius * 0.3 - size * 0.6 + name_h
        name_html = f'<div class="name" data-fit="series name" data-autofit style="font-size:12px">{escape(name)}</div>' if n > 1 else ""
        cells.append(f'<div class="cell gauge">{name_html}{arc}<div class="value" data-fit="value" data-autofit '
                     f'style="top:{top:.0f}px;font-size:{size}px;color:{svg.threshold_color(value, steps, theme)}">'
                     f'{escape(text)}</div></div>')
    return _cells(cells, cols, rows) + _errors(results)


def body_bargauge(panel, results, w, h, theme):
    values = _values(panel, results)
    if not values:
        return _nodata(results)
    d = _defaults(panel)
    unit, steps = d.get("unit"), _steps(panel)
    finite = [v for _, v, _ in values if v is not None]
    lo, hi = d.get("min", min([0.0] + finite)), d.get("max", max(finite + [1e-12]))
    rows = []
    for name, value, _ in values[: max(int(h // 20), 1)]:
        frac = 0 if value is None else min(max((value - lo) / ((hi - lo) or 1), 0), 1)
        col = svg.threshold_color(value, steps, theme)
        rows.append(f'<div class="bar"><span class="name">{escape(name)}</span><span class="track">'
                    f'<b style="width:{frac * 100:.1f}%;background:{col}"></b></span>'
                    f'<span class="v" style="color:{col}">{escape(fmt(value, unit))}</span></div>')
    return f'<div class="bars">{"".join(rows)}</div>{_errors(results)}'


def body_table(panel, results, w, h, theme):
    series = _series(results)
    if not series:
        return _nodata(results)
    unit = _defaults(panel).get("unit")
    cols = sorted({k for s in series for k in s.labels if k != "__name__"})
    head = "".join(f"<th>{escape(c)}</th>" for c in cols) + "<th>Value</th>"
    body = []
    for s in series[: max(int((h - 24) // 23), 1)]:
        last = reduce(s.points, "lastNotNull")
        body.append("<tr>" + "".join(f"<td>{escape(s.labels.get(c, ''))}</td>" for c in cols)
                    + f"<td>{escape(fmt(last, unit))}</td></tr>")
    return f'<table><tr>{head}</tr>{"".join(body)}</table>{_errors(results)}'


def body_heatmap(panel, results, w, h, window: Window, theme):
    series = [s for s in _series(results) if s.points]
    if not series:
        return _nodata(results)

    def le(s):
        try:
            return float(s.labels.get("le", "inf"))
        except ValueError:
            return math.inf
    series.sort(key=le)
    # Prometheus buckets are cumulative; a heatmap shows each bucket's own count (Grafana's "heatmap" format)
    counts, below = [], {}
    for s in series:
        own = [(t, v - below.get(t, 0.0)) for t, v in s.points]
        below = dict(s.points)
        counts.append(own)
    top_v = max((v for pts in counts for _, v in pts if math.isfinite(v)), default=1) or 1
    rh = (h - 18) / len(series)
    step = window.step
    cw = max(w * step / max(window.seconds, 1), 1)
    cells = []
    base = svg.color("orange", theme)
    for i, pts in enumerate(counts):
        y = h - 18 - (i + 1) * rh
        for t, v in pts:
            if math.isfinite(v) and v > 0:
                x = (t - window.start) / max(window.seconds, 1) * w
                cells.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{cw:.1f}" height="{rh:.1f}" fill="{base}" '
                             f'fill-opacity="{0.15 + 0.85 * v / top_v:.2f}"/>')
    return (f'<svg class="chart" width="{int(w)}" height="{int(h)}" xmlns="http://www.w3.org/2000/svg">'
            f'{"".join(cells)}<text class="axis" x="2" y="{h - 4}">{escape(series[0].labels.get("le", ""))} .. '
            f'{escape(series[-1].labels.get("le", ""))}</text></svg>{_errors(results)}')


def body_text(panel, w, h):
    opts = panel.get("options") or {}
    content = opts.get("content", "")
    if opts.get("mode", "markdown") == "html":
        inner = content
    else:
        blocks, items = [], []
        for line in content.splitlines():
            text = escape(line.strip())
            text = re.sub(r"\[([^\]]+)\]\(([^)]+)\)", r'<a href="\2">\1</a>', text)
            text = re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", text)
            text = re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
            if line.strip().startswith(("- ", "* ")):
                items.append(f"<li>{text[2:]}</li>")
                continue
            if items:
                blocks.append(f"<ul>{''.join(items)}</ul>")
                items = []
            if line.startswith("#"):
                blocks.append(f"<h3>{text.lstrip('#').strip()}</h3>")
            elif text:
                blocks.append(f"<p>{text}</p>")
        if items:
            blocks.append(f"<ul>{''.join(items)}</ul>")
        inner = "".join(blocks)
    return f'<div class="text" data-fit="text" style="height:{int(h)}px">{inner}</div>'


def panel_html(panel: dict, box: Box, results: list[Result], window: Window, theme: str) -> str:
    title = panel.get("title", "")
    pos = f"left:{box.left:.1f}px;top:{box.top:.1f}px;width:{box.width:.1f}px;height:{box.height:.1f}px"
    if panel.get("type") == "row":
        return f'<div class="row" data-title="{escape(title)}" data-fit="row title" style="{pos}">{escape(title)}</div>'
    w, h = box.width - 2 * INNER - 2, box.height - TITLE_H - FOOT_H - 4
    kind = panel.get("type")
    if kind == "stat":
        body = body_stat(panel, results, w, h, theme)
    elif kind == "gauge":
        body = body_gauge(panel, results, w, h, theme)
    elif kind == "bargauge":
        body = body_bargauge(panel, results, w, h, theme)
    elif kind == "table":
        body = body_table(panel, results, w, h, theme)
    elif kind == "text":
        body = body_text(panel, w, h)
    elif kind == "heatmap":
        body = body_heatmap(panel, results, w, h, window, theme)
    elif not panel.get("targets"):
        body = f'<div class="nodata">{escape(str(kind))} panel: no queries to draw</div>'
    elif any(not r.instant for r in results):
        body = body_timeseries(panel, results, w, h, window, theme)
    else:
        body = body_table(panel, results, w, h, theme)
    return (f'<div class="panel" data-title="{escape(title)}" data-type="{escape(str(kind))}" style="{pos}">'
            f'<div class="title" data-fit="title" title="{escape(panel.get("description", ""))}">{escape(title)}</div>'
            f'<div class="body" style="width:{w:.0f}px;height:{h:.0f}px">{body}</div>{footer(panel, theme)}</div>')


def render(dashboard: dict, results: dict[int, list[Result]], window: Window, *, mode: str, theme: str,
           env: str, variables: dict[str, str]) -> tuple[str, int, int]:
    """``(html, width, height)`` of one dashboard in one layout and theme."""
    placed, height = place(visible_panels(dashboard), mode)
    css = (CSS.replace("PADpx", f"{PAD[mode]}px").replace("TITLEpx", f"{TITLE_H}px")
           .replace("INNERpx", f"{INNER}px").replace("FOOTpx", f"{FOOT_H}px"))
    span = f"last {fmt(window.seconds, 's')}"
    chips = "".join(f"<span>{escape(k)} = {escape('All' if v == '.*' else v)}</span>" for k, v in variables.items())
    panels = "".join(panel_html(p, box, results.get(p.get("id"), []), window, theme) for p, box in placed)
    width = MODES[mode]
    doc = (f'<!DOCTYPE html><html class="{theme}" lang="en"><head><meta charset="utf-8">'
           f'<meta name="viewport" content="width={width}">'
           f'<title>{escape(dashboard.get("title", ""))} ({mode}, {theme})</title><style>{css}</style></head>'
           f'<body style="width:{width}px;height:{height}px" data-end="{window.end:.3f}" data-range="{window.seconds:g}"><header><h1>{escape(dashboard.get("title", ""))}</h1>'
           f'<div class="vars"><span>env = {escape(env)}</span>{chips}<span>{escape(span)}</span></div></header>'
           f'{panels}{MEASURE}</body></html>\n')
    return doc, width, height
