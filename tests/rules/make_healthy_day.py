"""Writes tests/rules/healthy-day.test.yaml (stdout); argument: the alert names, comma-separated.

Usage: python tests/rules/make_healthy_day.py ALERT,ALERT,... > tests/rules/healthy-day.test.yaml

Builds tests/rules/healthy-day.test.yaml: 24h of a healthy cluster with jitter, a node restart and one-minute blips."""
import random, sys
random.seed(31)
N = 1440  # minutes
RESTART = 360   # node-1 restarts at 06:00 (2 minutes without scrapes)
BLIP = 720      # 12:00: one bad minute everywhere

def counter(rate, jitter=0.1, blip=None, start=0.0, seg=30):
    """cumulative counter: piecewise-constant rates with jitter; blip=(minute, extra)"""
    out, v, t = [], start, 0
    parts = []
    while t < N:
        n = min(seg, N - t)
        r = round(rate * (1 + random.uniform(-jitter, jitter)), 3)
        if blip and t <= blip[0] < t + n:
            a = blip[0] - t
            if a:
                parts.append(f"{v:g}+{r:g}x{a - 1}")
                v += r * a
            v += blip[1]
            parts.append(f"{v:g}")
            v += r
            rest = n - a - 1
            if rest:
                parts.append(f"{v:g}+{r:g}x{rest - 1}")
                v += r * rest
        else:
            parts.append(f"{v:g}+{r:g}x{n - 1}")
            v += r * n
        t += n
    parts.append(f"{v:g}")
    return " ".join(parts)

def gauge(lo, hi, blip=None, seg=30, gap=None):
    parts, t = [], 0
    while t < N + 1:
        n = min(seg, N + 1 - t)
        vals = []
        for i in range(n):
            m = t + i
            if gap and gap[0] <= m < gap[0] + gap[1]:
                vals.append("_")
            elif blip and m == blip[0]:
                vals.append(f"{blip[1]:g}")
            else:
                vals.append(f"{random.randint(lo, hi):g}" if isinstance(lo, int) else f"{random.uniform(lo, hi):.4g}")
        parts.append(" ".join(vals))
        t += n
    return " ".join(parts)

def const(v, gap=None, override=None):
    if gap:
        a, n = gap
        return f"{v:g}x{a - 1} {override if override is not None else '_'}x{n - 1} {v:g}x{N - a - n}"
    return f"{v:g}x{N}"

S = []
def s(name, labels, values):
    lab = ",".join(f'{k}="{v}"' for k, v in labels.items())
    S.append((f"{name}{{{lab}}}", values))

c = {"cluster": "c1"}
node = lambda i: {**c, "chain_id": "virtengine-1", "namespace": "virtengine", "pod": f"node-{i}"}
for i in range(3):
    gap = (RESTART, 2) if i == 1 else None
    s("up", {**c, "job": "cometbft", "namespace": "virtengine", "pod": f"node-{i}", "instance": f"10.0.0.{i+1}:26660"},
      const(1, gap, override=0))
    # height: ~10 blocks a minute; node-1 misses 2 scrapes while restarting and then catches up
    s("cometbft_consensus_height", node(i), f"1000+10x{RESTART - 1} " + ("_ _ " if i == 1 else f"{1000 + 10 * RESTART:g} {1000 + 10 * (RESTART + 1):g} ") + f"{1000 + 10 * (RESTART + 2):g}+10x{N - RESTART - 2}")
    s("cometbft_consensus_validators_power", node(i), const(100))
    s("cometbft_consensus_missing_validators_power", node(i), gauge(0, 2, blip=(BLIP, 20)))
    s("cometbft_consensus_block_interval_seconds_count", node(i), counter(10, 0.05))
    s("cometbft_consensus_block_interval_seconds_sum", node(i), counter(60, 0.05))
    s("cometbft_p2p_peers", node(i), gauge(8, 12, gap=(RESTART, 2) if i == 1 else None))
    s("cometbft_mempool_size", node(i), gauge(50, 300, blip=(BLIP, 4500)))
app = {**c, "pod": "node-0"}
for job, inst in (("virtengine-app", "10.0.0.1:1317"), ("provider-daemon", "10.0.2.1:8081"),
                  ("ml-inference", "10.0.1.1:8000"), ("kube-state-metrics", "10.0.9.1:8080")):
    s("up", {**c, "job": job, "namespace": "virtengine", "instance": inst}, const(1))
# inclusion latency waits for the next 6 s block (p99 about 10 s); Prometheus 3 bucket spelling; at the blip
# ten transactions take longer than the highest finite bucket
for le, r in (("5.0", 8.5), ("10.0", 9.95), ("30.0", 10), ("+Inf", 10)):
    s("virtengine_tx_latency_seconds_bucket", {**app, "chain_id": "virtengine-1", "le": le},
      counter(r, 0.0, blip=(BLIP, 10 if le == "+Inf" else 0)))
