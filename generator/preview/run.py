"""``python -m generator preview``: every dashboard as HTML pages and PNGs.

For each dashboard the chart ships in an environment: run its queries
against Prometheus, write ``<out>/<uid>/<mode>-<theme>.html`` for desktop
and phone in dark and light, measure text at phone width in Chromium,
screenshot every page, and check the findings of ``checks``. With a git
ref to diff against, changed dashboards also get ``<out>/diff/<uid>.html``:
before and after side by side, changed panels outlined. ``<out>/index.html``
links everything; ``<out>/findings.json`` lists the findings.
"""
from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from html import escape
from pathlib import Path

from . import browser, checks, page, source
from .checks import Finding
from .queries import Prometheus, Window, fetch, parse_duration, variable_values

MARK_CSS = {"added": "#73BF69", "changed": "#FF9830", "moved": "#5794F2", "removed": "#F2495C"}


@dataclass
class Options:
    env: str = "prod"
    prometheus: str = ""
    out: Path = Path("preview")
    range: str = ""  # "" = each dashboard's own time range
    modes: tuple[str, ...] = tuple(page.MODES)
    themes: tuple[str, ...] = page.THEMES
    screenshots: bool = True
    diff: str = ""
    end: float = 0.0
    max_height: int = 0  # cut screenshots at this height (0: whole page)


@dataclass
class Shown:
    uid: str
    title: str
    pages: dict[tuple[str, str], tuple[Path, int, int]] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)


@dataclass
class Report:
    out: Path
    shown: list[Shown]
    diffs: list[tuple[str, dict[str, str]]]

    @property
    def findings(self) -> list[Finding]:
        return [f for s in self.shown for f in s.findings]


def window_for(dashboard: dict, opts: Options, scrape_interval: float) -> Window:
    if opts.range:
        seconds = parse_duration(opts.range, "--range")
    else:
        start = (dashboard.get("time") or {}).get("from", "now-6h")
        seconds = parse_duration(start[4:] if start.startswith("now-") else "6h", f"{dashboard.get('uid')}: time.from")
    # one scrape interval back from now: a scrape that started before the end (its samples carry its start time)
    # has finished by then, so every query of the page reads complete data and repeats to the same value
    return Window(end=opts.end or time.time() - scrape_interval, seconds=seconds, scrape_interval=scrape_interval)


def _marks(before: dict | None, after: dict | None) -> dict[str, str]:
    """Panel title -> added / removed / changed / moved, between two versions of a dashboard."""
    def by_title(d):
        from .queries import all_panels
        return {p.get("title", ""): p for p in all_panels(d or {})}
    old, new = by_title(before), by_title(after)
    marks = {}
    for title in sorted(set(old) | set(new)):
        a, b = old.get(title), new.get(title)
        if a is None:
            marks[title] = "added"
        elif b is None:
            marks[title] = "removed"
        else:
            strip = lambda p: {k: v for k, v in p.items() if k not in ("id", "gridPos")}  # noqa: E731
            if json.dumps(strip(a), sort_keys=True) != json.dumps(strip(b), sort_keys=True):
                marks[title] = "changed"
            elif a.get("gridPos") != b.get("gridPos"):
                marks[title] = "moved"
    return marks


def _outline(html: str, marks: dict[str, str]) -> str:
    rules = "".join(f'.panel[data-title="{escape(t)}"],.row[data-title="{escape(t)}"]'
                    f'{{outline:3px solid {MARK_CSS[m]};outline-offset:-2px}}' for t, m in marks.items())
    return html.replace("</style>", rules + "</style>", 1)


def _render_all(dashboard: dict, prom: Prometheus, opts: Options, folder: Path, scrape: float,
                marks: dict[str, str] | None = None, modes=None, themes=None) -> tuple[Shown, dict]:
    window = window_for(dashboard, opts, scrape)
    results = fetch(prom, dashboard, window)
    variables = {k: v for k, v in variable_values(dashboard).items()}
    shown = Shown(dashboard["uid"], dashboard.get("title", dashboard["uid"]))
    folder.mkdir(parents=True, exist_ok=True)
    for mode in modes or opts.modes:
        for theme in themes or opts.themes:
            html, w, h = page.render(dashboard, results, window, mode=mode, theme=theme, env=opts.env,
                                     variables=variables)
            if marks:
                html = _outline(html, marks)
            path = folder / f"{mode}-{theme}.html"
            path.write_text(html)
            shown.pages[(mode, theme)] = (path, w, h)
    return shown, results


