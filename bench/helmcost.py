"""Section 2: ``helm template`` of the chart with prod values, Helm 3 and 4,
against a static chart holding the same rendered objects as plain files.

The static chart (the floor) has the same Chart.yaml, values.yaml and
values.schema.json, so values are loaded and validated alike, and one
template per object whose whole text is a single constant (a Go raw string),
so Helm parses and prints it but computes nothing. Runs alternate pair by
pair (ours, static; static, ours; ...) and the ratio is the median of the
per-pair ratios, which cancels most of the noise of a shared machine.
"""
from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from .common import Report, median, ms, timed, timed_cpu, tools

KPS = {3: 2.0, 4: 1.75}            # kube-prometheus-stack 88.5.3: templated / static
KPS_PER_DASHBOARD = 0.0015         # s
KPS_PER_RULE = 0.00008             # s
RATIO_TARGET = 1.2


def template_cmd(major: int, chart: Path, values: Path, flags: list[str]) -> list[str]:
    return [tools.helm(major), "template", "vemon", str(chart), "--namespace", "monitoring",
            "-f", str(values), *flags]


def static_chart(chart: Path, values: Path, flags: list[str], dest: Path) -> tuple[Path, int]:
    """A chart whose templates are the rendered objects of ``chart`` as constants."""
    out = subprocess.run(template_cmd(3, chart, values, flags), capture_output=True, text=True, check=True).stdout
    if dest.exists():
        shutil.rmtree(dest)
    (dest / "templates").mkdir(parents=True)
    for name in ("Chart.yaml", "values.yaml", "values.schema.json"):
        if (chart / name).is_file():
            shutil.copy(chart / name, dest / name)
    docs = [d for d in out.split("\n---\n") if d.strip() and any(
        line and not line.startswith("#") for line in d.splitlines())]
    for i, doc in enumerate(docs):
        body = "{{`" + "`}}{{\"`\"}}{{`".join(doc.strip("-\n").split("`")) + "`}}\n"
        (dest / "templates" / f"object-{i:04d}.yaml").write_text(body)
    return dest, len(docs)


def pairs(a: list[str], b: list[str], n: int) -> tuple[list[tuple], list[tuple]]:
    """n alternated pairs of runs of a and b: [(wall, cpu), ...] each."""
    ta, tb = [], []
    timed(a), timed(b)  # warm-up, not counted
    for i in range(n):
        if i % 2 == 0:
            ta.append(timed_cpu(a)), tb.append(timed_cpu(b))
        else:
            tb.append(timed_cpu(b)), ta.append(timed_cpu(a))
    return ta, tb


def compare(chart: Path, values: Path, flags: list[str], major: int, n: int, work: Path):
    """Medians: ours (wall), floor (wall), ratio (wall, per pair), ratio (CPU, per pair),
    difference (wall, per pair), and the number of objects."""
    static, objects = static_chart(chart, values, flags, Path(tempfile.mkdtemp(prefix="static-", dir=work)))
    ours, floor = pairs(template_cmd(major, chart, values, flags), template_cmd(major, static, values, flags), n)
    ratio = median([o[0] / s[0] for o, s in zip(ours, floor)])
    cpu_ratio = median([o[1] / s[1] for o, s in zip(ours, floor) if s[1] > 0])
    diff = median([o[0] - s[0] for o, s in zip(ours, floor)])
    return median([o[0] for o in ours]), median([s[0] for s in floor]), ratio, cpu_ratio, diff, objects


def run(report: Report, work: Path, trees: dict[int, Path], *, quick: bool) -> None:
    n = 5 if quick else 9
    from .render import content_size
    measured = [f for f in sorted(trees) if f <= 10]
    for factor in measured:
        root = trees[factor]
        values = root / "values" / "prod.yaml"
        for major in (3, 4):
            ours, floor, ratio, cpu_ratio, _, objects = compare(root / "chart", values, [], major, n, work)
            target = f"<= {RATIO_TARGET}x (kube-prometheus-stack {KPS[major]}x)"
            report.add("helm", f"helm {major} template prod, {factor}x ({objects} objects): ours {ms(ours)}, "
                               f"static floor {ms(floor)}, ratio (median of {n} pairs; CPU-time ratio {cpu_ratio:.2f}x)",
                       f"{ratio:.2f}x", target if factor == 1 else "", ratio <= RATIO_TARGET if factor == 1 else None)
    # per-item templating cost: the overhead over the floor (ours - static, median of pairs) with
    # dashboards alone (rules off) and rules alone (dashboards off), on the default and the largest
    # tree; the difference between the two trees divided by the items added, so the constant
    # overhead of the other templates cancels
    if len(measured) < 2:
        return
    small, big = trees[measured[0]], trees[measured[-1]]
    (d1, r1), (d2, r2) = content_size(small), content_size(big)
    kinds = [("dashboard", "rules.enabled=false", d1, d2, KPS_PER_DASHBOARD),
             ("rule", "dashboards.enabled=false", r1, r2, KPS_PER_RULE)]
    for major in (3, 4):
        for kind, flag, n1, n2, kps in kinds:
            if n2 <= n1:
                continue
            over = [compare(root / "chart", root / "values" / "prod.yaml", ["--set", flag], major, max(3, n - 4),
                            work)[4]
                    for root in (small, big)]
            per = (over[1] - over[0]) / (n2 - n1)
            off = flag.split(".")[0]
            report.add("helm", f"helm {major} templating cost per {kind} over the floor "
                               f"({n1} -> {n2} {kind}s, {off} off)",
                       f"{per * 1000:.3f} ms", f"<= {kps * 500:.2f} ms (half of kube-prometheus-stack)",
                       per <= kps / 2)
