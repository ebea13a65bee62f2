"""What the shipped panels show, evaluated on states a real cluster and chain reach.

Each panel's query is taken from the rendered chart (``chart/files/dashboards``)
and run by promtool over input series shaped like the world: every full node
exports the same module counter (chain state), kube-state-metrics keeps the
resource requests of completed pods, namespaces have pods but no scrape target,
token amounts are exported in the denom's minor unit. The dashboard lint's own
checks are then shown to refuse each mistake planted into a clean dashboard.
"""
from __future__ import annotations

import copy
import json
import re

import pytest
import yaml

from conftest import ROOT
from generator import dashlint
from generator.build import build
from generator.promql import metric_names
from promql_eval import evaluate, legend

CHART_DASHBOARDS = ROOT / "chart" / "files" / "dashboards"
CHART_RULES = ROOT / "chart" / "files" / "rules"


def _recording_groups() -> list[dict]:
    groups = []
    for path in sorted(CHART_RULES.glob("*.json")):
        group = json.loads(path.read_text())
        rules = [{"record": r["record"], "expr": r["expr"]} for r in group.get("rules", []) if r.get("record")]
        if rules:
            groups.append({"name": group["name"], "rules": rules})
    return groups


# the chart's recording rules: panels that read recorded series are evaluated with them
RECORDING = {"groups": _recording_groups()}
_RECORD_EXPRS = {r["record"]: r["expr"] for g in RECORDING["groups"] for r in g["rules"]}


def rules_for(*exprs: str) -> dict | None:
    """The recording rules the expressions read (and those they read in turn), readers after what they read."""
    order: list[str] = []

    def need(expr):
        for name in sorted(metric_names(expr)):
            if name in _RECORD_EXPRS and name not in order:
                need(_RECORD_EXPRS[name])
                order.append(name)
    for e in exprs:
        need(e)
    return {"groups": [{"name": "panels", "rules": [{"record": r, "expr": _RECORD_EXPRS[r]} for r in order]}]} \
        if order else None


def sources(expr: str, catalog) -> set[str]:
    """The catalog metrics an expression reads, through the recording rules it reads."""
    found = set()
    for name in metric_names(expr):
        if name in _RECORD_EXPRS:
            found |= sources(_RECORD_EXPRS[name], catalog)
        elif catalog.resolve(name):
            found.add(catalog.resolve(name))
    return found


@pytest.fixture(scope="module")
def dashboards() -> dict[str, dict]:
    return dashlint.load_chart_dashboards(ROOT / "chart")


@pytest.fixture(scope="module")
def catalog():
    return build(ROOT).shared["catalog"]


def panels(dashboard: dict):
    return [p for p in dashlint._panels(dashboard) if p.get("type") != "row"]


def panel(dashboards, uid: str, title: str) -> dict:
    found = [p for p in panels(dashboards[uid]) if p["title"] == title]
    assert found, f"{uid} has no panel {title!r}"
    return found[0]


def q(expr: str) -> str:
    """A panel's query as Prometheus runs it with every variable at All (Grafana's `.*`)."""
    return dashlint.promql_text(expr)


# --- money: the unit matches the arithmetic -----------------------------------------

MINOR = "uve"            # the simulator's and the chain's fee denom: micro-VE (10^-6 VE)
NODES = ("10.0.0.1:1317", "10.0.0.2:1317", "10.0.0.3:1317")


def _money_world(metric: str, kind: str) -> list[tuple[str, str]]:
    """Every full node exports the same chain-wide amount (world fact 4), in minor units."""
    values = "2500000000+0x1500" if kind == "gauge" else "0+1000000x1500"   # 2,500 VE locked; 1 VE a minute
    return [(f'{metric}{{cluster="c1", namespace="virtengine-mainnet", chain_id="virtengine-1", instance="{i}", '
             f'denom="{MINOR}"}}', values) for i in NODES]


