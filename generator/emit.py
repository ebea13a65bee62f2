"""Writes generated files, or compares them with what is on disk.

The generator owns ``chart/`` whole: it renders the complete tree into a
temporary folder beside it and swaps the two folders in one step, so a
failed or interrupted render never leaves ``chart/`` half-written and a
removed source removes its output. Other generated files (docs) are
replaced one by one through a temporary file and a rename.
"""
from __future__ import annotations

import ctypes
import difflib
import os
import shutil
import tempfile
from pathlib import Path

from .errors import GeneratorError, StaleError

OWNED_DIR = "chart"
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swaps two paths (Linux renameat2); False where unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    return fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0


def recover(root: Path) -> None:
    """Cleans what an interrupted earlier run left behind."""
    for leftover in root.glob(f".{OWNED_DIR}.*.tmp"):
        shutil.rmtree(leftover, ignore_errors=True)
    for leftover in root.glob(f".{OWNED_DIR}.*.old"):
        if not (root / OWNED_DIR).exists():
            leftover.rename(root / OWNED_DIR)
        else:
            shutil.rmtree(leftover, ignore_errors=True)


def write(root: Path, files: dict[str, bytes]) -> None:
    recover(root)
    owned = {k: v for k, v in files.items() if k.startswith(OWNED_DIR + "/")}
    others = {k: v for k, v in files.items() if not k.startswith(OWNED_DIR + "/")}
    target = root / OWNED_DIR
    if target.is_symlink() or (target.exists() and not target.is_dir()):
        raise GeneratorError(f"{OWNED_DIR} is not a folder; the generator owns {OWNED_DIR}/ and rewrites it whole: "
                             f"move it away and render again", file=str(target))
    tmp = Path(tempfile.mkdtemp(prefix=f".{OWNED_DIR}.", suffix=".tmp", dir=root))
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o777 & ~umask)   # mkdtemp's 0700 would hide chart/ from other users (CI containers, a shared checkout)
    try:
        for rel, data in sorted(owned.items()):
            path = tmp / rel[len(OWNED_DIR) + 1:]
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        if target.exists() and _exchange(tmp, target):
            shutil.rmtree(tmp)
        else:
            old = None
            if target.exists():
                old = Path(str(tmp)[: -len(".tmp")] + ".old")
                target.rename(old)
            tmp.rename(target)
            if old is not None:
                shutil.rmtree(old)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for rel, data in sorted(others.items()):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        part = path.with_name(f".{path.name}.tmp")
        part.write_bytes(data)
        part.replace(path)


def on_disk(root: Path, files: dict[str, bytes]) -> dict[str, bytes]:
    current: dict[str, bytes] = {}
    chart = root / OWNED_DIR
    if chart.exists():
        for p in sorted(chart.rglob("*")):
            if p.is_file():
                current[str(p.relative_to(root))] = p.read_bytes()
    for rel in files:
        if not rel.startswith(OWNED_DIR + "/") and (root / rel).is_file():
            current[rel] = (root / rel).read_bytes()
    return current


def check(root: Path, files: dict[str, bytes], fix_command: str, max_lines: int = 40) -> None:
    """Raises StaleError with a short diff when the files on disk differ."""
    current = on_disk(root, files)
    problems: list[str] = []
    diff_lines: list[str] = []
    for rel in sorted(set(current) | set(files)):
        old, new = current.get(rel), files.get(rel)
        if old == new:
            continue
        if old is None:
            problems.append(f"missing: {rel}")
        elif new is None:
            problems.append(f"not generated from any source (remove it): {rel}")
        else:
            problems.append(f"differs: {rel}")
            try:
                diff_lines.extend(difflib.unified_diff(
                    new.decode().splitlines(), old.decode().splitlines(),
                    f"{rel} (from sources)", f"{rel} (on disk)", lineterm="", n=1))
            except UnicodeDecodeError:
                diff_lines.append(f"(binary) {rel}")
    if problems:
        shown = diff_lines[:max_lines]
        if len(diff_lines) > max_lines:
            shown.append(f"... {len(diff_lines) - max_lines} more diff lines")
        raise StaleError("generated files are out of date with templates_src/ and values/:\n  "
                         + "\n  ".join(problems) + ("\n" + "\n".join(shown) if shown else "")
                         + f"\nrun `{fix_command}` and commit the result")
