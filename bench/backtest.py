"""Backtest the chart's alerts over a simulated history, alert by alert, against the injected incidents.

For each environment: ``simulator.history`` writes the history as OpenMetrics, ``promtool tsdb
create-blocks-from openmetrics`` turns it into TSDB blocks, a real Prometheus (``generator.servers``) starts on
them, the recording rules are backfilled with ``promtool tsdb create-blocks-from rules`` level by level (a rule
reading another recorded series comes after it; Prometheus restarts on the new blocks after each level), and
each alert expression of the environment's rendered PrometheusRules (``helm template -f values/<env>.yaml``:
thresholds, ``for``, ``keep_firing_for`` and severity as that environment ships them) is range-queried at the
evaluation interval. ``for`` and ``keep_firing_for`` are applied as Prometheus 2.42 ``rules/alerting.go`` does
(pending at the first evaluation with a result, firing once active for ``for``; a firing alert whose result
disappears keeps firing until ``keep_firing_for`` has passed since it disappeared).

    bench/backtest                          # a week per environment, writes docs/alert-quality.md
    bench/backtest --env staging --days 1   # one day of one environment, printed only

The scorecard matches firing episodes against the ground truth (``Incident``): an episode of the expected alert
starting between an incident's start and its end plus its settle time is a true positive; an episode of an alert
the incident may rightly cause (``also``) is collateral; any other episode is a false positive, attributed to a
just-below incident, a normal-operations event or nothing. Misses are listed with the longest pending time seen.
"""
from __future__ import annotations

import argparse
import json
import pickle
import math
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from generator import tools  # noqa: E402
from generator.servers import Servers  # noqa: E402
from simulator.history import DAY, ENVS, T0, CRITICAL_SUBSET, History, Incident, catalogue, schedule  # noqa: E402

EVAL = 30   # kube-prometheus-stack's evaluationInterval
LONG_EVAL = 120   # recording rules over windows of a day or more are backfilled at this step (see run_env)


def long_window(expr: str) -> bool:
    """Whether an expression reads a range of a day or more (``[1d]``, ``[3d]``, ``[30d]``, ``[24h]`` ...)."""
    return any((int(n) * {"d": 86400, "h": 3600, "w": 604800}[u]) >= 86400
               for n, u in re.findall(r"\[(\d+)([dhw])\]", expr))
CLASS_OF = {}  # alert -> class, from the incident catalogue (see classes())
BUDGET = {"critical": 300, "warning": 900}   # detection budget: critical paged within 5 min, warning within 15
# a longer budget for a (class, severity), with its reason; printed with the scorecard, never applied silently
CLASS_BUDGET = {
    ("monitoring", "critical"): (600, "a rule that fails once (a query timeout during a compaction) must stay silent, "
                                      "and one failed evaluation stays in PrometheusRuleFailures' 5-minute window for 5 "
                                      "minutes, so its hold is 10 minutes; a total outage of alerting is also caught by "
                                      "the Watchdog's dead man's switch"),
}


def budget_of(cls: str, severity: str) -> int:
    return CLASS_BUDGET.get((cls, severity), (BUDGET.get(severity, 900), ""))[0]


def duration(text: str | None) -> int:
    if not text:
        return 0
    total = 0
    for n, unit in re.findall(r"(\d+)(ms|s|m|h|d|w|y)", text):
        total += int(n) * {"ms": 0, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}[unit]
    return total


# ---------------------------------------------------------------------------------------------------------
# the environment's rules and routing
# ---------------------------------------------------------------------------------------------------------

def rendered_groups(env: str, chart: Path = ROOT / "chart") -> list[dict]:
    """The rule groups of the environment's PrometheusRules, as ``helm template -f values/<env>.yaml`` renders them."""
    proc = tools.run([tools.helm(3), "template", "vemon", str(chart), "--namespace", "monitoring",
                      "-f", str(ROOT / "values" / f"{env}.yaml")])
    groups = []
    for doc in yaml.safe_load_all(proc.stdout):
        if doc and doc.get("kind") == "PrometheusRule":
            groups += doc["spec"]["groups"]
    return groups