def money_targets(dashboards, catalog):
    money = {m.name for m in catalog.metrics.values() if m.unit == "minor units of denom"}
    assert money, "the catalog lists no token amount"
    for uid, dashboard in sorted(dashboards.items()):
        for p in panels(dashboard):
            for t in p.get("targets", []):
                used = sources(t["expr"], catalog) & money
                if used:
                    yield uid, p, t, sorted(used)[0], catalog.metrics[sorted(used)[0]].type


def test_every_token_amount_is_labelled_with_the_unit_its_arithmetic_gives(dashboards, catalog):
    """Divided by 10^6 it is whole tokens and must be named as the token (VE), never as the minor denom
    (uve); undivided it is minor units and must say so."""
    found = list(money_targets(dashboards, catalog))
    assert {uid for uid, *_ in found} >= {"business-metrics", "escrow-module", "market-module"}
    for uid, p, t, metric, kind in found:
        (result,) = evaluate([q(t["expr"])], _money_world(metric, kind), at="1d", rules=rules_for(t["expr"]))
        assert result, f"{uid} {p['title']!r}: no data for {metric} exported in {MINOR}"
        for labels, value in result:
            shown = " ".join([legend(t.get("legendFormat", ""), labels), p["fieldConfig"]["defaults"].get("unit", "")])
            minor = value >= 1e6   # 2,500 VE locked, or at least 60 VE an hour, is >= 10^6 only in minor units
            where = f"{uid} {p['title']!r} shows {value:g} labelled {shown!r}"
            if minor:
                assert MINOR in shown or "minor" in shown, where + ": minor units must be labelled as such"
            else:
                assert MINOR not in shown.split() and MINOR not in legend(t.get("legendFormat", ""), labels), \
                    where + f": whole tokens labelled with the minor denom {MINOR!r}"
                assert "VE" in shown.split() or "VE" in legend(t.get("legendFormat", ""), labels), \
                    where + ": whole tokens must name the token"


def test_money_stats_show_the_token_name_beside_the_number(dashboards, catalog):
    for uid, p, t, metric, kind in money_targets(dashboards, catalog):
        if p["type"] == "stat":
            assert p["options"]["textMode"] == "value_and_name", f"{uid} {p['title']!r}: the number alone hides its token"


# --- daily bars are one bar per day --------------------------------------------------

# an increase over the window, or the average of recorded rates over it (times its length)
_INCREASE = re.compile(r"(?:increase|avg_over_time)\([^\[]*\[(\d+[dhm])\]\)")


def test_bars_of_an_increase_over_a_window_step_by_that_window(dashboards):
    """`increase(x[1d])` drawn every 30 s is 2,880 overlapping days; with a 1d interval each bar is one day."""
    checked = 0
    for uid, dashboard in dashboards.items():
        for p in panels(dashboard):
            if p["type"] != "timeseries" or p["fieldConfig"]["defaults"].get("custom", {}).get("drawStyle") != "bars":
                continue
            for t in p["targets"]:
                windows = set(_INCREASE.findall(t["expr"]))
                if not windows:
                    continue
                checked += 1
                assert len(windows) == 1, f"{uid} {p['title']!r}: bars over several windows {windows}"
                (window,) = windows
                assert p.get("interval") == window and t.get("interval") == window, \
                    f"{uid} {p['title']!r}: increase over {window} needs panel and query interval {window}, " \
                    f"got {p.get('interval')!r} / {t.get('interval')!r}"
    assert checked >= 3, "the daily order volume, order value and revenue bars were not found"


def test_daily_panels_named_per_day_step_by_a_day(dashboards):
    for uid, dashboard in dashboards.items():
        for p in panels(dashboard):
            if any("[1d])" in t["expr"] and "increase(" in t["expr"] for t in p.get("targets", [])) \
                    and p["type"] == "timeseries":
                assert p.get("interval") == "1d", f"{uid} {p['title']!r}: a per-day series drawn as rolling days"


# --- tables: units per column ------------------------------------------------------------

