"""The metrics simulator: every catalog metric served, typed behaviour, scenarios that move metrics."""
from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from generator.servers import wait_until
from simulator import SCENARIOS, Simulator, load_catalog
from simulator.model import SYNTHETIC

CATALOG = load_catalog()


def scrape(sim: Simulator) -> dict[str, list]:
    """{metric family name: [samples]} over every target that answers."""
    out: dict[str, list] = {}
    for t in sim.targets:
        if not t.up:
            continue
        text = urllib.request.urlopen(f"http://127.0.0.1:{t.port}/metrics", timeout=5).read().decode()
        for fam in text_string_to_metric_families(text):
            out.setdefault(fam.name, []).extend(
                s._replace(labels={**s.labels, "__target": t.name}) for s in fam.samples)
    return out


def samples_of(metrics: dict, name: str) -> list:
    for fam in (name, name.removesuffix("_total"), name.removesuffix("_info")):
        if fam in metrics:
            return metrics[fam]
    return []


@pytest.fixture(scope="module")
def sim():
    s = Simulator(block_time=1.0).start(0)
    yield s
    s.stop()


def test_every_catalog_metric_is_served_with_its_labels(sim):
    metrics = scrape(sim)
    missing, wrong = [], []
    for m in CATALOG:
        if SYNTHETIC.fullmatch(m.name):
            continue
        samples = samples_of(metrics, m.name)
        if not samples:
            missing.append(m.name)
            continue
        labels = set(samples[0].labels) - {"le", "quantile", "__target"}
        if labels != set(m.labels) - {"le", "instance", "job"}:   # Prometheus adds instance and job
            wrong.append((m.name, sorted(labels), sorted(m.labels)))
    assert missing == [] and wrong == []


def test_fleet_has_several_chains_nodes_providers_and_models(sim):
    metrics = scrape(sim)
    heights = {s.labels["chain_id"] for s in metrics["cometbft_consensus_height"]}
    assert len(heights) == 3
    assert len([t for t in sim.targets if t.job == "cometbft"]) == 9
    assert len([t for t in sim.targets if t.job == "provider-daemon"]) >= 3
    models = {s.labels["model"] for name in metrics for s in metrics[name] if "model" in s.labels}
    assert len(models) >= 3


def test_counters_grow_heights_advance_and_histograms_stay_cumulative(sim):
    before = scrape(sim)
    height = {s.labels["__target"]: s.value for s in before["cometbft_consensus_height"]}

    def every_node_committed_a_block():
        now = scrape(sim)
        return now if all(s.value > height[s.labels["__target"]] for s in now["cometbft_consensus_height"]) else None
    after = wait_until(every_node_committed_a_block, 60, "a node's height never advanced")
    for m in CATALOG:
        if m.type != "counter" or SYNTHETIC.fullmatch(m.name):
            continue
        old = {tuple(sorted(s.labels.items())): s.value for s in samples_of(before, m.name) if s.name.endswith("_total")}
        for s in samples_of(after, m.name):
            key = tuple(sorted(s.labels.items()))
            if key in old:
                assert s.value >= old[key], f"counter {m.name} went down"
    height = {s.labels["__target"]: s.value for s in before["cometbft_consensus_height"]}
    assert all(s.value > height[s.labels["__target"]] for s in after["cometbft_consensus_height"])
    for m in CATALOG:
        if m.type != "histogram":
            continue
        series: dict = {}
        for s in samples_of(after, m.name):
            if s.name.endswith("_bucket"):
                key = tuple(sorted((k, v) for k, v in s.labels.items() if k != "le"))  # per target
                series.setdefault(key, []).append((float(s.labels["le"]), s.value))
        for key, buckets in series.items():
            values = [v for _, v in sorted(buckets)]
            assert values == sorted(values), f"{m.name}{key}: buckets not cumulative"


def test_bucket_bounds_print_like_go_clients(sim):
    text = sim.exposition(next(t for t in sim.targets if t.job == "virtengine-app")).decode()
    assert 'le="10"' in text and 'le="10.0"' not in text


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_each_scenario_moves_at_least_one_catalog_metric_or_target(name):
    s = Simulator(block_time=1.0, seed=7)   # not started: the scenario's effect on the model is enough
    s.activate(name, "*")
    moved = [m for t in s.targets for m in s.on_target[t.name] if s.modifiers(m) != type(s.modifiers(m))()]
    chain_changed = any(c.stalled or c.missing_share for c in s.world.chains) or any(
        n.state != "consensus" or not n.signing for c in s.world.chains for n in c.nodes)
    stopped = [t for t in s.targets if not t.up]
    assert moved or chain_changed or stopped, f"scenario {name} changes nothing in the current catalog"


def test_exporter_down_refuses_connections_until_cleared():
    with Simulator() as s:
        s.activate("exporter_down", "virtengine-2")
        down = [t for t in s.targets if not t.up]
        assert [t.name for t in down] == ["virtengine-2-node-0:26660"]
        with pytest.raises((urllib.error.URLError, ConnectionError, socket.timeout)):
            urllib.request.urlopen(f"http://127.0.0.1:{down[0].port}/metrics", timeout=2)
        s.deactivate()
        assert urllib.request.urlopen(f"http://127.0.0.1:{down[0].port}/metrics", timeout=5).status == 200


def test_consensus_stall_freezes_the_height_of_its_chain_only(sim):
    sim.activate("consensus_stall", "virtengine-1")
    try:
        first = {s.labels["chain_id"]: s.value for s in scrape(sim)["cometbft_consensus_height"]}

        def heights_after_two_blocks_of_the_other_chain():
            now = {s.labels["chain_id"]: s.value for s in scrape(sim)["cometbft_consensus_height"]}
            return now if now["virtengine-2"] >= first["virtengine-2"] + 2 else None
        # the healthy chain committed two blocks meanwhile: the stalled one had time to move, and did not
        second = wait_until(heights_after_two_blocks_of_the_other_chain, 60, "the healthy chain never advanced")
        assert second["virtengine-1"] == first["virtengine-1"]
    finally:
        sim.deactivate()


def test_control_api_lists_and_switches_scenarios(sim):
    listing = json.load(urllib.request.urlopen(f"{sim.url}/scenarios"))
    assert set(listing["available"]) == set(SCENARIOS) and listing["active"] == {}
    req = urllib.request.Request(f"{sim.url}/scenario/escrow_low?chain=virtengine-3", method="POST")
    assert json.load(urllib.request.urlopen(req))["active"] == {"escrow_low": "virtengine-3"}
    balance = [s for s in scrape(sim)["virtengine_escrow_balance_total"] if s.labels.get("chain_id") == "virtengine-3"] \
        if any("chain_id" in s.labels for s in scrape(sim)["virtengine_escrow_balance_total"]) else []
    assert all(s.value < 1e9 for s in balance)
    req = urllib.request.Request(f"{sim.url}/scenario/nonsense", method="POST")
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req)
    assert err.value.code == 400 and "escrow_low" in err.value.read().decode()
    urllib.request.urlopen(urllib.request.Request(f"{sim.url}/scenario/none", method="POST"))
    assert json.load(urllib.request.urlopen(f"{sim.url}/scenarios"))["active"] == {}


def test_http_service_discovery_lists_every_target(sim):
    sd = json.load(urllib.request.urlopen(f"{sim.url}/sd?cluster=local"))
    assert len(sd) == len(sim.targets)
    assert all(group["labels"]["cluster"] == "local" and group["labels"]["job"] for group in sd)
