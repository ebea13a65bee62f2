"""Section 3: the stored release object per environment (Helm 4 client dry
run, encoded as Helm's Secret driver does), the largest object, and how many
more dashboards of typical size fit (each dashboard's chart file and object
compressed on their own: the median of the real dashboards)."""
from __future__ import annotations

import base64
import gzip
import subprocess
import tempfile
from pathlib import Path

from generator import budget

from .common import PY, ROOT, Report, kib
from .synthetic import make_tree

RELEASE_TARGET = 0.25
KPS_RELEASE = 390 * 1000


def run(report: Report, work: Path) -> None:
    settings = budget.load_settings(ROOT)
    tree = make_tree(Path(tempfile.mkdtemp(prefix="size-", dir=work)), 1)
    subprocess.run([PY, "-m", "generator", "--root", str(tree), "render"], check=True, capture_output=True)
    measures = budget.measure_envs(tree)
    rows = []
    for m in measures:
        name, size = m.largest
        rows.append([m.env, kib(m.stored), f"{m.share:.1%}", kib(m.manifest), kib(m.chart_files), name,
                     kib(size), f"{size / budget.MIB:.1%}"])
        report.add("size", f"release {m.env}: stored (gzip+base64)", f"{kib(m.stored)} = {m.share:.1%} of 1 MiB",
                   f"< 25% (kube-prometheus-stack {KPS_RELEASE / budget.MIB:.0%})", m.share < RELEASE_TARGET)
    report.table("release object per environment (Helm 4 --dry-run=client -o json)",
                 ["env", "stored", "of 1 MiB", "manifest", "chart files+templates (b64)", "largest object",
                  "size", "of 1 MiB"], rows)
    prod = {m.env: m for m in measures}.get("prod", measures[-1])
    gz = budget.measure(tree / "chart", [tree / "values" / f"{prod.env}.yaml"], prod.env,
                        extra=["--set", "grafanaOperator.enabled=true"])
    plain_boards = [s for n, s in prod.objects if n.startswith("ConfigMap/") and s > 0]
    gz_boards = [s for n, s in gz.objects if n.startswith("GrafanaDashboard/")]
    if gz_boards:
        report.add("size", f"{prod.env} with grafanaOperator.enabled (gzipJson): stored release",
                   f"{kib(gz.stored)} = {gz.share:.1%} of 1 MiB (ConfigMaps: {kib(prod.stored)})")
        report.add("size", f"{prod.env} largest dashboard object: GrafanaDashboard (gzipJson) vs largest ConfigMap",
                   f"{kib(max(gz_boards))} vs {kib(max(plain_boards))}")
    packed = sum(p.stat().st_size for p in (tree / "chart" / "files" / "dashboards-gzip").glob("*.b64"))
    if packed:
        report.add("size", "compressed dashboard copies carried in every release (chart files, raw)", kib(packed))
    record = budget.release_record(tree / "chart", [tree / "values" / f"{prod.env}.yaml"])
    docs = (record.get("manifest") or "").split("\n---\n")
    costs = []
    for path in sorted((tree / "chart" / "files" / "dashboards").glob("*.json")):
        # what one more dashboard adds: its chart file (base64 in the record) and its object in the
        # manifest, each compressed on its own (copies of one dashboard would compress against each
        # other and flatter the figure), base64 once more as the Secret stores it
        raw = path.read_bytes()
        objects = [d for d in docs if f"{path.stem}.json" in d
                   or ("kind: GrafanaDashboard" in d and f"name: {path.stem}" in d)]
        stored = len(gzip.compress(base64.b64encode(raw), 9)) + sum(len(gzip.compress(d.encode(), 9)) for d in objects)
        costs.append((stored * 4 / 3, len(raw), path.stem))
    if not costs:
        report.note("no dashboards: headroom not measured")
        return
    per, raw, uid = sorted(costs)[len(costs) // 2]
    fit_limit = int((budget.MIB - prod.stored) / per)
    fit_budget = int((settings["release"]["maxShare"] * budget.MIB - prod.stored) / per)
    fit_target = int((RELEASE_TARGET * budget.MIB - prod.stored) / per)
    report.add("size", f"typical dashboard (median of {len(costs)}: {uid}, {kib(raw)} JSON): stored release bytes each",
               kib(int(per)))
    report.add("size", f"headroom in {prod.env}: more dashboards of typical size that fit",
               f"{fit_target} under 25%, {fit_budget} under the lint budget "
               f"({settings['release']['maxShare']:.0%}), {fit_limit} under 1 MiB")
