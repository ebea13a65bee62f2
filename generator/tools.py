"""Finds the external tools: helm 3, helm 4, promtool, amtool, and runs them.

Tools come from ``.tools/bin`` (installed by ``scripts/bootstrap``) or from
PATH. A missing tool is a ``ToolError`` that says how to get it.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from .errors import ToolError

ROOT = Path(__file__).resolve().parent.parent
HINT = "run `scripts/bootstrap` (or `make tools`) to install it"


def _tools_bin() -> Path:
    return Path(os.environ.get("VEMON_TOOLS_BIN", ROOT / ".tools" / "bin"))


def _version_ok(path: str, major: str) -> bool:
    try:
        out = subprocess.run([path, "version", "--short"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    return out.strip().startswith(f"v{major}.")


def helm(major: int = 3) -> str:
    """Path of a helm binary of the given major version (3 or 4)."""
    local = _tools_bin() / f"helm{major}"
    if local.is_file() and os.access(local, os.X_OK):
        return str(local)
    on_path = shutil.which("helm")
    if on_path and _version_ok(on_path, str(major)):
        return on_path
    raise ToolError(f"helm {major} not found in {_tools_bin()} or on PATH; {HINT}")


def find(name: str) -> str:
    local = _tools_bin() / name
    if local.is_file() and os.access(local, os.X_OK):
        return str(local)
    on_path = shutil.which(name)
    if on_path:
        return on_path
    if name == "alertmanager" and shutil.which("prometheus-alertmanager"):
        return shutil.which("prometheus-alertmanager")
    raise ToolError(f"{name} not found on PATH; {HINT} (Debian: prometheus / prometheus-alertmanager)")


def run(cmd: list[str], *, cwd: Path | None = None, timeout: float = 300, check: bool = True,
        input_text: str | None = None) -> subprocess.CompletedProcess:
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, input=input_text)
    except FileNotFoundError:
        raise ToolError(f"{cmd[0]} not found; {HINT}") from None
    except subprocess.TimeoutExpired:
        raise ToolError(f"{' '.join(cmd[:3])} took longer than {timeout}s") from None
    if check and proc.returncode != 0:
        raise ToolError(f"`{' '.join(cmd)}` failed (exit {proc.returncode}):\n{(proc.stderr or proc.stdout).strip()}")
    return proc