def test_a_table_of_several_queries_gives_each_value_column_its_own_unit(dashboards):
    for uid, dashboard in dashboards.items():
        for p in panels(dashboard):
            if p["type"] == "table" and len(p["targets"]) > 1:
                unit = p["fieldConfig"]["defaults"].get("unit", "none")
                assert unit in ("none", "short", ""), \
                    f"{uid} {p['title']!r}: unit {unit!r} applies to every column, status included"


def test_the_providers_table_shows_status_plain_and_cpu_memory_as_percent(dashboards):
    p = panel(dashboards, "provider-daemon", "Providers")
    units = {o["matcher"]["options"]: {x["id"]: x["value"] for x in o["properties"]}.get("unit")
             for o in p["fieldConfig"]["overrides"] if o["matcher"]["id"] == "byName"}
    # Grafana matches an override by the field's display name, which the organize step renamed
    assert units.get("CPU") == "percentunit" and units.get("Memory") == "percentunit", units
    assert not {"status", "provider"} & set(units), units
    assert p["fieldConfig"]["defaults"]["unit"] in ("none", "short")
    renames = next(t for t in p["transformations"] if t["id"] == "organize")["options"].get("renameByName", {})
    assert renames.get("Value #B") == "CPU" and renames.get("Value #C") == "Memory", renames


# --- numbers written exactly -----------------------------------------------------------

def _noisy(value) -> bool:
    return isinstance(value, float) and len(repr(value).lstrip("-0.").replace(".", "").split("e")[0]) > 12


def test_no_number_in_a_dashboard_carries_float_noise(dashboards):
    for uid, dashboard in dashboards.items():
        for path, _, value in dashlint._walk(dashboard):
            assert not _noisy(value), f"{uid} {path}: {value!r}"
            if isinstance(value, str):
                assert not re.search(r"\d\.\d{13,}", value), f"{uid} {path}: {value!r}"


def test_the_lint_refuses_float_noise_in_any_numeric_field(dashboards):
    clean = dashboards["sla-compliance"]
    assert dashlint.structural(clean, set(dashboards)) == []
    bad = copy.deepcopy(clean)
    stat = next(p for p in panels(bad) if p["type"] == "stat")
    stat["fieldConfig"]["defaults"]["thresholds"]["steps"][1]["value"] = 0.1 + 0.2
    problems = dashlint.structural(bad, set(dashboards))
    assert any("0.30000000000000004" in p and "float noise" in p for p in problems), problems
    bad = copy.deepcopy(clean)
    next(p for p in panels(bad) if p["type"] == "stat")["targets"][0]["expr"] += " * 0.30000000000000004"
    assert any("float noise" in p for p in dashlint.structural(bad, set(dashboards)))


# --- $namespace lists every namespace with pods -----------------------------------------

def test_the_namespace_variable_of_kubernetes_dashboards_lists_namespaces_without_scrape_targets(dashboards):
    """A namespace with pods but no scrape target (a batch namespace) must be selectable on the pod dashboards."""
    world = [('up{job="kube-state-metrics", namespace="monitoring", instance="ksm:8080"}', "1x100"),
             ('up{job="cometbft", namespace="virtengine-mainnet", instance="10.0.0.1:26660", cluster="c1"}', "1x100")]
    for ns in ("monitoring", "virtengine-mainnet", "batch-jobs"):
        # kube-state-metrics series carry no cluster label unless Prometheus adds one (world fact 8)
        world += [(f'kube_pod_info{{job="kube-state-metrics", namespace="{ns}", pod="p-{ns}", node="n1"}}', "1x100"),
                  (f'kube_namespace_labels{{job="kube-state-metrics", namespace="{ns}"}}', "1x100")]
    checked = 0
    for uid, dashboard in sorted(dashboards.items()):
        if "kubernetes" not in dashboard["tags"]:
            continue
        for var in dashboard["templating"]["list"]:
            if var["name"] != "namespace":
                continue
            m = re.match(r"label_values\((.*),\s*namespace\)$", var["query"]["query"])
            (result,) = evaluate([f"count by (namespace) ({q(m.group(1))})"], world, at="10m")
            listed = {labels.get("namespace") for labels, _ in result}
            assert {"monitoring", "virtengine-mainnet", "batch-jobs"} <= listed, f"{uid}: $namespace lists {listed}"
            checked += 1
    assert checked >= 3


