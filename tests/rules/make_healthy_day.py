"""Writes tests/rules/healthy-day.test.yaml (stdout); argument (optional): the alert names, comma-separated.

Usage: python tests/rules/make_healthy_day.py [ALERT,ALERT,...] > tests/rules/healthy-day.test.yaml
(without an argument: every alert the chart renders, from chart/files/rules/*.json, but the Watchdog).

24 hours of one healthy cluster, following docs/world-model.md:
- a chain of 6-second blocks seen by three nodes with roles (validator behind sentries: 2-4 peers; sentry and
  full node: many); the missing voting power of each block's LastCommit is the same on every node and stays
  under 1/3 (a blip to 20% at 12:00);
- node-1 restarts at 06:00: two scrapes fail (up 0, no samples), then it block-syncs for a minute (consensus
  height held at its start-up value, blocksync height rising, commit gauges absent), its counters start
  again from zero;
- module metrics (VEID, market, escrow, tx) are chain state: every node's API target serves the same value;
- transactions wait for the next block: latency spread over the block interval (p50 about half of it);
- a burst of orders at 18:00, each matched ten minutes later;
- one bad minute at 12:00 (slow transactions and VEID answers, mempool and queue spikes, a rule failure,
  a failed notification, ML timeouts, CPU spike).
Two tests: the day as Prometheus 2 stores it (le="10", cluster on every series) and as kube-prometheus-stack
stores it today (Prometheus 3: le="10.0"; the series it scrapes itself carry no cluster label).
Nothing may fire but the Watchdog; the blips must at least reach pending, so the day really tested the alerts.
"""
import json
import random
import sys
from pathlib import Path

N = 1440        # minutes
RESTART = 360   # node-1 goes away at 06:00: scrapes at 360 and 361 fail, 362 finds it block-syncing
BLIP = 720      # 12:00: one bad minute everywhere
BURST = 1080    # 18:00: ten minutes of ten times the usual orders, matched ten minutes later
BLOCKS = 10     # blocks a minute (6 s)
NODES = (("node-0", "validator"), ("node-1", "sentry"), ("node-2", "full"))
VALIDATOR = "A1B2C3D4E5F60718293A4B5C6D7E8F9012345678"


def compress(values) -> str:
    """promtool's expanding notation for a list of per-minute values (None: no sample)."""
    out, i = [], 0
    while i < len(values):
        v = values[i]
        if v is None:
            j = i
            while j + 1 < len(values) and values[j + 1] is None:
                j += 1
            out.append("_" if j == i else f"_x{j - i + 1}")
            i = j + 1
            continue
        j, step = i, None
        while j + 1 < len(values) and values[j + 1] is not None:
            d = round(values[j + 1] - values[j], 6)
            if step is None:
                step = d
            elif d != step:
                break
            j += 1
        if j == i:
            out.append(f"{v:g}")
        else:
            step = round(step, 6)
            sign = "+" if step >= 0 else "-"
            out.append(f"{v:g}{sign}{abs(step):g}x{j - i}")
        i = j + 1
    return " ".join(out)


def rates(rate, jitter=0.1, seg=30):
    """Per-minute increments: piecewise-constant rates with jitter."""
    out = []
    while len(out) < N:
        r = round(rate * (1 + random.uniform(-jitter, jitter)), 3)
        out += [r] * min(seg, N - len(out))
    return out


def cumulate(incs, start=0.0):
    v, out = start, [start]
    for d in incs:
        v = round(v + d, 6)
        out.append(v)
    return out


def counter(rate, jitter=0.1, blip=None, start=0.0):
    incs = rates(rate, jitter)
    if blip:
        incs[blip[0] - 1] += blip[1]
    return cumulate(incs, start)


def gauge(lo, hi, blip=None):
    vals = [random.randint(lo, hi) if isinstance(lo, int) else float(f"{random.uniform(lo, hi):.4g}")
            for _ in range(N + 1)]
    if blip:
        vals[blip[0]] = blip[1]
    return vals


def const(v):
    return [v] * (N + 1)


def restarted(values, *, counter=False, absent_while_syncing=False):
    """node-1's copy of a series: no sample while it is away; a counter starts again from zero."""
    out = list(values)
    out[RESTART] = out[RESTART + 1] = None
    if absent_while_syncing:
        out[RESTART + 2] = None
    if counter:
        base = values[RESTART + 2] - (values[RESTART + 3] - values[RESTART + 2])
        for m in range(RESTART + 2, N + 1):
            out[m] = round(values[m] - base, 6)
    return out


