"""The metrics catalog: every metric a dashboard or rule may use.

``templates_src/metrics/*.yaml`` lists the metrics of one source each
(name, type, labels, unit, help, source, critical, scope, monotonic) and, per file,
``targetLabels``: the labels Prometheus adds to every series of that source (job, instance, namespace, pod,
cluster, role ...). ``monotonic: true`` marks a gauge the exporter only ever adds to (CometBFT's
``validator_missed_blocks``): it is read like a counter (increase/rate), never with delta/changes. ``scope: chain``
marks chain state (world fact 4): every full node exports the same value, so
an aggregation across nodes must count it once (the dashboards' ``chainwide``
pattern; ``dashlint.chain_problems`` refuses a plain sum). The module metrics
(``virtengine_veid_*``, ``_market_*``, ``_escrow_*``, ``_tx_*``) are chain
state whatever the file says. A file may also list ``denoms``: the token
denominations amounts are exported in (minor unit, display name, exponent),
which the dashboards use to show whole tokens under the token's name. A query that names a
metric outside the catalog fails the render with the metric's name and the
place that used it. ``docs/metrics.md`` is generated from it: the contract
the application teams must export.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..errors import ValidationError
from ..promql import metric_names
from ..yamlio import line_of, load_yaml_file

TYPES = ("counter", "gauge", "histogram", "summary", "info")
SOURCES = ("cometbft", "cosmos-sdk", "application", "provider-daemon", "ml-inference", "node-exporter",
           "kube-state-metrics", "kubelet", "cadvisor", "blackbox-exporter", "prometheus", "alertmanager")
# sources whose names we choose; the exporters' metrics are listed as they publish them
OWN_SOURCES = ("application", "provider-daemon", "ml-inference")
FIELDS = {"name", "type", "labels", "unit", "help", "source", "critical", "note", "scope", "monotonic"}
SCOPES = ("chain", "node")
# chain state by definition (world fact 4): the modules' counters and gauges
CHAIN_PREFIX = re.compile(r"^virtengine_(veid|market|escrow|tx)_")
DENOM_FIELDS = {"denom", "symbol", "exponent"}
DENOM = re.compile(r"^[a-z][a-z0-9]{1,63}$")
TOKEN = re.compile(r"^[A-Za-z][A-Za-z0-9]{0,11}$")
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
    scope: str = "node"
    target_labels: tuple[str, ...] = ()
    # a gauge the exporter only ever adds to (reset to 0 when the process restarts): read like a counter
    monotonic: bool = False   # labels Prometheus adds to the source's series (file's targetLabels)

    def all_labels(self) -> set[str]:
        """Every label a series of this metric can carry (its own, the target's; le/quantile of the series)."""
        extra = {"histogram": {"le"}, "summary": {"quantile"}}.get(self.type, set())
        return set(self.labels) | set(self.target_labels) | extra


@dataclass(frozen=True)
class Denom:
    denom: str       # the minor unit the amounts are exported in (uve)
    symbol: str      # the token's display symbol (VE)
    exponent: int    # one token is 10^exponent minor units


class Catalog:
    def __init__(self, metrics: dict[str, Metric], denoms: list[Denom] | None = None) -> None:
        self.metrics = metrics
        self.denoms = list(denoms or [])
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


def _denoms(data, display: str, found: dict[str, Denom]) -> None:
    entries = data.get("denoms") if isinstance(data, dict) else None
    if entries is None:
        return
    if not isinstance(entries, list):
        raise ValidationError("'denoms' is a list of {denom, symbol, exponent}", file=display, key="denoms")
    for i, entry in enumerate(entries):
        line = line_of(data, ["denoms", i])
        if not isinstance(entry, dict) or set(entry) != DENOM_FIELDS:
            raise ValidationError(f"each denom has exactly the fields {', '.join(sorted(DENOM_FIELDS))}",
                                  file=display, line=line, key=f"denoms[{i}]")
        if not DENOM.match(str(entry["denom"])):
            raise ValidationError(f"denom {entry['denom']!r} must be lowercase letters and digits (uve)",
                                  file=display, line=line, key=f"denoms[{i}].denom")
        if not TOKEN.match(str(entry["symbol"])):
            raise ValidationError(f"symbol {entry['symbol']!r} must be letters and digits, at most 12 (VE)",
                                  file=display, line=line, key=f"denoms[{i}].symbol")
        if not isinstance(entry["exponent"], int) or isinstance(entry["exponent"], bool) \
                or not 0 <= entry["exponent"] <= 18:
            raise ValidationError(f"exponent {entry['exponent']!r} must be a whole number from 0 to 18",
                                  file=display, line=line, key=f"denoms[{i}].exponent")
        if entry["denom"] in found:
            raise ValidationError(f"denom {entry['denom']!r} listed twice", file=display, line=line,
                                  key=f"denoms[{i}]")
        found[entry["denom"]] = Denom(str(entry["denom"]), str(entry["symbol"]), entry["exponent"])


def load(src) -> Catalog:
    metrics: dict[str, Metric] = {}
    denoms: dict[str, Denom] = {}
    folder = src.templates / "metrics"
    files = sorted(folder.glob("*.yaml"))
    if not files:
        raise ValidationError("no metrics catalog: add templates_src/metrics/<source>.yaml")
    for path in files:
        display = str(path.relative_to(src.root))
        data = load_yaml_file(path, display)
        _denoms(data, display, denoms)
        targets = data.get("targetLabels", []) if isinstance(data, dict) else []
        if not isinstance(targets, list) or not all(isinstance(t, str) and re.match(r"^[a-z_][a-z0-9_]*$", t)
                                                   for t in targets):
            raise ValidationError("targetLabels is a list of label names (the labels Prometheus adds to every "
                                  "series of this source: cluster, namespace, pod, instance, job, ...)",
                                  file=display, key="targetLabels")
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
            scope = entry.get("scope", "chain" if CHAIN_PREFIX.match(name) else "node")
            if scope not in SCOPES:
                raise ValidationError(f"scope {scope!r} is not allowed; allowed: {', '.join(SCOPES)}",
                                      file=display, line=line, key=name)
            if CHAIN_PREFIX.match(name) and scope != "chain":
                raise ValidationError("a module metric is chain state (every full node exports the same value): "
                                      "scope: chain", file=display, line=line, key=name)
            if entry.get("monotonic") and entry["type"] != "gauge":
                raise ValidationError("monotonic marks a gauge the exporter only adds to; a counter is one already",
                                      file=display, line=line, key=name)
            if name in metrics:
                raise ValidationError(f"metric listed twice (also in {metrics[name].file})",
                                      file=display, line=line, key=name)
            metrics[name] = Metric(name=name, type=entry["type"], labels=labels, unit=str(entry.get("unit", "")),
                                   help=entry["help"].strip(), source=entry["source"],
                                   critical=bool(entry.get("critical", False)), note=str(entry.get("note", "")).strip(),
                                   file=display, scope=scope, target_labels=tuple(targets),
                                   monotonic=bool(entry.get("monotonic", False)))
    return Catalog(metrics, sorted(denoms.values(), key=lambda d: d.denom))


def build(src, out) -> None:
    out.shared["catalog"] = load(src)
