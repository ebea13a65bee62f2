"""The metrics catalog: every metric a dashboard or rule may use.

``templates_src/metrics/*.yaml`` lists the metrics of one source each
(name, type, labels, unit, help, source, critical). A query that names a
metric outside the catalog fails the render with the metric's name and the
place that used it. ``docs/metrics.md`` is generated from it: the contract
the application teams must export.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import ValidationError
from ..promql import metric_names
from ..yamlio import line_of, load_yaml_file

TYPES = ("counter", "gauge", "histogram", "summary", "info")
SOURCES = ("cometbft", "cosmos-sdk", "application", "provider-daemon", "ml-inference", "node-exporter",
           "kube-state-metrics", "kubelet", "cadvisor", "blackbox-exporter", "prometheus", "alertmanager")
# sources whose names we choose; the exporters' metrics are listed as they publish them
OWN_SOURCES = ("application", "provider-daemon", "ml-inference")
FIELDS = {"name", "type", "labels", "unit", "help", "source", "critical", "note"}
SUFFIXES = {"histogram": ("_bucket", "_count", "_sum"), "summary": ("_count", "_sum")}


@dataclass(frozen=True)
class Metric:
    name: str
    type: str
    labels: tuple[str, ...]
    unit: str
    help: str
    source: str
    critical: bool
    note: str
    file: str


class Catalog:
    def __init__(self, metrics: dict[str, Metric]) -> None:
        self.metrics = metrics
        self._series: dict[str, str] = {}
        for m in metrics.values():
            self._series[m.name] = m.name
            for suffix in SUFFIXES.get(m.type, ()):
                self._series[m.name + suffix] = m.name
        self.used: dict[str, set[str]] = {}

    def resolve(self, series: str) -> str | None:
        return self._series.get(series)

    def check_expr(self, expr: str, where: str, *, recorded: set[str] = frozenset(), file: str | None = None,
                   line: int | None = None) -> set[str]:
        """Fails on a metric the catalog does not list; returns the catalog names used."""
        used = set()
        for name in sorted(metric_names(expr)):
            if ":" in name:
                if name not in recorded:
                    raise ValidationError(f"{where}: recording rule {name!r} is not defined by any rule group",
                                          file=file, line=line)
                continue
            base = self.resolve(name)
            if base is None:
                raise ValidationError(f"{where}: metric {name!r} is not in the metrics catalog "
                                      "(templates_src/metrics/); a typo, or a metric to add there",
                                      file=file, line=line)
            used.add(base)
            self.used.setdefault(base, set()).add(where)
        return used


def load(src) -> Catalog:
    metrics: dict[str, Metric] = {}
    folder = src.templates / "metrics"
    files = sorted(folder.glob("*.yaml"))
    if not files:
        raise ValidationError("no metrics catalog: add templates_src/metrics/<source>.yaml")
    for path in files:
        display = str(path.relative_to(src.root))
        data = load_yaml_file(path, display)
        entries = (data or {}).get("metrics") if isinstance(data, dict) else None
        if not isinstance(entries, list):
            raise ValidationError("expected a top-level 'metrics:' list", file=display, line=1)
        for i, entry in enumerate(entries):
            line = line_of(data, ["metrics", i]) or (entry.lines.get("name") if hasattr(entry, "lines") else None)
            if not isinstance(entry, dict):
                raise ValidationError("each metric is a mapping", file=display, line=line, key=f"metrics[{i}]")
            unknown = set(entry) - FIELDS
            if unknown:
                raise ValidationError(f"unknown field {sorted(unknown)[0]!r}; allowed: {', '.join(sorted(FIELDS))}",
                                      file=display, line=line, key=f"metrics[{i}]")
            for req in ("name", "type", "help", "source"):
                if not entry.get(req):
                    raise ValidationError(f"missing {req!r}", file=display, line=line, key=f"metrics[{i}]")
            name = entry["name"]
            if entry["type"] not in TYPES:
                raise ValidationError(f"type {entry['type']!r} is not allowed; allowed: {', '.join(TYPES)}",
                                      file=display, line=line, key=name)
            if entry["source"] not in SOURCES:
                raise ValidationError(f"source {entry['source']!r} is not allowed; allowed: {', '.join(SOURCES)}",
                                      file=display, line=line, key=name)
            if entry["type"] == "counter" and entry["source"] in OWN_SOURCES and not name.endswith("_total"):
                raise ValidationError("a counter's name ends in _total", file=display, line=line, key=name)
            labels = tuple(entry.get("labels") or ())
            for bad in ("user", "user_id", "address", "account", "owner", "tx_hash"):
                if bad in labels:
                    raise ValidationError(f"label {bad!r} is unbounded (one series per user/account); "
                                          "export an aggregate instead", file=display, line=line, key=name)
            if name in metrics:
                raise ValidationError(f"metric listed twice (also in {metrics[name].file})",
                                      file=display, line=line, key=name)
            metrics[name] = Metric(name=name, type=entry["type"], labels=labels, unit=str(entry.get("unit", "")),
                                   help=entry["help"].strip(), source=entry["source"],
                                   critical=bool(entry.get("critical", False)), note=str(entry.get("note", "")).strip(),
                                   file=display)
    return Catalog(metrics)


def build(src, out) -> None:
    out.shared["catalog"] = load(src)
