"""Section 4: Prometheus-side cost with the real Prometheus and the metrics
simulator at its realistic cardinality.

The simulator's fleet is turned into 6 hours of history (every series the
simulator serves, with the job/instance of its target, one sample per scrape
interval, counters rising and gauges moving) and loaded with
``promtool tsdb create-blocks-from openmetrics``; Prometheus then starts on
that data with the chart's rules (prod values) and:

- each rule group's ``prometheus_rule_group_last_duration_seconds`` is read
  from Prometheus' own /metrics over several evaluations (median);
- each dashboard's panel queries run through the HTTP API (``query_range``
  over the last 6 hours at the panel's default step, ``instant`` targets as
  instant queries) with ``stats=all``, so the figure is Prometheus' own
  ``execTotalTime``, not HTTP overhead; each dashboard's total is the sum of
  its panels' medians;
- expressions of recording rules that a dashboard or an alert computes again,
  and slow expressions used in more than one place, are listed.
"""
from __future__ import annotations

import json
import math
import re
import shutil
import tempfile
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from generator.servers import Prometheus as PromServer
from generator.servers import Servers, http, wait_until

from .common import Report, ms, tools

RULE_GROUP_TARGET = 0.010
DASHBOARD_TARGET = 0.250
HOURS = 6
SCRAPE = 30            # seconds between samples in the history, and the datasource's scrape interval
NOISE_FLOOR = 0.002     # rule group durations below 2 ms at every size: no growth exponent judged
EVAL = 10              # seconds between rule evaluations while measuring
NICE_STEPS = (15, 20, 30, 60, 120, 300, 600, 900, 1800, 3600)
CLUSTER = "bench"


# ---------------------------------------------------------------- Prometheus
def rule_groups(chart: Path, values: Path) -> list[dict]:
    out = tools.run([tools.helm(3), "template", "vemon", str(chart), "--namespace", "monitoring", "-f", str(values)]).stdout
    groups = []
    for doc in yaml.safe_load_all(out):
        if isinstance(doc, dict) and doc.get("kind") == "PrometheusRule":
            groups += doc["spec"]["groups"]
        elif isinstance(doc, dict) and doc.get("kind") == "ConfigMap":
            for key, text in (doc.get("data") or {}).items():
                if key.endswith(".rules.yaml"):
                    groups += (yaml.safe_load(text) or {}).get("groups", [])
    return groups


def start_prometheus(servers: Servers, groups: list[dict], scrape_configs: list[dict]) -> PromServer:
    """The chart's rule groups (each evaluated every EVAL s) on the data already in ``servers.folder/prometheus/data``."""
    folder = servers.folder / "prometheus"
    folder.mkdir(parents=True, exist_ok=True)
    for g in groups:
        g["interval"] = f"{EVAL}s"
    rules = folder / "rules.yaml"
    rules.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
    config = {"global": {"scrape_interval": f"{SCRAPE}s", "evaluation_interval": f"{EVAL}s",
                         "external_labels": {"bench": "1"}},
              "scrape_configs": scrape_configs}
    return servers.prometheus(config, rule_files=[rules], name="prometheus")


def metrics_text(prom: PromServer) -> str:
    status, body = http(prom.url + "/metrics", timeout=120)
    if status != 200:
        raise RuntimeError(f"prometheus /metrics: {status}")
    return body.decode()


def group_durations(prom: PromServer) -> dict[str, float]:
    out = {}
    for line in metrics_text(prom).splitlines():
        if line.startswith("prometheus_rule_group_last_duration_seconds{"):
            group = re.search(r'rule_group="[^";]*;([^"]*)"', line).group(1)
            out[group] = float(line.rsplit(" ", 1)[1])
    return out


