"""How each catalog metric behaves: type-aware series with realistic levels.

A metric's behaviour (``Spec``) is chosen from its type, unit and name by
the ordered tables below (first match wins): chain-state gauges follow the
simulated chain (height, voting power), other gauges revert to a level with
noise, counters grow at a rate, histograms observe a log-normal distribution
(bucket counts are the expected counts, so ``histogram_quantile`` of the
series is the distribution's quantile). Series evolve with wall-clock time
each time they are read, so any scrape interval works.
"""
from __future__ import annotations

import math
import random
import re
import time
import zlib
from dataclasses import dataclass, field, replace
from itertools import product

from .catalog import MetricDef
from .world import BAD_VALUES, METRIC_LABEL_COMBINATIONS, PEERS, VALUE_WEIGHTS, Chain, Target, World

SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
BYTES_BUCKETS = tuple(256 * 4 ** i for i in range(10))
COUNT_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)
MAX_SERIES_PER_TARGET = 200
# labels Prometheus puts on every series from the scrape (never exposed by the exporter), and "le"
TARGET_LABELS = frozenset({"le", "instance", "job"})
# labels that say how an event ended; a counter and its follower share everything else
OUTCOME_LABELS = frozenset({"result", "status", "outcome", "state", "phase", "reason", "code", "error", "error_type"})


@dataclass(frozen=True)
class Spec:
    gauge: str = "walk"        # walk | const | time | chain:<attribute>
    level: float = 25.0        # gauges: the normal level; const: the value
    integer: bool = False
    lo: float = 0.0
    hi: float = math.inf
    rate: float = 0.5          # counters: increments per second; histograms: observations per second
    median: float = 0.2        # histograms: median observation
    sigma: float = 0.6
    buckets: tuple = SECONDS_BUCKETS
    per_block: bool = False    # rate and median follow the chain's block time
    block_median: bool = False # the median (not the rate) follows the block time: waiting for the next block
    leader: str = ""           # counters: the counter whose events this one counts a share of...
    share: float = 1.0
    lag_blocks: float = 0.0    # ...this many blocks later (an order is matched minutes after it is created)


def _g(**kw) -> Spec:
    return Spec(**kw)


