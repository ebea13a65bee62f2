"""Charts as inline SVG, drawn from query results at a known pixel size.

Why our own SVG and not a chart library: the picture is drawn by Python at
the exact size of its panel, so the page needs no JavaScript to render
(Chromium's ``--screenshot`` fires on load, with nothing to wait for), the
HTML is reproducible and diffable, and nothing is fetched or vendored. The
shapes follow Grafana's panels: lines with a light fill, threshold lines or
bands, a gauge arc with its threshold ring, horizontal bar gauges.
"""
from __future__ import annotations

import math
import time
from html import escape

from .units import fmt

PALETTE = ("#7EB26D", "#EAB839", "#6ED0E0", "#EF843C", "#E24D42", "#1F78C1", "#BA43A9", "#705DA0",
           "#508642", "#CCA300", "#447EBC", "#C15C17", "#890F02", "#0A437C", "#6D1F62", "#584477")
NAMED = {
    "dark": {"green": "#73BF69", "red": "#F2495C", "orange": "#FF9830", "yellow": "#FADE2A",
             "blue": "#5794F2", "purple": "#B877D9", "text": "#CCCCDC", "transparent": "transparent"},
    "light": {"green": "#56A64B", "red": "#E02F44", "orange": "#FF780A", "yellow": "#F2CC0C",
              "blue": "#3274D9", "purple": "#A352CC", "text": "#24292E", "transparent": "transparent"},
}
for _theme in NAMED.values():
    for _shade in ("dark", "semi-dark", "light", "super-light"):
        for _base in ("green", "red", "orange", "yellow", "blue", "purple"):
            _theme[f"{_shade}-{_base}"] = _theme[_base]


def color(name: str | None, theme: str) -> str:
    if not name:
        return NAMED[theme]["green"]
    return NAMED[theme].get(name, name)


def threshold_color(value: float | None, steps: list[dict], theme: str) -> str:
    chosen = steps[0].get("color") if steps else "green"
    for step in steps:
        if step.get("value") is None or (value is not None and value >= step["value"]):
            chosen = step.get("color", chosen)
    return color(chosen, theme)


def nice_step(span: float, count: int = 4) -> float:
    if span <= 0 or not math.isfinite(span):
        return 1.0
    raw = span / count
    mag = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if raw <= m * mag:
            return m * mag
    return 10 * mag


def y_range(values: list[float], lo: float | None, hi: float | None, steps: list[float]) -> tuple[float, float, float]:
    vals = [v for v in values if math.isfinite(v)]
    dmin = lo if lo is not None else (min(vals) if vals else 0.0)
    dmax = hi if hi is not None else (max(vals) if vals else 1.0)
    if dmax <= dmin:
        pad = abs(dmax) * 0.1 or 1.0
        dmin, dmax = (dmin - pad if lo is None else dmin), (dmax + pad if hi is None else dmax)
    step = nice_step(dmax - dmin)
    if lo is None:
        dmin = math.floor(dmin / step) * step
    if hi is None:
        dmax = math.ceil(dmax / step) * step
    return dmin, dmax, step


def _t(ts: float, span: float) -> str:
    return time.strftime("%H:%M:%S" if span < 600 else "%H:%M", time.gmtime(ts))