s("virtengine_veid_pending_verifications", app, gauge(10, 40, blip=(BLIP, 500)))
s("virtengine_veid_submission_seconds_count", app, counter(100, 0.0))
s("virtengine_veid_submission_seconds_bucket", {**app, "le": "10"}, counter(99.5, 0.0, blip=(BLIP, -99.5)))
s("virtengine_veid_submissions_total", app, counter(2, 0.0))
s("virtengine_veid_verifications_total", app, counter(2, 0.0))
s("virtengine_market_orders_created_total", app, counter(10, 0.0))
s("virtengine_market_orders_matched_total", app, counter(9.8, 0.0))
s("virtengine_market_leases_active", app, gauge(38, 42))
s("virtengine_escrow_settlements_total", {**app, "denom": "uve"}, counter(1, 0.2))
s("virtengine_escrow_balance_total", {**app, "denom": "uve"}, gauge(4000000000000, 6000000000000))
prov = {**c, "provider": "provider-a"}
s("virtengine_provider_workload_starts_total", prov, counter(1, 0.2))
s("virtengine_provider_workload_failures_total", prov, counter(0.02, 0.0, blip=(BLIP, 5)))
ml = {**c, "model": "face-match"}
s("virtengine_ml_inference_requests_total", ml, counter(100, 0.1))
s("virtengine_ml_inference_timeout_total", ml, counter(0.2, 0.0, blip=(BLIP, 50)))
for i in (1, 2):
    inst = {**c, "instance": f"n{i}:9100"}
    s("node_cpu_seconds_total", {**inst, "cpu": "0", "mode": "idle"}, counter(30, 0.3, blip=(BLIP, -29)))
    s("node_memory_MemTotal_bytes", inst, const(16e9))
    s("node_memory_MemAvailable_bytes", inst, gauge(5e9, 8e9))
    fs = {**inst, "device": "/dev/sda1", "fstype": "ext4", "mountpoint": "/"}
    s("node_filesystem_size_bytes", fs, const(100e9))
    s("node_filesystem_avail_bytes", fs, f"60000000000-1000000x{N}")
    s("node_filesystem_readonly", fs, const(0))
    s("kube_node_status_condition", {**c, "node": f"n{i}", "condition": "Ready", "status": "true"}, const(1))
for i in range(3):
    pvc = {**c, "namespace": "virtengine", "persistentvolumeclaim": f"data-node-{i}"}
    s("kubelet_volume_stats_capacity_bytes", pvc, const(500e9))
    s("kubelet_volume_stats_available_bytes", pvc, f"250000000000-2000000x{N}")
s("kube_pod_container_status_waiting_reason", {**c, "namespace": "virtengine", "pod": "node-1", "container": "node", "reason": "CrashLoopBackOff"}, const(0))
prom = {**c, "namespace": "monitoring", "pod": "prometheus-0"}
s("prometheus_rule_evaluation_failures_total", {**prom, "rule_group": "virtengine.warning"}, counter(0, 0, blip=(BLIP, 1)))
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

alerts = sys.argv[1].split(",")
out = ["# A realistic healthy day, written by tests/rules/make_healthy_day.py (run it to regenerate): 24 hours of one",
       "# cluster with jitter in every rate and gauge, node-1 restarting at 06:00 (2 missed scrapes, no peers,",
       "# catches up) and one bad minute at 12:00 (slow transactions and VEID answers, a mempool and queue",
       "# spike, a rule failure, a failed notification, ML timeouts, CPU spike). Nothing may fire but the",
       "# Watchdog; the blips must at least reach pending, so the day really tested the alerts.",
       "rule_files: [rules.yaml]", "evaluation_interval: 1m", "tests:",
       "  - name: A healthy day with jitter, a node restart and a one-minute blip fires nothing but the Watchdog",
       "    interval: 1m", "    input_series:"]
for name, values in S:
    out += [f"      - series: '{name}'", f"        values: '{values}'"]
out += ["    alert_rule_test:"]
for t in ("370m", "735m", "1440m"):
    for a in alerts:
        if a == "Watchdog":
            continue
        out += [f"      - eval_time: {t}", f"        alertname: {a}", "        exp_alerts: []"]
out += ["    promql_expr_test:",
        "      # no alert but the Watchdog was firing at any minute of the day",
        "      - expr: count by (alertname) (count_over_time(ALERTS{alertstate=\"firing\",alertname!=\"Watchdog\"}[1d]))",
        "        eval_time: 1440m", "        exp_samples: []",
        "      # the Watchdog fired at every evaluation of the day (00:00 to 24:00, once a minute)",
        "      - expr: count_over_time(ALERTS{alertname=\"Watchdog\",alertstate=\"firing\"}[1d])",
        "        eval_time: 1440m", "        exp_samples:",
        "          - labels: '{alertname=\"Watchdog\",alertstate=\"firing\",service=\"monitoring\",severity=\"none\",team=\"sre\"}'",
        "            value: 1441",
        "      # after the first hour (a fresh Prometheus has no history), the restart and the blips reach these alerts' conditions (pending), held off by `for`",
        "      - expr: count by (alertname) (count_over_time(ALERTS{alertstate=\"pending\"}[23h])) > 0",
        "        eval_time: 1440m", "        exp_samples:"]
PENDING = {"HighTransactionLatency": 1, "MLInferenceTimeout": 1, "MempoolBacklog": 3, "PrometheusRuleFailures": 1,
           "TargetDown": 1, "VEIDVerificationQueue": 1, "ValidatorsMissingPower": 1, "VirtEngineNodeDown": 1}
for name, count in PENDING.items():
    out += [f"          - labels: '{{alertname=\"{name}\"}}'", f"            value: {count}"]
print("\n".join(out))