# gauges that mirror the chain's state (CometBFT v0.38 consensus/metrics.go, set in consensus/state.go
# recordMetrics at each commit, updateHeight at start-up and each new height; blocksync/metrics.go)
CHAIN_GAUGES = (
    (r".*_consensus_height", "height"),
    (r".*_consensus_latest_block_height", "committed_height"),
    (r".*_blocksync_latest_block_height", "sync_height"),
    (r".*_blocksync_syncing", "syncing"),
    (r".*_latest_block_height|.*_block_height", "height"),
    (r".*_consensus_validators", "validators"),
    (r".*_consensus_validators_power", "validators_power"),
    (r".*_consensus_missing_validators", "missing_validators"),
    (r".*_consensus_missing_validators_power", "missing_power"),
    (r".*_consensus_validator_power", "validator_power"),
    (r".*_consensus_validator_last_signed_height", "last_signed"),
    (r".*_consensus_validator_missed_blocks", "missed"),
    (r".*_consensus_rounds", "rounds"),
    (r".*_consensus_round_voting_power_percent", "round_power"),
    (r".*_consensus_total_txs", "total_txs"),
)
# CometBFT gauges set once per committed block: they freeze while no block is committed (halt, block sync)
COMMIT_GAUGES = re.compile(r"cometbft_consensus_.*")
# application metrics are chain state: every full node of a chain serves the same values (one model per chain)
CHAIN_STATE_SOURCES = frozenset({"application", "cosmos-sdk"})
# served by Prometheus itself for each scrape, never by an exporter
SYNTHETIC = re.compile(r"up|scrape_.*")
GAUGES = (
    # the first five are matched by name before the unit: replicas, conditions and booleans named for their meaning
    (r"kube_.*replicas.*", _g(gauge="const", level=3)),   # desired = available = ready: no workload short
    (r".*_byzantine_validators(_power)?|.*syncing|.*_errors?|.*_failures?|.*_readonly|.*waiting_reason"
     r"|.*_unschedulable",
     _g(gauge="const", level=0)),
    (r"kube_node_status_condition", _g(gauge="condition")),
    (r".*_up|.*_info|.*_ready|.*_healthy|.*_successful|.*alertmanagers_discovered", _g(gauge="const", level=1)),
    (r".*queue_capacity", _g(gauge="const", level=10000)),
    (r".*queue_length", _g(level=2, integer=True)),
    (r"node_memory_MemTotal_bytes", _g(gauge="const", level=68719476736)),
    (r"(?i).*mem.*(avail|available|free).*_bytes", _g(level=2.8e10, integer=True)),
    (r"(?i).*(avail|available|free).*_bytes", _g(level=3.2e11, integer=True)),
    (r".*(size|capacity|total).*_bytes", _g(gauge="const", level=5e11)),
    (r".*(timestamp|_time)_seconds|.*_last_.*_seconds", _g(gauge="time")),
    (r".*_peers", _g(level=40, integer=True)),
    (r".*mempool_size", _g(level=60, integer=True)),
    (r".*_num_txs", _g(level=20, integer=True)),
    (r".*size_bytes", _g(level=3e5, integer=True)),
    (r".*(utilization|usage_ratio|_ratio|_fraction)", _g(level=0.55, hi=1.0)),
    (r".*(percent|_pct)", _g(level=55, hi=100)),
    (r".*(pending|queue|backlog).*", _g(level=12, integer=True)),
    (r".*(balance|locked|deposit|tvl|bonded|supply).*", _g(level=5e12, integer=True)),
    (r".*(active|running|online).*", _g(level=150, integer=True)),
    (r".*_seconds", _g(level=1.0)),
    (r".*_bytes", _g(level=5e8, integer=True)),
)
COUNTERS = (
    (r"(alertmanager|prometheus)_.*(fail|error).*", 0.0),
    (r".*_restarts_total", 0.0),   # healthy containers do not restart
    (r".*(fail|error|timeout|reject|evict|slash|missed|byzantine|panic|dropped|late_votes).*", 0.002),
    (r".*_bytes_total", 5e4),
    (r".*_seconds_total", 0.3),
    (r".*(settlement|payout|withdraw).*", 0.2),
    (r".*(verified|verification|submission).*", 1.0),
    (r".*(order|bid|lease).*", 2.0),
)
# counters that count a share of another counter's events (same labels): (pattern, leader, share)
# (pattern, leader, share[, lag in blocks])
FOLLOWS = (
    (r"(.*)_orders_matched_total", r"\1_orders_created_total", 0.99, 30),
    # every order is resolved once (by outcome: the outcome values' weights split it), after the matching delay
    (r"(.*)_orders_resolved_total", r"\1_orders_created_total", 1.0, 30),
    (r"(.*)_workload_failures_total", r"\1_workload_starts_total", 0.005),
    (r"(.*)_timeout_total", r"\1_requests_total", 0.002),
    (r"(.*)_verifications_total", r"\1_submissions_total", 0.98),
    (r"(.*)_notifications_failed_total", r"\1_notifications_total", 0.0),
    (r"(.*)_notifications_errors_total", r"\1_notifications_sent_total", 0.0),
)
HISTOGRAMS = (
    # a transaction waits for the next block (uniform over the interval) and its commit: median 0.6 intervals
    (r"virtengine_tx_latency_seconds", dict(median=0.6, sigma=0.35, rate=3.0, block_median=True)),
    (r".*block_interval_seconds", dict(median=1.0, sigma=0.08, rate=1.0, per_block=True)),
    (r".*round_duration_seconds", dict(median=0.8, sigma=0.15, rate=1.0, per_block=True)),
    (r".*step_duration_seconds", dict(median=0.1, sigma=0.5, rate=4.0, per_block=True)),
    (r".*block_processing_time.*", dict(median=0.08, sigma=0.5, rate=1.0, per_block=True)),
    # CometBFT's own buckets for ABCI method timing (proxy/metrics.go, v0.38)
    (r".*abci.*", dict(median=0.004, sigma=0.8, rate=5.0,
                       buckets=(0.0001, 0.0004, 0.002, 0.009, 0.02, 0.1, 0.65, 2, 6, 25))),
    (r"virtengine_tx_.*", dict(median=0.8, sigma=0.5, rate=3.0)),
    (r"virtengine_veid_.*", dict(median=2.5, sigma=0.45, rate=2.0)),
    (r"virtengine_ml_.*", dict(median=0.15, sigma=0.5, rate=2.0)),
    (r".*lease.*|.*deploy.*", dict(median=5.0, sigma=0.6, rate=0.05)),
)


