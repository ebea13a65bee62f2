"""Size budgets: the stored Helm release and each object against Kubernetes' limits.

Helm keeps each release as one Secret: the release record (the chart's files
and templates, the values, the rendered manifest) as JSON, gzip-compressed,
base64-encoded. A Secret holds at most 1 MiB, so a chart that outgrows it
cannot be installed or upgraded at all. Each object has limits too: a
ConfigMap holds at most 1 MiB, and ``kubectl apply`` (client side) keeps a
copy of the object in an annotation limited to 256 KiB.

``python -m generator lint`` runs ``check`` (check name ``size-budget``):
for every environment it takes the real release record from Helm 4
(``helm install --dry-run=client -o json`` works without a cluster), encodes
it as Helm's Secret driver does, and fails, with the figure, the limit and
what to do, when the release or any single object uses more than its share.
The shares are set in ``values/_budgets.yaml`` (files starting with ``_``
are not environments and do not reach the chart)::

    release:
      maxShare: 0.5   # of the 1 MiB Secret that stores a Helm release
    object:
      maxShare: 0.25  # of 1 MiB per object (0.25 = kubectl apply's 256 KiB)

Without that file the defaults above apply. The benchmark (``bench/run``)
uses the same measurements.

As a render stage (``build``), this module also precompresses every
dashboard for the Grafana Operator when an environment enables
``grafanaOperator`` (see ``build`` for why only then):
``chart/files/dashboards-gzip/<uid>.json.gz.b64`` is base64(gzip(JSON)),
byte-stable (no timestamp), which the chart puts in ``spec.gzipJson``
untouched. Helm has no gzip function, so this is done here, once.
"""
from __future__ import annotations

import base64
import gzip
import json
from dataclasses import dataclass
from pathlib import Path

import yaml

from . import tools
from .errors import ToolError, ValidationError
from .content import dashboards
from .values import environment_names

MIB = 1024 * 1024
SETTINGS_FILE = "values/_budgets.yaml"
DEFAULTS = {"release": {"maxShare": 0.5}, "object": {"maxShare": 0.25}}
# sections of values/_budgets.yaml read by other checks: (section, key) -> their own validation
OTHERS = {"dashboard": {"maxBytes"}}   # generator/content/dashboards.py, at render
WHAT_TO_DO = ("turn off dashboards or rule groups this environment does not use "
              "(dashboards.items.<uid>.enabled: false, rules.groups.<group>.enabled: false), "
              "ship dashboards compressed where the consumer supports it (Grafana Operator gzipJson), "
              "or split the release (dashboards and rules in separate releases)")


@dataclass
class Measure:
    env: str
    stored: int                      # bytes of the release Secret's data (gzip + base64 of the JSON)
    manifest: int                    # bytes of the rendered manifest
    chart_files: int                 # bytes of the chart's files and templates as Helm stores them
    objects: list[tuple[str, int]]   # ("Kind/name", bytes of the object as JSON), largest first

    @property
    def share(self) -> float:
        return self.stored / MIB

    @property
    def largest(self) -> tuple[str, int]:
        return self.objects[0] if self.objects else ("(none)", 0)


def build(src, out) -> None:
    """Render stage: the gzip-compressed form of every dashboard, when an environment uses it.

    Chart files are stored base64-encoded in the release, where gzip finds
    little to compress: the copies would cost every release about 1.3x
    their size (a quarter of the stored release with the default content).
    So they are carried only when some ``values/<env>.yaml`` sets
    ``grafanaOperator.enabled``; without them the chart's GrafanaDashboards
    carry the plain JSON (``spec.json``).
    """
    if not any((values.get("grafanaOperator") or {}).get("enabled") for values in out.merged_values.values()):
        return
    prefix = "chart/files/dashboards/"
    for path in sorted(p for p in out.files if p.startswith(prefix) and p.endswith(".json")):
        # the chart cannot edit compressed JSON: chart-wide settings from the defaults (dashboards.refresh, ...)
        data = dashboards.fill_placeholders(out.files[path], src.defaults.data["dashboards"])
        packed = base64.b64encode(gzip.compress(data, compresslevel=9, mtime=0))
        out.add(f"chart/files/dashboards-gzip/{path[len(prefix):]}.gz.b64", packed)