def process_figures(prom: PromServer) -> dict[str, float]:
    """Prometheus' own memory and head series (its /metrics)."""
    wanted = ("process_resident_memory_bytes", "go_memstats_heap_inuse_bytes", "prometheus_tsdb_head_series")
    out = {}
    for line in metrics_text(prom).splitlines():
        name = line.split(" ", 1)[0]
        if name in wanted:
            out[name] = float(line.rsplit(" ", 1)[1])
    return out


def query_cost(prom: PromServer, expr: str, end: float, step: int | None) -> tuple[float, str, int]:
    params = {"query": expr, "stats": "all"}
    if step is None:
        params["time"] = f"{end:.3f}"
        path = "/api/v1/query"
    else:
        params.update(start=f"{end - HOURS * 3600:.3f}", end=f"{end:.3f}", step=str(step))
        path = "/api/v1/query_range"
    status, body = http(f"{prom.url}{path}?{urllib.parse.urlencode(params)}", timeout=300)
    if status != 200:
        return float("nan"), body.decode(errors="replace")[:200], 0
    data = json.loads(body)
    timings = (data.get("data", {}).get("stats") or {}).get("timings") or {}
    return float(timings.get("execTotalTime", float("nan"))), "", len(data["data"].get("result") or [])


# ---------------------------------------------------------------- dashboards
def panel_step(panel: dict, target: dict) -> int | None:
    if target.get("instant") or (panel.get("type") in ("stat", "gauge", "bargauge", "table")
                                 and target.get("instant") is not False and not target.get("range")):
        return None
    width = (panel.get("gridPos") or {}).get("w", 12)
    raw = HOURS * 3600 / max(1, width / 24 * 1800)
    minimum = _seconds(target.get("interval") or panel.get("interval") or f"{SCRAPE}s")
    return next(s for s in NICE_STEPS if s >= max(raw, minimum, SCRAPE)) if max(raw, minimum) <= 3600 else 3600


def _seconds(text: str) -> int:
    m = re.fullmatch(r"(\d+)(ms|s|m|h|d)", str(text).strip("<>= "))
    if not m:
        return SCRAPE
    return int(m.group(1)) * {"ms": 0, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]


def substitute(expr: str, step: int | None, values: dict[str, str] | None = None) -> str:
    """``expr`` with Grafana's built-in variables for ``step`` and the dashboard's variables replaced by
    ``values`` (as :func:`variable_values` resolves them); a variable without a value matches everything."""
    step_s = step or SCRAPE
    rate = max(4 * SCRAPE, step_s + SCRAPE)
    repl = {**(values or {}), "__rate_interval": f"{rate}s", "__interval": f"{step_s}s", "__range": f"{HOURS}h",
            "__range_s": str(HOURS * 3600), "__interval_ms": str(step_s * 1000)}
    expr = re.sub(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]",
                  lambda m: repl.get(m.group(1) or m.group(2) or m.group(3), ".*"), expr)
    return expr.replace('=".*"', '=~".*"').replace("!=\".*\"", '!~".*"')


ALL = "$__all"
LABEL_VALUES = re.compile(r"^\s*label_values\(\s*(.*?)\s*,\s*(\w+)\s*\)\s*$", re.S)


def _regex_escape(value: str) -> str:
    """A value of a multi-value or All variable as Grafana's Prometheus datasource writes it into a query
    (prometheusSpecialRegexEscape): regex metacharacters escaped inside a PromQL string."""
    return re.sub(r"([$^*{}\[\]'+?.()|])", r"\\\\\1", value.replace("\\", "\\\\\\\\"))


def _is_all(current) -> bool:
    value = (current or {}).get("value")
    return value == ALL or value == [ALL]