def day(style: str):
    """The series of one day: [(name, labels, values)]; style "prom2" or "prom3"."""
    random.seed(31)
    S = []
    infra_cluster = {"cluster": "c1"} if style == "prom2" else {}   # kube-prometheus-stack's own scrapes

    def le(x: float) -> str:
        if x == float("inf"):
            return "+Inf"
        text = f"{x:g}"
        return text + ".0" if style == "prom3" and "." not in text and "e" not in text else text

    def s(name, labels, values):
        S.append((name, labels, values))

    c = {"cluster": "c1"}
    head = [1000 + BLOCKS * m for m in range(N + 1)]
    # the LastCommit of each block is part of the block: every node reports the same missing power
    missing = gauge(0, 2, blip=(BLIP, 20))
    interval_count = counter(BLOCKS, 0.02)
    interval_sum = [round(v * 6.0, 3) for v in interval_count]
    for i, (pod, role) in enumerate(NODES):
        target = {**c, "job": "cometbft", "namespace": "virtengine", "pod": pod, "role": role,
                  "instance": f"10.0.0.{i + 1}:26660"}
        node = {**c, "chain_id": "virtengine-1", "namespace": "virtengine", "pod": pod, "role": role}
        one = i == 1
        up = const(1)
        if one:
            up[RESTART] = up[RESTART + 1] = 0
        s("up", target, up)
        height = list(head)
        syncing = const(0)
        synced = const(1000)   # blocksync ran at start-up, before the day
        if one:
            # back at 362 with its stored height (last block before it went away + 1), block-syncing
            height = restarted(head)
            height[RESTART + 2] = head[RESTART - 1]
            syncing = restarted(syncing)
            syncing[RESTART + 2] = 1
            synced = restarted(synced)
            for m in range(RESTART + 2, N + 1):
                synced[m] = head[RESTART + 2] - 5 if m == RESTART + 2 else head[RESTART + 3] - 1
        s("cometbft_consensus_height", node, height)
        s("cometbft_blocksync_syncing", node, syncing)
        s("cometbft_blocksync_latest_block_height", node, synced)
        s("cometbft_consensus_validators_power", node,
          restarted(const(100), absent_while_syncing=True) if one else const(100))
        s("cometbft_consensus_missing_validators_power", node,
          restarted(missing, absent_while_syncing=True) if one else missing)
        s("cometbft_consensus_block_interval_seconds_count", node,
          restarted(interval_count, counter=True) if one else interval_count)
        s("cometbft_consensus_block_interval_seconds_sum", node,
          restarted(interval_sum, counter=True) if one else interval_sum)
        peers = const(2) if role == "validator" else gauge(20, 40)   # a validator talks to its two sentries
        s("cometbft_p2p_peers", node, restarted(peers) if one else peers)
        mempool = gauge(50, 300, blip=(BLIP, 4500))
        s("cometbft_mempool_size", node, restarted(mempool) if one else mempool)
        if role == "validator":
            own = {**node, "validator_address": VALIDATOR}
            s("cometbft_consensus_validator_last_signed_height", own, [h - 1 for h in head])
            # a validator misses a block now and then: 3 since its process started, one more at 15:00
            s("cometbft_consensus_validator_missed_blocks", own, [3 + (m >= 900) for m in range(N + 1)])

    # chain state, the same on every node's API target (fact 4); node-1's target is away with its pod
    chain = {}

    def app(name, extra, values):
        chain[(name, tuple(extra.items()))] = values

    # transactions wait for the next 6 s block: 10% within 1 s, 35% within 2.5 s, 78% within 5 s, all within 10 s;
    # at 12:00 ten more transactions take between 10 and 30 s (a few blocks)
    for bound, share in ((1, 0.1), (2.5, 0.35), (5, 0.78), (10, 1.0), (30, 1.0), (60, 1.0), (float("inf"), 1.0)):
        app("virtengine_tx_latency_seconds_bucket", {"module": "market", "le": le(bound)},
            counter(10 * share, 0.0, blip=(BLIP, 0 if bound < 30 else 10)))
    app("virtengine_veid_pending_verifications", {}, gauge(10, 40, blip=(BLIP, 500)))
    app("virtengine_veid_submission_seconds_count", {}, counter(100, 0.0))
    app("virtengine_veid_submission_seconds_bucket", {"le": le(10)}, counter(99.5, 0.0, blip=(BLIP, -99.5)))
    app("virtengine_veid_submission_seconds_bucket", {"le": "+Inf"}, counter(100, 0.0))
    app("virtengine_veid_submissions_total", {}, counter(2, 0.0))
    app("virtengine_veid_verifications_total", {}, counter(2, 0.0))
    created_incs = [10.0 + (90.0 if BURST <= m < BURST + 10 else 0.0) for m in range(N)]
    created = cumulate(created_incs, 50000.0)
    # each order is matched ten minutes after it was created (98% of them)
    app("virtengine_market_orders_created_total", {}, created)
    app("virtengine_market_orders_matched_total", {},
        [round(0.98 * (created[m - 10] if m >= 10 else 50000.0 - 10.0 * (10 - m)), 3) for m in range(N + 1)])
    app("virtengine_market_leases_active", {}, gauge(38, 42))
    app("virtengine_escrow_settlements_total", {"denom": "uve"}, counter(1, 0.2))
    app("virtengine_escrow_balance_total", {"denom": "uve"}, gauge(4000000000000, 6000000000000))
    for i, (pod, _) in enumerate(NODES):
        one = i == 1
        up = const(1)
        if one:
            up[RESTART] = up[RESTART + 1] = 0
        s("up", {**c, "job": "virtengine-app", "namespace": "virtengine", "pod": pod, "instance": f"10.0.0.{i + 1}:1317"},
          up)
        for (name, extra), values in chain.items():
            labels = {**c, "chain_id": "virtengine-1", "namespace": "virtengine", "pod": pod, **dict(extra)}
            s(name, labels, restarted(values) if one else values)

    for job, inst in (("provider-daemon", "10.0.2.1:8081"), ("ml-inference", "10.0.1.1:8000")):
        s("up", {**c, "job": job, "namespace": "virtengine", "instance": inst}, const(1))
    s("up", {**infra_cluster, "job": "kube-state-metrics", "namespace": "monitoring", "instance": "10.0.9.1:8080"},
      const(1))
    prov = {**c, "provider": "provider-a"}
    s("virtengine_provider_workload_starts_total", prov, counter(1, 0.2))
    s("virtengine_provider_workload_failures_total", prov, counter(0.02, 0.0, blip=(BLIP, 5)))
    ml = {**c, "model": "face-match"}
    s("virtengine_ml_inference_requests_total", ml, counter(100, 0.1))
    s("virtengine_ml_inference_timeout_total", ml, counter(0.2, 0.0, blip=(BLIP, 50)))
    for i in (1, 2):
        inst = {**infra_cluster, "instance": f"n{i}:9100"}
        s("node_cpu_seconds_total", {**inst, "cpu": "0", "mode": "idle"}, counter(30, 0.3, blip=(BLIP, -29)))
        s("node_memory_MemTotal_bytes", inst, const(16e9))
        s("node_memory_MemAvailable_bytes", inst, gauge(5e9, 8e9))
        fs = {**inst, "device": "/dev/sda1", "fstype": "ext4", "mountpoint": "/"}
        s("node_filesystem_size_bytes", fs, const(100e9))
        s("node_filesystem_avail_bytes", fs, [60e9 - 1e6 * m for m in range(N + 1)])
        s("node_filesystem_readonly", fs, const(0))
        s("kube_node_status_condition", {**infra_cluster, "node": f"n{i}", "condition": "Ready", "status": "true"},
          const(1))
    for i in range(3):
        pvc = {**infra_cluster, "namespace": "virtengine", "persistentvolumeclaim": f"data-node-{i}"}
        s("kubelet_volume_stats_capacity_bytes", pvc, const(500e9))
        s("kubelet_volume_stats_available_bytes", pvc, [250e9 - 2e6 * m for m in range(N + 1)])
    s("kube_pod_container_status_waiting_reason",
      {**infra_cluster, "namespace": "virtengine", "pod": "node-1", "container": "node", "reason": "CrashLoopBackOff"},
      const(0))
    prom = {**c, "namespace": "monitoring", "pod": "prometheus-0"}
    s("prometheus_rule_evaluation_failures_total", {**prom, "rule_group": "virtengine.warning"},
      counter(0, 0, blip=(BLIP, 1)))
    s("prometheus_notifications_alertmanagers_discovered", prom, const(1))
    s("prometheus_notifications_queue_length", prom, gauge(0, 20, blip=(BLIP, 400)))
    s("prometheus_notifications_queue_capacity", prom, const(10000))
    amurl = {**prom, "alertmanager": "http://alertmanager-0:9093/api/v2/alerts"}
    s("prometheus_notifications_sent_total", amurl, counter(50, 0.3))
    s("prometheus_notifications_errors_total", amurl, counter(0, 0, blip=(BLIP, 5)))
    s("prometheus_config_last_reload_successful", prom, const(1))
    am = {**c, "namespace": "monitoring", "pod": "alertmanager-0"}
    s("alertmanager_config_last_reload_successful", am, const(1))
    s("alertmanager_notifications_total", {**am, "integration": "pagerduty"}, counter(5, 0.5))
    s("alertmanager_notifications_failed_total", {**am, "integration": "pagerduty"}, counter(0, 0, blip=(BLIP, 1)))
    return S


