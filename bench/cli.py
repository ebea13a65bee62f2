"""``bench/run``: measures the chart against the targets of its budgets and
prints the figures (medians of whole-process runs), the machine, and the
misses. ``--write docs/benchmarks.md`` also writes them as Markdown.

Sections: render (cold generator runs, default content and 10x/100x
synthetic trees), helm (helm template vs a static floor, Helm 3 and 4),
size (stored release per environment), prometheus (rule group evaluation
and dashboard query cost with the simulator), latency (fault to page).
"""
from __future__ import annotations

import argparse
import os
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path

from . import helmcost, latency, prom, render, size
from .common import ROOT, Report, machine

SECTIONS = ("render", "helm", "size", "prometheus", "latency")


def markdown(report: Report, info: dict, command: str, started: str, elapsed: float) -> str:
    lines = ["# Benchmarks", "",
             "Figures printed by `bench/run` (medians of whole-process runs), written by "
             "`bench/run --write docs/benchmarks.md`. Do not edit by hand: run it again.", "",
             f"- command: `{command}`", f"- run: {started}, {elapsed:.0f} s",
             *[f"- {k}: `{v}`" for k, v in info.items() if k != "lscpu"], "",
             "```", info.get("lscpu", ""), "```", "",
             "The machine is shared with other jobs: single figures are noisy. Times are medians, with the "
             "spread (min-max) of the runs beside them and the load average (uptime) at start and end; "
             "ratios are medians of per-pair ratios from runs alternated pair by pair.", "",
             "Reference: kube-prometheus-stack 88.5.3 on a 2-core machine: default render 175 ms (Helm 3.18) / "
             "195 ms (Helm 4.1); templated/static 2.0x (Helm 3) / 1.75x (Helm 4); 1.5 ms per dashboard, "
             "0.08 ms per rule; stored release about 390 KB, 37% of 1 MiB.", "",
             "## Figures", "", "| section | figure | value | target | verdict |", "|---|---|---|---|---|"]
    for f in report.figures:
        lines.append(f"| {f.section} | {f.name} | {f.value} | {f.target} | {f.verdict} |")
    for title, rows in report.tables.items():
        lines += ["", f"### {title}", "", "| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
        lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows[1:]]
    lines += ["", "## How each figure is measured", "",
              "1. **render**: `python -m generator --root <copy> render` as a cold process (all environments "
              "validated), after one uncounted warm-up run; the 10x and 100x trees are copies of the sources with "
              "every dashboard and rule group copied under new uids, titles, group, alert and record names "
              "(bench/synthetic.py). The verdict uses CPU time (user+sys of the process), which other jobs on a "
              "shared machine disturb least; wall time is printed beside it.",
              "2. **helm**: `helm template` of chart/ with values/prod.yaml against a static chart with the same "
              "Chart.yaml, values.yaml and values.schema.json and one template per rendered object holding its "
              "text as a single constant; runs alternate pair by pair, the ratio is the median of per-pair ratios. "
              "Per-item cost: the overhead over the floor with dashboards alone (rules off) and rules alone "
              "(dashboards off), difference between the default and the 10x tree divided by the items added.",
              "3. **size**: the release record from `helm install --dry-run=client -o json` (Helm 4, no cluster), "
              "encoded as Helm's Secret driver stores it: base64(gzip(JSON)); objects measured as JSON. Headroom: "
              "the median dashboard's chart file and object compressed on their own (a conservative figure).",
              "4. **prometheus**: the simulator (simulator/) driven through 6 h of simulated time, one sample per "
              "30 s, loaded with `promtool tsdb create-blocks-from openmetrics`, then scraped live by a real "
              "Prometheus with the chart's rules (prod values, every group evaluated each 10 s); "
              "`prometheus_rule_group_last_duration_seconds` (median of 5 readings) and each panel query through "
              "the HTTP API over 6 h at its default step (max(30 s, 6 h / Grafana's data points for the panel "
              "width), rounded up to a nice step; stat panels as instant queries) with `stats=all`: the figure is "
              "Prometheus' own execTotalTime, the median of 3 runs (min-max beside it; a dashboard's figure is "
              "the sum over its panels of one run). Fleet sizes (`--fleet`, default 1,10): the chain nodes "
              "multiplied (3 x factor per chain, the extra ones full nodes), served live by the simulator; their "
              "6 h history is today's fleet's with the full node of each chain copied under each further node's "
              "name (bench/simsource.py), so every series and sample a query reads exists at that size. Growth "
              "exponent k: log(figure ratio) / log(series ratio) between today and the largest fleet measured "
              "(1.0 is linear). Prometheus memory: its own process_resident_memory_bytes after the queries; "
              "recording rule series: the number of series its expression returns at the end of the run.",
              "5. **latency**: the routing work's fault-to-page benchmark, when it exists.",
              "", "Size budgets enforced by `python -m generator lint` (check `size-budget`, generator/budget.py) "
              "use the measurement of section 3 with the shares in values/_budgets.yaml."]
    lines += ["", "## Misses", ""]
    lines += [f"- {f.section}: {f.name}: {f.value} (target {f.target})" for f in report.misses] or ["- none"]
    if report.notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in report.notes]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench/run", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer repetitions, no 100x tree")
    p.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated sections ({', '.join(SECTIONS)})")
    p.add_argument("--write", metavar="FILE", help="also write the figures as Markdown (docs/benchmarks.md)")
    p.add_argument("--fleet", default="1,10",
                   help="fleet sizes for the prometheus section, as multiples of today's chain nodes (default 1,10; "
                        "1,10,100 needs about an hour and 10 GB more on a 2-core machine)")
    p.add_argument("--keep", action="store_true", help="keep the temporary trees (their path is printed)")
    args = p.parse_args(argv)
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(only) - set(SECTIONS)
    if unknown:
        p.error(f"unknown section {sorted(unknown)[0]!r}; allowed: {', '.join(SECTIONS)}")
    try:
        fleet = tuple(sorted({int(x) for x in args.fleet.split(",") if x.strip()}))
    except ValueError:
        p.error(f"--fleet {args.fleet!r}: comma-separated whole numbers, e.g. 1,10,100")
    if not fleet or min(fleet) < 1:
        p.error(f"--fleet {args.fleet!r}: multiples of today's fleet are 1 or more")
    command = "bench/run " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    started, t0 = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), time.time()
    info = machine()
    print("machine: " + ", ".join(f"{k} {v}" for k, v in info.items() if k != "lscpu"), flush=True)
    report = Report()
    work = Path(tempfile.mkdtemp(prefix="vemon-bench-"))
    try:
        trees = {}
        if {"render", "helm"} & set(only):
            print("\n== 1. generator render (cold process)", flush=True)
            trees = render.run(report, work, quick=args.quick)
        elif "prometheus" in only:
            trees = render.run(report, work, quick=args.quick, only_tree=True)
        if "helm" in only:
            print("\n== 2. helm template vs the static floor", flush=True)
            helmcost.run(report, work, trees, quick=args.quick)
        if "size" in only:
            print("\n== 3. release object size (Helm 4 --dry-run=client -o json)", flush=True)
            size.run(report, work)
        if "prometheus" in only and 1 in trees:
            print("\n== 4. Prometheus-side cost (real Prometheus, simulated fleet)", flush=True)
            prom.run(report, work, trees[1], fleet=fleet)
        if "latency" in only:
            print("\n== 5. fault to page", flush=True)
            latency.run(report, quick=args.quick)
    finally:
        if args.keep:
            print(f"\ntrees kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print("\n== misses")
    for f in report.misses:
        print(f"  MISS {f.section}: {f.name}: {f.value} (target {f.target})")
    if not report.misses:
        print("  none")
    info["load average at the end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    if args.write:
        out = Path(args.write)
        out = out if out.is_absolute() else ROOT / out
        out.write_text(markdown(report, info, command, started, time.time() - t0))
        print(f"wrote {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")
    return 0
