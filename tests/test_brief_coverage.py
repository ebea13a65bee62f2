"""The brief's required panels and alerts, as tables, against what the chart renders.

The tables are written here from the brief (``../shared/spec/production-metrics-dashboards.md``:
its dashboard JSON, its alert YAML and its acceptance criteria AC-1 to AC-4), not from the
content: a panel deleted or pointed at another metric, or an alert deleted together with its
promtool cases, fails here. Golden files are not involved (``--update-golden`` cannot erase
this). Dashboards are read from ``chart/files/dashboards`` (what the chart ships); alerts and
recording rules from ``helm template`` of the chart (Helm 3 and 4). A panel that reads a
recording rule reads the metrics of that rule's expression (followed through the rendered
recording rules), so renaming a recording rule does not break the table, pointing it at
another metric does.
"""
from __future__ import annotations

import copy
import re

import pytest

from conftest import HELM_MAJORS, ROOT
from generator import dashlint
from generator.promql import metric_names

# brief item -> (dashboard uid, panel title, metrics its queries must read). A metric ending in
# `*` is a prefix (any metric of that module).
PANELS = [
    # the brief's virtengine-overview.json
    ("Network Status (block height)", "virtengine-overview", "Block height", ["cometbft_consensus_height"]),
    ("Active Validators", "virtengine-overview", "Voting power online",
     ["cometbft_consensus_missing_validators_power", "cometbft_consensus_validators_power"]),
    ("Transaction Throughput", "transactions", "Transactions per second by module", ["virtengine_tx_total"]),
    ("Transaction Throughput (CometBFT)", "transactions", "Committed transactions per second (CometBFT)",
     ["cometbft_consensus_total_txs"]),
    ("Block Time", "virtengine-overview", "Block time p50 and p99",
     ["cometbft_consensus_block_interval_seconds_bucket"]),
    ("VEID Submissions", "veid-module", "Submissions and verifications per hour",
     ["virtengine_veid_submissions_total", "virtengine_veid_verifications_total"]),
    ("Market Orders", "market-module", "Open orders and active leases",
     ["virtengine_market_orders_active", "virtengine_market_leases_active"]),
    ("Escrow Balance", "escrow-module", "Escrow balance", ["virtengine_escrow_balance_total"]),
    # the brief's provider-daemon.json
    ("Active Providers", "provider-daemon", "Active providers", ["virtengine_provider_status"]),
    ("Bid Success Rate", "provider-daemon", "Bid success rate (1h)",
     ["virtengine_provider_bids_won_total", "virtengine_provider_bids_total"]),
    ("Workload Status", "provider-daemon", "Workload status", ["virtengine_provider_workloads"]),
    ("Resource Utilization - CPU", "provider-daemon", "Resource utilization - CPU",
     ["virtengine_provider_cpu_utilization"]),
    ("Resource Utilization - Memory", "provider-daemon", "Resource utilization - Memory",
     ["virtengine_provider_memory_utilization"]),
    ("Lease Operations Latency", "provider-daemon", "Lease operations latency",
     ["virtengine_provider_lease_operation_seconds_bucket"]),
    # the brief's business-metrics.json (DAU from the exported gauge, not a per-user counter)
    ("Daily Active Users", "business-metrics", "Daily active users", ["virtengine_active_users"]),
    ("VEID Verifications by Tier", "business-metrics", "VEID verifications by tier", ["virtengine_veid_verified_total"]),
    ("New Verifications (24h)", "business-metrics", "New verifications (24h)", ["virtengine_veid_verified_total"]),
    ("Order Volume", "business-metrics", "Order volume",
     ["virtengine_market_orders_created_total", "virtengine_market_orders_matched_total"]),
    ("Total Value Locked", "business-metrics", "Total value locked", ["virtengine_escrow_balance_total"]),
    ("Revenue (Settlements)", "business-metrics", "Revenue (settlements)", ["virtengine_escrow_settled_amount_total"]),
    # AC-1 infrastructure
    ("AC-1 cluster overview: nodes", "k8s-cluster", "Nodes not ready", ["kube_node_status_condition"]),
    ("AC-1 cluster overview: CPU requested", "k8s-cluster", "CPU requested",
     ["kube_pod_container_resource_requests", "kube_node_status_allocatable"]),
    ("AC-1 node health", "k8s-nodes", "CPU utilisation", ["node_cpu_seconds_total"]),
    ("AC-1 node memory", "k8s-nodes", "Memory utilisation",
     ["node_memory_MemAvailable_bytes", "node_memory_MemTotal_bytes"]),
    ("AC-1 pod status", "k8s-pods", "Pods by phase", ["kube_pod_status_phase"]),
    ("AC-1 pod restarts", "k8s-pods", "Restarts (1h)", ["kube_pod_container_status_restarts_total"]),
    ("AC-1 network I/O", "k8s-network", "Received by node", ["node_network_receive_bytes_total"]),
    ("AC-1 network latency", "k8s-network", "TCP retransmits by node", ["node_netstat_Tcp_RetransSegs"]),
    ("AC-1 storage", "k8s-storage", "Volume usage",
     ["kubelet_volume_stats_available_bytes", "kubelet_volume_stats_capacity_bytes"]),
    # AC-2 application
    ("AC-2 sync lag", "virtengine-overview", "Sync lag behind the highest node", ["cometbft_consensus_height"]),
    ("AC-2 transaction latency", "transactions", "Inclusion latency p50, p95, p99",
     ["virtengine_tx_latency_seconds_bucket"]),
    ("AC-2 VEID queue", "veid-module", "Pending verifications", ["virtengine_veid_pending_verifications"]),
    # judged per order by outcome (matched within the SLA out of orders resolved), not matched over created
    ("AC-2 market matching", "market-module", "Match ratio (1h)", ["virtengine_market_orders_resolved_total"]),
    ("AC-2 escrow settlements", "escrow-module", "Settlements per hour by result",
     ["virtengine_escrow_settlements_total"]),
    ("AC-2 ML requests", "ml-inference", "Requests per second", ["virtengine_ml_inference_requests_total"]),
    ("AC-2 ML latency", "ml-inference", "Latency p50 and p99 by model",
     ["virtengine_ml_inference_duration_seconds_bucket"]),
    ("AC-2 ML timeouts", "ml-inference", "Timeouts per second", ["virtengine_ml_inference_timeout_total"]),
    # AC-3 business
    ("AC-3 order value", "business-metrics", "Order value", ["virtengine_market_order_value_total"]),
    ("AC-3 provider utilization", "business-metrics", "Provider utilization rates",
     ["virtengine_provider_cpu_utilization", "virtengine_provider_memory_utilization"]),
    ("AC-3 SLA: VEID response time budget", "sla-compliance", "Error budget remaining: veid_response_time",
     ["virtengine_veid_submission_seconds*"]),
    ("AC-3 SLA: order matching budget", "sla-compliance", "Error budget remaining: order_matching",
     ["virtengine_market_*"]),
    ("AC-3 SLA: VEID burn rate", "sla-compliance", "Burn rate (1h): veid_response_time",
     ["virtengine_veid_submission_seconds*"]),
]

