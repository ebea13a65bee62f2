"""Fault scenarios: what each one changes in the simulated fleet.

A scenario is a set of effects on one chain (``chain`` picks it; the default
is the first): on the chain itself (stalled, share of voting power missing),
on the metrics whose name matches a pattern (a gauge's level, a counter's or
histogram's rate, a histogram's median, the weight of failure label values),
and on targets that stop answering. Patterns are regular expressions over
catalog names, so a scenario keeps working as the catalog grows; the test
suite checks that each scenario still moves at least one catalog metric.
Several scenarios can be active at once, each on its own chain.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Effect:
    metrics: str                      # regular expression, full match on the metric name
    level: float | None = None        # gauges: multiply the normal level
    rate: float | None = None         # counters, histograms: multiply the rate
    median: float | None = None       # histograms: multiply the median observation
    bad_weight: float | None = None   # multiply the weight of failure label values (failure, error, timeout...)

    def matches(self, name: str) -> bool:
        return re.fullmatch(self.metrics, name) is not None


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    effects: tuple[Effect, ...] = ()
    chain: dict = field(default_factory=dict)   # attributes set on the chain (stalled, missing_share, slowdown)
    stop: str = ""                              # job whose first target on the chain stops answering
    restart: str = ""                           # "one": the chain's last node restarts and block-syncs; "all": every node
    signer_down: bool = False                   # our validator's key stops signing (the node keeps running)


SCENARIOS: dict[str, Scenario] = {s.name: s for s in (
    Scenario("consensus_stall", "the chain stops producing blocks (e.g. an app hash mismatch): every consensus gauge "
             "freezes at its last value on every node, rounds climb, the mempool fills, nothing is included",
             effects=(Effect(r"cometbft_mempool_size(_bytes)?", level=5.0),),
             chain={"stalled": True}),
    Scenario("voting_power_missing", "28% of the voting power is offline (over a quarter, under the 1/3 that halts): "
             "blocks keep coming, slower, often in a second round; missing power stays below 1/3",
             chain={"missing_share": 0.28, "slowdown": 1.5}),
    Scenario("validator_halt", "40% of the voting power is offline (1/3 or more): no block can be committed; "
             "missing power freezes at the last committed block's value (under 1/3), rounds climb",
             effects=(Effect(r"cometbft_mempool_size(_bytes)?", level=5.0),),
             chain={"missing_share": 0.4}),
    Scenario("upgrade_halt", "planned x/upgrade halt: every node stopped at the upgrade height; every consensus gauge, "
             "rounds included, freezes until the new binary starts",
             chain={"stalled": "upgrade"}),
    Scenario("node_restart", "the chain's last node (a full node) restarts after being away: it block-syncs (syncing 1, "
             "blocksync height rising, consensus height held at its start-up value), then rejoins consensus",
             restart="one"),
    Scenario("cluster_restart", "every node of the chain in this cluster restarts and block-syncs at once (the chain "
             "itself keeps going on the other operators' validators)",
             restart="all"),
    Scenario("signer_down", "our validator's key stops signing (remote signer down): its node runs and follows the "
             "chain, the validator misses every block (missed blocks climb, last signed height freezes)",
             signer_down=True),
    Scenario("order_burst", "ten times the usual orders are created; each is matched minutes (blocks) later, so "
             "matched orders follow the burst after the matching delay: a burst, not a failure",
             effects=(Effect(r"virtengine_market_orders_created_total", rate=10.0),)),
    Scenario("escrow_low", "escrow balances fall to 1/10,000 of normal (below the low-balance threshold)",
             effects=(Effect(r"virtengine_escrow_.*(balance|locked|deposit|tvl).*", level=0.0001),)),
    Scenario("veid_backlog", "VEID verifications pile up: the pending queue grows 40x and verifications slow down",
             effects=(Effect(r"virtengine_veid_.*(pending|queue|backlog).*", level=40.0),
                      Effect(r"virtengine_veid_.*verifications?_total", rate=0.3),
                      Effect(r"virtengine_veid_.*_seconds", median=1.5))),
    Scenario("provider_failures", "provider workloads fail: half of the workload starts fail, bids and leases fail",
             effects=(Effect(r"virtengine_provider_.*(fail|error).*", rate=100.0),
                      Effect(r"virtengine_provider_.*", bad_weight=40.0))),
    Scenario("ml_timeouts", "ML inference times out: timeouts 100x, latency 20x",
             effects=(Effect(r"virtengine_ml_.*timeout.*", rate=100.0),
                      Effect(r"virtengine_ml_.*_seconds", median=20.0),
                      Effect(r"virtengine_ml_.*", bad_weight=40.0))),
    Scenario("tx_latency_spike", "transaction latency jumps 10x (p99 of several block intervals)",
             effects=(Effect(r"virtengine_tx_.*_seconds", median=10.0),)),
    Scenario("slo_burn", "service level indicators go bad: VEID submissions take 10x longer, ~40% of market and "
             "VEID requests fail, 90% of orders go unmatched",
             effects=(Effect(r"virtengine_veid_.*_seconds", median=10.0),
                      Effect(r"virtengine_market_orders_matched_total", rate=0.1),
                      Effect(r"virtengine_market_orders_resolved_total", bad_weight=10.0),
                      Effect(r"virtengine_(veid|market|escrow)_.*", bad_weight=60.0))),
    Scenario("exporter_down", "one CometBFT node's metrics endpoint stops answering (connection refused)",
             stop="cometbft"),
)}


def get(name: str) -> Scenario:
    try:
        return SCENARIOS[name]
    except KeyError:
        raise KeyError(f"unknown scenario {name!r}; scenarios: {', '.join(SCENARIOS)}") from None