def spec_for(metric: MetricDef) -> Spec:
    name, unit = metric.name, metric.unit.lower()
    if metric.type == "gauge":
        for pattern, attr in CHAIN_GAUGES:
            if re.fullmatch(pattern, name):
                return Spec(gauge=f"chain:{attr}", integer=attr != "round_power")
        for pattern, spec in GAUGES[:5]:
            if re.fullmatch(pattern, name):
                return spec
        if unit in ("ratio", "fraction"):
            return _g(level=0.55, hi=1.0)
        if unit in ("percent", "%"):
            return _g(level=55, hi=100)
        if unit in ("bool", "boolean"):
            return _g(gauge="const", level=1)
        for pattern, spec in GAUGES:
            if re.fullmatch(pattern, name):
                return spec
        return Spec()
    if metric.type == "counter":
        for pattern, leader, share, *lag in FOLLOWS:
            if re.fullmatch(pattern, name):
                lead = re.sub(pattern, leader, name)
                rate = spec_for(MetricDef(lead, "counter", (), metric.unit, "", metric.source)).rate * share
                return Spec(rate=rate, leader=lead, share=share, lag_blocks=float(lag[0]) if lag else 0.0)
        for pattern, rate in COUNTERS:
            if re.fullmatch(pattern, name):
                return Spec(rate=rate)
        return Spec(rate=0.5)
    if metric.type in ("histogram", "summary"):
        params = {}
        for pattern, found in HISTOGRAMS:
            if re.fullmatch(pattern, name):
                params = dict(found)
                break
        if unit == "bytes" or name.endswith("_bytes"):
            return Spec(median=2000.0, sigma=1.0, rate=params.get("rate", 1.0), buckets=BYTES_BUCKETS)
        seconds = unit in ("seconds", "s") or name.endswith("_seconds")
        if unit in ("milliseconds", "ms"):
            params["median"] = params.get("median", 0.2) * 1000
            return Spec(**{**params, "buckets": tuple(b * 1000 for b in SECONDS_BUCKETS)})
        if not seconds and not params:
            return Spec(median=10.0, sigma=0.8, rate=1.0, buckets=COUNT_BUCKETS)
        return Spec(**params)
    return Spec(gauge="const", level=1)


def lognormal_cdf(x: float, median: float, sigma: float) -> float:
    if x <= 0:
        return 0.0
    if median <= 0:
        return 1.0
    return 0.5 * (1 + math.erf((math.log(x) - math.log(median)) / (sigma * math.sqrt(2))))


@dataclass
class Series:
    labels: dict
    weight: float          # product of the label values' weights
    bad: bool              # carries a failure label value
    jitter: float          # per-series level factor
    value: float = 0.0
    buckets: list = field(default_factory=list)
    count: float = 0.0
    total: float = 0.0
    history: list = field(default_factory=list)   # leaders of a lagging follower: (chain height, value)


@dataclass
class Modifiers:
    level: float = 1.0
    rate: float = 1.0
    median: float = 1.0
    bad_weight: float = 1.0