def timeseries(series, width: int, height: int, *, unit: str | None, start: float, end: float,
               thresholds: list[dict], threshold_style: str, fill: int, theme: str,
               lo: float | None = None, hi: float | None = None, draw: str = "line") -> str:
    """Lines (or bars/points) for ``[(name, color, [(t, v)])]`` with axes, in a width x height box."""
    values = [v for _, _, pts in series for _, v in pts]
    if threshold_style not in ("", "off"):
        values += [s["value"] for s in thresholds if s.get("value") is not None]
    y0, y1, ystep = y_range(values, lo, hi, [])
    labels = []
    v = y0
    while v <= y1 + ystep / 2:
        labels.append(v)
        v += ystep
    axis_w = min(max(len(fmt(x, unit)) for x in labels) * 7 + 10, width // 2)
    left, right, top, bottom = axis_w, width - 6, 6, height - 18
    pw, ph = max(right - left, 1), max(bottom - top, 1)

    def px(t: float) -> float:
        return left + (t - start) / max(end - start, 1) * pw

    def py(val: float) -> float:
        return bottom - (val - y0) / max(y1 - y0, 1e-12) * ph

    out = [f'<svg class="chart" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
           f'xmlns="http://www.w3.org/2000/svg">']
    if threshold_style in ("area", "line+area", "dashed+area"):
        steps = sorted(thresholds, key=lambda s: -math.inf if s.get("value") is None else s["value"])
        for i, s in enumerate(steps):
            a = y0 if s.get("value") is None else max(s["value"], y0)
            b = y1 if i + 1 == len(steps) else min(steps[i + 1]["value"], y1)
            if b > a:
                out.append(f'<rect x="{left}" y="{py(b):.1f}" width="{pw}" height="{py(a) - py(b):.1f}" '
                           f'fill="{color(s.get("color"), theme)}" fill-opacity="0.12"/>')
    for val in labels:
        y = py(val)
        out.append(f'<line class="grid" x1="{left}" x2="{right}" y1="{y:.1f}" y2="{y:.1f}"/>'
                   f'<text class="axis" x="{left - 4}" y="{y + 4:.1f}" text-anchor="end">{escape(fmt(val, unit))}</text>')
    xstep = nice_step(end - start, 4 if width > 300 else 2)
    if xstep >= 60:
        xstep = nice_step((end - start) / 60, 4 if width > 300 else 2) * 60
    t = math.ceil(start / xstep) * xstep
    while t <= end:
        x = px(t)
        if x - left > 15 and right - x > 15:
            out.append(f'<line class="grid" x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{bottom}"/>'
                       f'<text class="axis" x="{x:.1f}" y="{height - 4}" text-anchor="middle">{_t(t, end - start)}</text>')
        t += xstep
    if threshold_style in ("line", "line+area", "dashed", "dashed+area"):
        for s in thresholds:
            if s.get("value") is not None and y0 <= s["value"] <= y1:
                y = py(s["value"])
                dash = ' stroke-dasharray="6 4"' if "dashed" in threshold_style else ""
                out.append(f'<line x1="{left}" x2="{right}" y1="{y:.1f}" y2="{y:.1f}" '
                           f'stroke="{color(s.get("color"), theme)}" stroke-width="1.5"{dash}/>')
    for _, col, pts in series:
        pts = [(t, v) for t, v in pts if math.isfinite(v)]
        if not pts:
            continue
        if draw == "bars":
            bw = max(pw / max(len(pts), 1) * 0.7, 1)
            for t, v in pts:
                top_y, base = py(max(v, y0)), py(max(min(0, y1), y0))
                out.append(f'<rect x="{px(t) - bw / 2:.1f}" y="{min(top_y, base):.1f}" width="{bw:.1f}" '
                           f'height="{abs(base - top_y):.1f}" fill="{col}" fill-opacity="0.8"/>')
            continue
        path = " ".join(f"{'M' if i == 0 else 'L'}{px(t):.1f},{py(v):.1f}" for i, (t, v) in enumerate(pts))
        if fill and len(pts) > 1:
            base = py(max(min(0, y1), y0)) if y0 <= 0 <= y1 else bottom
            out.append(f'<path d="{path} L{px(pts[-1][0]):.1f},{base:.1f} L{px(pts[0][0]):.1f},{base:.1f} Z" '
                       f'fill="{col}" fill-opacity="{min(fill, 100) / 100:.2f}" stroke="none"/>')
        if len(pts) == 1 or draw == "points":
            for t, v in pts:
                out.append(f'<circle cx="{px(t):.1f}" cy="{py(v):.1f}" r="2.5" fill="{col}"/>')
        else:
            out.append(f'<path d="{path}" fill="none" stroke="{col}" stroke-width="1.5"/>')
    out.append("</svg>")
    return "".join(out)


def sparkline(points, width: int, height: int, col: str) -> str:
    pts = [(t, v) for t, v in points if math.isfinite(v)]
    if len(pts) < 2:
        return ""
    t0, t1 = pts[0][0], pts[-1][0]
    v0, v1 = min(v for _, v in pts), max(v for _, v in pts)
    span = (v1 - v0) or 1

    def xy(t, v):
        return f"{(t - t0) / max(t1 - t0, 1) * width:.1f},{height - (v - v0) / span * (height - 2) - 1:.1f}"
    line = " L".join(xy(t, v) for t, v in pts)
    return (f'<svg class="spark" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
            f'xmlns="http://www.w3.org/2000/svg"><path d="M{line} L{width},{height} L0,{height} Z" fill="{col}" '
            f'fill-opacity="0.15"/><path d="M{line}" fill="none" stroke="{col}" stroke-width="1.5"/></svg>')


def gauge(value: float | None, width: int, height: int, *, unit: str | None, lo: float, hi: float,
          thresholds: list[dict], theme: str, show_markers: bool = True) -> str:
    """Grafana's gauge: an arc filled to the value, a thin ring coloured by the thresholds."""
    size = max(min(width, height * 1.35), 10)
    r = size * 0.42
    cx, cy = width / 2, height / 2 + r * 0.3
    sweep = 240

    def pt(frac: float, radius: float) -> tuple[float, float]:
        ang = math.radians(90 + (360 - sweep) / 2 + frac * sweep)  # from lower left, clockwise over the top
        return cx + radius * math.cos(ang), cy + radius * math.sin(ang)

    def arc(a: float, b: float, radius: float, col: str, w: float) -> str:
        if b <= a:
            return ""
        (x0, y0), (x1, y1) = pt(a, radius), pt(b, radius)
        large = 1 if (b - a) * sweep > 180 else 0
        return (f'<path d="M{x0:.1f},{y0:.1f} A{radius:.1f},{radius:.1f} 0 {large} 1 {x1:.1f},{y1:.1f}" '
                f'fill="none" stroke="{col}" stroke-width="{w:.1f}"/>')

    def frac(v: float) -> float:
        return min(max((v - lo) / ((hi - lo) or 1), 0), 1)
    out = [f'<svg class="chart" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
           f'xmlns="http://www.w3.org/2000/svg">']
    band = max(r * 0.22, 4)
    out.append(arc(0, 1, r, "var(--track)", band))
    if value is not None and math.isfinite(value):
        out.append(arc(0, frac(value), r, threshold_color(value, thresholds, theme), band))
    if show_markers:
        steps = sorted(thresholds, key=lambda s: -math.inf if s.get("value") is None else s["value"])
        for i, s in enumerate(steps):
            a = 0 if s.get("value") is None else frac(s["value"])
            b = 1 if i + 1 == len(steps) else frac(steps[i + 1]["value"])
            out.append(arc(a, b, r + band * 0.75, color(s.get("color"), theme), max(band * 0.2, 2)))
    out.append("</svg>")
    return "".join(out)
