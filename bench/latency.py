"""Section 5: time from fault to page for each end-to-end scenario, beside its
theoretical bound. The measurement belongs to the routing work (its e2e
harness); this section runs its benchmark when it exists and says so when not."""
from __future__ import annotations

import subprocess
from pathlib import Path

from .common import PY, ROOT, Report

CANDIDATES = ("bench/alert_latency.py", "tests/e2e/alert_latency.py", "tests/e2e/latency.py",
              "simulator/latency.py", "scripts/alert_latency")


def run(report: Report, *, quick: bool) -> None:
    found = [ROOT / c for c in CANDIDATES if (ROOT / c).is_file()]
    if not found:
        report.add("latency", "fault-to-page benchmark", "MISSING", f"one of {', '.join(CANDIDATES)}", False)
        return
    script = found[0]
    cmd = [PY, str(script)] if script.suffix == ".py" else [str(script)]
    proc = subprocess.run(cmd + (["--quick"] if quick and "--quick" in script.read_text() else []),
                          cwd=ROOT, capture_output=True, text=True, timeout=1800)
    report.note(f"ran {script.relative_to(ROOT)} (exit {proc.returncode})")
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    rows = [[line] for line in lines[-30:]] or [[proc.stderr.strip()[-500:]]]
    report.table(f"fault to page ({script.relative_to(ROOT)})", ["output"], rows)
    if proc.returncode != 0:
        report.add("latency", "fault-to-page benchmark", f"failed (exit {proc.returncode})", "runs clean", False)
