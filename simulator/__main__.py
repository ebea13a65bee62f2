"""``python -m simulator``: serve the simulated fleet until interrupted."""
from __future__ import annotations

import argparse
import json
import signal
import sys
import threading

from .catalog import DEFAULT_CATALOG
from .scenarios import SCENARIOS
from .server import Simulator


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m simulator", description=__doc__)
    parser.add_argument("--port", type=int, default=9100, help="control API port (0: a free port)")
    parser.add_argument("--target-base-port", type=int, default=None,
                        help="serve targets on consecutive ports from here (default: port+1; 0: free ports)")
    parser.add_argument("--scenario", default="none", choices=["none", *SCENARIOS],
                        help="scenario active at start")
    parser.add_argument("--chain", default=None, help="chain (id or index) of the start scenario")
    parser.add_argument("--catalog", default=str(DEFAULT_CATALOG), help="folder of the metrics catalog")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--block-time", type=float, default=6.0, help="seconds per block")
    parser.add_argument("--cluster", default="virtengine-local", help="cluster label in the printed scrape config")
    parser.add_argument("--le-style", default="prom2", choices=["prom2", "prom3"],
                        help='bucket bounds as Prometheus 2 stores them (le="10") or as Prometheus 3 does (le="10.0")')
    parser.add_argument("--provider-only", action="store_true",
                        help="a cluster with provider daemons and exporters but no chain node")
    parser.add_argument("--print-scrape-config", action="store_true",
                        help="print Prometheus scrape_configs (JSON) after starting")
    args = parser.parse_args(argv)

    base = args.target_base_port if args.target_base_port is not None else (args.port + 1 if args.port else 0)
    try:
        sim = Simulator(args.catalog, seed=args.seed, block_time=args.block_time, le_style=args.le_style,
                        provider_only=args.provider_only).start(args.port,
                                                                                          target_base_port=base or None)
    except (OSError, ValueError, OverflowError) as exc:
        print(f"simulator: {exc}", file=sys.stderr)
        return 1
    if args.scenario != "none":
        sim.activate(args.scenario, args.chain)
    print(f"simulator: {len(sim.targets)} targets, {len(sim.metrics)} metrics; control API {sim.url}/ "
          f"(GET /scenarios, POST /scenario/<name>); active: {sim.active or 'none'}", flush=True)
    if args.print_scrape_config:
        print(json.dumps(sim.scrape_configs(labels={"cluster": args.cluster}), indent=2), flush=True)
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    done.wait()
    sim.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
