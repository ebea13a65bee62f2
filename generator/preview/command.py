"""The ``preview`` subcommand's arguments and exit code (wired into ``generator.cli``).

Exit 0: every page and picture written, no findings. Exit 1: a finding (all
pages and pictures are still written, the findings are printed and listed
in ``<out>/findings.json``) or bad input.
"""
from __future__ import annotations

from pathlib import Path

from . import layout


def add_parser(sub) -> None:
    p = sub.add_parser("preview", help="dashboards as HTML pages and PNG screenshots (desktop and phone, dark "
                                       "and light) with data from Prometheus, and their layout/data/unit checks")
    p.add_argument("--env", default="prod", help="environment whose enabled dashboards to show (default prod)")
    p.add_argument("--prometheus", metavar="URL", default="",
                   help="Prometheus to query; default: start the metrics simulator and a Prometheus scraping it")
    p.add_argument("--out", default="preview", help="output folder, rewritten whole (default preview/)")
    p.add_argument("--range", default="", metavar="DURATION",
                   help="time range shown, e.g. 15m (default: each dashboard's own; the warm-up time with the local simulator)")
    p.add_argument("--mode", action="append", choices=tuple(layout.MODES), help="only this layout (repeatable)")
    p.add_argument("--theme", action="append", choices=layout.THEMES, help="only this theme (repeatable)")
    p.add_argument("--no-screenshots", action="store_true", help="write the HTML pages only, no PNGs")
    p.add_argument("--max-height", type=int, default=0, metavar="PX",
                   help="cut each screenshot at this height, e.g. for pictures in a README (default: whole page)")
    p.add_argument("--diff", metavar="GIT_REF", default="",
                   help="also show each dashboard changed since GIT_REF (e.g. main) before and after, side by side")
    p.add_argument("--warmup", type=float, default=60, metavar="SECONDS",
                   help="with the local simulator: seconds of data to collect before querying (default 60)")
    p.set_defaults(func=run)


def run(args) -> int:
    from .run import Options, preview
    from .stack import local_stack
    root = Path(args.root).resolve()
    out = Path(args.out)
    opts = Options(env=args.env, prometheus=args.prometheus, out=out if out.is_absolute() else Path.cwd() / out,
                   range=args.range, modes=tuple(args.mode or layout.MODES), themes=tuple(args.theme or layout.THEMES),
                   screenshots=not args.no_screenshots, diff=args.diff,
                   max_height=args.max_height)
    if opts.prometheus:
        report = preview(root, opts)
    else:
        with local_stack(root, warmup=args.warmup) as url:
            opts.prometheus, opts.range = url, opts.range or f"{int(args.warmup)}s"
            report = preview(root, opts)
    for f in report.findings:
        print(f"finding: {f}")
    pictures = sum(len(s.pages) for s in report.shown) if opts.screenshots else 0
    print(f"previewed {len(report.shown)} dashboards of {opts.env} ({pictures} screenshots"
          f"{f', {len(report.diffs)} changed since {opts.diff}' if opts.diff else ''}): {opts.out / 'index.html'}")
    if report.findings:
        print(f"{len(report.findings)} findings; fix them or the preview test fails")
        return 1
    return 0
