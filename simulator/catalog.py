"""The metrics catalog as the simulator reads it: ``templates_src/metrics/*.yaml``.

The simulator serves what the catalog lists, so a metric added there is
served on the next start without a code change. It reads the files with a
plain YAML parser (the generator validates them; the simulator only needs
name, type, labels, unit and source).
"""
from __future__ import annotations

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


def load_catalog(folder: Path | str = DEFAULT_CATALOG) -> list[MetricDef]:
    """Every metric of the catalog, sorted by name; an empty catalog is an error."""
    folder = Path(folder)
    metrics: dict[str, MetricDef] = {}
    for path in sorted(folder.glob("*.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for entry in data.get("metrics") or []:
            if not isinstance(entry, dict) or not entry.get("name") or not entry.get("type"):
                continue
            metrics[entry["name"]] = MetricDef(
                name=entry["name"], type=entry["type"], labels=tuple(entry.get("labels") or ()),
                unit=str(entry.get("unit") or ""), help=" ".join(str(entry.get("help") or entry["name"]).split()),
                source=str(entry.get("source") or "application"))
    if not metrics:
        raise ValueError(f"no metrics in {folder}/*.yaml: the simulator serves the metrics catalog")
    return [metrics[k] for k in sorted(metrics)]