# --- requested CPU and memory count only pods that hold them ----------------------------

def _requests_world() -> list[tuple[str, str]]:
    """kube-state-metrics keeps a completed Job pod's requests; kube_pod_status_phase has one series per phase."""
    pods = {"node-0": ("Running", 2, 8e9), "node-1": ("Pending", 1, 4e9), "backup-job": ("Succeeded", 4, 16e9),
            "migrate": ("Failed", 2, 8e9)}
    world = []
    for pod, (phase, cpu, mem) in pods.items():
        base = f'job="kube-state-metrics", namespace="virtengine-mainnet", pod="{pod}"'
        world.append((f'kube_pod_container_resource_requests{{{base}, container="main", node="n1", resource="cpu", '
                      f'unit="core"}}', f"{cpu}x100"))
        world.append((f'kube_pod_container_resource_requests{{{base}, container="main", node="n1", resource="memory", '
                      f'unit="byte"}}', f"{mem:.0f}x100"))
        for p in ("Pending", "Running", "Succeeded", "Failed", "Unknown"):
            world.append((f'kube_pod_status_phase{{{base}, phase="{p}"}}', f"{int(p == phase)}x100"))
    world.append(('kube_node_status_allocatable{job="kube-state-metrics", node="n1", resource="cpu", unit="core"}',
                  "10x100"))
    world.append(('kube_node_status_allocatable{job="kube-state-metrics", node="n1", resource="memory", unit="byte"}',
                  "40000000000x100"))
    return world


@pytest.mark.parametrize("uid, title, legend_name, want", [
    ("k8s-cluster", "CPU requested", None, 0.3),
    ("k8s-cluster", "Memory requested", None, 0.3),
    ("k8s-cluster", "CPU used and requested", "requested", 3),
    ("k8s-cluster", "Memory used and requested", "requested", 12e9),
])
def test_requested_cpu_and_memory_leave_out_completed_pods(dashboards, uid, title, legend_name, want):
    p = panel(dashboards, uid, title)
    targets = [t for t in p["targets"] if legend_name is None or t.get("legendFormat") == legend_name]
    assert targets
    (result,) = evaluate([q(targets[0]["expr"])], _requests_world(), at="10m")
    assert len(result) == 1 and result[0][1] == pytest.approx(want), f"{title}: {result}, want {want}"


# --- no panel reads what nothing deploys -------------------------------------------------

# who produces each catalog source in an install of this chart beside kube-prometheus-stack
DEPLOYED_SOURCES = {
    "cometbft", "cosmos-sdk", "application", "provider-daemon", "ml-inference",    # scraped by this chart
    "node-exporter", "kube-state-metrics", "kubelet", "cadvisor", "prometheus", "alertmanager",  # kube-prometheus-stack
}


def test_every_metric_in_the_catalog_comes_from_something_an_install_runs(catalog):
    stray = sorted(f"{m.name} ({m.source})" for m in catalog.metrics.values() if m.source not in DEPLOYED_SOURCES)
    assert not stray, f"nothing here deploys the source of {stray}"


def test_no_panel_reads_a_metric_nothing_here_deploys(dashboards, catalog):
    for uid, dashboard in dashboards.items():
        for p in panels(dashboard):
            for t in p.get("targets", []):
                for name in metric_names(t["expr"]):
                    base = catalog.resolve(name)
                    if base:
                        assert catalog.metrics[base].source in DEPLOYED_SOURCES, f"{uid} {p['title']!r}: {name}"


def test_the_readme_dashboards_table_names_no_probe_panel():
    readme = (ROOT / "README.md").read_text()
    row = next(line for line in readme.splitlines() if line.startswith("| AC-1 network"))
    assert "Probe" not in row, row


