"""Headless Chromium (Debian's ``chromium``): screenshots and measurements.

Each call is one short browser run with a throw-away profile, no network
beyond the local file, no GPU. ``shoot`` writes a PNG of exactly the page's
size; ``measure`` loads a page and returns what its ``MEASURE`` script
recorded on ``<html data-overflow>`` (text wider or taller than its box).
Calls run two at a time (``parallel``): the machines have two cores.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from html import unescape
from pathlib import Path

from .. import tools
from ..errors import ToolError

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--mute-audio", "--force-device-scale-factor=1",
         "--default-background-color=00000000")
OVERFLOW = re.compile(r'<html[^>]*\sdata-overflow="([^"]*)"')


def chromium() -> str:
    try:
        return tools.find("chromium")
    except ToolError:
        raise ToolError("chromium not found; run `scripts/bootstrap` (Debian package `chromium`) "
                        "or pass --no-screenshots") from None


def _run(args: list[str], timeout: float = 90) -> subprocess.CompletedProcess:
    profile = tempfile.mkdtemp(prefix="vemon-chromium-")
    try:
        return subprocess.run([chromium(), *FLAGS, f"--user-data-dir={profile}", *args],
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise ToolError(f"chromium did not finish within {timeout}s: {' '.join(args[-2:])}") from None
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def shoot(page: Path, png: Path, width: int, height: int) -> Path:
    png.unlink(missing_ok=True)
    proc = _run([f"--screenshot={png}", f"--window-size={width},{height}", page.resolve().as_uri()])
    if not png.is_file():
        raise ToolError(f"chromium wrote no screenshot of {page} (exit {proc.returncode}): {proc.stderr[-400:]}")
    return png


def measure(page: Path, width: int, height: int) -> list[dict]:
    proc = _run(["--dump-dom", f"--window-size={width},{height}", page.resolve().as_uri()])
    m = OVERFLOW.search(proc.stdout)
    if not m:
        raise ToolError(f"chromium did not run the measuring script of {page} (exit {proc.returncode}): "
                        f"{proc.stderr[-400:]}")
    return json.loads(unescape(m.group(1)))


def parallel(jobs, workers: int = 2) -> list:
    """Runs ``[(function, *args)]`` two at a time; results in order, the first error raised."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(fn, *args) for fn, *args in jobs]
        return [f.result() for f in futures]