def chart_alerts() -> list[str]:
    rules = Path(__file__).resolve().parents[2] / "chart" / "files" / "rules"
    names = []
    for path in sorted(rules.glob("*.json")):
        names += [r["alert"] for r in json.loads(path.read_text())["rules"] if "alert" in r]
    return names


# alerts the restart and the blips bring to pending: {alert: distinct pending series}
# (node-1's restart: VirtEngineNodeDown, TargetDown of the cometbft and virtengine-app jobs, NodeSyncLag while it
# block-syncs; the 12:00 minute: the others; the order burst at 18:00 brings no SLO alert to pending)
# (ProviderHighFailureRate no longer: the bad minute's failures fall in one 5-minute period, and the rule needs
# failures in several periods of the hour before it even goes pending; tests/rules/detection.test.yaml keeps one
# bad minute of 5 failures silent next to a provider failing steadily)
PENDING = {"HighTransactionLatency": 1, "MLInferenceTimeout": 1, "MempoolBacklog": 3, "NodeSyncLag": 1,
           "PrometheusRuleFailures": 1, "TargetDown": 2, "VEIDVerificationQueue": 1,
           "ValidatorsMissingPower": 1, "VirtEngineNodeDown": 1}
STYLES = {
    "prom2": "Prometheus 2 stores it (le 10, every series labelled with its cluster)",
    "prom3": "kube-prometheus-stack stores it today (Prometheus 3 with le 10.0, its own scrapes without cluster)",
}