# brief alert -> (severities allowed, metrics its expression must read). Severity follows the brief
# except where it would page on noise: EscrowBalanceLow is a per-denom warning (a low secondary
# denom must not page) and failing settlements page instead (EscrowSettlementsFailing); the SLO
# alerts page (multi-window burn rate, the brief's "SLA breach risk").
ALERTS = {
    "ConsensusStalled": ({"critical"}, ["cometbft_consensus_height"]),
    "ValidatorDown": ({"critical"}, ["cometbft_consensus_*"]),
    "EscrowBalanceLow": ({"warning"}, ["virtengine_escrow_balance_total"]),
    "EscrowSettlementsFailing": ({"critical"}, ["virtengine_escrow_settlements_total"]),
    "HighTransactionLatency": ({"warning"}, ["virtengine_tx_latency_seconds*"]),
    "VEIDVerificationQueue": ({"warning"}, ["virtengine_veid_pending_verifications"]),
    "ProviderHighFailureRate": ({"warning"}, ["virtengine_provider_workload_failures_total"]),
    "MLInferenceTimeout": ({"warning"}, ["virtengine_ml_inference_timeout_total"]),
    "SLOVEIDResponseTime": ({"critical"}, ["virtengine_veid_submission_seconds*"]),
    "SLOOrderMatchingSuccess": ({"critical"}, ["virtengine_market_*"]),
    # AC-4 categories: service down, resource pressure, SLA breach risk (ticket)
    "VirtEngineNodesDown": ({"critical"}, ["up"]),
    "NodeMemoryHighUtilization": ({"warning"}, ["node_memory_*"]),
    "SLOVEIDResponseTimeBudgetBurn": ({"warning"}, ["virtengine_veid_submission_seconds*"]),
    "SLOOrderMatchingSuccessBudgetBurn": ({"warning"}, ["virtengine_market_*"]),
}


