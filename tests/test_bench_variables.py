"""bench/run's dashboard figures open each dashboard as Grafana does (bench/prom.py ``variable_values``): a
variable whose default is All matches everything, any other takes the first value of its query, read from a
real Prometheus scraping the simulated fleet. A per-node dashboard therefore costs one node's queries."""
from __future__ import annotations

import json
import time

import yaml

from bench.prom import series_lookup, substitute, variable_values
from conftest import ROOT
from generator.servers import Servers
from simulator import Simulator

NODE_BOARD = ROOT / "chart" / "files" / "dashboards" / "virtengine-node.json"
OVERVIEW = ROOT / "chart" / "files" / "dashboards" / "virtengine-overview.json"


def test_the_bench_opens_each_dashboard_on_its_default_variables(tmp_path):
    sim = Simulator(block_time=1.0).start(0)
    try:
        with Servers(tmp_path) as servers:
            config = {"global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
                      "scrape_configs": sim.scrape_configs(interval="1s", labels={"cluster": "c1"})}
            prom = servers.prometheus(config, name="prometheus")
            instances = sorted(t["labels"]["instance"] for c in config["scrape_configs"] for t in
                               c["static_configs"] if c["job_name"] == "cometbft")
            assert instances, yaml.safe_dump(config["scrape_configs"])[:500]
            deadline, found = time.monotonic() + 60, []
            while time.monotonic() < deadline:   # poll until every node's height is stored
                found = prom.query("cometbft_consensus_height")
                if len(found) == len(instances):
                    break
                time.sleep(0.5)
            assert len(found) == len(instances), found
            lookup = series_lookup(prom, time.time() + 1)
            node = json.loads(NODE_BOARD.read_text())
            values = variable_values(node, lookup)
            # All where All is the default; the node variable (no All) is the first node, regex-escaped
            assert {k: values[k] for k in ("cluster", "namespace", "chain_id", "pod")} == \
                {"cluster": ".*", "namespace": ".*", "chain_id": ".*", "pod": ".*"}
            first = min(s["metric"]["instance"] for s in found)
            assert values["instance"] == first.replace(".", "\\\\."), values
            # the substituted selector is valid PromQL that selects that node alone
            expr = substitute('cometbft_consensus_height{instance=~"$instance", chain_id=~"$chain_id"}', None, values)
            assert [s["metric"]["instance"] for s in prom.query(expr)] == [first]
            # a dashboard whose variables all default to All is measured over everything, as before
            overview = variable_values(json.loads(OVERVIEW.read_text()), lookup)
            assert overview and set(overview.values()) == {".*"}, overview
    finally:
        sim.stop()


def test_a_saved_default_and_a_custom_variable_are_taken_as_they_are_without_asking_prometheus():
    board = {"uid": "x", "templating": {"list": [
        {"name": "datasource", "type": "datasource", "query": "prometheus"},
        {"name": "a", "type": "query", "includeAll": True, "multi": True, "allValue": ".*",
         "current": {"value": ["$__all"]}, "query": {"query": "label_values(up, a)"}},
        {"name": "b", "type": "query", "includeAll": False, "multi": False, "current": {"value": "b-1"},
         "query": {"query": "label_values(up, b)"}},
        {"name": "w", "type": "custom", "query": "5m, 1h"}]}}

    def lookup(selector, label):
        raise AssertionError(f"no variable here needs a query, asked {selector} {label}")
    assert variable_values(board, lookup) == {"a": ".*", "b": "b-1", "w": "5m"}
