"""What keeps the rules and the heaviest panels cheap as the fleet grows (issue 16, bench/run's fleet sizes).

A query that rates raw per-node histogram buckets or counters over a long range costs in proportion to the
nodes times the range, on every evaluation or every dashboard load. These checks read what the chart ships
(chart/files/rules, chart/files/dashboards) and name the rule or panel that went back to the raw form:

- the SLO error ratios over every window longer than 5m (30m to 3d, and the error budget) sum the recorded 5m
  errors and events (one series per cluster), not every node's counters again;
- chain-state histograms are deduplicated once per evaluation: the transaction latency quantiles read the
  recorded per-chain bucket rate, recorded earlier in the same group;
- the ABCI and block processing p99 panels and the transaction latency panels read their recording rules.

That the recorded forms mean the same as the raw ones is shown by promtool on world-shaped input
(tests/rules/slo.test.yaml, tests/rules/recording-histograms.test.yaml).
"""
from __future__ import annotations

import json
import re

import pytest

from conftest import ROOT
from generator import dashlint, promql
from generator.promql import metric_names

RULES = ROOT / "chart" / "files" / "rules"
# panels whose raw form scans per-node histogram buckets over the whole time range
RECORDED_PANELS = {
    ("virtengine-node", "ABCI method time p99"),
    ("virtengine-node", "Block processing time p99"),
    ("transactions", "Inclusion latency p50, p95, p99"),
    ("transactions", "Inclusion latency p99"),
}


def rule_groups() -> list[dict]:
    groups = []
    for path in sorted(RULES.glob("*.json")):
        data = json.loads(path.read_text())
        groups += data.get("groups", [data]) if isinstance(data, dict) else data
    return groups


def recorded_names() -> set[str]:
    return {r["record"] for g in rule_groups() for r in g["rules"] if "record" in r}


def test_slo_long_windows_sum_recorded_series_instead_of_rating_every_node():
    slo_groups = [g for g in rule_groups() if g["name"].startswith("virtengine.slo.")]
    assert slo_groups, "no SLO rule groups rendered"
    records = recorded_names()
    problems = []
    for group in slo_groups:
        order = [r.get("record") for r in group["rules"]]
        for name in [f"slo:sli_error:ratio_rate{w}" for w in ("30m", "1h", "2h", "6h", "1d", "3d")] \
                + ["slo:error_budget_remaining:ratio"]:
            rule = next((r for r in group["rules"] if r.get("record") == name), None)
            if rule is None:
                problems.append(f"{group['name']}: no {name}")
                continue
            raw = sorted(metric_names(rule["expr"]) - records)
            if raw:
                problems.append(f"{group['name']}: {name} reads raw series {raw}")
            # rules of a group run in order: the recorded 5m series must be written before they are summed
            for source in ("slo:sli_total:rate5m", "slo:sli_errors:rate5m"):
                if source in metric_names(rule["expr"]) and order.index(source) > order.index(name):
                    problems.append(f"{group['name']}: {name} reads {source}, recorded after it")
    assert problems == []


TX_QUANTILES = ("cluster_chain:virtengine_tx_latency_seconds:p99_rate5m",
                "cluster:virtengine_tx_latency_seconds:p99_rate5m", "cluster:virtengine_tx_latency_seconds:p50_rate5m")
TX_BUCKETS = "cluster_namespace_chain:virtengine_tx_latency_seconds_bucket:rate5m"


@pytest.mark.parametrize("record", TX_QUANTILES)
def test_tx_latency_quantiles_read_the_recorded_chain_buckets_of_the_same_group(record):
    group = next(g for g in rule_groups() if any(r.get("record") == record for r in g["rules"]))
    order = [r.get("record") for r in group["rules"]]
    rule = group["rules"][order.index(record)]
    assert metric_names(rule["expr"]) == {TX_BUCKETS}, f"{record} reads {sorted(metric_names(rule['expr']))}"
    # a later rule of the group sees an earlier rule's samples of the same evaluation: no interval of lag
    assert TX_BUCKETS in order and order.index(TX_BUCKETS) < order.index(record), \
        f"{TX_BUCKETS} is not recorded before {record} in {group['name']}"


def test_day_long_target_guards_read_the_recorded_namespaces_not_every_target():
    # present_over_time over a day of raw `up` reads every target's day of samples on every evaluation
    problems = [f"{g['name']}: {r.get('alert') or r.get('record')}" for g in rule_groups() for r in g["rules"]
                if re.search(r"present_over_time\(\s*up\b", r["expr"])]
    assert problems == []


def test_heavy_panels_read_recording_rules_not_raw_buckets():
    dashboards = dashlint.load_chart_dashboards(ROOT / "chart")
    records = recorded_names()
    found, problems = set(), []
    for uid, board in dashboards.items():
        for panel in dashlint._panels(board):
            key = (uid, panel.get("title"))
            if key not in RECORDED_PANELS:
                continue
            found.add(key)
            for target in panel.get("targets") or []:
                names = metric_names(target.get("expr", ""))
                raw = sorted(n for n in names if n.endswith("_bucket"))
                if raw or not names & records:
                    problems.append(f"{uid} / {panel.get('title')}: reads {sorted(names)}")
    assert found == RECORDED_PANELS, f"panels not found: {sorted(RECORDED_PANELS - found)}"
    assert problems == []


@pytest.mark.parametrize("record", [
    "instance_method:cometbft_abci_connection_method_timing_seconds:p99_rate5m",
    "instance:cometbft_state_block_processing_time:p99_rate5m",
    "cluster_namespace_chain:virtengine_tx_latency_seconds_bucket:rate5m",
])
def test_recorded_histograms_keep_the_labels_the_panels_select_on(record):
    rule = next(r for g in rule_groups() for r in g["rules"] if r.get("record") == record)
    for label in ("cluster", "namespace", "chain_id"):
        assert label in rule["expr"].split("sum by (")[1].split(")")[0], f"{record} drops {label}"


