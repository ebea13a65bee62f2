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


def write_history(sim, path: Path, *, start: int, end: int, step: int, cluster: str,
                  replicas: dict[str, list[str]] | None = None, reuse: dict | None = None) -> int:
    """Drives ``sim`` from start to end; returns the number of series written.

    ``replicas`` (node name -> names of more nodes): every series of such a node is written again for each
    further node, the node's name replaced in every label value (instance, pod, node). A fleet of many nodes
    gets its history at the cost of simulating a few; the values repeat, the series and samples a query reads
    are those of the whole fleet."""
    series: dict[tuple[str, tuple], array] = {}
    times = list(range(start, end + 1, step))
    # ``reuse`` (a dict kept by the caller): the values of a previous call with the same simulator settings and
    # as many steps are written again under the new timestamps (values do not depend on the clock)
    cached = (reuse or {}).get((len(times), step, cluster))
    if cached is not None:
        series = cached
    for i, _ in enumerate(times if cached is None else ()):
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
    if reuse is not None:
        reuse[(len(times), step, cluster)] = series
    replicas = replicas or {}
    written = 0
    with path.open("w") as out:
        last = None
        for (name, labels), column in sorted(series.items()):
            if name != last:
                out.write(f"# TYPE {name} gauge\n")   # each sample name its own family: queries ignore types
                last = name
            lab = ",".join(f'{k}="{_esc(v)}"' for k, v in labels)
            body = [f" {v:.17g} {t}\n" for t, v in zip(times, column) if v == v]  # NaN: the series did not exist
            source = next((n for n in replicas if any(str(v).startswith(n + ":") or str(v) == n
                                                      for _, v in labels)), None)
            for node in [None, *replicas.get(source, [])]:
                prefix = f"{name}{{{lab if node is None else _rename(lab, source, node)}}}"
                out.write("".join(prefix + b for b in body))
                written += 1
        out.write("# EOF\n")
    return written


def _rename(labels: str, node: str, other: str) -> str:
    """The label text of a series of ``node`` as ``other`` exports it (instance host, pod and node names)."""
    return labels.replace(f'"{node}:', f'"{other}:').replace(f'"{node}"', f'"{other}"')
