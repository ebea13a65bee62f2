"""The metrics catalog as the simulator reads it: ``templates_src/metrics/*.yaml``.

The simulator serves what the catalog lists, so a metric added there is
served on the next start without a code change. It reads the files with a
plain YAML parser (the generator validates them; the simulator only needs
name, type, labels, unit, source and the documented label values).

A label's values are documented in the metric's ``help`` or ``note`` as the
label's name followed by the list in brackets, e.g. "by module and result
(success, failed)" or "1 for the provider's current status (active,
maintenance, offline)"; the first value is the common (healthy) case. The
simulator serves exactly those values, so dashboards and rules that select
on them find data.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CATALOG = ROOT / "templates_src" / "metrics"


@dataclass(frozen=True)
class MetricDef:
    name: str
    type: str
    labels: tuple[str, ...]
    unit: str
    help: str
    source: str
    values: tuple[tuple[str, tuple[str, ...]], ...] = ()   # (label, documented values), first = common case

    def documented(self, label: str) -> tuple[str, ...]:
        """The values the catalog documents for a label (empty if it documents none)."""
        return dict(self.values).get(label, ())


_VALUE = re.compile(r"[A-Za-z0-9_.:/+-]+")


def documented_values(labels: tuple[str, ...], text: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """Label values listed in ``text`` as "<label> (a, b, c)" (also "<label>s (...)"); "..." and "e.g." are
    dropped, a bracket holding prose (words with spaces) is not a list of values."""
    found = []
    for label in labels:
        m = re.search(rf"\b{re.escape(label)}(?:e?s)?\s*\(([^()]*)\)", text)
        if not m:
            continue
        items = [i.strip() for i in m.group(1).replace("e.g.", "").split(",")]
        items = [i for i in items if i and i not in ("...", "\u2026")]
        if items and all(_VALUE.fullmatch(i) for i in items):
            found.append((label, tuple(items)))
    return tuple(found)


def load_catalog(folder: Path | str = DEFAULT_CATALOG) -> list[MetricDef]:
    """Every metric of the catalog, sorted by name; an empty catalog is an error."""
    folder = Path(folder)
    metrics: dict[str, MetricDef] = {}
    for path in sorted(folder.glob("*.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for entry in data.get("metrics") or []:
            if not isinstance(entry, dict) or not entry.get("name") or not entry.get("type"):
                continue
            labels = tuple(entry.get("labels") or ())
            text = " ".join(f"{entry.get('help') or ''} {entry.get('note') or ''}".split())
            metrics[entry["name"]] = MetricDef(
                name=entry["name"], type=entry["type"], labels=labels,
                unit=str(entry.get("unit") or ""), help=" ".join(str(entry.get("help") or entry["name"]).split()),
                source=str(entry.get("source") or "application"), values=documented_values(labels, text))
    if not metrics:
        raise ValueError(f"no metrics in {folder}/*.yaml: the simulator serves the metrics catalog")
    return [metrics[k] for k in sorted(metrics)]
