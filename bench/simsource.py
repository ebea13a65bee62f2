"""History from the metrics simulator (``simulator/``): its fleet driven
through simulated time, one snapshot per scrape interval, written as
OpenMetrics for ``promtool tsdb create-blocks-from openmetrics``.

Each series carries the labels a live scrape of the simulator gets
(``Simulator.scrape_configs``: job, instance, namespace, pod, cluster), plus
``up``, so the same simulator can be scraped live afterwards and its series
continue the history.
"""
from __future__ import annotations

from array import array
from pathlib import Path


def available() -> str:
    """Why the simulator cannot be used ("" when it can)."""
    try:
        from simulator import Simulator  # noqa: F401
    except Exception as e:  # noqa: BLE001 - any import failure means "not usable", with its reason
        return f"the metrics simulator (simulator/) is missing or broken: {e}"
    return ""


def _esc(v: str) -> str:
    return str(v).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def write_history(sim, path: Path, *, start: int, end: int, step: int, cluster: str) -> int:
    """Drives ``sim`` from start to end; returns the number of series written."""
    series: dict[tuple[str, tuple], array] = {}
    times = list(range(start, end + 1, step))
    for i, _ in enumerate(times):
        if i:
            for chain in sim.world.chains:
                chain.advance(step)
            sim.advance_all(step)
        for target in sim.targets:
            base = {"job": target.job, "instance": target.name, "namespace": sim.world.namespace,
                    "pod": target.name.split(":")[0], "cluster": cluster}
            if target.role:   # CometBFT node targets carry their role, as in a live scrape
                base["role"] = target.role
            samples = [("up", {}, 1.0 if target.up else 0.0)]
            for family in sim.families(target):
                samples += [(s.name, s.labels, s.value) for s in family.samples]
            for name, labels, value in samples:
                key = (name, tuple(sorted({**labels, **base}.items())))
                column = series.get(key)
                if column is None:
                    column = series[key] = array("d", [float("nan")] * len(times))
                column[i] = value
    with path.open("w") as out:
        last = None
        for (name, labels), column in sorted(series.items()):
            if name != last:
                out.write(f"# TYPE {name} gauge\n")   # each sample name its own family: queries ignore types
                last = name
            lab = ",".join(f'{k}="{_esc(v)}"' for k, v in labels)
            for t, v in zip(times, column):
                if v == v:  # not NaN: the series existed at that time
                    out.write(f"{name}{{{lab}}} {v:.17g} {t}\n")
        out.write("# EOF\n")
    return len(series)