def rules_of(docs: list[dict]) -> tuple[dict[str, dict], dict[str, list[str]]]:
    """(alerts by name, recording rule name -> expressions) of the rendered PrometheusRules."""
    alerts, records = {}, {}
    for d in docs:
        if d["kind"] != "PrometheusRule":
            continue
        for group in d["spec"]["groups"]:
            for rule in group["rules"]:
                if "alert" in rule:
                    alerts[rule["alert"]] = rule
                else:
                    records.setdefault(rule["record"], []).append(rule["expr"])
    return alerts, records


def reads(expr: str, records: dict[str, list[str]], seen: frozenset = frozenset()) -> set[str]:
    """The metrics an expression reads, through the recording rules it uses."""
    out = set()
    for name in metric_names(expr):
        if name in records and name not in seen:
            for e in records[name]:
                out |= reads(e, records, seen | {name})
        out.add(name)
    return out


def _has(read: set[str], want: str) -> bool:
    return any(r.startswith(want[:-1]) for r in read) if want.endswith("*") else want in read


def panel_problems(dashboards: dict, records: dict) -> list[str]:
    problems = []
    for item, uid, title, metrics in PANELS:
        if uid not in dashboards:
            problems.append(f"{item}: dashboard {uid} is not shipped")
            continue
        found = [p for p in dashlint._panels(dashboards[uid]) if p.get("title") == title and p.get("type") != "row"]
        if not found:
            problems.append(f"{item}: {uid} has no panel {title!r}")
            continue
        for p in found:   # every panel of that title (a stat and its timeseries may share one)
            read = set().union(set(), *(reads(t.get("expr", ""), records) for t in p.get("targets", [])))
            missing = [m for m in metrics if not _has(read, m)]
            if missing:
                problems.append(f"{item}: {uid} {title!r} ({p.get('type')}) reads {sorted(read)}, not {missing}")
    return problems


def alert_problems(docs: list[dict]) -> list[str]:
    alerts, records = rules_of(docs)
    problems = []
    for name, (severities, metrics) in ALERTS.items():
        rule = alerts.get(name)
        if rule is None:
            problems.append(f"{name}: not in the rendered rules")
            continue
        severity = rule.get("labels", {}).get("severity")
        if severity not in severities:
            problems.append(f"{name}: severity {severity!r}, the brief wants {sorted(severities)}")
        notes = rule.get("annotations", {})
        runbook = notes.get("runbook_url", "")
        if not runbook.endswith(f"/{name}.md") or not (ROOT / "docs" / "runbooks" / f"{name}.md").is_file():
            problems.append(f"{name}: runbook_url {runbook!r} does not lead to docs/runbooks/{name}.md")
        for key in ("summary", "description", "dashboard_url"):
            if not notes.get(key):
                problems.append(f"{name}: no {key}")
        read = reads(rule["expr"], records)
        missing = [m for m in metrics if not _has(read, m)]
        if missing:
            problems.append(f"{name}: expression reads {sorted(read)}, not {missing}")
    return problems


