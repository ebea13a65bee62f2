"""The simulator obeys the world model (docs/world-model.md): what it serves is a state a real chain can be in.

Each test reads the simulator the way Prometheus does (the text of each
target's /metrics) and checks one fact of the world model against it:
missing voting power under 1/3 whenever a height advances, every consensus
gauge frozen at a halt, block sync after a restart, transaction latency
against the chain's block interval, chain-state metrics identical on every
node, bucket bounds in Prometheus 2 and 3 spelling, node roles and their
peers, orders matched after a delay. The last test runs every scenario and
checks the invariants on every pair of successive reads, so a scenario
added later is held to the same facts. No fixed sleeps: the tests poll the
simulated chain until it has moved.
"""
from __future__ import annotations

import re
import time

import pytest
import requests
import yaml
from prometheus_client.parser import text_string_to_metric_families

from generator.servers import wait_until
from simulator import SCENARIOS, Simulator, load_catalog

CATALOG = load_catalog()
CHAIN_CATALOG = [m for m in CATALOG if m.source in ("cometbft", "application")]
THIRD = 1 / 3
MODULE = re.compile(r"virtengine_(veid|market|escrow|tx)_.*")
COMMIT_GAUGES = ("cometbft_consensus_height", "cometbft_consensus_latest_block_height",
                 "cometbft_consensus_missing_validators", "cometbft_consensus_missing_validators_power",
                 "cometbft_consensus_validators_power", "cometbft_consensus_num_txs",
                 "cometbft_consensus_block_size_bytes", "cometbft_consensus_total_txs")
HALTS = {"consensus_stall", "validator_halt", "upgrade_halt"}


# -- reading the simulator as Prometheus does
def parse(text: bytes | str) -> dict[tuple, float]:
    """{(sample name, sorted labels): value} of one scrape."""
    text = text.decode() if isinstance(text, bytes) else text
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def read(sim: Simulator, names: list[str] | None = None) -> dict[str, dict[tuple, float]]:
    """Every answering target (or those named) at one instant: {instance: samples}."""
    return {name: parse(text) for name, text in sim.snapshot(names).items()}


def get(samples: dict, name: str, **labels) -> float | None:
    for (n, lab), v in samples.items():
        if n == name and all(dict(lab).get(k) == val for k, val in labels.items()):
            return v
    return None


def nodes(sim: Simulator, chain_id: str, port: int = 26660) -> list[str]:
    return [t.name for t in sim.targets if t.chain.chain_id == chain_id and t.name.endswith(f":{port}")]


def quantile(samples: dict, name: str, q: float) -> float | None:
    """histogram_quantile(q, sum by (le) (name_bucket)) of one scrape, as Prometheus computes it."""
    buckets: dict[float, float] = {}
    for (n, lab), v in samples.items():
        if n == f"{name}_bucket":
            le = float(dict(lab)["le"])
            buckets[le] = buckets.get(le, 0.0) + v
    if not buckets:
        return None
    bounds = sorted(buckets)
    total = buckets[bounds[-1]]
    if total <= 0:
        return None
    rank, prev_bound, prev_count = q * total, 0.0, 0.0
    for b in bounds:
        if buckets[b] >= rank:
            if b == float("inf"):
                return prev_bound
            return prev_bound + (b - prev_bound) * (rank - prev_count) / max(buckets[b] - prev_count, 1e-12)
        prev_bound, prev_count = b, buckets[b]
    return bounds[-2]


def poll(check, what: str, timeout: float = 60):
    """``wait_until`` at the simulator's pace (every 20 ms): ``check``'s first true result, or fail naming ``what``."""
    return wait_until(check, timeout, f"waiting for {what}", interval=0.02)


def chain_sim(**kw) -> Simulator:
    """A simulator of the chain endpoints only (CometBFT and application), quick to read."""
    kw.setdefault("block_time", 0.1)
    return Simulator(CHAIN_CATALOG, **kw)


def wait_blocks(sim: Simulator, chain_id: str, blocks: float) -> None:
    """Poll until the simulated clock has moved by ``blocks`` block intervals of the chain."""
    chain = sim.world.chain(chain_id)
    start = time.monotonic()
    poll(lambda: time.monotonic() - start >= blocks * chain.block_time * chain.slowdown,
         f"{blocks} blocks of {chain_id}")