def variable_values(board: dict, lookup) -> dict[str, str]:
    """Each variable of ``board`` as Grafana resolves it when the dashboard opens with its defaults: a variable
    whose default is All takes its ``allValue`` (".*"); one with a saved value takes that value; any other takes
    the first value of its query (``label_values(metric{selector}, label)`` with the variables before it
    substituted, sorted as its ``sort`` says), as Grafana selects the first option of a variable without a
    default. ``lookup(selector, label)`` returns the label's values among the series ``selector`` matches."""
    values: dict[str, str] = {}
    for var in (board.get("templating") or {}).get("list") or []:
        name, kind, current = var.get("name"), var.get("type"), var.get("current") or {}
        if kind == "datasource" or not name:
            continue
        if var.get("includeAll") and _is_all(current):
            values[name] = var.get("allValue") or ".*"
            continue
        saved = current.get("value")
        saved = saved[0] if isinstance(saved, list) and len(saved) == 1 else saved
        if isinstance(saved, str) and saved and saved != ALL:
            options = [saved]
        elif kind == "query":
            query = var.get("query")
            query = query.get("query") if isinstance(query, dict) else query
            m = LABEL_VALUES.match(str(query or ""))
            if not m:
                raise ValueError(f"dashboard {board.get('uid')}, variable {name!r}: query {query!r} is not "
                                 f"label_values(metric{{selector}}, label)")
            selector = substitute(m.group(1), None, values)
            options = sorted(set(lookup(selector, m.group(2))), reverse=var.get("sort") in (2, 4, 6))
        else:
            options = [o.strip() for o in str(var.get("query") or "").split(",") if o.strip()]
        if not options:
            continue     # no value: the queries match everything (what the dashboard would show empty)
        first = options[0]
        values[name] = _regex_escape(first) if var.get("multi") or var.get("includeAll") else first
    return values


def series_lookup(prom: PromServer, end: float):
    """``lookup`` for :func:`variable_values`: the label's values over the last HOURS hours (/api/v1/series, as
    Grafana's label_values(metric{...}, label) reads them)."""
    def lookup(selector: str, label: str) -> list[str]:
        found = prom.api("series", **{"match[]": selector, "start": f"{end - HOURS * 3600:.3f}", "end": f"{end:.3f}"})
        return [s[label] for s in found if s.get(label)]
    return lookup


def dashboard_queries(path: Path) -> list[tuple[str, str, int | None]]:
    board = json.loads(path.read_text())
    out = []

    def walk(panels):
        for panel in panels:
            walk(panel.get("panels") or [])
            for target in panel.get("targets") or []:
                if target.get("expr") and not target.get("hide"):
                    step = panel_step(panel, target)
                    out.append((str(panel.get("title")), target["expr"], step))
    walk(board.get("panels") or [])
    return out


def _norm(expr: str) -> str:
    return re.sub(r"\s+", "", expr)