def main(argv: list[str]) -> str:
    alerts = argv[1].split(",") if len(argv) > 1 else chart_alerts()
    alerts = [a for a in dict.fromkeys(alerts) if a != "Watchdog"]
    out = ["# A realistic healthy day, written by tests/rules/make_healthy_day.py (run it to regenerate; it follows",
           "# docs/world-model.md): 24 hours of one cluster with jitter, three nodes with roles, node-1 restarting at",
           "# 06:00 (2 missed scrapes, a minute of block sync, counters from zero), one bad minute at 12:00 (slow",
           "# transactions and VEID answers, mempool and queue spikes, a rule failure, a failed notification, ML",
           "# timeouts, CPU spike) and a burst of orders at 18:00 matched ten minutes later. Once as Prometheus 2",
           "# stores it, once as kube-prometheus-stack does today. Nothing may fire but the Watchdog; the blips must",
           "# at least reach pending, so the day really tested the alerts.",
           "rule_files: [rules.yaml]", "evaluation_interval: 1m", "tests:"]
    for style, title in STYLES.items():
        out += [f"  - name: \"A healthy day as {title} fires nothing but the Watchdog\"",
                "    interval: 1m", "    input_series:"]
        for name, labels, values in day(style):
            lab = ",".join(f'{k}="{v}"' for k, v in labels.items())
            out += [f"      - series: '{name}{{{lab}}}'", f"        values: '{compress(values)}'"]
        out += ["    alert_rule_test:"]
        for t in ("370m", "735m", "1095m", "1440m"):
            for a in alerts:
                out += [f"      - eval_time: {t}", f"        alertname: {a}", "        exp_alerts: []"]
        out += ["    promql_expr_test:",
                "      # no alert but the Watchdog was firing at any minute of the day",
                "      - expr: count by (alertname) (count_over_time(ALERTS{alertstate=\"firing\",alertname!=\"Watchdog\"}[1d]))",
                "        eval_time: 1440m", "        exp_samples: []",
                "      # the Watchdog fired at every evaluation of the day (00:00 to 24:00, once a minute)",
                "      - expr: count_over_time(ALERTS{alertname=\"Watchdog\",alertstate=\"firing\"}[1d])",
                "        eval_time: 1440m", "        exp_samples:",
                "          - labels: '{alertname=\"Watchdog\",alertstate=\"firing\",environment=\"prod\",service=\"monitoring\",severity=\"none\",team=\"sre\"}'",
                "            value: 1441",
                "      # after the first hour (a fresh Prometheus has no history), the restart and the blips reach these alerts' conditions (pending), held off by `for`",
                "      - expr: count by (alertname) (count_over_time(ALERTS{alertstate=\"pending\"}[23h])) > 0",
                "        eval_time: 1440m", "        exp_samples:"]
        for name, count in PENDING.items():
            out += [f"          - labels: '{{alertname=\"{name}\"}}'", f"            value: {count}"]
    return "\n".join(out)


if __name__ == "__main__":
    print(main(sys.argv))