def limits_of(groups: list[dict]) -> dict:
    """The environment's thresholds that incidents are sized against, read from its rendered rules."""
    out = {}
    for g in groups:
        for r in g["rules"]:
            if r.get("record") == "denom:virtengine_escrow_balance_minimum:minor_units" and \
                    r.get("labels", {}).get("denom") == "uve":
                out["escrow_minimum"] = float(re.search(r"vector\(([\d.e+]+)\)", r["expr"]).group(1))
            if r.get("alert") == "VEIDVerificationQueue":
                out["veid_queue"] = float(re.search(r">\s*([\d.e+]+)\s*$", r["expr"].strip()).group(1))
    return out


def notify_of(env: str) -> dict[str, str]:
    """Which vendor each route class notifies in the environment (defaults, then values/<env>.yaml)."""
    routes = yaml.safe_load((ROOT / "values" / "defaults.yaml").read_text())["alertmanager"]["routes"]
    over = (yaml.safe_load((ROOT / "values" / f"{env}.yaml").read_text()).get("alertmanager") or {}).get("routes") or {}
    out = {}
    for key, route in routes.items():
        merged = {**route, **(over.get(key) or {})}
        out[key] = merged["notify"] if merged.get("enabled", True) else "disabled"
    return out


def notification(alert: dict, routes: dict[str, str]) -> str:
    """``page`` (PagerDuty), ``ticket`` (Opsgenie) or ``none`` for a firing alert (first matching route class)."""
    labels = alert["labels"]
    vendor = {"pagerduty": "page", "opsgenie": "ticket"}
    if labels.get("severity") == "none":
        return "none"
    if labels.get("slo"):
        key = "sloPage" if labels.get("burn") == "fast" else "sloTicket"
    elif labels.get("severity") == "critical":
        key = "critical"
    elif alert.get("group") == "virtengine.business":
        key = "business"
    else:
        key = "warning"
    return vendor.get(routes.get(key, "none"), "none")


def _reads(expr: str, name: str) -> bool:
    return re.search(r"(?<![\w:])" + re.escape(name) + r"(?![\w:])", expr) is not None


def recording_levels(groups: list[dict], *, alerts_only: bool = True) -> list[list[dict]]:
    """The recording rules the alerts read (directly or through other recorded series), in dependency order:
    level n reads only raw series and levels < n. Recorded series no alert reads are not backfilled, unless
    ``alerts_only`` is false (every recording rule: dashboards read them too)."""
    rules = [r for g in groups for r in g["rules"] if "record" in r]
    wanted = [r["expr"] for g in groups for r in g["rules"] if "alert" in r]
    keep: list[dict] = [] if alerts_only else list(rules)
    while alerts_only:
        more = [r for r in rules if r not in keep and any(_reads(e, r["record"]) for e in wanted)]
        if not more:
            break
        keep += more
        wanted = [r["expr"] for r in more]
    rules = [r for r in rules if r in keep]
    names = {r["record"] for r in rules}
    level: dict[int, int] = {}
    for _ in range(len(rules) + 1):
        changed = False
        for i, r in enumerate(rules):
            deps = [j for j, o in enumerate(rules) if re.search(r"(?<![\w:])" + re.escape(o["record"]) + r"(?![\w:])",
                                                                r["expr"]) and j != i]
            lv = 1 + max((level.get(j, 0) for j in deps), default=-1)
            if level.get(i) != lv:
                level[i], changed = lv, True
        if not changed:
            break
    out: list[list[dict]] = []
    for i, r in enumerate(rules):
        while len(out) <= level[i]:
            out.append([])
        out[level[i]].append({k: r[k] for k in ("record", "expr", "labels") if k in r})
    del names
    return out


# ---------------------------------------------------------------------------------------------------------
# Prometheus's alerting state machine over a range query
# ---------------------------------------------------------------------------------------------------------

@dataclass
class Episode:
    alert: str
    labels: dict
    active: int            # first evaluation with a result (pending)
    fired: int | None      # first evaluation in state firing
    end: int               # first evaluation where it is no longer pending/firing
    severity: str
    notify: str = "none"
    verdict: str = ""
    reason: str = ""


