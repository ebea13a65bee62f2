"""A week (or a day) of scraped history per environment, with a ground truth of incidents.

``History(env, days, seed, incidents=...)`` steps a small fleet through time at each job's scrape interval
and writes OpenMetrics text (``write_openmetrics``) for ``promtool tsdb create-blocks-from openmetrics``.
Only the series the chart's rules read are produced. The fleet follows docs/world-model.md:

- one chain per environment, one height, one block interval; our nodes (a validator behind sentries, full
  nodes) see the same height; missing power is that of the last commit and stays under 1/3 while blocks come;
  at a halt every consensus gauge freezes, rounds climb unless every node stopped (upgrade) (fact 1);
- a restarted node is silent for a few scrapes, then block-syncs: consensus height held, blocksync height
  rising, commit gauges absent until it commits again; its counters start again from 0 (facts 2, 3);
- transactions wait for the next block: latency spread over the block interval (fact 4);
- module counters and gauges are chain state, the same on every node; a syncing node serves them as of
  its own height (fact 5); classic histograms in the environment's ``le`` spelling (facts 6, 7);
- orders are matched a delay after they are created (fact 8); validators keep 2-4 peers, others many (fact 9);
- kube-state-metrics / node-exporter / kubelet series carry ``cluster`` only where the environment's
  Prometheus adds it (fact 10); three Alertmanagers side by side (fact 12).

Normal operations (the *noise catalogue*) are always present; ``incidents`` (``Incident``) are injected on
top and returned as the ground truth (alert expected or not, start, end).
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

DAY = 86400
T0 = 1_790_812_800  # 2026-10-01T00:00:00Z (a Thursday): histories start here


@dataclass(frozen=True)
class Env:
    name: str
    cluster: str
    chain_id: str
    interval: int                 # scrape interval of every job
    cometbft_interval: int        # the cometbft job's own interval
    block_time: float             # seconds per block (chain parameter)
    roles: tuple[str, ...]        # our chain nodes, by role
    le_style: str                 # "prom2" (le="10") or "prom3" (le="10.0")
    infra_cluster_label: bool     # kube-state-metrics etc. carry `cluster`
    ml: bool = True
    traffic: float = 1.0          # transactions, orders, submissions scale


ENVS = {
    "dev": Env("dev", "virtengine-dev", "virtengine-devnet-1", 60, 60, 1.0, ("validator", "full"), "prom2",
               False, ml=False, traffic=0.2),
    "staging": Env("staging", "virtengine-staging", "virtengine-testnet-1", 30, 30, 5.0,
                   ("validator", "sentry", "sentry", "full"), "prom3", False, traffic=0.5),
    "prod": Env("prod", "virtengine-prod", "virtengine-mainnet-1", 30, 15, 6.0,
                ("validator", "sentry", "sentry", "sentry", "full", "full"), "prom3", True, traffic=1.0),
}

# the chain's validator set (power): ours is index 0; the others belong to other operators
POWERS = (50, 120, 110, 100, 95, 90, 85, 80, 75, 70, 60, 55, 50, 45, 40, 35, 30, 25, 20, 15)
TOTAL_POWER = sum(POWERS)
OURS = 0
VALIDATOR_ADDRESS = "A1B2C3D4E5F60718293A4B5C6D7E8F9012345678"
LE_TX = (0.5, 1, 2.5, 5, 10, 15, 30, 60)
LE_BLOCK = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
LE_VEID = (1, 2.5, 5, 10, 30, 60)
ALERTMANAGERS = ("http://10.0.9.1:9093/api/v2/alerts", "http://10.0.9.2:9093/api/v2/alerts",
                 "http://10.0.9.3:9093/api/v2/alerts")
PROVIDERS = ("provider-a", "provider-b")
MODELS = ("face-match", "liveness")
K8S_NODES = ("k8s-node-1", "k8s-node-2", "k8s-node-3")


def go_float(x: float) -> str:
    r = repr(float(x))
    return r[:-2] if r.endswith(".0") else r


def le_text(x: float, style: str) -> str:
    if style == "prom3":
        s = repr(float(x))
        return s
    return go_float(x)


@dataclass
class Incident:
    """One entry of the ground truth: a change of the world from ``start`` for ``duration`` seconds.

    ``kind`` selects the effect (``History._effects``), ``params`` its size. ``expect`` is the alert that
    must fire (``None`` for a change kept just below a threshold, where every alert must stay silent,
    ``below`` names the alert it is just below). ``also`` lists alerts the same change may rightly cause.
    ``settle`` is how long after the end an alert of this incident still counts as caused by it (its windows
    draining). ``noise`` marks the normal-operations catalogue (never expected to notify).
    """
    name: str
    kind: str
    duration: int
    params: dict = field(default_factory=dict)
    expect: str | None = None
    below: str | None = None
    also: tuple[str, ...] = ()
    settle: int = 3600
    cls: str = ""
    noise: bool = False
    start: int = 0                 # seconds from the history's start, set by the schedule

    @property
    def end(self) -> int:
        return self.start + self.duration


# ---------------------------------------------------------------------------------------------------------
# the incident catalogue: every alert, above and just below its threshold, grouped in lanes that can overlap
# ---------------------------------------------------------------------------------------------------------

def catalogue(env: Env) -> dict[str, list[Incident]]:
    """Incidents by lane. Incidents of one lane run one after the other; lanes run side by side."""
    bt = env.block_time
    I = Incident
    chain = [
        I("halt: 40% of the power offline", "missing", 1800, {"share": 0.40}, "ConsensusStalled",
          also=("ValidatorDown", "ValidatorsMissingPower", "NodeSyncLag", "MempoolBacklog", "ValidatorMissingBlocks",
                "HighTransactionLatency", "BlockTimeHigh", "EscrowSettlementsStalled"), cls="chain halt"),
        I("upgrade halt: every node stopped at the upgrade height", "upgrade", 1200, {}, "ConsensusStalled",
          also=("ValidatorMissingBlocks", "BlockTimeHigh"), cls="chain halt"),
        I("a 100 s pause (one long round)", "pause", 100, {}, None, below="ConsensusStalled", cls="chain halt"),
        I("28% of the power offline, blocks still come", "missing", 1800, {"share": 0.28}, "ValidatorDown",
          also=("ValidatorsMissingPower", "BlockTimeHigh"), cls="validator"),
        I("22% of the power offline", "missing", 2400, {"share": 0.22}, "ValidatorsMissingPower",
          below="ValidatorDown", cls="validator"),
        I("13% of the power offline", "missing", 2400, {"share": 0.13}, "ValidatorsMissingPower", cls="validator"),
        I("our signer down for 1100 blocks (jailing warning at 950)", "signer_down", int(1100 * bt), {},
          "ValidatorMissingBlocks", also=("ValidatorsMissingPower",), cls="validator", settle=7 * 3600),
        I("our signer down for 800 blocks", "signer_down", int(800 * bt), {}, None, below="ValidatorMissingBlocks",
          also=("ValidatorsMissingPower",), cls="validator", settle=7 * 3600),
        I("blocks every 20 s", "slow_blocks", 2400, {"block_time": 20.0}, "BlockTimeHigh",
          also=("HighTransactionLatency",), cls="validator"),
        I("blocks every 12 s", "slow_blocks", 3600, {"block_time": 12.0}, None, below="BlockTimeHigh", cls="validator"),
        I("transactions wait 5 blocks", "tx_latency", 2400, {"blocks": 5.0}, "HighTransactionLatency",
          cls="module"),
        I("transactions wait 2 blocks", "tx_latency", 2400, {"blocks": 2.0}, None, below="HighTransactionLatency",
          cls="module"),
    ]
    node = [
        I("one node down", "target_down", 1500, {"node": 1}, "VirtEngineNodeDown",
          also=("TargetDown", "VirtEngineStatefulSetReplicasNotReady"), cls="node"),
        I("one node down for 6 minutes", "target_down", 360, {"node": 2}, None, below="VirtEngineNodeDown",
          cls="node"),
        I("every node down", "all_down", 900, {}, "VirtEngineNodesDown",
          also=("VirtEngineNodeDown", "TargetDown", "VirtEngineStatefulSetReplicasNotReady", "ConsensusStalled",
                "ValidatorMissingBlocks", "NodeSyncLag"), cls="node"),
        I("every node down for 2 minutes", "all_down", 120, {}, None, below="VirtEngineNodesDown", cls="node",
          also=("NodeSyncLag",)),
        I("a sentry keeps 3 peers", "peers", 2400, {"node": 1, "peers": 3}, "NodeLowPeers", cls="node"),
        I("a sentry keeps 5 peers", "peers", 2400, {"node": 2, "peers": 5}, None, below="NodeLowPeers", cls="node"),
        I("a full node stuck (not syncing)", "stuck", 1800, {"node": -1}, "NodeSyncLag", cls="node"),
        I("mempool at 4500", "mempool", 2400, {"node": 1, "size": 4500}, "MempoolBacklog", cls="node"),
        I("mempool at 3800", "mempool", 2400, {"node": 1, "size": 3800}, None, below="MempoolBacklog", cls="node"),
        I("consensus metrics switched off on every node", "no_consensus_metrics", 1800, {}, "CometBFTMetricsAbsent",
          cls="node"),
    ]
    module = [
        I("30% of settlements fail", "escrow_fail", 2400, {"share": 0.3}, "EscrowSettlementsFailing", cls="module"),
        I("8% of settlements fail", "escrow_fail", 2400, {"share": 0.08}, None, below="EscrowSettlementsFailing",
          cls="module"),
        I("escrow balance under its minimum for an hour", "escrow_low", 3600, {"level": 0.8}, "EscrowBalanceLow",
          cls="module"),
        I("escrow balance under its minimum for 20 minutes", "escrow_low", 1200, {"level": 0.95}, None,
          below="EscrowBalanceLow", cls="module"),
        I("no settlement for 3 hours", "escrow_stall", 3 * 3600, {}, "EscrowSettlementsStalled", cls="module"),
        I("no settlement for 90 minutes", "escrow_stall", 5400, {}, None, below="EscrowSettlementsStalled",
          cls="module"),
        I("order matching stops for 2 hours", "match_stall", 7200, {}, "OrderMatchingStalled",
          also=("SLOOrderMatchingSuccess", "SLOOrderMatchingSuccessBudgetBurn"), cls="module", settle=3 * 3600),
        I("order matching stops for 40 minutes", "match_stall", 2400, {}, None, below="OrderMatchingStalled",
          also=("SLOOrderMatchingSuccess", "SLOOrderMatchingSuccessBudgetBurn"), cls="module", settle=3 * 3600),
        I("half the VEID submissions verified", "veid_slow", 7200, {"ratio": 0.5}, "VEIDVerificationThroughputLow",
          also=("VEIDVerificationQueue",), cls="module"),
        I("85% of the VEID submissions verified", "veid_slow", 7200, {"ratio": 0.85}, None,
          below="VEIDVerificationThroughputLow", also=("VEIDVerificationQueue",), cls="module"),
        I("VEID backlog over its limit", "veid_queue", 5400, {"factor": 1.5}, "VEIDVerificationQueue", cls="module"),
        I("VEID backlog just under its limit", "veid_queue", 5400, {"factor": 0.9}, None, below="VEIDVerificationQueue",
          cls="module"),
        I("a provider's workloads fail (25%)", "provider_fail", 7200, {"share": 0.25}, "ProviderHighFailureRate",
          cls="module"),
        I("a provider's workloads fail (7%)", "provider_fail", 7200, {"share": 0.07}, None,
          below="ProviderHighFailureRate", cls="module"),
    ]
    if env.ml:
        module += [
            I("5% of inferences time out", "ml_timeout", 2400, {"share": 0.05}, "MLInferenceTimeout", cls="module"),
            I("0.7% of inferences time out", "ml_timeout", 2400, {"share": 0.007}, None, below="MLInferenceTimeout",
              cls="module"),
        ]
    slo = [
        I("40% of VEID submissions answered after 10 s", "veid_latency", 3600, {"share": 0.4}, "SLOVEIDResponseTime",
          also=("SLOVEIDResponseTimeBudgetBurn",), cls="SLO", settle=24 * 3600),
        I("8% of VEID submissions answered after 10 s", "veid_latency", 3600, {"share": 0.08}, None,
          below="SLOVEIDResponseTime", also=("SLOVEIDResponseTimeBudgetBurn",), cls="SLO", settle=6 * 3600),
        I("90% of orders expire unmatched", "orders_expire", 3600, {"share": 0.9}, "SLOOrderMatchingSuccess",
          also=("SLOOrderMatchingSuccessBudgetBurn",), cls="SLO", settle=24 * 3600),
        I("25% of orders expire unmatched", "orders_expire", 3600, {"share": 0.25}, None,
          below="SLOOrderMatchingSuccess", also=("SLOOrderMatchingSuccessBudgetBurn",), cls="SLO", settle=6 * 3600),
        I("4.5% of VEID submissions late for a day", "veid_latency", 20 * 3600, {"share": 0.045},
          "SLOVEIDResponseTimeBudgetBurn", cls="SLO", settle=24 * 3600),
        I("25% of orders late for a day", "orders_expire", 20 * 3600, {"share": 0.25, "outcome": "matched_late"},
          "SLOOrderMatchingSuccessBudgetBurn", cls="SLO", settle=24 * 3600),
    ]
    infra = [
        I("a Kubernetes node not ready", "k8s_notready", 2400, {"node": 1}, "KubeNodeNotReady", cls="infrastructure"),
        I("a Kubernetes node rebooted (8 minutes)", "k8s_notready", 480, {"node": 2}, None, below="KubeNodeNotReady",
          cls="infrastructure"),
        I("a container crash-loops", "crashloop", 2400, {}, "KubePodCrashLooping", cls="infrastructure"),
        I("a container crash-loops for 10 minutes", "crashloop", 600, {}, None, below="KubePodCrashLooping",
          cls="infrastructure"),
        I("a node filesystem fills to 25% free in 14 hours", "fs_fill", 14 * 3600, {"to": 0.25},
          "NodeFilesystemFillingUp", cls="infrastructure", settle=7 * 3600),
        I("a chain volume fills to 6% free in 12 hours", "pv_fill", 12 * 3600, {"to": 0.06},
          "KubePersistentVolumeFillingUp", cls="infrastructure", settle=7 * 3600),
        I("a chain volume at 2% free", "pv_full", 1800, {"free": 0.02}, "KubePersistentVolumeAlmostFull",
          also=("KubePersistentVolumeFillingUp",), cls="infrastructure", settle=7 * 3600),
        I("a chain volume at 4% free", "pv_full", 1800, {"free": 0.04}, None, below="KubePersistentVolumeAlmostFull",
          also=("KubePersistentVolumeFillingUp",), cls="infrastructure", settle=7 * 3600),
        I("a node's CPU at 96%", "cpu", 3600, {"util": 0.96}, "NodeCPUHighUtilization", cls="infrastructure"),
        I("a node's CPU at 86% for hours", "cpu", 3 * 3600, {"util": 0.86}, None, below="NodeCPUHighUtilization",
          cls="infrastructure"),
        I("a node's memory at 94%", "memory", 2400, {"util": 0.94}, "NodeMemoryHighUtilization", cls="infrastructure"),
        I("a node's memory at 88%", "memory", 2400, {"util": 0.88}, None, below="NodeMemoryHighUtilization",
          cls="infrastructure"),
        I("a provider daemon pod down", "provider_down", 1800, {}, "TargetDown", cls="infrastructure"),
        I("a pod Pending", "pending", 2400, {}, "VirtEnginePodPending", also=("VirtEngineStatefulSetReplicasNotReady",),
          cls="infrastructure"),
        I("a pod Pending for 5 minutes", "pending", 300, {}, None, below="VirtEnginePodPending", cls="infrastructure"),
        I("a chain replica unready", "sts_unready", 2400, {}, "VirtEngineStatefulSetReplicasNotReady",
          cls="infrastructure"),
        I("a node filesystem at 8% free", "fs_low", 3600, {"free": 0.08}, "VirtEngineNodeFilesystemAlmostFull",
          cls="infrastructure"),
        I("a node filesystem at 12% free", "fs_low", 3600, {"free": 0.12}, None,
          below="VirtEngineNodeFilesystemAlmostFull", cls="infrastructure"),
    ]
    mon = [
        I("rule evaluations fail", "rule_failures", 1800, {}, "PrometheusRuleFailures", cls="monitoring"),
        I("Prometheus finds no Alertmanager", "am_discovered", 1800, {}, "PrometheusNotConnectedToAlertmanagers",
          cls="monitoring"),
        I("notification queue filling", "queue", 2400, {}, "PrometheusNotificationQueueRunningFull", cls="monitoring"),
        I("sends to every Alertmanager fail", "send_fail", 1800, {"ams": 3, "share": 0.2}, "PrometheusAlertSendFailures",
          also=("PrometheusAlertSendFailuresPartial",), cls="monitoring"),
        I("sends to one Alertmanager fail", "send_fail", 1800, {"ams": 1, "share": 0.2},
          "PrometheusAlertSendFailuresPartial", cls="monitoring"),
        I("2% of sends to one Alertmanager fail", "send_fail", 1800, {"ams": 1, "share": 0.02}, None,
          below="PrometheusAlertSendFailuresPartial", cls="monitoring"),
        I("PagerDuty deliveries fail", "am_fail", 1800, {"integration": "pagerduty", "share": 0.3},
          "AlertmanagerNotificationsFailing", cls="monitoring"),
        I("one failed Opsgenie delivery", "am_fail", 900, {"integration": "opsgenie", "share": 0.02}, None,
          below="AlertmanagerNotificationsFailing", cls="monitoring"),
        I("a Prometheus configuration reload fails", "prom_reload", 1800, {}, "PrometheusConfigReloadFailed",
          cls="monitoring"),
        I("an Alertmanager configuration reload fails", "am_reload", 1800, {}, "AlertmanagerConfigReloadFailed",
          cls="monitoring"),
        I("service discovery loses every VirtEngine target", "targets_absent", 2400, {}, "VirtEngineTargetsAbsent",
          also=("CometBFTMetricsAbsent",), cls="monitoring"),
    ]
    slo_veid = [i for i in slo if i.kind == "veid_latency"]
    slo_orders = [i for i in slo if i.kind != "veid_latency"]
    return {"chain": chain + node, "module": module, "slo_veid": slo_veid, "slo_orders": slo_orders, "infra": infra,
            "monitoring": mon}


CRITICAL_SUBSET = {  # the short test history: one incident per critical alert, in as little time as possible
    "ConsensusStalled", "ValidatorDown", "EscrowSettlementsFailing", "VirtEngineNodesDown", "CometBFTMetricsAbsent",
    "SLOVEIDResponseTime", "SLOOrderMatchingSuccess", "KubePersistentVolumeAlmostFull", "PrometheusRuleFailures",
    "PrometheusAlertSendFailures", "AlertmanagerNotificationsFailing",
}


DAYTIME_LANES = ("module", "slo_veid", "slo_orders")   # judged only with traffic: these start in working hours (08:00-15:00)


def schedule(lanes: dict[str, list[Incident]], days: float, *, gap: int = 1800, begin: int = 2 * 3600,
             only: set[str] | None = None) -> list[Incident]:
    """Place each lane's incidents one after the other (each after the previous one's end + settle + gap).

    ``only``: keep the incidents expecting these alerts (and below-threshold ones naming them). Incidents that do
    not fit in ``days`` are dropped (and so not in the ground truth)."""
    placed = []
    horizon = int(days * DAY) - 3600
    for lane, items in lanes.items():
        t = begin
        for inc in items:
            if only is not None and inc.expect not in only and inc.below not in only:
                continue
            if lane in DAYTIME_LANES and not 8 * 3600 <= t % DAY <= 15 * 3600:
                t = (t // DAY + (1 if t % DAY > 15 * 3600 else 0)) * DAY + 8 * 3600
            if t + inc.duration > horizon:
                continue
            inc.start = t
            placed.append(inc)
            t = inc.end + inc.settle + gap
    return sorted(placed, key=lambda i: i.start)


def noise_catalogue(env: Env, days: float, rng: random.Random) -> list[Incident]:
    """Normal operations: never expected to notify."""
    n = len(env.roles)
    out = []
    I = Incident
    for d in range(int(math.ceil(days))):
        day = d * DAY
        # a rolling upgrade every other day at 10:00, one node at a time, each node away 60-120 s, then syncing
        if d % 2 == 0:
            for k in range(n):
                out.append(I(f"rolling upgrade: node {k}", "restart", rng.randint(60, 120), {"node": k},
                             noise=True, start=day + 10 * 3600 + k * 600))
        # deploys of the provider daemon and ML servers (counters restart)
        out.append(I("provider daemon deploy", "deploy", 60, {}, noise=True, start=day + 15 * 3600))
        # scrape gaps: a few failed scrapes on random targets
        for _ in range(6):
            out.append(I("scrape gap", "gap", rng.randint(1, 3) * env.interval, {"node": rng.randrange(n)}, noise=True,
                         start=day + rng.randrange(3600, DAY - 3600)))
        # traffic bursts of 5x for 20 minutes in the afternoon
        out.append(I("traffic burst x5", "burst", 1200, {"factor": 5.0}, noise=True,
                     start=day + 13 * 3600 + rng.randrange(0, 3 * 3600)))
        # a pod rescheduled during the rolling upgrade: Pending for 2 minutes
        if d % 2 == 0:
            out.append(I("pod pending during rollout", "pending", 120, {}, noise=True, start=day + 10 * 3600 + 30))
    # a node filesystem under 40% free, filling 3% a day all along (NodeFilesystemFillingUp must stay silent)
    out.append(I("a node filesystem at 39% free filling 3% a day", "fs_slow", int(days * DAY), {"free": 0.39},
                 noise=True, start=0))
    # one Prometheus restart (a few minutes with no samples at all; its own counters restart)
    out.append(I("Prometheus restart", "prom_restart", 180, {}, noise=True, start=int(min(days, 3) * DAY) - 5 * 3600))
    # one validator of the set (another operator, 9% of the power) offline for five hours
    out.append(I("another operator's validator offline for hours", "other_validator", 5 * 3600, {"index": 5},
                 noise=True, start=int(min(days, 2) * DAY) - 10 * 3600))
    return sorted(out, key=lambda i: i.start)


# ---------------------------------------------------------------------------------------------------------
# the history
# ---------------------------------------------------------------------------------------------------------

class History:
    def __init__(self, env: str | Env, days: float = 7, seed: int = 1, *, incidents: list[Incident] | None = None,
                 noise: list[Incident] | None = None, limits: dict | None = None):
        self.env = ENVS[env] if isinstance(env, str) else env
        # thresholds of the environment that incidents are sized against (escrow minimum, VEID backlog limit)
        self.limits = {"escrow_minimum": 1e9, "veid_queue": 100.0, **(limits or {})}
        self.days = days
        self.seed = seed
        self.rng = random.Random(seed)
        self.incidents = schedule(catalogue(self.env), days) if incidents is None else incidents
        self.noise = noise_catalogue(self.env, days, random.Random(seed + 1)) if noise is None else noise
        self.events = sorted(self.incidents + self.noise, key=lambda i: i.start)
        self.step = math.gcd(self.env.interval, self.env.cometbft_interval)
        self.samples = 0
        self.series: set[str] = set()

    # --- active effects ------------------------------------------------------------------------------------
    def _active(self, t: int) -> dict[str, list[Incident]]:
        out: dict[str, list[Incident]] = {}
        for e in self.events:
            if e.start <= t < e.end:
                out.setdefault(e.kind, []).append(e)
        return out

    # --- output -------------------------------------------------------------------------------------------
    def write_openmetrics(self, path) -> None:
        with open(path, "w") as f:
            self._run(f)
            f.write("# EOF\n")

    def _run(self, f) -> None:
        env, rng = self.env, self.rng
        n = len(env.roles)
        ns = f"virtengine-{env.name}"
        pods = [f"virtengine-node-{k}" for k in range(n)]
        cl = f'cluster="{env.cluster}",'
        icl = cl if env.infra_cluster_label else ""
        chain = f'chain_id="{env.chain_id}"'
        end = int(self.days * DAY)
        bt0 = env.block_time
        # chain state
        height = 1_000_000.0
        live_time = 0.0            # seconds of live chain (the clock of order matching)
        missing_committed = 0.0
        rounds_global = 0
        # per node state
        node = [dict(up=True, start_height=0.0, syncing=False, sync_h=0.0, fresh=False, rounds=0, bi_sum=0.0,
                     bi_count=0.0, bi_b=[0.0] * len(LE_BLOCK), missed=0.0, last_signed=height, stuck_h=None,
                     stuck=False) for _ in range(n)]
        # chain-state counters (identical on every node) with a history for syncing nodes
        cs = dict(tx_b=[0.0] * len(LE_TX), tx_count=0.0, tx_sum=0.0, veid_sub=0.0, veid_ver=0.0, veid_pending=0.0, veid_backlog=0.0,
                  veid_b=[0.0] * len(LE_VEID), veid_count=0.0, veid_sum=0.0, created=0.0, matched=0.0,
                  res_ok=0.0, res_late=0.0, res_exp=0.0, settle_ok=0.0, settle_fail=0.0,
                  balance=5.0 * self.limits["escrow_minimum"], leases=40.0)
        cs_hist: list[tuple[float, dict]] = []
        created_log: list[tuple[float, float]] = []   # (live_time, orders created) for matching later
        prov = {p: dict(starts=0.0, fails=0.0) for p in PROVIDERS}
        ml = {m: dict(req=0.0, to=0.0) for m in MODELS}
        prom = dict(fail={"virtengine.critical": 0.0, "virtengine.warning": 0.0}, sent={a: 0.0 for a in ALERTMANAGERS},
                    err={a: 0.0 for a in ALERTMANAGERS}, queue=0.0)
        am = [dict(total={"pagerduty": 0.0, "opsgenie": 0.0}, failed={"pagerduty": 0.0, "opsgenie": 0.0})
              for _ in range(3)]
        cpu_idle = {(k, c): 0.0 for k in K8S_NODES for c in ("0", "1")}
        fs_size = 200e9
        pv_size = 500e9
        w = f.write

        def sample(name: str, labels: str, value: float, ts: int) -> None:
            w(f"{name}{{{labels}}} {go_float(value)} {T0 + ts}\n")
            self.samples += 1

        last = -1
        t = 0
        while t < end:
            act = self._active(t)
            dt = 0 if last < 0 else t - last
            last = t
            hour = (t % DAY) / 3600
            day_shape = 0.25 + 0.75 * max(0.0, math.sin(math.pi * (hour - 6) / 14)) if 6 <= hour <= 20 else 0.25
            night_quiet = 0.1 if (hour < 5 or hour >= 23) else 1.0
            traffic = env.traffic * day_shape * night_quiet
            for b in act.get("burst", []):
                traffic *= b.params["factor"]
            prom_gap = bool(act.get("prom_restart"))

            # ---- the chain -----------------------------------------------------------------------------------
            missing_share = 0.0
            absent = set()
            for e in act.get("missing", []):
                missing_share = max(missing_share, e.params["share"])
            for e in act.get("other_validator", []):
                absent.add(e.params["index"])
            signer_down = bool(act.get("signer_down"))
            # our validator node restarting or syncing does not vote
            val_node = env.roles.index("validator")
            if signer_down or not node[val_node]["up"] or node[val_node]["syncing"] or act.get("all_down"):
                absent.add(OURS)
            # a small validator now and then misses a block (under 2%)
            occasional = 19 if rng.random() < 0.3 else None
            if occasional is not None:
                absent.add(occasional)
            absent_power = sum(POWERS[i] for i in absent)
            # incidents name a share of the power: take the validators (not ours) that make it up
            if missing_share:
                acc = sum(POWERS[i] for i in absent)
                for i in range(1, len(POWERS)):      # the largest others that keep it at or under the share
                    if i not in absent and (acc + POWERS[i]) / TOTAL_POWER <= missing_share + 0.002:
                        absent.add(i)
                        acc += POWERS[i]
                absent_power = sum(POWERS[i] for i in absent)
            share = absent_power / TOTAL_POWER
            upgrade = bool(act.get("upgrade"))
            halted = share >= 1 / 3 or upgrade or bool(act.get("pause"))
            bt = bt0
            for e in act.get("slow_blocks", []):
                bt = e.params["block_time"]
            if share >= 0.2:
                bt *= 1.5          # rounds with an offline proposer
            blocks = 0.0 if halted or dt == 0 else dt / bt
            if not halted:
                missing_committed = absent_power
                rounds_global = 1 if rng.random() < share else 0
                live_time += dt
            elif not upgrade:
                rounds_global += max(1, dt // 30) if dt else 0
            height += blocks

            # ---- chain state (module metrics) ------------------------------------------------------------------
            if blocks > 0:
                tl = 1.0
                for e in act.get("tx_latency", []):
                    tl = e.params["blocks"]
                ntx = 2.0 * traffic * dt
                cs["tx_count"] += ntx
                lo, hi = (tl - 1) * bt, tl * bt
                cs["tx_sum"] += ntx * (0.5 * (lo + hi) + 0.2)
                for j, le in enumerate(LE_TX):
                    frac = min(1.0, max(0.0, (le - 0.2 - lo) / (hi - lo)))
                    cs["tx_b"][j] += ntx * frac
                # VEID
                nsub = 0.05 * traffic * dt
                ratio = 0.99
                for e in act.get("veid_slow", []):
                    ratio = e.params["ratio"]
                cs["veid_sub"] += nsub
                cs["veid_ver"] += nsub * ratio
                late = 0.003
                for e in act.get("veid_latency", []):
                    late = e.params["share"]
                cs["veid_count"] += nsub
                cs["veid_sum"] += nsub * 4.0
                for j, le in enumerate(LE_VEID):
                    base = {1: 0.1, 2.5: 0.45, 5: 0.85, 10: 1.0}.get(le, 1.0)
                    inside = (1 - late) * base + (late * (0.9 if le == 30 else 1.0) if le > 10 else 0.0)
                    cs["veid_b"][j] += nsub * inside
                # market: orders created now are resolved 30 block intervals later (on the live clock)
                ncr = 0.01 * traffic * dt
                cs["created"] += ncr
                created_log.append((live_time, ncr))
                cs["leases"] = max(5.0, cs["leases"] + rng.uniform(-0.3, 0.31))
                # escrow
                if not act.get("escrow_stall"):
                    nset = 0.02 * max(traffic, 0.3) * dt
                    fshare = 0.002
                    for e in act.get("escrow_fail", []):
                        fshare = e.params["share"]
                    cs["settle_ok"] += nset * (1 - fshare)
                    cs["settle_fail"] += nset * fshare
                cs["balance"] = max(1.5 * self.limits["escrow_minimum"],
                                    cs["balance"] * (1 + rng.uniform(-2e-4, 2.1e-4) * dt / 30))
            # order matching follows creation (on the chain's live clock); stopped matching or expiry
            delay = 30 * bt0
            stalled_match = bool(act.get("match_stall"))
            while created_log and created_log[0][0] <= live_time - delay and not halted:
                _, nmatch = created_log.pop(0)
                if stalled_match:
                    cs["res_exp"] += 0.0          # expired later: counted when the SLA runs out (below)
                    self._expired_pending = getattr(self, "_expired_pending", 0.0) + nmatch
                    continue
                exp = 0.003
                outcome = "expired"
                for e in act.get("orders_expire", []):
                    exp = e.params["share"]
                    outcome = e.params.get("outcome", "expired")
                cs["matched"] += nmatch * (1 - exp if outcome == "expired" else 1)
                cs["res_ok"] += nmatch * (1 - exp)
                if outcome == "expired":
                    cs["res_exp"] += nmatch * exp
                else:
                    cs["res_late"] += nmatch * exp
            if not stalled_match and getattr(self, "_expired_pending", 0.0):
                cs["res_exp"] += self._expired_pending
                self._expired_pending = 0.0
            if blocks > 0 or dt == 0:   # chain state stands still while the chain is halted
                # VEID backlog (chain state): submissions in verification (Little's law: arrival rate x the ~4 s a
                # verification takes) plus what verifications left undone, drained at twice the arrival rate after
                ver_share = 0.99
                for e in act.get("veid_slow", []):
                    ver_share = e.params["ratio"]
                arrivals = 0.05 * traffic
                if ver_share < 0.99:
                    cs["veid_backlog"] += arrivals * (1 - ver_share) * dt
                else:
                    cs["veid_backlog"] = max(0.0, cs["veid_backlog"] - 2 * max(arrivals, 0.01) * dt)
                level = arrivals * 4.0 + cs["veid_backlog"]
                for e in act.get("veid_queue", []):         # verifiers stuck: the backlog sits at a share of the limit
                    level = self.limits["veid_queue"] * e.params["factor"]
                cs["veid_pending"] = level
            bal = cs["balance"]
            for e in act.get("escrow_low", []):
                bal = e.params["level"] * self.limits["escrow_minimum"]
            cs_hist.append((height, dict(cs, balance=bal, tx_b=list(cs["tx_b"]), veid_b=list(cs["veid_b"]))))
            if len(cs_hist) > 4000:
                cs_hist.pop(0)

            # ---- nodes ---------------------------------------------------------------------------------------
            restarting = {e.params["node"] % n for e in act.get("restart", [])}
            down = {e.params["node"] % n for e in act.get("target_down", [])}
            gaps = {e.params["node"] % n for e in act.get("gap", [])}
            all_down = bool(act.get("all_down"))
            stuck = {e.params["node"] % n for e in act.get("stuck", [])}
            for k in range(n):
                st = node[k]
                was_up = st["up"]
                st["up"] = not (k in restarting or k in down or all_down)
                if not st["up"]:
                    continue
                if not was_up:               # the process starts again: block sync from its stored height
                    st.update(start_height=st.get("h", height) + 1, syncing=True, sync_h=st.get("h", height),
                              fresh=True, bi_sum=0.0, bi_count=0.0, bi_b=[0.0] * len(LE_BLOCK), missed=0.0)
                if st["syncing"]:
                    st["sync_h"] = min(height, st["sync_h"] + dt * 12.0)   # applies 12 blocks/s
                    if st["sync_h"] >= height - 1:          # caught up with its peers: consensus from here
                        st["syncing"] = False
                        st["fresh"] = False
                        st["h"] = height
                        continue
                    st["h"] = st["start_height"]
                    continue
                if k in stuck:
                    if st["stuck_h"] is None:
                        st["stuck_h"] = st.get("h", height)
                    st["h"] = st["stuck_h"]
                    continue
                st["stuck_h"] = None
                prev_h = st.get("h", height)
                st["h"] = height
                nb = max(0.0, height - prev_h) if prev_h <= height else 0.0
                if nb:
                    st["bi_count"] += nb
                    st["bi_sum"] += nb * bt
                    for j, le in enumerate(LE_BLOCK):
                        if bt <= le:
                            st["bi_b"][j] += nb
                    if env.roles[k] == "validator":
                        if OURS in absent:
                            st["missed"] += nb
                        else:
                            st["last_signed"] = height

            # ---- emit ----------------------------------------------------------------------------------------
            if prom_gap:
                t += self.step
                continue
            targets_absent = bool(act.get("targets_absent"))
            if t % env.cometbft_interval == 0 and not targets_absent:
                no_cons = bool(act.get("no_consensus_metrics"))
                for k in range(n):
                    st = node[k]
                    role = env.roles[k]
                    ip = f"10.1.0.{10 + k}"
                    lab = f'{cl}namespace="{ns}",pod="{pods[k]}",instance="{ip}:26660",job="cometbft",role="{role}"'
                    up = st["up"] and k not in gaps
                    sample("up", lab, 1 if up else 0, t)
                    if not up:
                        continue
                    lab = f"{lab},{chain}"
                    peers = {"validator": 3, "sentry": 25, "full": 18}[role] + (k % 3)
                    for e in act.get("peers", []):
                        if e.params["node"] % n == k:
                            peers = e.params["peers"]
                    sample("cometbft_p2p_peers", lab, peers, t)
                    mp = int(30 + 200 * traffic)
                    if halted and not upgrade:
                        mp = min(5000, 300 + (t % 3600))
                    for e in act.get("mempool", []):
                        if e.params["node"] % n == k:
                            mp = e.params["size"] + rng.randint(-50, 50)
                    sample("cometbft_mempool_size", lab, mp, t)
                    if no_cons:
                        continue
                    sample("cometbft_consensus_height", lab, math.floor(st["h"]), t)
                    sample("cometbft_blocksync_syncing", lab, 1 if st["syncing"] else 0, t)
                    sample("cometbft_blocksync_latest_block_height", lab, math.floor(st["sync_h"]), t)
                    if st["syncing"]:
                        sample("cometbft_consensus_rounds", lab, 0, t)
                        continue
                    sample("cometbft_consensus_rounds", lab, rounds_global, t)
                    online = 1 - (absent_power if halted else missing_committed) / TOTAL_POWER
                    sample("cometbft_consensus_round_voting_power_percent", f'{lab},vote_type="precommit"',
                           round(online, 4), t)
                    sample("cometbft_consensus_missing_validators_power", lab, missing_committed, t)
                    sample("cometbft_consensus_validators_power", lab, TOTAL_POWER, t)
                    base = "cometbft_consensus_block_interval_seconds"
                    sample(base + "_sum", lab, round(st["bi_sum"], 3), t)
                    sample(base + "_count", lab, math.floor(st["bi_count"]), t)
                    if role == "validator":
                        vl = f'{lab},validator_address="{VALIDATOR_ADDRESS}"'
                        sample("cometbft_consensus_validator_last_signed_height", vl, math.floor(st["last_signed"]), t)
                        sample("cometbft_consensus_validator_missed_blocks", vl, math.floor(st["missed"]), t)
            if t % env.interval == 0:
                dt = env.interval if t else 0     # these jobs move once per their own scrape interval
                if not targets_absent:
                    self._emit_app(sample, t, env, n, pods, ns, cl, chain, node, gaps, height, cs_hist)
                    self._emit_providers(sample, t, env, ns, cl, act, prov, ml, dt, traffic, rng)
                self._emit_infra(sample, t, env, n, pods, ns, icl, act, node, cpu_idle, dt, fs_size, pv_size, rng)
                self._emit_meta(sample, t, env, cl, act, prom, am, dt, rng)
            t += self.step

    # -------------------------------------------------------------------------------------------------------
    def _emit_app(self, sample, t, env, n, pods, ns, cl, chain, node, gaps, height, cs_hist):
        for k in range(n):
            st = node[k]
            ip = f"10.1.0.{10 + k}"
            lab = f'{cl}namespace="{ns}",pod="{pods[k]}",instance="{ip}:1317",job="virtengine-app"'
            up = st["up"] and k not in gaps
            sample("up", lab, 1 if up else 0, t)
            if not up:
                continue
            # a node behind serves the chain state of its own height
            h = st["sync_h"] if st["syncing"] else st.get("h", height)
            cs = cs_hist[-1][1]
            if h < height - 1:
                for hh, snap in reversed(cs_hist):
                    if hh <= h:
                        cs = snap
                        break
                else:
                    cs = cs_hist[0][1]
            lab = f"{lab},{chain}"
            for j, le in enumerate(LE_TX):
                sample("virtengine_tx_latency_seconds_bucket", f'{lab},module="market",le="{le_text(le, env.le_style)}"',
                       math.floor(cs["tx_b"][j]), t)
            sample("virtengine_tx_latency_seconds_bucket", f'{lab},module="market",le="+Inf"', math.floor(cs["tx_count"]), t)
            sample("virtengine_tx_latency_seconds_count", f'{lab},module="market"', math.floor(cs["tx_count"]), t)
            sample("virtengine_tx_latency_seconds_sum", f'{lab},module="market"', round(cs["tx_sum"], 2), t)
            sample("virtengine_veid_submissions_total", lab, math.floor(cs["veid_sub"]), t)
            sample("virtengine_veid_verifications_total", lab, math.floor(cs["veid_ver"]), t)
            sample("virtengine_veid_pending_verifications", lab, round(cs["veid_pending"]), t)
            vl = f'{lab},tier="basic"'
            for j, le in enumerate(LE_VEID):
                sample("virtengine_veid_submission_seconds_bucket", f'{vl},le="{le_text(le, env.le_style)}"',
                       math.floor(cs["veid_b"][j]), t)
            sample("virtengine_veid_submission_seconds_bucket", f'{vl},le="+Inf"', math.floor(cs["veid_count"]), t)
            sample("virtengine_veid_submission_seconds_count", vl, math.floor(cs["veid_count"]), t)
            sample("virtengine_market_orders_created_total", lab, math.floor(cs["created"]), t)
            sample("virtengine_market_orders_matched_total", lab, math.floor(cs["matched"]), t)
            for outcome, key in (("matched_within_sla", "res_ok"), ("matched_late", "res_late"), ("expired", "res_exp")):
                sample("virtengine_market_orders_resolved_total", f'{lab},outcome="{outcome}"', math.floor(cs[key]), t)
            sample("virtengine_market_leases_active", lab, round(cs["leases"]), t)
            sample("virtengine_escrow_settlements_total", f'{lab},denom="uve",result="success"',
                   math.floor(cs["settle_ok"]), t)
            sample("virtengine_escrow_settlements_total", f'{lab},denom="uve",result="failed"',
                   math.floor(cs["settle_fail"]), t)
            sample("virtengine_escrow_balance_total", f'{lab},denom="uve"', round(cs["balance"]), t)

    def _emit_providers(self, sample, t, env, ns, cl, act, prov, ml, dt, traffic, rng):
        deploy = bool(act.get("deploy"))
        for i, p in enumerate(PROVIDERS):
            lab = f'{cl}namespace="{ns}",pod="provider-daemon-{i}",instance="10.1.1.{i}:8443",job="provider-daemon"'
            down = deploy or (i == 0 and act.get("provider_down"))
            if down:
                prov[p] = dict(starts=0.0, fails=0.0)       # the process restarts: counters from 0
                sample("up", lab, 0, t)
                continue
            sample("up", lab, 1, t)
            fshare = 0.01
            for e in act.get("provider_fail", []):
                if i == 0:
                    fshare = e.params["share"]
            starts = 0.02 * max(traffic, 0.3) * dt
            prov[p]["starts"] += starts
            prov[p]["fails"] += starts * fshare
            lab = f'{lab},provider="{p}"'
            sample("virtengine_provider_workload_starts_total", lab, math.floor(prov[p]["starts"]), t)
            sample("virtengine_provider_workload_failures_total", lab, math.floor(prov[p]["fails"]), t)
        if not env.ml:
            return
        for i, m in enumerate(MODELS):
            lab = f'{cl}namespace="{ns}",pod="ml-inference-{i}",instance="10.1.2.{i}:9090",job="ml-inference"'
            sample("up", lab, 1, t)
            share = 0.001
            for e in act.get("ml_timeout", []):
                if i == 0:
                    share = e.params["share"]
            req = 1.0 * max(traffic, 0.2) * dt
            ml[m]["req"] += req
            ml[m]["to"] += req * share
            lab = f'{lab},model="{m}"'
            sample("virtengine_ml_inference_requests_total", lab, math.floor(ml[m]["req"]), t)
            sample("virtengine_ml_inference_timeout_total", lab, math.floor(ml[m]["to"]), t)

    def _emit_infra(self, sample, t, env, n, pods, ns, icl, act, node, cpu_idle, dt, fs_size, pv_size, rng):
        ksm = f'{icl}namespace="monitoring",pod="kube-state-metrics-0",instance="10.2.0.5:8080",job="kube-state-metrics"'
        sample("up", ksm, 1, t)
        notready = {K8S_NODES[e.params["node"] % 3] for e in act.get("k8s_notready", [])}
        for kn in K8S_NODES:
            sample("kube_node_status_condition", f'{icl}job="kube-state-metrics",node="{kn}",condition="Ready",status="true"',
                   0 if kn in notready else 1, t)
        if act.get("crashloop"):
            sample("kube_pod_container_status_waiting_reason",
                   f'{icl}job="kube-state-metrics",namespace="{ns}",pod="provider-daemon-1",container="daemon",'
                   f'reason="CrashLoopBackOff"', 1, t)
        pending_pod = None
        if act.get("pending"):
            pending_pod = pods[-1]
        for k, p in enumerate(pods):
            restarting = not node[k]["up"]
            sample("kube_pod_status_phase", f'{icl}job="kube-state-metrics",namespace="{ns}",pod="{p}",phase="Pending"',
                   1 if p == pending_pod else 0, t)
        ready = sum(1 for k in range(n) if node[k]["up"] and not node[k]["syncing"] and pods[k] != pending_pod)
        if act.get("sts_unready"):
            ready = min(ready, n - 1)
        sample("kube_statefulset_replicas", f'{icl}job="kube-state-metrics",namespace="{ns}",statefulset="virtengine-node"', n, t)
        sample("kube_statefulset_status_replicas_ready",
               f'{icl}job="kube-state-metrics",namespace="{ns}",statefulset="virtengine-node"', ready, t)
        # kubelet volume stats of the chain data volumes
        for k, p in enumerate(pods):
            kl = f'{icl}job="kubelet",instance="10.0.0.{1 + k % 3}:10250",namespace="{ns}",persistentvolumeclaim="data-{p}"'
            free = 0.55 - 0.02 * (t / DAY) + 0.01 * k
            for e in act.get("pv_fill", []):
                if k == 0:
                    frac = (t - e.start) / e.duration
                    at_start = 0.55 - 0.02 * (e.start / DAY)
                    free = at_start + (e.params["to"] - at_start) * frac
            for e in act.get("pv_full", []):
                if k == 0:
                    free = e.params["free"]
            sample("kubelet_volume_stats_capacity_bytes", kl, pv_size, t)
            sample("kubelet_volume_stats_available_bytes", kl, round(pv_size * free), t)
        # node-exporter
        for i, kn in enumerate(K8S_NODES):
            nl = f'{icl}job="node-exporter",namespace="monitoring",pod="node-exporter-{i}",instance="10.0.0.{1 + i}:9100"'
            sample("up", nl, 1, t)
            util = 0.35 + 0.25 * (1 if 9 <= (t % DAY) / 3600 <= 18 else 0) + rng.uniform(-0.05, 0.05)
            for e in act.get("cpu", []):
                if i == 0:
                    util = e.params["util"] + rng.uniform(-0.01, 0.01)
            for c in ("0", "1"):
                cpu_idle[(kn, c)] += dt * (1 - util)
                sample("node_cpu_seconds_total", f'{nl},cpu="{c}",mode="idle"', round(cpu_idle[(kn, c)], 2), t)
            mem = 0.6 + rng.uniform(-0.03, 0.03)
            for e in act.get("memory", []):
                if i == 0:
                    mem = e.params["util"]
            sample("node_memory_MemTotal_bytes", nl, 64e9, t)
            sample("node_memory_MemAvailable_bytes", nl, round(64e9 * (1 - mem)), t)
            free = 0.6 - 0.005 * (t / DAY)
            for e in act.get("fs_slow", []):         # below 40% free but filling 3% a day: no fill within 24 h
                if i == 0:
                    free = e.params["free"] - 0.03 * ((t - e.start) / DAY)
            for e in act.get("fs_fill", []):
                if i == 1:
                    frac = (t - e.start) / e.duration
                    at_start = 0.6 - 0.005 * (e.start / DAY)
                    free = at_start + (e.params["to"] - at_start) * frac
            for e in act.get("fs_low", []):
                if i == 2:
                    free = e.params["free"]
            fl = f'{nl},device="/dev/nvme0n1p1",fstype="ext4",mountpoint="/"'
            sample("node_filesystem_size_bytes", fl, fs_size, t)
            sample("node_filesystem_avail_bytes", fl, round(fs_size * free), t)
            sample("node_filesystem_readonly", fl, 0, t)

    def _emit_meta(self, sample, t, env, cl, act, prom, am, dt, rng):
        restarted = getattr(self, "_prom_restarted", False)
        if not act.get("prom_restart") and getattr(self, "_in_prom_restart", False):
            for d in (prom["fail"], prom["sent"], prom["err"]):
                for key in d:
                    d[key] = 0.0
        self._in_prom_restart = bool(act.get("prom_restart"))
        pl = f'{cl}namespace="monitoring",pod="prometheus-0",instance="10.2.0.9:9090",job="prometheus"'
        sample("up", pl, 1, t)
        if act.get("rule_failures"):
            prom["fail"]["virtengine.critical"] += dt / 30
        for g, v in prom["fail"].items():
            sample("prometheus_rule_evaluation_failures_total", f'{pl},rule_group="{g}"', math.floor(v), t)
        sample("prometheus_notifications_alertmanagers_discovered", pl, 0 if act.get("am_discovered") else 3, t)
        if act.get("queue"):
            prom["queue"] = min(10000, prom["queue"] + dt * 4)
        else:
            prom["queue"] = rng.choice((0, 0, 0, 1, 2))
        sample("prometheus_notifications_queue_length", pl, prom["queue"], t)
        sample("prometheus_notifications_queue_capacity", pl, 10000, t)
        failing, share = 0, 0.0
        for e in act.get("send_fail", []):
            failing, share = e.params["ams"], e.params["share"]
        for j, a in enumerate(ALERTMANAGERS):
            sent = 0.2 * dt
            prom["sent"][a] += sent
            if j < failing:
                prom["err"][a] += sent * share
            al = f'{pl},alertmanager="{a}"'
            sample("prometheus_notifications_sent_total", al, math.floor(prom["sent"][a]), t)
            sample("prometheus_notifications_errors_total", al, math.floor(prom["err"][a]), t)
        sample("prometheus_config_last_reload_successful", pl, 0 if act.get("prom_reload") else 1, t)
        for j in range(3):
            al = f'{cl}namespace="monitoring",pod="alertmanager-{j}",instance="10.2.0.{20 + j}:9093",job="alertmanager"'
            sample("up", al, 1, t)
            for integ in ("pagerduty", "opsgenie"):
                rate = 0.01 * dt
                am[j]["total"][integ] += rate
                for e in act.get("am_fail", []):
                    if e.params["integration"] == integ:
                        am[j]["failed"][integ] += rate * e.params["share"]
                il = f'{al},integration="{integ}"'
                sample("alertmanager_notifications_total", il, math.floor(am[j]["total"][integ]), t)
                sample("alertmanager_notifications_failed_total", il, math.floor(am[j]["failed"][integ]), t)
            sample("alertmanager_config_last_reload_successful", al, 0 if (act.get("am_reload") and j == 0) else 1, t)