# --- chain-level metrics are counted once, whatever the number of nodes -------------------

def _chain_world(metric: str, kind: str, nodes: int) -> list[tuple[str, str]]:
    labels = {"denom": MINOR, "result": "success", "module": "market", "tier": "2", "status": "verified",
              "window": "1d", "le": "+Inf"}
    extra = ", ".join(f'{k}="{v}"' for k, v in labels.items() if k != "le")
    world = []
    for i in range(nodes):
        base = (f'cluster="c1", namespace="virtengine-mainnet", chain_id="virtengine-1", instance="10.0.0.{i}:1317", '
                f'job="virtengine-app", {extra}')
        if kind == "histogram":
            for le in ("1", "10", "+Inf"):
                world.append((f'{metric}_bucket{{{base}, le="{le}"}}', "0+60x1500"))
            world += [(f"{metric}_count{{{base}}}", "0+60x1500"), (f"{metric}_sum{{{base}}}", "0+120x1500")]
        elif kind == "counter":
            world.append((f"{metric}{{{base}}}", "0+60x1500"))
        else:
            world.append((f"{metric}{{{base}}}", "40x1500"))
    return world


def chain_targets(dashboards, catalog):
    for uid, dashboard in sorted(dashboards.items()):
        for p in panels(dashboard):
            for t in p.get("targets", []):
                names = sources(t["expr"], catalog)
                chain = sorted(n for n in names if catalog.metrics[n].scope == "chain")
                if len(chain) == len(names) == 1:
                    yield uid, p, t, chain[0]


def test_the_catalog_marks_every_module_metric_as_chain_state(catalog):
    for m in catalog.metrics.values():
        if re.match(r"virtengine_(veid|market|escrow|tx)_", m.name):
            assert m.scope == "chain", f"{m.name}: every full node exports the same value"
    assert (ROOT / "docs/metrics.md").read_text().count("| chain |") >= 10


def test_every_panel_over_a_chain_metric_shows_the_same_with_one_or_three_nodes(dashboards, catalog):
    by_metric: dict[str, list] = {}
    for uid, p, t, metric in chain_targets(dashboards, catalog):
        by_metric.setdefault(metric, []).append((uid, p, t))

    def values(result):
        return sorted((tuple(sorted((k, v) for k, v in lab.items() if k != "instance")), round(v, 6))
                      for lab, v in result)
    checked = 0
    for metric, targets in sorted(by_metric.items()):
        kind = catalog.metrics[metric].type
        exprs = [q(t["expr"]) for _, _, t in targets]
        ones = evaluate(exprs, _chain_world(metric, kind, 1), at="1d", rules=rules_for(*exprs))
        threes = evaluate(exprs, _chain_world(metric, kind, 3), at="1d", rules=rules_for(*exprs))
        for (uid, p, _), one, three in zip(targets, ones, threes):
            assert values(one) == values(three), \
                f"{uid} {p['title']!r}: {metric} counted once per node: {one} vs {three}"
            checked += 1
    assert checked >= 20


def test_the_lint_refuses_a_sum_of_a_chain_metric_across_nodes(dashboards, catalog):
    chain = {m.name for m in catalog.metrics.values() if m.scope == "chain"}
    clean = dashboards["market-module"]
    assert dashlint.chain_problems(clean, chain) == []
    for expr in ('sum by (chain_id) (rate(virtengine_market_orders_created_total{chain_id=~"$chain_id"}[5m]))',
                 "sum(virtengine_market_orders_active)",
                 "sum(increase(virtengine_escrow_settled_amount_total[1d])) / 1e6"):
        bad = copy.deepcopy(clean)
        next(p for p in panels(bad) if p["type"] == "timeseries")["targets"][0]["expr"] = expr
        problems = dashlint.chain_problems(bad, chain)
        assert any("chainwide" in p for p in problems), f"{expr}: {problems}"