class MetricOnTarget:
    """The series of one catalog metric on one target, and how they evolve."""

    def __init__(self, metric: MetricDef, target: Target, world: World, rng: random.Random) -> None:
        self.metric, self.target, self.spec = metric, target, spec_for(metric)
        if metric.type in ("histogram", "summary") and self.spec.per_block:
            bt = target.chain.block_time
            self.spec = replace(self.spec, median=self.spec.median * bt, rate=self.spec.rate / bt)
        if metric.type in ("histogram", "summary") and self.spec.block_median:
            self.spec = replace(self.spec, median=self.spec.median * target.chain.block_time)
        if metric.type == "gauge" and re.fullmatch(r".*_p2p_peers", metric.name) and target.role in PEERS:
            level, lo, hi = PEERS[target.role]
            self.spec = replace(self.spec, level=level, lo=lo, hi=hi)
        self.node = target.node_obj
        self.commit_gauge = metric.source == "cometbft" and bool(COMMIT_GAUGES.fullmatch(metric.name))
        self.leader: "MetricOnTarget | None" = None   # set by link_followers
        self.last: float | None = None                # monotonic time of the last advance
        self.series: list[Series] = []
        labels = [label for label in metric.labels if label not in TARGET_LABELS]
        choices = [world.label_values(label, target, metric.name, metric.documented(label)) for label in labels]
        # a boolean gauge with documented states (e.g. status (active, maintenance, offline)) is a state set:
        # 1 for the current state, the first documented one (the common case), 0 for the others
        self.state: tuple[str, str] | None = None
        if metric.type == "gauge" and self.spec == Spec(gauge="const", level=1):
            for label in labels:
                values = world.label_values(label, target, metric.name, metric.documented(label))
                if metric.documented(label) and values == metric.documented(label):
                    self.state = (label, values[0])
                    break
        uptime = 2e4 + 1.8e5 * (zlib.crc32(target.name.encode()) / 2 ** 32)   # seconds since the exporter started
        exported = next((keep for pattern, keep in METRIC_LABEL_COMBINATIONS.items()
                         if re.fullmatch(pattern, metric.name)), None)
        for values in product(*choices):
            if len(self.series) >= MAX_SERIES_PER_TARGET:
                break
            if exported is not None and not exported(dict(zip(labels, values))):
                continue
            weight = math.prod(VALUE_WEIGHTS.get(v.lower(), 1.0) for v in values)
            bad = any(v.lower() in BAD_VALUES for v in values)
            identity = tuple(v for label, v in zip(labels, values) if label not in OUTCOME_LABELS)
            key = f"{target.name}|{identity}".encode()
            jitter = 0.8 + 0.4 * (zlib.crc32(key) / 2 ** 32)   # the same for a counter and its follower
            s = Series(labels=dict(zip(labels, values)), weight=weight, bad=bad, jitter=jitter)
            self.series.append(s)
            if metric.type == "counter":
                s.value = float(int(self.spec.rate * weight * s.jitter * uptime))
            elif metric.type in ("histogram", "summary"):
                s.buckets = [0.0] * len(self.spec.buckets)
                self._observe(s, self.spec.rate * weight * s.jitter * uptime, self.spec.median)

    # -- evolution
    def in_consensus(self) -> bool:
        """Whether this node commits blocks now (the chain is live and the node is not block-syncing)."""
        chain = self.target.chain
        return not chain.halted and (self.node is None or self.node.state == "consensus")

    def reset(self) -> None:
        """The exporting process restarted: counters and histograms start again from zero."""
        for s in self.series:
            if self.metric.type == "counter":
                s.value = 0.0
            elif self.metric.type in ("histogram", "summary"):
                s.buckets, s.count, s.total = [0.0] * len(self.spec.buckets), 0.0, 0.0

    def advance(self, dt: float, mods: Modifiers, rng: random.Random) -> None:
        spec, kind = self.spec, self.metric.type
        chain = self.target.chain
        if self.metric.source in CHAIN_STATE_SOURCES and chain.halted:
            return   # chain state changes only with committed blocks
        if kind == "counter" and self.leader is not None:
            return self._follow(mods)
        if kind == "gauge" and self.commit_gauge and not self.in_consensus():
            return   # set at each commit: frozen while none happens
        for s in self.series:
            weight = s.weight * (mods.bad_weight if s.bad else 1.0)
            if kind == "counter":
                s.value += spec.rate * weight * s.jitter * mods.rate * dt * rng.uniform(0.9, 1.1)
            elif kind in ("histogram", "summary"):
                median = spec.median * mods.median * (chain.slowdown if spec.per_block or spec.block_median else 1.0)
                n = spec.rate * weight * s.jitter * mods.rate * dt * rng.uniform(0.8, 1.2)
                if spec.per_block and not self.in_consensus():
                    n = 0.0
                if spec.block_median and chain.halted:
                    n = 0.0   # nothing is included while no block is committed
                self._observe(s, n, median)
            if kind == "counter" and s.history is not None and self._followed:
                s.history.append((chain.live_time, s.value))
                keep = chain.live_time - self._followed - 5 * chain.block_time
                while len(s.history) > 2 and s.history[1][0] < keep:
                    s.history.pop(0)
            elif kind == "gauge" and spec.gauge == "walk":
                target = spec.level * weight * s.jitter * mods.level
                if not s.value and not dt:
                    s.value = target
                alpha = 1 - math.exp(-dt / 3.0) if mods.level == 1.0 else 1.0
                noise = rng.gauss(0, 0.03 * target) if mods.level == 1.0 else 0.0
                s.value = min(spec.hi, max(spec.lo, s.value + (target - s.value) * alpha + noise))

    _followed = 0.0   # a leader: the largest lag (seconds of chain time) of its followers

    def value_at(self, s: Series, when: float) -> float:
        """A leader's counter value at chain time ``when`` (``Chain.live_time``; before the first record: its
        nominal rate). Chain time stands still while the chain is halted: nothing is created or matched."""
        hist = s.history or [(self.target.chain.live_time, s.value)]
        if when <= hist[0][0]:
            per_second = self.spec.rate * s.weight * s.jitter
            return max(0.0, hist[0][1] - per_second * (hist[0][0] - when))
        for (h0, v0), (h1, v1) in zip(hist, hist[1:]):
            if h0 <= when <= h1:
                return v0 if h1 == h0 else v0 + (v1 - v0) * (when - h0) / (h1 - h0)
        return hist[-1][1]

    def link(self, leader: "MetricOnTarget") -> None:
        """Count ``spec.share`` of the leader's events ``spec.lag_blocks`` blocks after they happen."""
        self.leader = leader
        self.lag = self.spec.lag_blocks * self.target.chain.block_time   # the delay at the chain's block interval
        leader._followed = max(leader._followed, self.lag)
        now = self.target.chain.live_time
        self._pairs = []
        for s in self.series:
            key = {k: v for k, v in s.labels.items() if k not in OUTCOME_LABELS}
            match = next((ls for ls in leader.series
                          if {k: v for k, v in ls.labels.items() if k not in OUTCOME_LABELS} == key), None)
            if match is None:
                continue
            self._pairs.append((s, match))
            s.value = float(int(self.spec.share * s.weight * leader.value_at(match, now - self.lag)))
        self._when = now

    def _follow(self, mods: Modifiers) -> None:
        now = self.target.chain.live_time
        # several outcomes of one leader series split its events (each order resolved once): shares sum to 1
        split: dict[int, float] = {}
        for s, ls in self._pairs:
            split[id(ls)] = split.get(id(ls), 0.0) + s.weight * (mods.bad_weight if s.bad else 1.0)
        counts = {key: sum(1 for _, ls in self._pairs if id(ls) == key) for key in split}
        for s, ls in self._pairs:
            done = self.leader.value_at(ls, now - self.lag) - self.leader.value_at(ls, self._when - self.lag)
            weight = s.weight * (mods.bad_weight if s.bad else 1.0)
            if counts[id(ls)] > 1:
                weight /= split[id(ls)] or 1.0
            s.value += max(0.0, done) * self.spec.share * weight * mods.rate
        self._when = now

    def rewound(self, s: Series, blocks: float) -> tuple:
        """(value, buckets, count, total) of a chain-state series ``blocks`` blocks ago (a node behind the head)."""
        if blocks <= 0 or self.metric.type == "gauge":
            return s.value, s.buckets, s.count, s.total
        seconds = blocks * self.target.chain.block_time
        n = self.spec.rate * s.weight * s.jitter * seconds
        if self.metric.type == "counter":
            return max(0.0, s.value - n), s.buckets, s.count, s.total
        buckets = [max(0.0, b - n * lognormal_cdf(le, self.spec.median, self.spec.sigma))
                   for le, b in zip(self.spec.buckets, s.buckets)]
        return s.value, buckets, max(0.0, s.count - n), max(0.0, s.total - n * self.spec.median)

    def _observe(self, s: Series, n: float, median: float) -> None:
        """Add the expected bucket counts of ``n`` observations."""
        for i, le in enumerate(self.spec.buckets):
            s.buckets[i] += n * lognormal_cdf(le, median, self.spec.sigma)
        s.count += n
        s.total += n * median * math.exp(self.spec.sigma ** 2 / 2)

    def gauge_value(self, s: Series, mods: Modifiers) -> float:
        spec = self.spec
        if spec.gauge == "const":
            if self.state is not None:
                label, current = self.state
                return float(s.labels.get(label) == current)
            return spec.level * mods.level
        if spec.gauge == "condition":
            ready = s.labels.get("condition", "Ready") == "Ready"
            return float((s.labels.get("status") == "true") == ready and s.labels.get("status") != "unknown")
        if spec.gauge == "time":
            return round(time.time(), 3)
        if spec.gauge.startswith("chain:"):
            value = chain_value(spec.gauge[6:], self.target, s.labels)
            return None if value is None else float(value)
        return float(round(s.value)) if spec.integer else round(s.value, 6)