def preview(root: Path, opts: Options, boards: dict[str, dict] | None = None) -> Report:
    """Previews ``boards`` (default: the dashboards ``root`` renders for ``opts.env``)."""
    out = opts.out
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    boards = source.dashboards(root, opts.env) if boards is None else boards
    if not boards:
        from ..errors import GeneratorError
        raise GeneratorError(f"no dashboards are enabled in environment {opts.env!r}; nothing to preview")
    prom = Prometheus(opts.prometheus)
    scrape = prom.scrape_interval()
    shown_all, shots, measures = [], [], []
    for uid, dashboard in boards.items():
        shown, results = _render_all(dashboard, prom, opts, out / uid, scrape)
        shown.findings += checks.static(dashboard) + checks.data(dashboard, results)
        shown_all.append(shown)
        # text sizes do not depend on the theme: measure one phone page
        phone = next((v for (m, _), v in shown.pages.items() if m == "phone"), None)
        if phone:
            measures.append((shown, phone))
        shots += [(browser.shoot, p, p.with_suffix(".png"), w, min(h, opts.max_height or h))
                  for p, w, h in shown.pages.values()]
    measured = browser.parallel([(browser.measure, p, w, h) for _, (p, w, h) in measures])
    for (shown, _), found in zip(measures, measured):
        shown.findings += checks.fit(shown.uid, found)
    diffs = []
    if opts.diff:
        before_all = source.dashboards_at(root, opts.diff, opts.env)
        for uid in sorted(set(before_all) | set(boards)):
            before, after = before_all.get(uid), boards.get(uid)
            if json.dumps(before, sort_keys=True) == json.dumps(after, sort_keys=True):
                continue
            marks = _marks(before, after)
            sides = {}
            for side, d in (("before", before), ("after", after)):
                if d is None:
                    continue
                s, _ = _render_all(d, prom, opts, out / "diff" / uid / side, scrape, marks,
                                   modes=("desktop", "phone"), themes=("dark",))
                sides[side] = s
                shots += [(browser.shoot, p, p.with_suffix(".png"), w, h) for p, w, h in s.pages.values()]
            (out / "diff" / f"{uid}.html").write_text(diff_page(uid, opts.diff, sides, marks))
            diffs.append((uid, marks))
    if opts.screenshots:
        browser.parallel(shots)
    (out / "findings.json").write_text(json.dumps([f.as_dict() for f in (x for s in shown_all for x in s.findings)],
                                                  indent=2) + "\n")
    report = Report(out, shown_all, diffs)
    (out / "index.html").write_text(index_page(report, opts))
    return report


def _img(path: Path, base: Path, shots: bool, width: int) -> str:
    rel = path.relative_to(base).as_posix()
    if shots:
        return f'<a href="{rel}"><img src="{Path(rel).with_suffix(".png").as_posix()}" width="{width}" loading="lazy"></a>'
    return f'<a href="{rel}">{escape(rel)}</a>'


STYLE = ("body{font:14px Inter,'DejaVu Sans',sans-serif;margin:24px;background:#111217;color:#ccccdc}"
         "a{color:#6e9fff}img{border:1px solid #2a2c31;vertical-align:top;margin:4px}"
         "h2{margin-top:32px}ul.f li{color:#ff9830}.ok{color:#73bf69}td{vertical-align:top;padding:4px}"
         "code{color:#9a9ba3}")


def index_page(report: Report, opts: Options) -> str:
    shots = opts.screenshots
    total = len(report.findings)
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>Dashboard previews ({escape(opts.env)})</title>"
             f"<style>{STYLE}</style></head><body><h1>Dashboard previews: {escape(opts.env)}</h1>"
             f"<p>{len(report.shown)} dashboards from <code>templates_src/dashboards/</code>, data from "
             f"<code>{escape(opts.prometheus)}</code>. "
             + (f"<b>{total} findings</b> (<a href='findings.json'>findings.json</a>).</p>" if total
                else "<span class='ok'>No findings.</span></p>")]
    if report.diffs:
        parts.append(f"<h2>Changed since {escape(opts.diff)}</h2><ul>")
        for uid, marks in report.diffs:
            summary = ", ".join(f"{escape(t)} ({m})" for t, m in marks.items()) or "dashboard settings"
            parts.append(f"<li><a href='diff/{escape(uid)}.html'>{escape(uid)}</a>: {summary}</li>")
        parts.append("</ul>")
    for s in report.shown:
        parts.append(f"<h2 id='{escape(s.uid)}'>{escape(s.title)} <code>{escape(s.uid)}</code></h2>")
        if s.findings:
            parts.append("<ul class='f'>" + "".join(f"<li>{escape(str(f))}</li>" for f in s.findings) + "</ul>")
        parts.append("<div>")
        for (mode, theme), (path, _, _) in sorted(s.pages.items()):
            parts.append(f"<div style='display:inline-block'><div>{mode}, {theme}</div>"
                         f"{_img(path, report.out, shots, 400 if mode == 'desktop' else 150)}</div>")
        parts.append("</div>")
    parts.append("</body></html>\n")
    return "".join(parts)


def diff_page(uid: str, ref: str, sides: dict[str, Shown], marks: dict[str, str]) -> str:
    base = Path(next(iter(sides.values())).pages[("desktop", "dark")][0]).parent.parent.parent
    legend = " ".join(f"<span style='border:3px solid {c};padding:0 6px'>{m}</span>" for m, c in MARK_CSS.items())
    rows = []
    for mode, width in (("desktop", 780), ("phone", 300)):
        cells = []
        for side in ("before", "after"):
            s = sides.get(side)
            if s is None:
                cells.append(f"<td><h3>{side}</h3><p>(no such dashboard)</p></td>")
                continue
            path = s.pages[(mode, "dark")][0]
            rel = path.relative_to(base).as_posix()
            cells.append(f"<td><h3>{side} ({mode})</h3><a href='{rel}'><img src='{Path(rel).with_suffix('.png').as_posix()}' "
                         f"width='{width}'></a></td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    changes = "".join(f"<li>{escape(t)}: {m}</li>" for t, m in marks.items()) or "<li>dashboard settings only</li>"
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{escape(uid)}: {escape(ref)} vs now</title>"
            f"<style>{STYLE}</style></head><body><h1>{escape(uid)}: {escape(ref)} (before) and the work tree (after)</h1>"
            f"<p>{legend}</p><ul>{changes}</ul><table>{''.join(rows)}</table>"
            f"<p><a href='../index.html'>all dashboards</a></p></body></html>\n")
