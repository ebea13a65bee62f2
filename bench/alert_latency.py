"""Fault-to-page latency of every alert scenario, on the real Prometheus and Alertmanager.

Runs the end-to-end pipeline (tests/e2e/pipeline.py: the chart's prod rules
and routing from ``helm template``, time compressed ``--factor`` times) with
all scenarios at once, and prints for each expected page the time from the
fault to the notification at the vendor stand-in, beside the bound
for + scrape interval + evaluation interval + group_wait, and the time from
the fix to the resolve. Multiply by the factor for production time scales
(the detection window of the rule, e.g. the 3m of ConsensusStalled, is
compressed too and comes on top of the bound).

    .venv/bin/python bench/alert_latency.py [--factor 30]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "e2e")]

from pipeline import EXPECTATIONS, Pipeline  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--factor", type=float, default=30, help="time compression (default 30)")
    parser.add_argument("--timeout", type=float, default=180, help="seconds to wait for pages and for resolves")
    args = parser.parse_args()
    pages = [(e, p) for e in EXPECTATIONS for p in e.pages]
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp, Pipeline(Path(tmp), factor=args.factor) as pipe:
        time.sleep(10)
        for exp in EXPECTATIONS:
            pipe.inject(exp)
        deadline = time.monotonic() + args.timeout
        while time.monotonic() < deadline and not all(pipe.page(e, p) for e, p in pages):
            time.sleep(0.5)
        for exp in EXPECTATIONS:
            pipe.clear(exp)
        deadline = time.monotonic() + args.timeout
        while time.monotonic() < deadline and not all(pipe.resolve(e, p) for e, p in pages if pipe.page(e, p)):
            time.sleep(0.5)
        print(f"time compression x{args.factor:g}; scrape 1s, evaluation 1s, group_wait 1s\n")
        print(f"{'scenario':22} {'alert':26} {'receiver':10} {'page s':>7} {'bound s':>8} {'resolve s':>9}")
        failed = 0
        for exp, page in pages:
            req, res = pipe.page(exp, page), pipe.resolve(exp, page)
            paged = f"{req.at - pipe.fault_at[exp.scenario]:7.1f}" if req else "   none"
            resolved = f"{res.at - pipe.cleared_at[exp.scenario]:9.1f}" if res else "     none"
            failed += not (req and res)
            print(f"{exp.scenario:22} {page.alert:26} {page.kind:10} {paged} {pipe.bound(page.alert):8.0f} {resolved}")
    print(f"\nwhole run {time.monotonic() - started:.0f}s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
