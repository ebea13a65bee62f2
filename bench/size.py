"""Section 3: the stored release object per environment (Helm 4 client dry
run, encoded as Helm's Secret driver does), the largest object, and how many
more dashboards of typical size fit (each dashboard's chart file and object
compressed on their own: the median of the real dashboards)."""
from __future__ import annotations

import base64
import gzip
import json
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
    on = ["--set", "grafanaOperator.enabled=true"]
    plain = budget.measure(tree / "chart", [tree / "values" / f"{prod.env}.yaml"], prod.env, extra=on)
    gz_tree = make_tree(Path(tempfile.mkdtemp(prefix="gzip-", dir=work)), 1)
    with (gz_tree / "values" / f"{prod.env}.yaml").open("a") as f:
        f.write("\ngrafanaOperator:\n  enabled: true\n")
    subprocess.run([PY, "-m", "generator", "--root", str(gz_tree), "render"], check=True, capture_output=True)
    gz = budget.measure(gz_tree / "chart", [gz_tree / "values" / f"{prod.env}.yaml"], prod.env, extra=on)
    configmaps = [s for n, s in prod.objects if n.startswith("ConfigMap/") and "dashboard" in n]

    def largest_board(m: budget.Measure) -> int:
        return max([s for n, s in m.objects if n.startswith("GrafanaDashboard/")] or [0])
    report.table(f"dashboard delivery in {prod.env}: stored release and largest dashboard object",
                 ["form", "stored release", "of 1 MiB", "largest dashboard object"],
                 [["sidecar ConfigMaps (default)", kib(prod.stored), f"{prod.share:.1%}", kib(max(configmaps or [0]))],
                  ["GrafanaDashboard spec.json (no env enables the operator)", kib(plain.stored), f"{plain.share:.1%}",
                   kib(largest_board(plain))],
                  ["GrafanaDashboard spec.gzipJson (an env enables it: copies carried)", kib(gz.stored),
                   f"{gz.share:.1%}", kib(largest_board(gz))]])
    record = budget.release_record(tree / "chart", [tree / "values" / f"{prod.env}.yaml"])
    chart_part = record.get("chart") or {}
    parts: dict[str, list[bytes]] = {}
    for key in ("files", "templates"):
        for f in chart_part.get(key) or []:
            name = f["name"]
            group = ("/".join(name.split("/")[:2]) if name.startswith("files/") and name.count("/") > 1
                     else "templates/" if name.startswith("templates/") else name)
            parts.setdefault(f"{group} (chart file, base64)", []).append((f.get("data") or "").encode())
    parts["manifest (the rendered objects)"] = [(record.get("manifest") or "").encode()]
    parts["values.schema.json (base64)"] = [str(chart_part.get("schema") or "").encode()]
    parts["values (chart defaults + this environment)"] = [
        json.dumps([chart_part.get("values"), record.get("config")]).encode()]
    sizes = {k: len(gzip.compress(b"".join(v), 9)) * 4 // 3 for k, v in parts.items()}
    total = sum(sizes.values())
    report.table(f"what the stored {prod.env} release is made of (each part compressed on its own, top 10)",
                 ["part", "stored", "share"],
                 [[k, kib(v), f"{v / total:.0%}"] for k, v in sorted(sizes.items(), key=lambda kv: -kv[1])[:10]])
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