def chain_value(attr: str, target: Target, labels: dict) -> float | None:
    """A chain gauge as this target's node exports it; None where the node has not set it (a series that
    does not exist: a restarted node sets most consensus gauges only at its first commit)."""
    chain: Chain = target.chain
    node = target.node_obj
    if node is None:   # not a node of ours (e.g. an API target without one): the chain head
        height = int(chain.height)
        syncing, fresh = False, False
    else:
        syncing, fresh = node.state == "syncing", node.fresh
        if not syncing and fresh and int(chain.height) > node.sync_height:
            node.fresh = fresh = False   # committed in consensus since the restart
        height = node.start_height if syncing else node.applied_height(chain)
    if attr == "height":
        # updateHeight: the height being decided (last committed + 1), set at start-up and at each new height;
        # held at its start-up value while the node block-syncs
        return height
    if attr == "syncing":
        return 1 if syncing else 0
    if attr == "sync_height":
        return int(node.sync_height) if node is not None else height
    if fresh:
        return None   # recordMetrics has not run since the restart: the series does not exist yet
    committed = chain.committed_missing
    if attr == "committed_height":
        return height - 1
    if attr == "validators":
        return len(chain.validators)
    if attr == "validators_power":
        return chain.total_power
    if attr == "missing_validators":
        return len(committed)
    if attr == "missing_power":
        return sum(v.power for v in committed)
    if attr == "rounds":
        return int(chain.rounds)
    if attr == "round_power":
        # the share of the power whose votes of this vote type arrived in the current round
        return round(chain.online_share(), 4)
    if attr == "total_txs":
        # a gauge CometBFT adds each block's transactions to: counted since the process started
        return int(20 * max(0, height - (node.started_at_height if node else 0)))
    if attr in ("validator_power", "last_signed", "missed"):
        validator = target.validator
        if validator is None:
            return None   # only the node's own validator (its priv_validator key) is exported
        if attr == "validator_power":
            return validator.power
        if attr == "last_signed":
            # the last committed height whose LastCommit carries this validator's signature
            return int(min(node.last_signed, height - 1))
        # incremented for each committed block whose LastCommit lacks this validator's signature, since the
        # process started (a gauge that CometBFT only adds to: it restarts from nothing with the process)
        return int(node.missed)
    raise KeyError(attr)


