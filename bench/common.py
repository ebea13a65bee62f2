"""What every benchmark section shares: timing whole processes, medians,
the machine, and the figures collected for the printout and the Markdown."""
from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from generator import tools  # noqa: E402

PY = sys.executable


def timed(cmd: list[str], *, cwd: Path = ROOT, check: bool = True) -> float:
    """Wall-clock seconds of one whole-process run."""
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - start
    if check and proc.returncode != 0:
        raise RuntimeError(f"`{' '.join(map(str, cmd))}` failed:\n{proc.stderr.strip()[-2000:]}")
    return elapsed


def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds >= 0.1 else f"{seconds * 1000:.1f} ms"


def kib(n: int) -> str:
    return f"{n / 1024:,.1f} KiB"


@dataclass
class Figure:
    section: str
    name: str
    value: str
    target: str = ""
    ok: bool | None = None          # None: no target

    @property
    def verdict(self) -> str:
        return "" if self.ok is None else ("met" if self.ok else "MISS")


@dataclass
class Report:
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    tables: dict[str, list[list[str]]] = field(default_factory=dict)

    def add(self, section: str, name: str, value: str, target: str = "", ok: bool | None = None) -> None:
        fig = Figure(section, name, value, target, ok)
        self.figures.append(fig)
        verdict = f"  [{fig.verdict}: target {target}]" if target else ""
        print(f"  {name}: {value}{verdict}", flush=True)

    def note(self, text: str) -> None:
        self.notes.append(text)
        print(f"  note: {text}", flush=True)

    def table(self, title: str, header: list[str], rows: list[list[str]]) -> None:
        self.tables[title] = [header] + rows
        print(f"  {title}:")
        widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
        for row in [header] + rows:
            print("    " + "  ".join(str(c).ljust(w) for c, w in zip(row, widths)))

    @property
    def misses(self) -> list[Figure]:
        return [f for f in self.figures if f.ok is False]


def machine() -> dict[str, str]:
    def out(cmd: list[str]) -> str:
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return "(unavailable)"
    info = {
        "nproc": out(["nproc"]),
        "lscpu": "\n".join(out(["lscpu"]).splitlines()[:10]),
        "load average": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "python": platform.python_version(),
    }
    for major in (3, 4):
        try:
            info[f"helm {major}"] = out([tools.helm(major), "version", "--short"])
        except Exception as e:  # noqa: BLE001 - a missing tool is reported, not fatal here
            info[f"helm {major}"] = f"missing ({e})"
    try:
        info["prometheus"] = out([tools.find("prometheus"), "--version"]).splitlines()[0]
    except Exception as e:  # noqa: BLE001
        info["prometheus"] = f"missing ({e})"
    return info