# -- fact 1: a commit needs more than 2/3 of the power; at a halt the consensus gauges freeze
def test_missing_power_stays_under_a_third_whenever_the_height_advances():
    sim = chain_sim()
    sim.activate("voting_power_missing", "virtengine-2")
    seen_quarter = False
    prev = read(sim)
    for _ in range(15):
        wait_blocks(sim, "virtengine-2", 1.2)
        cur = read(sim)
        for inst in nodes(sim, "virtengine-2"):
            if get(cur[inst], "cometbft_consensus_height") > get(prev[inst], "cometbft_consensus_height"):
                missing = get(cur[inst], "cometbft_consensus_missing_validators_power")
                total = get(cur[inst], "cometbft_consensus_validators_power")
                assert missing < total * THIRD, f"{inst}: {missing}/{total} missing while blocks come"
                seen_quarter |= missing >= total / 4
        prev = cur
    # the scenario is the state ValidatorDown must see before a halt: over a quarter missing, blocks coming
    assert seen_quarter, "voting_power_missing never showed a quarter or more of the power missing"


@pytest.mark.parametrize("seed", range(1, 41))
def test_voting_power_missing_is_over_a_quarter_and_under_a_third_on_every_chain_whatever_the_seed(seed):
    from simulator.world import World
    world = World({"cometbft"}, seed=seed)
    for chain in world.chains:
        chain.missing_share = SCENARIOS["voting_power_missing"].chain["missing_share"]
        share = sum(v.power for v in chain.live_missing()) / chain.total_power
        assert 0.25 <= share < THIRD and not chain.halted, (seed, chain.chain_id, share)


def test_more_than_a_third_offline_halts_the_chain_and_freezes_missing_power_below_a_third():
    sim = chain_sim()
    sim.activate("validator_halt", "virtengine-1")
    first = read(sim)
    wait_blocks(sim, "virtengine-1", 5)
    later = read(sim)
    for inst in nodes(sim, "virtengine-1"):
        for name in COMMIT_GAUGES:
            assert get(later[inst], name) == get(first[inst], name), f"{inst}: {name} moved during the halt"
        missing = get(later[inst], "cometbft_consensus_missing_validators_power")
        total = get(later[inst], "cometbft_consensus_validators_power")
        # the LastCommit of the last committed block: what a commit allows, under 1/3 (over a quarter here)
        assert total / 4 <= missing < total * THIRD, (inst, missing, total)
        assert get(later[inst], "cometbft_consensus_rounds") > get(first[inst], "cometbft_consensus_rounds")
    # the other chains go on
    assert all(get(later[i], "cometbft_consensus_height") > get(first[i], "cometbft_consensus_height")
               for i in nodes(sim, "virtengine-2"))


@pytest.mark.parametrize("scenario, rounds_move", [("consensus_stall", True), ("upgrade_halt", False)])
def test_at_a_halt_every_consensus_gauge_freezes_and_rounds_climb_unless_every_node_stopped(scenario, rounds_move):
    sim = chain_sim()
    sim.activate(scenario, "virtengine-3")
    first = read(sim)
    wait_blocks(sim, "virtengine-3", 5)
    later = read(sim)
    for inst in nodes(sim, "virtengine-3"):
        for name in COMMIT_GAUGES:
            assert get(later[inst], name) == get(first[inst], name), f"{inst}: {name} moved at a halt"
        moved = get(later[inst], "cometbft_consensus_rounds") > get(first[inst], "cometbft_consensus_rounds")
        assert moved == rounds_move, f"{scenario}: rounds moved={moved} on {inst}"
    # no block, no transaction included: the latency histogram and the module counters stand still
    for inst in nodes(sim, "virtengine-3", 1317):
        for key, value in later[inst].items():
            if MODULE.fullmatch(key[0]) and key[0].endswith(("_total", "_count", "_bucket")):
                assert value == first[inst].get(key), f"{inst}: {key[0]} moved at a halt"


# -- fact 2: block sync after a restart
def test_a_restarted_node_holds_its_consensus_height_while_block_sync_rises_then_rejoins():
    sim = chain_sim(restart_lag_blocks=40, sync_speed=3.0)
    target = nodes(sim, "virtengine-1")[-1]
    before = read(sim)[target]
    sim.activate("node_restart", "virtengine-1")
    first = read(sim)[target]
    assert get(first, "cometbft_blocksync_syncing") == 1
    start = get(first, "cometbft_consensus_height")
    assert start < get(before, "cometbft_consensus_height")   # the height stored before it went away
    # the process restarted: its counters start again, the gauges set at commit do not exist yet
    assert get(first, "cometbft_consensus_late_votes_total", vote_type="prevote") < \
        get(before, "cometbft_consensus_late_votes_total", vote_type="prevote")
    assert get(first, "cometbft_consensus_validators_power") is None
    sync_seen = [get(first, "cometbft_blocksync_latest_block_height")]

    def synced():
        now = read(sim)[target]
        if get(now, "cometbft_blocksync_syncing") == 1:
            assert get(now, "cometbft_consensus_height") == start, "consensus height moved while block-syncing"
            sync_seen.append(get(now, "cometbft_blocksync_latest_block_height"))
            return None
        return now
    after = poll(synced, "the restarted node to finish block sync")
    assert len(set(sync_seen)) > 2 and sync_seen == sorted(sync_seen), sync_seen
    # after the switch to consensus, the height moves again, past everything block sync applied
    poll(lambda: get(read(sim)[target], "cometbft_consensus_height") > max(sync_seen), "consensus height to move")
    assert get(after, "cometbft_blocksync_syncing") == 0