def alert_episodes(name: str, series: list[dict], start: int, end: int, hold: int, keep: int,
                   severity: str) -> list[Episode]:
    """Episodes of one alert from its expression's values at each evaluation (``series``: query_range result).

    Prometheus 2.42 ``AlertingRule.Eval``: a label set with a result becomes pending (activeAt = ts) unless
    already active; it turns firing at the evaluation where ts - activeAt >= for; without a result a pending
    alert is dropped, a firing one keeps firing while ts - keepFiringSince < keep_firing_for."""
    out = []
    for s in series:
        labels = {k: v for k, v in s["metric"].items() if k != "__name__"}
        present = {int(float(t)) for t, _ in s["values"]}
        if not present:
            continue
        ep: Episode | None = None
        gone_since = None
        for t in range(min(present), end, EVAL):
            if t in present:
                gone_since = None
                if ep is None:
                    ep = Episode(name, labels, t, None, t, severity)
                if ep.fired is None and t - ep.active >= hold:
                    ep.fired = t
                continue
            if ep is None:
                continue
            if ep.fired is not None and keep > 0:
                gone_since = t if gone_since is None else gone_since
                if t - gone_since < keep:
                    continue
            ep.end = t
            out.append(ep)
            ep, gone_since = None, None
        if ep is not None:
            ep.end = end
            out.append(ep)
    return out


# ---------------------------------------------------------------------------------------------------------
# the run
# ---------------------------------------------------------------------------------------------------------

@dataclass
class Result:
    env: str
    days: float
    seed: int
    incidents: list[Incident]
    noise: list[Incident]
    episodes: list[Episode]
    alerts: dict[str, dict]          # name -> {severity, group, for}
    figures: dict = field(default_factory=dict)


def run_env(env: str, days: float, seed: int, work: Path, *, incidents: list[Incident] | None = None,
            groups: list[dict] | None = None, severities: set[str] | None = None, log=print) -> Result:
    """``severities``: evaluate only the alerts of these severities (and the recorded series they read)."""
    t_start = time.monotonic()
    work.mkdir(parents=True, exist_ok=True)
    groups = groups if groups is not None else rendered_groups(env)
    if severities is not None:
        groups = [{**g, "rules": [r for r in g["rules"] if "record" in r
                                  or r.get("labels", {}).get("severity") in severities]} for g in groups]
    history = History(env, days, seed, incidents=incidents, limits=limits_of(groups))
    data = work / "prometheus" / "data"
    if data.exists():
        shutil.rmtree(data)
    data.mkdir(parents=True)
    # history as OpenMetrics, one file a day (promtool reads a file once per block; a block is a day)
    om = work / "history.om"
    t0 = time.monotonic()
    history.write_openmetrics(om)
    size = om.stat().st_size
    t_gen = time.monotonic() - t0
    t0 = time.monotonic()
    tools.run([tools.find("promtool"), "tsdb", "create-blocks-from", "openmetrics", "--max-block-duration=24h",
               str(om), str(data)], timeout=3600)
    t_blocks = time.monotonic() - t0
    om.unlink()
    log(f"{env}: {history.samples} samples in {series_count(data)} series, {size / 1e6:.0f} MB OpenMetrics "
        f"written in {t_gen:.0f}s, blocks in {t_blocks:.0f}s")
    alerts = {r["alert"]: {"severity": r.get("labels", {}).get("severity", ""), "group": g["name"],
                           "for": duration(r.get("for")), "keep": duration(r.get("keep_firing_for")), "expr": r["expr"],
                           "labels": r.get("labels", {})}
              for g in groups for r in g["rules"] if "alert" in r}
    start, end = T0, T0 + int(days * DAY)
    routes = notify_of(env)
    episodes: list[Episode] = []
    t0 = time.monotonic()
    with Servers(work / "servers") as group:
        folder = group.folder / "prometheus"
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        shutil.move(str(data), str(folder / "data"))
        prom = group.prometheus({"global": {"evaluation_interval": f"{EVAL}s"}}, name="prometheus",
                                retention="3650d", args=["--query.max-samples=200000000"])
        for n, level in enumerate(recording_levels(groups)):
            outs = []
            # rules over windows of a day or more change little in minutes: evaluated every LONG_EVAL (they cost
            # the most: each evaluation reads days of samples), the others at the evaluation interval
            for kind, rules_of, interval in (("short", [r for r in level if not long_window(r["expr"])], EVAL),
                                             ("long", [r for r in level if long_window(r["expr"])], LONG_EVAL)):
                if not rules_of:
                    continue
                rules = work / f"recording-{n}-{kind}.yml"
                rules.write_text(yaml.safe_dump({"groups": [{"name": f"level{n}-{kind}", "rules": rules_of}]}))
                out = work / f"recorded-{n}-{kind}"
                if out.exists():
                    shutil.rmtree(out)
                tools.run([tools.find("promtool"), "tsdb", "create-blocks-from", "rules", f"--start={start}",
                           f"--end={end}", f"--url={prom.url}", f"--output-dir={out}", f"--eval-interval={interval}s",
                           str(rules)], timeout=7200)
                outs.append(out)
            prom.stop()
            for out in outs:
                for block in out.iterdir():
                    if block.is_dir():
                        shutil.move(str(block), str(folder / "data" / block.name))
            prom.start()
        t_rec = time.monotonic() - t0
        t0 = time.monotonic()
        for name, a in alerts.items():
            series = query_range_all(prom, a["expr"], start, end)
            for ep in alert_episodes(name, series, start, end, a["for"], a["keep"], a["severity"]):
                ep.labels = {**ep.labels, **a["labels"]}
                ep.notify = notification({"labels": ep.labels, "group": a["group"]}, routes) if ep.fired else "none"
                episodes.append(ep)
        t_eval = time.monotonic() - t0
    result = Result(env, days, seed, history.incidents, history.noise, episodes, alerts)
    result.figures = dict(samples=history.samples, bytes=size, generate_s=round(t_gen), blocks_s=round(t_blocks),
                          recording_s=round(t_rec), alerts_s=round(t_eval), total_s=round(time.monotonic() - t_start),
                          series=series_count(folder / "data"))
    return result


