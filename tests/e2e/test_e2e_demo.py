"""make demo: starts the stack, pages on a typed scenario, and leaves nothing running after quit."""
from __future__ import annotations

import re
import socket
import subprocess
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def port_open(url: str) -> bool:
    host, port = re.match(r"http://([\d.]+):(\d+)", url).groups()
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex((host, int(port))) == 0


def test_demo_pages_on_a_typed_scenario_and_stops_cleanly():
    proc = subprocess.Popen([sys.executable, str(ROOT / "scripts" / "demo")], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT)
    lines, urls = [], []
    guard = threading.Timer(120, proc.kill)   # a demo that never pages must not hang the suite
    guard.start()
    try:
        for line in proc.stdout:
            lines.append(line)
            urls += re.findall(r"http://127\.0\.0\.1:\d+", line)
            if line.startswith("Type a scenario"):
                proc.stdin.write("voting_power_missing\n")
                proc.stdin.flush()
            if "[PagerDuty] trigger ValidatorDown" in line:
                proc.stdin.write("quit\n")
                proc.stdin.flush()
            if "demo stopped" in line:
                break
        proc.wait(timeout=60)
    finally:
        guard.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = "".join(lines)
    assert proc.returncode == 0, text
    assert "Prometheus" in text and "Alertmanager" in text and "/scenarios" in text
    assert "[PagerDuty] trigger ValidatorDown (virtengine-prod) https://" in text
    assert len(urls) >= 4 and not any(port_open(u) for u in urls), "a server is still listening after the demo"
