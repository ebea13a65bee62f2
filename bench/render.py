"""Section 1: cold ``python -m generator render`` of the whole chart (every
environment validated) for the default content and trees 10x and 100x larger."""
from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path

from .common import PY, Report, median, ms, timed, timed_cpu
from .synthetic import make_tree

TARGET = 0.5


def content_size(root: Path) -> tuple[int, int]:
    """(dashboards, rules) in a rendered chart."""
    files = root / "chart" / "files"
    dashboards = len(list((files / "dashboards").glob("*.json")))
    rules = 0
    for path in (files / "rules").glob("*.json"):
        data = json.loads(path.read_text())
        groups = data.get("groups", [data]) if isinstance(data, dict) else data
        rules += sum(len(g.get("rules", [])) for g in groups)
    return dashboards, rules


def render_times(root: Path, runs: int) -> tuple[list[float], list[float]]:
    """(wall times, CPU times) of ``runs`` cold renders."""
    cmd = [PY, "-m", "generator", "--root", str(root), "render"]
    if runs > 3:
        timed(cmd)  # warms the page cache and checks the tree renders; not counted (skipped for the big trees)
    runs_ = [timed_cpu(cmd) for _ in range(runs)]
    return [w for w, _ in runs_], [c for _, c in runs_]


def run(report: Report, work: Path, *, quick: bool, only_tree: bool = False) -> dict[int, Path]:
    """Returns the rendered trees by factor for the later sections."""
    factors = (1,) if only_tree else (1, 10) if quick else (1, 10, 100)
    runs = {1: 5 if quick else 9, 10: 3 if quick else 5, 100: 1}   # one 100x render takes about a minute
    trees: dict[int, Path] = {}
    results: dict[int, tuple[float, int, int]] = {}
    for factor in factors:
        # every tree, the default one too, is a copy: the repository's chart/ is never rewritten
        root = make_tree(Path(tempfile.mkdtemp(prefix=f"x{factor}-", dir=work)), factor)
        if only_tree:   # another section needs the rendered default tree, not the render figures
            render_times(root, 1)
            return {1: root}
        try:
            times, cpu = render_times(root, runs[factor])
        except RuntimeError as e:
            report.note(f"render of the {factor}x tree failed, skipped: {str(e)[-300:]}")
            continue
        trees[factor] = root
        dashboards, rules = content_size(root)
        results[factor] = (median(cpu), dashboards, rules)
        target = f"< {ms(TARGET)} (CPU time)" if factor == 1 else ""
        spread = f" (CPU min {ms(min(cpu))}, max {ms(max(cpu))})" if len(cpu) > 1 else ""
        report.add("render", f"render {factor}x ({dashboards} dashboards, {rules} rules), median of {len(times)}",
                   f"{ms(median(times))} wall, {ms(median(cpu))} CPU{spread}", target,
                   median(cpu) < TARGET if factor == 1 else None)
    rows = []
    base = results.get(1)
    for factor, (t, d, r) in sorted(results.items()):
        if factor == 1 or not base:
            continue
        size_ratio = (d + r) / max(1, base[1] + base[2])
        time_ratio = t / base[0]
        exponent = math.log(time_ratio) / math.log(size_ratio) if size_ratio > 1 and time_ratio > 0 else float("nan")
        rows.append([f"1x -> {factor}x", f"{size_ratio:.1f}x", f"{time_ratio:.2f}x", f"{exponent:.2f}",
                     f"{(t - base[0]) / max(1, d + r - base[1] - base[2]) * 1000:.2f} ms"])
        report.add("render", f"render growth exponent 1x -> {factor}x (CPU time ~ size^k)", f"k = {exponent:.2f}",
                   "k <= 1.05 (linear, 5% for noise)", exponent <= 1.05)
    if rows:
        report.table("render scaling (CPU time)", ["step", "content", "time", "exponent k", "per item added"], rows)
    return trees