# --- bad input is named --------------------------------------------------------------------

BAD_SOURCES = [
    ("a denom without its exponent", "templates_src/metrics/application.yaml",
     "    exponent: 6\n", "    exponent: six\n", "denoms[0].exponent"),
    ("a module metric not marked chain state", "templates_src/metrics/application.yaml",
     "    source: application\n    scope: chain\n", "    source: application\n    scope: node\n",
     "virtengine_tx_total"),
    ("tokens() without the denom placeholder", "templates_src/dashboards/escrow-module.yaml.j2",
     '"max by (chain_id, denom) (virtengine_escrow_balance_total{" ~ CHAIN ~ "@DENOM@})"',
     '"max by (chain_id, denom) (virtengine_escrow_balance_total{" ~ CHAIN ~ "})"',
     "tokens_needs_the_placeholder_DENOM"),
    ("a panel summing a chain metric over nodes", "templates_src/dashboards/market-module.yaml.j2",
     '"max by (chain_id) (virtengine_market_orders_active{" ~ CHAIN ~ "})", "Orders waiting for bids."',
     '"sum(virtengine_market_orders_active{" ~ CHAIN ~ "})", "Orders waiting for bids."',
     "use the chainwide macro"),
]


@pytest.mark.parametrize("name, path, old, new, says", BAD_SOURCES, ids=[b[0] for b in BAD_SOURCES])
def test_a_bad_catalog_or_dashboard_source_fails_the_render_by_name(tmp_path, name, path, old, new, says):
    import shutil

    from conftest import run_generator
    for folder in ("templates_src", "values"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    target = tmp_path / path
    text = target.read_text()
    assert old in text, f"{name}: the source changed; update the planted fault"
    target.write_text(text.replace(old, new, 1))
    proc = run_generator(tmp_path, "render")
    assert proc.returncode == 1, proc.stdout
    assert says in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


# --- bucket bounds in both spellings ------------------------------------------------------

# a bucket bound selected on raw buckets or on recorded bucket rates (level:metric_bucket:rate5m)
_LE = re.compile(r'(?:\w+:)?(\w+)_bucket(?::\w+)?\{[^}]*\ble\s*=~?\s*"')


def _bucket_world(metric: str, spelling: str) -> list[tuple[str, str]]:
    """Prometheus 2 stores a whole-number bound as le="10", Prometheus 3 as le="10.0" (world fact 5)."""
    world = []
    for i in range(2):
        base = (f'cluster="c1", namespace="virtengine-mainnet", chain_id="virtengine-1", instance="10.0.0.{i}:1317", '
                f'job="virtengine-app"')
        for le, per_min in (("1", 30), ("5", 50), ("10", 58), ("30", 60), ("+Inf", 60)):
            if spelling == "prom3" and le != "+Inf":
                le = f"{float(le)}"
            world.append((f'{metric}_bucket{{{base}, le="{le}"}}', f"0+{per_min}x200"))
        world += [(f"{metric}_count{{{base}}}", "0+60x200"), (f"{metric}_sum{{{base}}}", "0+240x200")]
    return world


def test_every_panel_selecting_a_bucket_bound_reads_prometheus_2_and_3_alike(dashboards):
    checked = 0
    for uid, dashboard in sorted(dashboards.items()):
        for p in panels(dashboard):
            for t in p.get("targets", []):
                for metric in set(_LE.findall(t["expr"])):
                    (two,) = evaluate([q(t["expr"])], _bucket_world(metric, "prom2"), at="2h", rules=rules_for(t["expr"]))
                    (three,) = evaluate([q(t["expr"])], _bucket_world(metric, "prom3"), at="2h", rules=rules_for(t["expr"]))
                    assert two, f"{uid} {p['title']!r}: no data on Prometheus 2 spellings"
                    assert three == two, f"{uid} {p['title']!r}: Prometheus 3 (le=\"10.0\") gives {three}, 2 gives {two}"
                    checked += 1
    assert checked >= 1
