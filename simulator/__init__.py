"""A metrics simulator for VirtEngine: every metric of the catalog, with faults on demand.

It serves each metric of ``templates_src/metrics/*.yaml`` from the targets a
real cluster has (a CometBFT endpoint per node of several chains, an API
endpoint per chain, provider daemons, ML inference servers), with labels,
values and cardinality like production, and switches fault scenarios at run
time (see ``scenarios.SCENARIOS``). What it serves follows docs/world-model.md (CometBFT v0.38,
Cosmos SDK telemetry, Prometheus 2 or 3 bucket spelling); tests/test_world_model.py checks it.

Command line: ``python -m simulator --port 9100 --scenario consensus_stall``.
Library::

    from simulator import Simulator
    with Simulator(block_time=1.0).start(port=0) as sim:
        config = {"scrape_configs": sim.scrape_configs(interval="1s", labels={"cluster": "c1"})}
        sim.activate("escrow_low", chain="virtengine-2")
"""
from .catalog import MetricDef, load_catalog
from .scenarios import SCENARIOS
from .server import Simulator

__all__ = ["MetricDef", "SCENARIOS", "Simulator", "load_catalog"]