def test_a_whole_cluster_block_syncing_holds_every_consensus_height_while_the_chain_goes_on():
    sim = chain_sim(restart_lag_blocks=200, sync_speed=2.0)
    sim.activate("cluster_restart", "virtengine-2")
    first = read(sim)
    wait_blocks(sim, "virtengine-2", 4)
    later = read(sim)
    for inst in nodes(sim, "virtengine-2"):
        assert get(later[inst], "cometbft_blocksync_syncing") == 1
        assert get(later[inst], "cometbft_consensus_height") == get(first[inst], "cometbft_consensus_height")
        assert get(later[inst], "cometbft_blocksync_latest_block_height") > \
            get(first[inst], "cometbft_blocksync_latest_block_height")
    # the application state a syncing node serves is that of the block it reached: behind, and catching up
    app = nodes(sim, "virtengine-2", 1317)
    created = [get(later[i], "virtengine_market_orders_created_total") for i in app]
    assert created == [created[0]] * len(app)   # same sync progress on each node here (all restarted at once)
    assert created[0] > get(first[app[0]], "virtengine_market_orders_created_total")


# -- fact 3: a transaction waits for the next block
@pytest.mark.parametrize("block_time", [1.0, 6.0])
@pytest.mark.parametrize("scenario", [None, "voting_power_missing"])
def test_transaction_latency_is_at_least_a_share_of_the_block_interval(block_time, scenario):
    sim = chain_sim(block_time=block_time)
    if scenario:
        sim.activate(scenario, "*")
    wait_blocks(sim, "virtengine-1", 0.05)
    snap = read(sim)
    for chain in sim.world.chains:
        intervals = {round(quantile(snap[i], "cometbft_consensus_block_interval_seconds", 0.5), 6)
                     for i in nodes(sim, chain.chain_id)}
        interval = max(intervals)
        # one block interval per chain: every node measures the chain's own (within the histogram's resolution)
        assert min(intervals) > 0.5 * interval, intervals
        assert 0.5 * block_time <= interval <= 3 * block_time, (interval, block_time)
        for inst in nodes(sim, chain.chain_id, 1317):
            p50 = quantile(snap[inst], "virtengine_tx_latency_seconds", 0.5)
            p01 = quantile(snap[inst], "virtengine_tx_latency_seconds", 0.01)
            assert p50 >= 0.4 * interval, f"{inst}: median tx latency {p50} s, block interval {interval} s"
            assert p01 >= 0.1 * interval, f"{inst}: 1% of transactions in {p01} s, block interval {interval} s"


# -- fact 4: module counters and gauges are chain state
@pytest.mark.parametrize("scenario", [None, "slo_burn", "node_restart"])
def test_module_metrics_are_identical_on_every_node_of_a_chain(scenario):
    sim = chain_sim(restart_lag_blocks=500, sync_speed=1.5)
    if scenario:
        sim.activate(scenario, "virtengine-1")
    wait_blocks(sim, "virtengine-1", 2)
    snap = read(sim)
    checked = 0
    for chain in sim.world.chains:
        syncing = {f"{n.name}:1317" for n in chain.nodes if n.state == "syncing"}
        app = [i for i in nodes(sim, chain.chain_id, 1317) if i not in syncing]
        assert len(app) >= 2
        module = {k: v for k, v in snap[app[0]].items() if MODULE.fullmatch(k[0])}
        assert {k[0].split("_")[1] for k in module} >= {"veid", "market", "escrow", "tx"}
        for inst in app[1:]:
            other = {k: v for k, v in snap[inst].items() if MODULE.fullmatch(k[0])}
            assert other == module, f"{inst} and {app[0]} serve different chain state"
            checked += 1
        for inst in syncing:   # a node behind serves the state of its own height: never ahead of the chain
            for key, value in snap[inst].items():
                if MODULE.fullmatch(key[0]) and key[0].endswith("_total"):
                    assert value <= module[key], (inst, key)
    assert checked