# recording rules that read a series recorded by another group (one evaluation interval behind it), with the
# reason that lag is acceptable; every other recording rule reading a record reads one recorded before it in its
# own group (same evaluation)
CROSS_GROUP_RECORDS: dict[str, str] = {}


def test_a_recording_rule_reading_a_record_reads_it_from_earlier_in_its_own_group():
    """Rule groups are split small (one module or dashboard family each); a split must not leave a rule reading
    a record of another group (evaluated on its own timer: a sample up to one interval old, in promtool in no
    fixed order) unless listed above with its reason."""
    groups = rule_groups()
    producers: dict[str, set[str]] = {}    # a record name can be written by several groups (the SLOs, by label)
    for g in groups:
        for r in g["rules"]:
            if "record" in r:
                producers.setdefault(r["record"], set()).add(g["name"])
    problems, checked = [], 0
    for group in groups:
        order = [r.get("record") for r in group["rules"]]
        for i, rule in enumerate(group["rules"]):
            if "record" not in rule:
                continue
            for name in sorted(metric_names(rule["expr"]) & set(producers)):
                checked += 1
                if group["name"] not in producers[name]:
                    if rule["record"] not in CROSS_GROUP_RECORDS:
                        problems.append(f"{group['name']}: {rule['record']} reads {name} of "
                                        f"{', '.join(sorted(producers[name]))}")
                elif order.index(name) > i:
                    problems.append(f"{group['name']}: {rule['record']} reads {name}, recorded after it")
    assert checked and problems == []


def test_every_rule_group_stays_small():
    # the lint's limit is 20; the recording groups that read raw per-node series stay well under it
    sizes = {g["name"]: len(g["rules"]) for g in rule_groups() if g["name"].startswith("virtengine.recording.")}
    assert sizes and max(sizes.values()) <= 10, sizes


# --- the per-node dashboard: opens on one node, reads the selected nodes' series only -------------------------

NODE_DASHBOARD = "virtengine-node"
# query variables that do not default to All, each with why: a per-node drill-down opens on one node (Grafana
# selects the first node of the query), so opening it costs one node's queries whatever the fleet's size
ONE_VALUE_VARIABLES = {(NODE_DASHBOARD, "instance"): "per-node drill-down, opens on the first node"}


def test_query_variables_default_to_all_but_the_per_node_ones():
    problems = []
    for uid, board in dashlint.load_chart_dashboards(ROOT / "chart").items():
        for var in board["templating"]["list"]:
            if var.get("type") != "query":
                continue
            value = (var.get("current") or {}).get("value")
            is_all = bool(var.get("includeAll")) and value in ("$__all", ["$__all"]) and var.get("allValue") == ".*"
            if (uid, var["name"]) in ONE_VALUE_VARIABLES:
                if var.get("includeAll") or value not in ("", None, []):
                    problems.append(f"{uid} ${var['name']}: must open on the first value (no All, no saved value)")
            elif not is_all:
                problems.append(f"{uid} ${var['name']}: does not default to All (.*)")
    assert problems == []


def test_the_node_dashboard_reads_the_selected_nodes_only():
    """Every series the node dashboard selects is narrowed to the selected nodes ($instance) or their pods
    ($pod); comparing a node with the rest of its chain reads the recorded per-node lag, not every node's
    height."""
    board = dashlint.load_chart_dashboards(ROOT / "chart")[NODE_DASHBOARD]
    problems, count = [], 0
    for panel in dashlint._panels(board):
        for target in panel.get("targets") or []:
            expr = target.get("expr")
            if not expr:
                continue
            for selector in promql.parse(promql.substitute(expr)).tree.find("VectorSelector"):
                count += 1
                text = expr[selector.start:selector.end]
                if 'instance=~"$instance"' not in text and 'pod=~"$pod"' not in text:
                    problems.append(f"{panel.get('title')}: {text}")
    assert count > 20 and problems == []


def _seconds(text: str) -> int:
    m = re.fullmatch(r"(\d+)([smhd])", text)
    assert m, f"step {text!r} is not a whole number of s, m, h or d"
    return int(m.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]


def test_panels_of_recorded_five_minute_rates_step_by_a_minute_at_least_and_skip_no_window():
    """A recorded 5m rate (evaluated every 30 s by default) moves little within a minute: a panel whose queries all
    read one steps by 1m at least, half the points Grafana's 30 s step over 6 h would compute. A step over the 5m
    window (daily bars) goes with queries whose range covers the step, so no event falls between two points."""
    records = {r for r in recorded_names() if r.endswith(":rate5m")}
    seen = 0
    problems = []
    for path in sorted((ROOT / "chart" / "files" / "dashboards").glob("*.json")):
        board = json.loads(path.read_text())
        for panel in dashlint._panels(board):
            exprs = [t.get("expr", "") for t in panel.get("targets") or [] if t.get("expr")]
            if not exprs or panel.get("type") not in ("timeseries", "heatmap"):
                continue
            if not all(metric_names(e) and metric_names(e) <= records for e in exprs):
                continue
            seen += 1
            steps = {panel.get("interval")} | {t.get("interval") for t in panel["targets"]}
            ranges = [min((_seconds(r) for r in re.findall(r"\[(\d+[smhd])\]", e)), default=300) for e in exprs]
            if None in steps or not all(60 <= _seconds(s) <= max(300, min(ranges)) for s in steps):
                problems.append(f"{path.stem} / {panel.get('title')}: steps {sorted(map(str, steps))}")
    assert seen >= 10, f"only {seen} panels read recorded 5m rates only: the test lost its subject"
    assert problems == []
