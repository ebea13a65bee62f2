"""Writes generated files, or compares them with what is on disk.

The generator owns ``chart/`` (and ``integrations/kube-prometheus-stack/``, ``vmalert/``, ``mimir/``, ``thanos-ruler/``)
whole: it renders the complete tree into a temporary folder beside it and
swaps the two folders in one step, so a
failed or interrupted render never leaves ``chart/`` half-written and a
removed source removes its output. Other generated files (docs) are
replaced one by one through a temporary file and a rename.
"""
from __future__ import annotations

import ctypes
import json
import os
import shutil
import tempfile
from pathlib import Path

from .errors import GeneratorError, StaleError

OWNED_DIR = "chart"
# folders the generator owns whole: each rendered into a temporary folder beside it and swapped in
OWNED_DIRS = (OWNED_DIR, "integrations/kube-prometheus-stack", "integrations/vmalert", "integrations/mimir",
              "integrations/thanos-ruler")
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


def _owner(rel: str) -> str | None:
    return next((d for d in OWNED_DIRS if rel.startswith(d + "/")), None)


def recover(root: Path) -> None:
    """Cleans what an interrupted earlier run left behind."""
    for owned in OWNED_DIRS:
        target = root / owned
        if not target.parent.is_dir():
            continue
        for leftover in target.parent.glob(f".{target.name}.*.tmp"):
            shutil.rmtree(leftover, ignore_errors=True)
        for leftover in target.parent.glob(f".{target.name}.*.old"):
            if not target.exists():
                leftover.rename(target)
            else:
                shutil.rmtree(leftover, ignore_errors=True)


def _swap_in(root: Path, owned: str, files: dict[str, bytes]) -> None:
    """Writes ``files`` (paths under ``owned``) into a new folder and swaps it with ``owned`` in one step."""
    target = root / owned
    if target.is_symlink() or (target.exists() and not target.is_dir()):
        raise GeneratorError(f"{owned} is not a folder; the generator owns {owned}/ and rewrites it whole: "
                             f"move it away and render again", file=str(target))
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o777 & ~umask)   # mkdtemp's 0700 would hide chart/ from other users (CI containers, a shared checkout)
    try:
        made = {tmp}
        for rel, data in sorted(files.items()):
            path = tmp / rel[len(owned) + 1:]
            if path.parent not in made:   # each folder made once (files come sorted: a folder's files together)
                path.parent.mkdir(parents=True, exist_ok=True)
                made.add(path.parent)
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


def write(root: Path, files: dict[str, bytes]) -> None:
    recover(root)
    for owned in OWNED_DIRS:
        mine = {k: v for k, v in files.items() if _owner(k) == owned}
        if mine or owned == OWNED_DIR or (root / owned).exists():
            _swap_in(root, owned, mine)
    others = {k: v for k, v in files.items() if _owner(k) is None}
    for rel, data in sorted(others.items()):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        part = path.with_name(f".{path.name}.tmp")
        part.write_bytes(data)
        part.replace(path)


def on_disk(root: Path, files: dict[str, bytes]) -> dict[str, bytes]:
    current: dict[str, bytes] = {}
    for owned in OWNED_DIRS:
        folder = root / owned
        if folder.is_dir():
            for p in sorted(folder.rglob("*")):
                if p.is_file():
                    current[str(p.relative_to(root))] = p.read_bytes()
    for rel in files:
        if _owner(rel) is None and (root / rel).is_file():
            current[rel] = (root / rel).read_bytes()
    return current


def _readable(rel: str, data: bytes) -> list[str]:
    """The lines to diff: JSON pretty-printed (rule groups are stored on one line), other text as it is."""
    text = data.decode()
    if rel.endswith(".json"):
        try:
            text = json.dumps(json.loads(text), indent=2, ensure_ascii=False)
        except ValueError:
            pass
    return text.splitlines()


def check(root: Path, files: dict[str, bytes], fix_command: str, lines_per_file: int = 60,
          max_lines: int = 400) -> None:
    """Raises StaleError when the files on disk differ: the list of files, then a unified diff of each
    (from what is on disk to what render writes, JSON pretty-printed), at most ``lines_per_file`` a file."""
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
            import difflib  # only a stale chart needs it: render does not pay for the import
            try:
                body = list(difflib.unified_diff(_readable(rel, old), _readable(rel, new),
                                                 f"{rel} (on disk)", f"{rel} (after render)", lineterm="", n=2))
            except UnicodeDecodeError:
                body = [f"(binary) {rel}"]
            if len(body) > lines_per_file:
                body = body[:lines_per_file] + [f"... {len(body) - lines_per_file} more lines of {rel}"]
            diff_lines.extend(body)
    if problems:
        shown = diff_lines[:max_lines]
        if len(diff_lines) > max_lines:
            shown.append(f"... {len(diff_lines) - max_lines} more diff lines")
        raise StaleError("generated files are out of date with templates_src/ and values/:\n  "
                         + "\n  ".join(problems) + ("\n" + "\n".join(shown) if shown else "")
                         + f"\nrun `{fix_command}` and commit the result")