def spread(xs: list[float], fmt=ms) -> str:
    """``median (min-max of N)`` of several runs."""
    xs = sorted(x for x in xs if x == x)
    if not xs:
        return "n/a"
    med = xs[len(xs) // 2] if len(xs) % 2 else (xs[len(xs) // 2 - 1] + xs[len(xs) // 2]) / 2
    return f"{fmt(med)} ({fmt(xs[0])}-{fmt(xs[-1])}, {len(xs)} runs)"


def med(xs: list[float]) -> float:
    xs = sorted(x for x in xs if x == x)
    if not xs:
        return float("nan")
    return xs[len(xs) // 2] if len(xs) % 2 else (xs[len(xs) // 2 - 1] + xs[len(xs) // 2]) / 2


@dataclass
class Measurement:
    """What one Prometheus at one fleet size cost."""
    factor: int
    targets: int = 0
    nodes: int = 0
    series: int = 0
    build_s: float = 0.0
    load: str = ""
    groups: dict[str, list[float]] = field(default_factory=dict)          # group -> readings (s)
    boards: dict[str, list[float]] = field(default_factory=dict)          # dashboard -> total per run (s)
    queries: dict[str, int] = field(default_factory=dict)                 # dashboard -> queries
    variables: dict[str, dict[str, str]] = field(default_factory=dict)    # dashboard -> variables not All
    slow: list[tuple[float, str, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    empty: list[str] = field(default_factory=list)
    record_series: dict[str, int] = field(default_factory=dict)           # record -> series it creates
    memory: dict[str, float] = field(default_factory=dict)
    group_queries: dict[str, float] = field(default_factory=dict)         # group -> its rules' query time (s)
    backfill_s: float = 0.0


RUNS = 3          # runs of each panel query
READINGS = 12     # readings of each rule group's last evaluation time (two minutes at EVAL)


def backfill_records(home: Path, data: Path, groups: list[dict], *, start: int, end: int) -> float:
    """Every recording rule evaluated over the history (``promtool tsdb create-blocks-from rules``, level by
    level: a rule reading another recorded series runs after it) and its blocks added to ``data``, so a panel
    or a rule reading a recorded series reads 6 h of it, as on a Prometheus that has run the rules that long.
    Returns the seconds it took."""
    from .backtest import recording_levels
    t0 = time.time()
    levels = recording_levels(groups, alerts_only=False)
    with Servers(home / "backfill") as servers:
        folder = servers.folder / "prometheus"
        folder.mkdir(parents=True, exist_ok=True)
        shutil.move(str(data), str(folder / "data"))
        prom = servers.prometheus({"global": {"evaluation_interval": f"{SCRAPE}s"}}, name="prometheus")
        try:
            for n, level in enumerate(levels):
                rules = home / f"records-{n}.yaml"
                rules.write_text(yaml.safe_dump({"groups": [{"name": f"level{n}", "rules": level}]}, sort_keys=False))
                out = home / f"records-{n}"
                tools.run([tools.find("promtool"), "tsdb", "create-blocks-from", "rules", f"--start={start}",
                           f"--end={end}", f"--url={prom.url}", f"--output-dir={out}",
                           f"--eval-interval={SCRAPE}s", str(rules)], timeout=3600)
                prom.stop()
                for block in out.iterdir():
                    if block.is_dir():
                        shutil.move(str(block), str(folder / "data" / block.name))
                shutil.rmtree(out, ignore_errors=True)
                prom.start()
        finally:
            prom.stop()
        shutil.move(str(folder / "data"), str(data))
    return time.time() - t0


def settled(prom: PromServer, quiet: int = 3) -> None:
    """Waits until Prometheus has run its first compaction cycle (the TSDB triggers one a minute after start; it
    merges overlapping blocks) and the count of loaded blocks and of compactions stayed unchanged over ``quiet``
    readings five seconds apart."""
    wanted = ("prometheus_tsdb_blocks_loaded", "prometheus_tsdb_compactions_total",
              "prometheus_tsdb_vertical_compactions_total", "prometheus_tsdb_compactions_triggered_total")

    def state() -> dict:
        return {line.split(" ", 1)[0]: line.rsplit(" ", 1)[1] for line in metrics_text(prom).splitlines()
                if line.split(" ", 1)[0] in wanted}
    seen: list[dict] = []

    def still() -> bool:
        seen.append(state())
        triggered = float(seen[-1].get("prometheus_tsdb_compactions_triggered_total", 0)) > 0
        return triggered and len(seen) > quiet and all(x == seen[-1] for x in seen[-quiet - 1:])
    wait_until(still, 900, "Prometheus never settled (blocks loaded / compactions kept changing)", interval=5)


def _load() -> str:
    import os
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


_HISTORY: dict = {}   # today's fleet's simulated values, simulated once for every fleet size


def measure(work: Path, tree: Path, factor: int, groups: list[dict], *, progress=print) -> Measurement:
    """History of a fleet ``factor`` times today's chain nodes (``nodes_per_chain`` = 3 x factor), loaded into a
    real Prometheus, scraped live afterwards, with the chart's rules; returns what it cost."""
    from simulator import Simulator

    from .simsource import write_history
    m = Measurement(factor)
    home = Path(tempfile.mkdtemp(prefix=f"prom-x{factor}-", dir=work))
    end = int(time.time()) - 60
    history = home / "history.om"
    started = time.time()
    sim = Simulator(nodes_per_chain=3 * factor)     # served live after the history
    m.targets, m.nodes = len(sim.targets), sum(len(c.nodes) for c in sim.world.chains)
    # the history of today's fleet, the full node of each chain copied as each further node of the bigger fleet
    base = Simulator() if factor > 1 else sim
    replicas = {f"{c.chain_id}-node-2": [f"{c.chain_id}-node-{n}" for n in range(3, 3 * factor)]
                for c in base.world.chains} if factor > 1 else None
    m.series = write_history(base, history, start=end - HOURS * 3600, end=end, step=SCRAPE, cluster=CLUSTER,
                             replicas=replicas, reuse=_HISTORY)
    data = home / "servers" / "prometheus" / "data"
    tools.run([tools.find("promtool"), "tsdb", "create-blocks-from", "openmetrics", str(history), str(data)],
              timeout=3600)
    history.unlink()
    m.backfill_s = backfill_records(home, data, groups, start=end - HOURS * 3600, end=end)
    m.build_s = time.time() - started
    progress(f"  {factor}x fleet: {m.targets} targets, {m.nodes} chain nodes, {m.series:,} series, "
             f"built in {m.build_s:.0f} s")
    records = {r["record"]: r["expr"] for g in groups for r in g["rules"] if "record" in r}
    with sim.start(port=0), Servers(home / "servers") as servers:
        prom = start_prometheus(servers, groups, sim.scrape_configs(interval=f"{SCRAPE}s", labels={"cluster": CLUSTER}))
        # the backfilled blocks overlap the history's: Prometheus merges them (vertical compaction) in its first
        # minutes; measured after that, not during it
        settled(prom)
        m.load = _load()
        # every group evaluated at least once, then READINGS readings one evaluation apart
        wait_until(lambda: len(group_durations(prom)) >= len(groups), 300, "rule groups never evaluated")
        time.sleep(EVAL * 1.5)
        for _ in range(READINGS):
            for group, d in group_durations(prom).items():
                m.groups.setdefault(group, []).append(d)
            time.sleep(EVAL)
        now = time.time()
        # each group's rules as instant queries (Prometheus' own execTotalTime, median of RUNS): the query work of
        # one evaluation, without the other groups and scrapes that share the CPU with it
        for g in groups:
            total = 0.0
            for r in g["rules"]:
                total += med([query_cost(prom, r["expr"], now, None)[0] for _ in range(RUNS)])
            m.group_queries[g["name"]] = total
        for record, expr in records.items():
            try:
                m.record_series[record] = len(prom.query(expr, now))
            except Exception:  # noqa: BLE001 - a failed count is shown as missing, not fatal
                m.record_series[record] = -1
        lookup = series_lookup(prom, now)
        for path in sorted((tree / "chart" / "files" / "dashboards").glob("*.json")):
            queries = dashboard_queries(path)
            m.queries[path.stem] = len(queries)
            # the variables as the dashboard opens (All only where All is the default, else the first value)
            values = variable_values(json.loads(path.read_text()), lookup)
            m.variables[path.stem] = {k: v for k, v in values.items() if v != ".*"}
            totals = [0.0] * RUNS
            for title, expr, step in queries:
                q = substitute(expr, step, values)
                costs = []
                for i in range(RUNS):
                    cost, err, found = query_cost(prom, q, now, step)
                    if err:
                        m.errors.append(f"{path.stem} / {title}: {err}")
                        break
                    costs.append(cost)
                    totals[i] += cost
                if costs and not found:
                    m.empty.append(f"{path.stem} / {title}")
                m.slow.append((med(costs) if costs else 0.0, f"{path.stem} / {title}", expr))
            m.boards[path.stem] = totals
        m.memory = process_figures(prom)
    shutil.rmtree(home, ignore_errors=True)
    return m


def exponent(small: float, large: float, size_ratio: float) -> float:
    if not (small > 0 and large > 0 and size_ratio > 1):
        return float("nan")
    return math.log(large / small) / math.log(size_ratio)


def _k(x: float) -> str:
    return "n/a" if x != x else f"{x:.2f}"


def run(report: Report, work: Path, tree: Path, fleet: tuple[int, ...] = (1, 10)) -> None:
    from .simsource import available
    reason = available()
    if reason:
        report.note(f"Prometheus-side cost not measured: {reason}")
        return
    groups = rule_groups(tree / "chart", tree / "values" / "prod.yaml")
    rule_exprs = {r.get("alert") or r.get("record"): r["expr"] for g in groups for r in g["rules"]}
    records = {r["record"]: r["expr"] for g in groups for r in g["rules"] if "record" in r}
    results: dict[int, Measurement] = {}
    t0 = time.time()
    for factor in sorted(set(fleet) | {1}):
        try:
            results[factor] = measure(work, tree, factor, [dict(g) for g in groups])
        except Exception as e:  # noqa: BLE001 - a fleet size this machine cannot hold is reported, not fatal
            report.note(f"fleet {factor}x not measured: {str(e)[-300:]}")
        except KeyboardInterrupt:   # Ctrl-C (SIGINT): the sizes measured so far are still reported
            report.note(f"fleet {factor}x not measured: interrupted (Ctrl-C) after {time.time() - t0:.0f} s of the "
                        f"section; the sizes before it are reported")
            break
    base = results.get(1)
    if not base:
        return
    report.add("prometheus", "simulated fleet today (simulator/, 6 h of history at one sample per 30 s, then live)",
               f"{base.targets} targets ({base.nodes} chain nodes), {base.series:,} series, "
               f"{base.series * (HOURS * 3600 // SCRAPE + 1):,} samples, built in {base.build_s:.0f} s")
    # ---- today: rule groups
    rows = []
    for group, ds in sorted(base.groups.items(), key=lambda kv: -med(kv[1])):
        d = med(ds)
        q = base.group_queries.get(group, float("nan"))
        rows.append([group, spread(ds), ms(q) if q == q else "", "met" if d < RULE_GROUP_TARGET else "MISS"])
        if d >= RULE_GROUP_TARGET:
            report.add("prometheus", f"rule group {group} evaluation", spread(ds), "< 10 ms", False)
    report.table(f"rule group evaluation today (prometheus_rule_group_last_duration_seconds, median (min-max) of "
                 f"{READINGS} readings; beside it the group's rules run alone as instant queries, sum of their "
                 f"execTotalTime medians; load {base.load})",
                 ["group", "evaluation", "its queries alone", "< 10 ms"], rows)
    if base.groups:
        worst = max(base.groups, key=lambda g: med(base.groups[g]))
        if med(base.groups[worst]) < RULE_GROUP_TARGET:
            report.add("prometheus", f"slowest rule group of {len(base.groups)} ({worst})",
                       spread(base.groups[worst]), "< 10 ms", True)
    # ---- today: dashboards
    rows = [[uid, str(base.queries[uid]), spread(ts), "met" if med(ts) < DASHBOARD_TARGET else "MISS"]
            for uid, ts in sorted(base.boards.items(), key=lambda kv: -med(kv[1]))]
    report.table(f"dashboard query load today (6 h at default step, sum of execTotalTime, median (min-max) of "
                 f"{RUNS} runs; load {base.load})", ["dashboard", "queries", "total", "< 250 ms"], rows)
    for uid, ts in base.boards.items():
        if med(ts) >= DASHBOARD_TARGET:
            report.add("prometheus", f"dashboard {uid} query load", spread(ts), "< 250 ms", False)
    if base.boards:
        worst = max(base.boards, key=lambda u: med(base.boards[u]))
        if med(base.boards[worst]) < DASHBOARD_TARGET:
            report.add("prometheus", f"heaviest dashboard query load of {len(base.boards)} ({worst})",
                       spread(base.boards[worst]), "< 250 ms", True)
    opened = {uid: vs for uid, vs in base.variables.items() if vs}
    if opened:
        report.note("dashboards measured as they open, with their default variables (All where All is the default): "
                    + "; ".join(f"{uid} on {', '.join(f'{k}={v}' for k, v in sorted(vs.items()))}"
                                for uid, vs in sorted(opened.items())))
    report.table("slowest queries today", ["time", "where", "expression"],
                 [[ms(c), w, e.replace("\n", " ")[:110]] for c, w, e in sorted(base.slow, reverse=True)[:8]])
    for e in base.errors[:5]:
        report.note(f"query failed: {e}")
    reading = sorted({w for _, w, e in base.slow
                      if any(re.search(rf"(?<![\w:]){re.escape(r)}(?![\w:])", e) for r in records)})
    if reading:
        report.note(f"{len(reading)} panel queries read recorded series: the recording rules were backfilled over "
                    f"the 6 h history with `promtool tsdb create-blocks-from rules` ({base.backfill_s:.0f} s at 1x), "
                    f"so they read 6 h of recorded samples like on a Prometheus that has run the rules that long")
    if base.empty:
        report.note(f"{len(base.empty)} panel queries returned no series from the simulated fleet (their cost is "
                    f"a lower bound): {', '.join(base.empty[:8])}{' ...' if len(base.empty) > 8 else ''}")
    fleet_tables(report, results, records)
    # ---- recording rules computed again
    uses: dict[str, list[str]] = {}
    for _, w, expr in base.slow:
        uses.setdefault(_norm(expr), []).append(f"dashboard {w.split(' / ')[0]}")
    for name, expr in rule_exprs.items():
        uses.setdefault(_norm(expr), []).append(f"rule {name}")
    again = []
    for record, expr in records.items():
        key = _norm(expr)
        where = [w for k, ws in uses.items() if key in k and k != key for w in ws]
        if where:
            again.append([record, ", ".join(sorted(set(where)))[:120]])
    report.table("recording rules whose expression is computed again elsewhere", ["record", "computed again by"],
                 again or [["(none)", ""]])


def fleet_tables(report: Report, results: dict[int, Measurement], records: dict[str, str]) -> None:
    """Each figure at every fleet size measured, with its growth exponent (log-log slope against the series)."""
    base = results[1]
    big = sorted(f for f in results if f > 1)
    if not big:
        report.note("fleet sizes above today's not measured (bench/run --fleet 1,10,100)")
        return
    top = results[big[-1]]
    sizes = {f: results[f].series / base.series for f in results}
    head = ["figure", *[f"{f}x ({results[f].series:,} series)" for f in sorted(results)],
            f"k (1x -> {big[-1]}x)"]
    rows = [["chain nodes / targets", *[f"{results[f].nodes} / {results[f].targets}" for f in sorted(results)], ""],
            ["uptime load at start", *[results[f].load for f in sorted(results)], ""]]
    mem = "process_resident_memory_bytes"
    rows.append(["Prometheus memory (resident)",
                 *[f"{results[f].memory.get(mem, float('nan')) / 2**20:,.0f} MiB" for f in sorted(results)],
                 _k(exponent(base.memory.get(mem, 0), top.memory.get(mem, 0), sizes[big[-1]]))])
    rows.append(["Prometheus head series",
                 *[f"{results[f].memory.get('prometheus_tsdb_head_series', 0):,.0f}" for f in sorted(results)],
                 _k(exponent(base.memory.get("prometheus_tsdb_head_series", 0),
                             top.memory.get("prometheus_tsdb_head_series", 0), sizes[big[-1]]))])
    report.table("fleet size: the simulated fleet and Prometheus (k: growth exponent, figure ~ series^k)", head, rows)
    # rule groups
    rows = []
    for group in sorted(base.groups, key=lambda g: -med(base.groups[g])):
        ks = exponent(med(base.groups[group]), med(top.groups.get(group, [])), sizes[big[-1]])
        # a group that stays under the noise floor at every size has no measurable growth (a 0.4 ms group
        # reading 0.8 ms is scheduling noise, not k = 0.3): shown, not judged
        if max(med(base.groups[group]), med(top.groups.get(group, []))) < NOISE_FLOOR:
            ks = float("nan")
        ok = ks <= 1.05 if ks == ks else None
        rows.append([group, *[ms(med(results[f].groups.get(group, []))) for f in sorted(results)], _k(ks),
                     "" if ok is None else ("met" if ok else "MISS")])
        if ok is False:
            report.add("prometheus", f"rule group {group} growth 1x -> {big[-1]}x", f"k = {ks:.2f}",
                       "k <= 1.05 (linear)", False)
    report.table("fleet size: rule group evaluation (median)", ["group", *head[1:], "k <= 1.05"], rows)
    worst_k = max((exponent(med(base.groups[g]), med(top.groups.get(g, [])), sizes[big[-1]]) for g in base.groups
                   if max(med(base.groups[g]), med(top.groups.get(g, []))) >= NOISE_FLOOR),
                  default=float("nan"), key=lambda x: -1 if x != x else x)
    if worst_k == worst_k:
        report.add("prometheus", f"steepest rule group growth 1x -> {big[-1]}x (time ~ series^k)", f"k = {worst_k:.2f}",
                   "k <= 1.05 (linear)", worst_k <= 1.05)
    # dashboards
    rows = []
    measured = 100 in results
    # without a 100x run, the 100x load is extrapolated from the largest run along its own exponent (stated)
    at100: dict[str, float] = {}
    # the series of a 100x fleet: the series grow linearly with the chain nodes (each node its own copy of
    # every CometBFT and chain-state series; the Kubernetes and vendor series stay), so along the line
    # through today's and the largest fleet measured
    series100 = base.series + (top.series - base.series) * (100 - 1) / (big[-1] - 1)
    for uid in sorted(base.boards, key=lambda u: -med(base.boards[u])):
        ks = exponent(med(base.boards[uid]), med(top.boards.get(uid, [])), sizes[big[-1]])
        if measured:
            at100[uid] = med(results[100].boards.get(uid, []))
        elif ks == ks:
            at100[uid] = med(top.boards[uid]) * (series100 / top.series) ** max(ks, 0.0)
        x = at100.get(uid, float("nan"))
        rows.append([uid, *[ms(med(results[f].boards.get(uid, []))) for f in sorted(results)], _k(ks),
                     "" if x != x else f"{ms(x)} {'met' if x < 2 else 'MISS'}"])
        if x == x and x >= 2:
            report.add("prometheus", f"dashboard {uid} query load at 100x{'' if measured else ' (extrapolated)'}",
                       ms(x), "< 2 s", False)
    how = "measured" if measured else f"extrapolated from {big[-1]}x along k to {series100:,.0f} series"
    report.table("fleet size: dashboard query load over 6 h (median)",
                 ["dashboard", *head[1:], f"100x ({how}) < 2 s"], rows)
    if at100:
        worst = max(at100, key=lambda u: at100[u])
        if at100[worst] < 2:
            report.add("prometheus", f"heaviest dashboard query load at 100x, {how} ({worst})",
                       ms(at100[worst]), "< 2 s", True)
    # recording rules
    rows = []
    for record in records:
        ks = exponent(base.record_series.get(record, 0), top.record_series.get(record, 0), sizes[big[-1]])
        rows.append([record, *[str(results[f].record_series.get(record, "")) for f in sorted(results)], _k(ks)])
    report.table("fleet size: series each recording rule creates", ["record", *head[1:]], rows)