def load_settings(root: Path) -> dict:
    """The budget shares from values/_budgets.yaml, defaults where unset."""
    path = root / SETTINGS_FILE
    settings = json.loads(json.dumps(DEFAULTS))
    if not path.is_file():
        return settings
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise ValidationError("expected a mapping with release and object", file=SETTINGS_FILE)
    for section, body in data.items():
        if section in OTHERS and isinstance(body, dict) and set(body) <= OTHERS[section]:
            continue
        if section not in DEFAULTS:
            raise ValidationError(f"unknown budget {section!r}; allowed: {', '.join([*DEFAULTS, *OTHERS])}",
                                  file=SETTINGS_FILE, key=str(section))
        if not isinstance(body, dict):
            raise ValidationError("expected a mapping with maxShare", file=SETTINGS_FILE, key=section)
        for key, value in body.items():
            if key not in DEFAULTS[section]:
                raise ValidationError(f"unknown setting {key!r}; allowed: {', '.join(DEFAULTS[section])}",
                                      file=SETTINGS_FILE, key=f"{section}.{key}")
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
                raise ValidationError(f"expected a share of the limit, a number in (0, 1], got {value!r}",
                                      file=SETTINGS_FILE, key=f"{section}.{key}")
            settings[section][key] = float(value)
    return settings


def release_record(chart: Path, values: list[Path], *, extra: list[str] | None = None) -> dict:
    """The release record Helm 4 would store, from a client-only dry run."""
    cmd = [tools.helm(4), "install", "vemon", str(chart), "--namespace", "monitoring",
           "--dry-run=client", "-o", "json"]
    for v in values:
        cmd += ["-f", str(v)]
    proc = tools.run(cmd + (extra or []), timeout=300)
    try:
        return json.loads(proc.stdout)
    except json.JSONDecodeError as e:
        raise ToolError(f"helm 4 dry run printed no release JSON ({e})") from None


def stored_bytes(record: dict) -> int:
    """Bytes of the release as Helm's Secret driver stores it: base64(gzip(JSON))."""
    raw = json.dumps(record, separators=(",", ":"), ensure_ascii=False).encode()
    return len(base64.b64encode(gzip.compress(raw, compresslevel=9, mtime=0)))


def object_sizes(manifest: str) -> list[tuple[str, int]]:
    sizes = []
    for doc in yaml.safe_load_all(manifest):
        if not isinstance(doc, dict):
            continue
        name = f"{doc.get('kind')}/{(doc.get('metadata') or {}).get('name')}"
        sizes.append((name, len(json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode())))
    return sorted(sizes, key=lambda item: -item[1])


def measure(chart: Path, values: list[Path], env: str = "", *, extra: list[str] | None = None) -> Measure:
    record = release_record(chart, values, extra=extra)
    chart_part = record.get("chart") or {}
    files = sum(len(f.get("data") or "") for key in ("files", "templates") for f in chart_part.get(key) or [])
    manifest = record.get("manifest") or ""
    return Measure(env=env, stored=stored_bytes(record), manifest=len(manifest.encode()), chart_files=files,
                   objects=object_sizes(manifest))


def measure_envs(root: Path) -> list[Measure]:
    return [measure(root / "chart", [root / "values" / f"{env}.yaml"], env)
            for env in environment_names(root / "values")]


def check(ctx) -> None:
    """Lint check: every environment's release and every object within its share."""
    settings = load_settings(ctx.root)
    release_limit = settings["release"]["maxShare"] * MIB
    object_limit = settings["object"]["maxShare"] * MIB
    problems = []
    measures = measure_envs(ctx.root)
    for m in measures:
        if m.stored > release_limit:
            problems.append(
                f"{m.env}: the stored Helm release would be {m.stored:,} bytes, {m.share:.0%} of the 1 MiB "
                f"Secret limit; the budget is {settings['release']['maxShare']:.0%} ({int(release_limit):,} bytes, "
                f"{SETTINGS_FILE} release.maxShare)")
        for name, size in m.objects:
            if size > object_limit:
                problems.append(
                    f"{m.env}: {name} is {size:,} bytes, {size / MIB:.0%} of the 1 MiB object limit; the budget "
                    f"is {settings['object']['maxShare']:.0%} ({int(object_limit):,} bytes, "
                    f"{SETTINGS_FILE} object.maxShare; kubectl apply fails above 262,144 bytes)")
    if problems:
        raise ValidationError("size budget exceeded:\n  " + "\n  ".join(problems) + f"\nTo fix: {WHAT_TO_DO}.")
    worst = max(measures, key=lambda m: m.stored)
    biggest = max(measures, key=lambda m: m.largest[1])
    ctx.notes.append(
        f"size budget: largest release {worst.env} {worst.stored:,} bytes ({worst.share:.1%} of 1 MiB, budget "
        f"{settings['release']['maxShare']:.0%}); largest object {biggest.largest[0]} {biggest.largest[1]:,} "
        f"bytes (budget {settings['object']['maxShare']:.0%})")