def series_count(data: Path) -> int:
    """Series in the history's blocks (the largest block: every series appears in each day)."""
    return max((json.loads(m.read_text())["stats"].get("numSeries", 0) for m in data.glob("*/meta.json")), default=0)


def query_range_all(prom, expr: str, start: int, end: int) -> list[dict]:
    """``query_range`` over [start, end) at the evaluation interval, a day per request (11000 points at most)."""
    merged: dict[str, dict] = {}
    t = start
    while t < end:
        stop = min(end - EVAL, t + DAY - EVAL)
        for s in prom.query_range(expr, t, stop, EVAL):
            key = json.dumps(s["metric"], sort_keys=True)
            merged.setdefault(key, {"metric": s["metric"], "values": []})["values"] += s["values"]
        t += DAY
    return list(merged.values())


# ---------------------------------------------------------------------------------------------------------
# the scorecard
# ---------------------------------------------------------------------------------------------------------

def score(result: Result) -> dict:
    """Verdict per firing episode and per incident; figures per alert."""
    fired = [e for e in result.episodes if e.fired is not None and e.severity != "none"]
    incidents = [i for i in result.incidents]
    t0 = T0
    detections: dict[int, Episode] = {}
    for ep in sorted(fired, key=lambda e: e.fired):
        rel_a, rel_e = ep.active - t0, ep.end - t0
        own = [i for i in incidents if i.expect == ep.alert and i.start <= rel_e and rel_a <= i.end + i.settle]
        if own:
            ep.verdict = "true"
            ep.reason = own[0].name
            for i in own:
                if id(i) not in detections:
                    detections[id(i)] = ep
            continue
        related = [i for i in incidents if ep.alert in i.also and i.start <= rel_e and rel_a <= i.end + i.settle]
        if related:
            ep.verdict, ep.reason = "collateral", related[0].name
            continue
        near = [i for i in incidents if i.below == ep.alert and i.start <= rel_e and rel_a <= i.end + i.settle]
        if near:
            ep.verdict, ep.reason = "false", f"just-below incident: {near[0].name}"
            continue
        # events that last the whole history (a slowly filling disk) explain nothing by being there
        noise = [i for i in result.noise if i.start <= rel_e and rel_a <= i.end + 3600 and i.duration < DAY]
        others = [i for i in incidents if i.start <= rel_e and rel_a <= i.end + i.settle]
        ep.verdict = "false"
        ep.reason = ("during incident: " + ", ".join(sorted({i.name for i in others}))) if others else (
            "noise: " + ", ".join(sorted({i.name for i in noise})) if noise else "unexplained")
    # incidents: detected, late or missed
    pending = {}
    for ep in result.episodes:
        pending.setdefault(ep.alert, []).append(ep)
    misses = []
    rows = []
    for i in incidents:
        if i.expect is None:
            continue
        a = result.alerts.get(i.expect)
        if a is None:
            rows.append((i, None, "not shipped in this environment"))
            continue
        ep = detections.get(id(i))
        if ep is None:
            longest = 0
            for p in pending.get(i.expect, []):
                if i.start <= p.end - t0 and p.active - t0 <= i.end + i.settle:
                    longest = max(longest, p.end - p.active)
            reason = (f"pending at most {fmt(longest)} (for {fmt(a['for'])})" if longest else "expression never true")
            misses.append((i, reason))
            rows.append((i, None, reason))
        else:
            rows.append((i, ep.fired - t0 - i.start, ""))
    per_alert = {}
    for name, a in sorted(result.alerts.items()):
        if a["severity"] == "none":
            continue
        eps = [e for e in fired if e.alert == name]
        ttd = [r[1] for r in rows if r[0].expect == name and r[1] is not None]
        tp = sum(1 for e in eps if e.verdict == "true")
        fp = sum(1 for e in eps if e.verdict == "false")
        missed = sum(1 for r in rows if r[0].expect == name and r[1] is None and r[2] != "not shipped in this environment")
        budget = budget_of(CLASS_OF.get(name, ""), a["severity"])
        per_alert[name] = dict(severity=a["severity"], cls=CLASS_OF.get(name, ""), episodes=len(eps),
                               pages=sum(1 for e in eps if e.notify == "page"),
                               tickets=sum(1 for e in eps if e.notify == "ticket"),
                               tp=tp, fp=fp, collateral=sum(1 for e in eps if e.verdict == "collateral"), missed=missed,
                               incidents=sum(1 for r in rows if r[0].expect == name),
                               ttd_median=statistics.median(ttd) if ttd else None, ttd_worst=max(ttd) if ttd else None,
                               budget=budget, within=all(x <= budget for x in ttd) if ttd else None,
                               fp_share=fp / len(eps) if eps else 0.0)
    false_pages = [e for e in fired if e.verdict == "false" and e.notify == "page"]
    noise_pages = [e for e in false_pages if e.reason.startswith("noise")]
    return dict(per_alert=per_alert, misses=misses, rows=rows, false=[e for e in fired if e.verdict == "false"],
                false_pages=false_pages, noise_pages=noise_pages,
                pages_per_week=sum(1 for e in fired if e.notify == "page") * 7 / result.days,
                critical_misses=[(i, r) for i, r in misses if result.alerts[i.expect]["severity"] == "critical"])