# -- fact 5: Prometheus 3 normalises le on ingestion
@pytest.mark.parametrize("style", ["prom2", "prom3"])
def test_bucket_bounds_in_prometheus_2_and_3_spelling(style):
    sim = chain_sim(le_style=style)
    les = {dict(lab)["le"] for samples in read(sim).values() for (n, lab) in samples if n.endswith("_bucket")}
    assert "+Inf" in les
    for le in les - {"+Inf"}:
        x = float(le)
        if x == int(x) and abs(x) < 1e6:   # a whole number: Go prints "10", Prometheus 3 stores "10.0"
            assert le == (f"{int(x)}.0" if style == "prom3" else f"{int(x)}"), le
        else:
            assert le == repr(x) or "e" in le, le
    assert ("10.0" in les) == (style == "prom3") and ("10" in les) == (style == "prom2")


def test_an_unknown_le_style_is_refused_with_the_allowed_values():
    with pytest.raises(ValueError, match="prom2, prom3"):
        Simulator(CHAIN_CATALOG, le_style="prom4")


# -- fact 6: orders are matched minutes after they are created
def test_orders_are_matched_a_delay_after_they_are_created():
    sim = chain_sim(block_time=0.05)
    app, node = nodes(sim, "virtengine-1", 1317)[0], nodes(sim, "virtengine-1")[0]

    def counts():   # orders created and matched, and the height, in one read
        snap = read(sim, [app, node])
        return (get(snap[app], "virtengine_market_orders_created_total"),
                get(snap[app], "virtengine_market_orders_matched_total"),
                get(snap[node], "cometbft_consensus_height"))
    c0, m0, h0 = counts()
    sim.activate("order_burst", "virtengine-1")
    # during the matching delay, matched orders keep the pace of the orders created before the burst
    c1, m1, h1 = poll(lambda: (lambda c: c if c[2] - h0 >= 10 else None)(counts()), "10 blocks")
    assert (m1 - m0) < 0.3 * (c1 - c0), (m1 - m0, c1 - c0)
    # after it, the burst is matched
    c2, m2, h2 = poll(lambda: (lambda c: c if c[2] - h1 >= 60 else None)(counts()), "60 more blocks")
    assert (m2 - m1) > 0.5 * (c2 - c1) and m2 <= c2, (m2 - m1, c2 - c1)


def test_slower_blocks_do_not_make_matched_orders_fall_behind_the_orders_created():
    # the matching delay is a time: when blocks slow down (power missing), orders are still matched at the pace
    # they are created, so no SLO counts unmatched orders that are only waiting for slower blocks
    sim = chain_sim(block_time=0.05)
    app, node = nodes(sim, "virtengine-2", 1317)[0], nodes(sim, "virtengine-2")[0]

    def counts():
        snap = read(sim, [app, node])
        return (get(snap[app], "virtengine_market_orders_created_total"),
                get(snap[app], "virtengine_market_orders_matched_total"),
                get(snap[node], "cometbft_consensus_height"))
    c0, m0, h0 = counts()
    sim.activate("voting_power_missing", "virtengine-2")
    # at least 40 slower blocks and 20 orders, so that a whole order more or less (counters count whole
    # orders) does not decide; one order of slack for the one being matched at the moment of the read
    c1, m1, h1 = poll(lambda: (lambda c: c if c[2] - h0 >= 40 and c[0] - c0 >= 20 else None)(counts()),
                      "40 slower blocks and 20 orders")
    assert (m1 - m0) >= 0.8 * (c1 - c0) - 1, (m1 - m0, c1 - c0)


# -- fact 7: node roles and peers
def test_every_cometbft_target_has_a_role_and_validators_keep_few_peers():
    sim = chain_sim()
    roles = {}
    for job in sim.scrape_configs(labels={"cluster": "c1"}):
        for static in job["static_configs"]:
            if job["job_name"] == "cometbft":
                roles[static["labels"]["instance"]] = static["labels"].get("role")
    assert roles and set(roles.values()) == {"validator", "sentry", "full"}, roles
    sd_roles = {g["labels"]["instance"]: g["labels"].get("role") for g in sim.http_sd() if g["labels"]["job"] == "cometbft"}
    assert sd_roles == roles
    for _ in range(5):
        snap = read(sim)
        for inst, role in roles.items():
            peers = get(snap[inst], "cometbft_p2p_peers")
            assert (2 <= peers <= 4) if role == "validator" else (10 <= peers <= 50), (inst, role, peers)
        wait_blocks(sim, "virtengine-1", 1)
    # only a validator node exports its own validator's signing gauges
    snap = read(sim)
    for inst, role in roles.items():
        has = get(snap[inst], "cometbft_consensus_validator_last_signed_height") is not None
        assert has == (role == "validator"), (inst, role)