@pytest.fixture(scope="module")
def dashboards() -> dict:
    return dashlint.load_chart_dashboards(ROOT / "chart")


@pytest.mark.parametrize("major", HELM_MAJORS)
def test_every_brief_panel_is_shipped_and_reads_its_metric(rendered, dashboards, major):
    _, records = rules_of(rendered[("prod", major)])
    assert panel_problems(dashboards, records) == []


@pytest.mark.parametrize("major", HELM_MAJORS)
def test_every_brief_alert_is_rendered_with_severity_runbook_and_its_metric(rendered, major):
    assert alert_problems(rendered[("prod", major)]) == []


def test_the_panel_table_covers_every_dashboard_of_the_brief():
    brief = (ROOT.parent / "shared/spec/production-metrics-dashboards.md")
    text = brief.read_text() if brief.is_file() else ""
    named = set(re.findall(r'"uid": "([a-z-]+)"', text)) | set(re.findall(r'"title": "([^"]+)",\s*\n\s*"uid"', text))
    uids = {uid for _, uid, _, _ in PANELS}
    assert {"virtengine-overview", "provider-daemon", "business-metrics", "veid-module", "market-module",
            "escrow-module", "ml-inference", "sla-compliance", "transactions"} <= uids
    assert {u for u in named if re.match(r"^[a-z-]+$", u)} <= uids


# the tables fail when the content drifts: shown on planted copies

def test_a_deleted_brief_panel_is_reported(rendered, dashboards):
    _, records = rules_of(rendered[("prod", 3)])
    bad = copy.deepcopy(dashboards)
    bad["provider-daemon"]["panels"] = [p for p in bad["provider-daemon"]["panels"]
                                        if p.get("title") != "Workload status"]
    assert any("Workload Status" in p and "no panel" in p for p in panel_problems(bad, records))


def test_a_brief_panel_pointed_at_another_metric_is_reported(rendered, dashboards):
    _, records = rules_of(rendered[("prod", 3)])
    bad = copy.deepcopy(dashboards)
    p = next(p for p in dashlint._panels(bad["escrow-module"]) if p.get("title") == "Escrow balance")
    for t in p["targets"]:
        t["expr"] = t["expr"].replace("virtengine_escrow_balance_total", "virtengine_escrow_deposits_total")
    assert any("Escrow Balance" in x and "virtengine_escrow_balance_total" in x for x in panel_problems(bad, records))


def test_an_alert_deleted_with_its_test_cases_is_reported(rendered):
    docs = copy.deepcopy(rendered[("prod", 3)])
    for d in docs:
        if d["kind"] == "PrometheusRule":
            for g in d["spec"]["groups"]:
                g["rules"] = [r for r in g["rules"] if r.get("alert") != "MLInferenceTimeout"]
    assert "MLInferenceTimeout: not in the rendered rules" in alert_problems(docs)


def test_an_alert_with_a_lowered_severity_or_no_runbook_is_reported(rendered):
    docs = copy.deepcopy(rendered[("prod", 3)])
    for d in docs:
        if d["kind"] == "PrometheusRule":
            for g in d["spec"]["groups"]:
                for r in g["rules"]:
                    if r.get("alert") == "ConsensusStalled":
                        r["labels"]["severity"] = "warning"
                    if r.get("alert") == "ValidatorDown":
                        del r["annotations"]["runbook_url"]
    problems = alert_problems(docs)
    assert any(p.startswith("ConsensusStalled: severity 'warning'") for p in problems), problems
    assert any(p.startswith("ValidatorDown: runbook_url") for p in problems), problems