def classes() -> None:
    for env in ENVS.values():
        for lane in catalogue(env).values():
            for inc in lane:
                if inc.expect:
                    CLASS_OF.setdefault(inc.expect, inc.cls)


classes()


def fmt(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(seconds)
    if seconds < 0:
        return f"-{fmt(-seconds)}"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"


def at(rel: int) -> str:
    return time.strftime("%a %H:%M", time.gmtime(T0 + rel))


def markdown(results: list[tuple[Result, dict]], command: str) -> str:
    lines = ["# Alert quality: a simulated history backtested alert by alert", "",
             "Generated by `bench/backtest` (`bench/backtest.py`); do not edit by hand.", "",
             f"Command: `{command}`", ""]
    lines += ["How: `simulator/history.py` produces each environment's history at its scrape intervals (normal "
              "operations plus injected incidents, the ground truth); `promtool tsdb create-blocks-from openmetrics` "
              "and `create-blocks-from rules` (recording rules in dependency order) build the TSDB; a real Prometheus "
              "2.42 serves it; every alert of the environment's rendered PrometheusRules is range-queried at the "
              f"{EVAL}s evaluation interval and `for` / `keep_firing_for` are applied as Prometheus does (recording "
              f"rules over a day or more are backfilled every {LONG_EVAL}s: they read days of samples at each step). "
              "A page is a "
              "firing alert the environment routes to PagerDuty, a ticket one it routes to Opsgenie. Detection "
              "budget: critical 5 minutes, warning 15 minutes from the incident's start"
              + "".join(f"; {cls} {sev} {budget // 60} minutes ({why})"
                        for (cls, sev), (budget, why) in sorted(CLASS_BUDGET.items()))
              + ". Backfilled data has no "
              "staleness markers: a target that stops answering keeps its last samples for the 5-minute lookback "
              "(a live Prometheus drops them at the next failed scrape).", ""]
    for res, sc in results:
        f = res.figures
        lines += [f"## {res.env}: {res.days:g} days, seed {res.seed}", "",
                  f"History: {f['samples']:,} samples, {f['series']} series, {f['bytes'] / 1e6:.0f} MB of OpenMetrics; "
                  f"generated in {f['generate_s']}s, blocks in {f['blocks_s']}s, recording rules in {f['recording_s']}s, "
                  f"alerts in {f['alerts_s']}s ({f['total_s']}s in all). "
                  f"{len([i for i in res.incidents if i.expect])} incidents, "
                  f"{len([i for i in res.incidents if not i.expect])} just below a threshold, "
                  f"{len(res.noise)} normal-operations events.", "",
                  f"Pages per week: {sc['pages_per_week']:.1f}. False pages: {len(sc['false_pages'])} "
                  f"({len(sc['noise_pages'])} from the noise catalogue). Missed incidents: {len(sc['misses'])} "
                  f"({len(sc['critical_misses'])} critical).", "",
                  "| alert | class | severity | for | incidents | fired | pages | tickets | true | false | collateral | "
                  "missed | FP share | detect median | worst | budget |",
                  "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
        for name, a in sc["per_alert"].items():
            budget = "-" if a["within"] is None else ("met" if a["within"] else f"**over {fmt(a['budget'])}**")
            hold = fmt(res.alerts[name]["for"]) if res.alerts[name]["for"] else "0"
            lines.append(f"| {name} | {a['cls']} | {a['severity']} | {hold} | {a['incidents']} | {a['episodes']} | {a['pages']} | "
                         f"{a['tickets']} | {a['tp']} | {a['fp']} | {a['collateral']} | {a['missed']} | "
                         f"{a['fp_share']:.0%} | {fmt(a['ttd_median'])} | {fmt(a['ttd_worst'])} | {budget} |")
        lines += ["", "Incidents (ground truth) and detection:", "",
                  "| start | incident | expected alert | detected after | note |", "| --- | --- | --- | ---: | --- |"]
        for i, ttd, note in sc["rows"]:
            lines.append(f"| {at(i.start)} | {i.name} | {i.expect} | {fmt(ttd) if ttd is not None else 'MISSED'} | "
                         f"{note} |")
        lines += ["", "Misses:", ""]
        lines += [f"- {at(i.start)} {i.expect} ({i.name}): {r}" for i, r in sc["misses"]] or ["- none"]
        lines += ["", "False positives:", ""]
        lines += [f"- {at(e.fired - T0)} {e.alert} ({e.notify}) {label_text(e.labels)}: {e.reason}"
                  for e in sc["false"]] or ["- none"]
        lines += [""]
    return "\n".join(lines) + "\n"


def label_text(labels: dict) -> str:
    keep = ("pod", "instance", "node", "provider", "model", "integration", "alertmanager", "denom")
    return ",".join(f"{k}={labels[k]}" for k in keep if k in labels)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench/backtest", description=__doc__.splitlines()[0])
    p.add_argument("--env", action="append", choices=sorted(ENVS), help="environment (repeatable); default all")
    p.add_argument("--days", type=float, default=7)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--write", help="write the scorecard as Markdown here (e.g. docs/alert-quality.md)")
    p.add_argument("--work", help="working folder (default: a temporary one); keeps each environment's result")
    p.add_argument("--from-work", action="store_true", help="only rescore the results kept in --work")
    args = p.parse_args(argv)
    envs = args.env or ["dev", "staging", "prod"]
    command = "bench/backtest " + " ".join(a for a in (argv if argv is not None else sys.argv[1:]))
    results = []
    with tempfile.TemporaryDirectory(prefix="vemon-backtest-") as tmp:
        base = Path(args.work) if args.work else Path(tmp)
        for env in envs:
            if args.from_work:
                with open(base / f"{env}.pickle", "rb") as fh:
                    res = pickle.load(fh)
                results.append((res, score(res)))
                continue
            res = run_env(env, args.days, args.seed, base / env, log=lambda m: print(m, flush=True))
            sc = score(res)
            results.append((res, sc))
            if args.work:
                with open(base / f"{env}.pickle", "wb") as fh:
                    pickle.dump(res, fh)
            print(f"{env}: pages/week {sc['pages_per_week']:.1f}, false pages {len(sc['false_pages'])}, "
                  f"misses {len(sc['misses'])} ({len(sc['critical_misses'])} critical), {res.figures}", flush=True)
            for i, r in sc["misses"]:
                print(f"  MISSED {at(i.start)} {i.expect} ({i.name}): {r}")
            for e in sc["false"]:
                print(f"  FALSE {at(e.fired - T0)} {e.alert} ({e.notify}) {label_text(e.labels)}: {e.reason}")
    text = markdown(results, command.strip())
    if args.write:
        Path(args.write).write_text(text)
        print(f"wrote {args.write}")
    bad = any(sc["critical_misses"] or sc["noise_pages"] for _, sc in results)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