def test_own_validator_whose_signer_is_down_misses_blocks_while_its_node_follows_the_chain():
    sim = chain_sim()
    validator = next(t.name for t in sim.targets if t.role == "validator" and t.chain.chain_id == "virtengine-1")
    sim.activate("signer_down", "virtengine-1")
    first = read(sim)[validator]
    wait_blocks(sim, "virtengine-1", 5)
    later = read(sim)[validator]
    assert get(later, "cometbft_consensus_height") > get(first, "cometbft_consensus_height")
    assert get(later, "cometbft_consensus_validator_missed_blocks") > get(first, "cometbft_consensus_validator_missed_blocks")
    assert get(later, "cometbft_consensus_validator_last_signed_height") == \
        get(first, "cometbft_consensus_validator_last_signed_height")


def test_a_provider_only_cluster_has_targets_but_no_chain_node():
    sim = Simulator(provider_only=True)
    jobs = {t.job for t in sim.targets}
    assert "provider-daemon" in jobs and "cometbft" not in jobs and "virtengine-app" not in jobs
    assert all(m.source not in ("cometbft", "application") for m in sim.metrics)


# -- a real Prometheus scraping the simulator sees the role label and the Prometheus 3 spelling
def test_prometheus_scraping_the_simulator_stores_role_and_le_as_served(tmp_path):
    from localstack import prometheus
    with Simulator(CHAIN_CATALOG, block_time=1.0, le_style="prom3") as sim:
        jobs = sim.scrape_configs(interval="1s", labels={"cluster": "c1"})
        (tmp_path / "prometheus.yml").write_text(yaml.safe_dump({"scrape_configs": jobs}))
        with prometheus(tmp_path / "prometheus.yml", tmp_path) as url:
            def query(q):
                return requests.get(url + "/api/v1/query", params={"query": q}, timeout=10).json()["data"]["result"]
            peers = poll(lambda: (lambda r: r if len(r) == 9 else None)(query("cometbft_p2p_peers")),
                         "cometbft_p2p_peers from 9 nodes")
            assert sorted({r["metric"].get("role") for r in peers}) == ["full", "sentry", "validator"]
            assert query('count(virtengine_tx_latency_seconds_bucket{le="10.0"})')
            assert query('virtengine_tx_latency_seconds_bucket{le="10"}') == []


# -- every scenario: only reachable states, on every pair of successive reads
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_each_scenario_reaches_only_reachable_states(scenario):
    sim = chain_sim(restart_lag_blocks=30, sync_speed=3.0)
    sim.activate(scenario, "virtengine-2")
    halted = sim.world.chain("virtengine-2").halted
    reads = [read(sim)]
    for _ in range(5):
        wait_blocks(sim, "virtengine-2", 2)
        reads.append(read(sim))
    for prev, cur in zip(reads, reads[1:]):
        for chain in sim.world.chains:
            live = [i for i in nodes(sim, chain.chain_id) if i in cur and i in prev]
            for inst in live:
                p, c = prev[inst], cur[inst]
                missing = get(c, "cometbft_consensus_missing_validators_power")
                total = get(c, "cometbft_consensus_validators_power")
                if missing is not None:
                    assert missing < total * THIRD, f"{scenario}: {inst} {missing}/{total} missing"
                if get(c, "cometbft_consensus_height") > get(p, "cometbft_consensus_height"):
                    assert not (halted and chain.chain_id == "virtengine-2"), f"{scenario}: height moved at a halt"
                if get(c, "cometbft_blocksync_syncing") == 1 and get(p, "cometbft_blocksync_syncing") == 1:
                    assert get(c, "cometbft_consensus_height") == get(p, "cometbft_consensus_height")
                    assert get(c, "cometbft_blocksync_latest_block_height") >= \
                        get(p, "cometbft_blocksync_latest_block_height")
                for key, value in c.items():   # counters only go up (a restart happened before the first read)
                    if key[0].endswith(("_total", "_count", "_bucket")) and key in p:
                        assert value >= p[key], f"{scenario}: {inst} {key[0]} went down"
            in_consensus = [f"{n.name}:1317" for n in chain.nodes
                            if get(cur.get(f"{n.name}:26660", {}), "cometbft_blocksync_syncing") == 0]
            module = [{k: v for k, v in cur[i].items() if MODULE.fullmatch(k[0])} for i in in_consensus if i in cur]
            assert all(m == module[0] for m in module), f"{scenario}: chain state differs between nodes"
