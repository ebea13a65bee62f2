"""Content-addressed cache of the verdicts of the render's external tools.

A render runs two tools besides Python: the PromQL grammar (Node.js, ``promqlparse.mjs``) over every
expression, and ``promtool check rules`` over every rule group. Their CPU is most of a render's cost, and
in the edit loop (one template changed) almost all of their input is the same as in the run before. So
their answers are kept on disk, each under a key that covers

- the exact input text the tool received (an expression as sent to the grammar; a rule group's file text
  as sent to promtool), and
- the tool's version: for the grammar, the bytes of ``promqlparse.mjs`` and the ``package.json`` of
  ``@prometheus-io/lezer-promql`` and ``@lezer/lr`` plus the identity of the ``node`` binary (path, size,
  modification time); for promtool, what ``promtool --version`` prints (read once per binary identity).

A changed expression or group therefore has a different key and is checked again: the cache can only
answer for text the tool has already judged. Only promtool's "valid" verdict is kept (a refusal is
always re-run, so its message is fresh); the grammar's answer is kept whole (tree and errors), with a
checksum over key and answer: an entry that fails its checksum, or a file that does not parse, is
ignored and the tool is asked again; a cache entry is never trusted without that check.

The same folder keeps the results of some of the render's own pure functions of text (``Memo``: the data of
a rendered YAML template, the secrets scan of a generated file, a CI values file, a dashboard's clean lint
verdict, the global-view YAML of a rule group), each under a key over its exact input and ``code_version()``
(every byte of the generator's Python, the Python and the installed distributions).

Where: ``$VEMON_CACHE_DIR`` if set, else ``.cache/`` beside the generator (ignored by git; the Jinja
bytecode cache lives there too, in ``.cache/jinja``); the verdicts are in ``<that>/tools``. Off:
``VEMON_NO_CACHE=1`` or ``python -m generator render --no-cache``. Deleting the folder is always safe.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_FORMAT = "1"   # bump when the layout of an entry changes


def enabled() -> bool:
    return not os.environ.get("VEMON_NO_CACHE")


def disable() -> None:
    """Turns every cache of this process (and of the processes it starts) off (``--no-cache``)."""
    os.environ["VEMON_NO_CACHE"] = "1"


def cache_root() -> Path:
    return Path(os.environ.get("VEMON_CACHE_DIR") or ROOT / ".cache")


def folder() -> Path:
    return cache_root() / "tools"


def sha(*parts: str | bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        data = part.encode("utf-8", "surrogatepass") if isinstance(part, str) else part
        h.update(len(data).to_bytes(8, "big"))   # length-prefixed: no two part lists hash alike
        h.update(data)
    return h.hexdigest()


def file_identity(path: str | Path | None) -> str:
    """Path, size and modification time of a file (a binary's identity without reading it)."""
    if not path:
        return "missing"
    try:
        real = os.path.realpath(path)
        st = os.stat(real)
    except OSError:
        return f"missing:{path}"
    return f"{real}:{st.st_size}:{st.st_mtime_ns}:{st.st_ino}"


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b"missing"


def _write_atomic(path: Path, text: str) -> None:
    """Writes through a temporary file and a rename: a reader sees the old file or the new one, never half."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except OSError:
        pass   # a cache that cannot be written only costs time


# ---------------------------------------------------------------------------------------------- the grammar

def grammar_version(script: Path, modules: Path) -> str:
    node = shutil.which("node")
    return sha(_FORMAT, _read_bytes(script),
               _read_bytes(modules / "@prometheus-io" / "lezer-promql" / "package.json"),
               _read_bytes(modules / "@lezer" / "lr" / "package.json"),
               file_identity(node))


class GrammarCache:
    """The grammar's answers by expression (as sent to it), for one grammar version."""

    def __init__(self, version: str) -> None:
        self.version = version
        self.path = folder() / f"promql-{version[:32]}.json"
        self.entries: dict[str, list] = {}    # key -> [expression, answer JSON text, checksum]
        self.used: set[str] = set()
        self.dirty = False
        self._load()

    def key(self, expr: str) -> str:
        return sha(self.version, expr)

    def _checksum(self, key: str, expr: str, answer: str) -> str:
        return sha(self.version, key, expr, answer)

    def _load(self) -> None:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return
        if not isinstance(data, dict) or data.get("version") != self.version or \
                not isinstance(data.get("entries"), dict):
            return
        self.entries = data["entries"]

    def get(self, expr: str) -> dict | None:
        """The grammar's answer for ``expr`` (``{tree, errors}``), or None when absent or not intact."""
        key = self.key(expr)
        entry = self.entries.get(key)
        if not (isinstance(entry, list) and len(entry) == 3 and all(isinstance(x, str) for x in entry)):
            return None
        stored_expr, answer, checksum = entry
        if stored_expr != expr or checksum != self._checksum(key, expr, answer):
            return None
        try:
            result = json.loads(answer)
        except ValueError:
            return None
        if not (isinstance(result, dict) and isinstance(result.get("tree"), list)
                and isinstance(result.get("errors"), list)):
            return None
        self.used.add(key)
        return result

    def put(self, expr: str, result: dict) -> None:
        key = self.key(expr)
        answer = json.dumps(result, separators=(",", ":"), ensure_ascii=False)
        self.entries[key] = [expr, answer, self._checksum(key, expr, answer)]
        self.used.add(key)
        self.dirty = True

    def save(self) -> None:
        if not self.dirty or not enabled():
            return
        entries = self.entries
        if len(entries) > 4 * max(len(self.used), 1000):   # old expressions pile up: keep what this run used
            entries = {k: v for k, v in entries.items() if k in self.used}
        _write_atomic(self.path, json.dumps({"version": self.version, "entries": entries},
                                            separators=(",", ":"), ensure_ascii=False))
        self.dirty = False


# ------------------------------------------------------------------------------------------------- promtool

def promtool_version(promtool: str) -> str:
    """What ``promtool --version`` prints, read once per binary (path, size, mtime, inode) and remembered."""
    import subprocess
    identity = file_identity(promtool)
    path = folder() / f"promtool-version-{sha(identity)[:32]}.json"
    if enabled():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(data, dict) and data.get("identity") == identity and isinstance(data.get("version"), str) \
                    and data.get("checksum") == sha(identity, data["version"]):
                return data["version"]
        except (OSError, ValueError):
            pass
    try:
        proc = subprocess.run([promtool, "--version"], capture_output=True, text=True, timeout=60)
        version = (proc.stdout + proc.stderr).strip()
    except (OSError, subprocess.SubprocessError):
        return f"unknown:{identity}"
    if not version:
        return f"unknown:{identity}"
    if enabled():
        _write_atomic(path, json.dumps({"identity": identity, "version": version,
                                        "checksum": sha(identity, version)}))
    return version


def _verdict_path(key: str) -> Path:
    return folder() / "promtool" / key[:2] / f"{key}.json"


def passed(key: str) -> bool:
    """True when a tool run with this key was recorded as passed, and the record is intact."""
    if not enabled():
        return False
    try:
        data = json.loads(_verdict_path(key).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("key") == key and data.get("verdict") == "ok" \
        and data.get("checksum") == sha(key, "ok")


def record_pass(key: str) -> None:
    if enabled():
        _write_atomic(_verdict_path(key), json.dumps({"key": key, "verdict": "ok", "checksum": sha(key, "ok")}))


# ------------------------------------------------------------------------ pure functions of text (memo)

_CODE_VERSION: list[str] = []


def code_version() -> str:
    """The version of the code a memoised result depends on: the bytes of every ``.py`` file of the generator,
    the Python that runs it, and the installed distributions (name, version and install time of each
    ``*.dist-info`` on ``sys.path``: PyYAML with its bundled libyaml, ruamel.yaml, ...). Read once per process."""
    if not _CODE_VERSION:
        import sys
        parts: list[str | bytes] = [_FORMAT, sys.version, sys.executable]
        base = Path(__file__).resolve().parent
        for path in sorted(base.rglob("*.py")):
            parts += [str(path.relative_to(base)), _read_bytes(path)]
        for entry in sys.path:
            try:
                with os.scandir(entry or ".") as it:
                    infos = sorted((e.name, e.stat().st_mtime_ns) for e in it if e.name.endswith(".dist-info"))
            except OSError:
                continue
            parts += [f"{name}:{mtime}" for name, mtime in infos]
        _CODE_VERSION.append(sha(*parts))
    return _CODE_VERSION[0]


class Memo:
    """Results of one pure function of text, on disk, each under a key over everything the result depends on:
    the caller's inputs (the exact text, file names that appear in the result) and ``code_version()``. A
    changed input or a changed generator has a different key and is computed again. Each entry carries a
    checksum over key and value; an entry that fails it (or a file that does not read) counts as absent.

    Values are bytes; ``get``/``put`` take the inputs as the parts of the key. One file per function
    (``<cache>/tools/memo-<name>.bin``), written once at the end of the process when something was added.
    Off (every ``get`` misses, nothing written) when the cache is turned off."""

    _open: list["Memo"] = []

    def __init__(self, name: str) -> None:
        self.name = name
        self.path = folder() / f"memo-{name}.bin"
        self.entries: dict[str, tuple[bytes, str]] | None = None   # key -> (value, checksum); read on first use
        self.used: set[str] = set()
        self.dirty = False

    def _entries(self) -> dict[str, tuple[bytes, str]]:
        if self.entries is None:
            self.entries = {}
            if enabled():
                import marshal   # data only (dict, str, bytes, tuple): nothing in the file is run
                try:
                    data = marshal.loads(self.path.read_bytes())
                except (OSError, ValueError, EOFError, TypeError):
                    data = None
                if isinstance(data, dict):
                    self.entries = data
        return self.entries

    def key(self, *parts: str | bytes) -> str:
        return sha(code_version(), self.name, *parts)

    def get(self, key: str) -> bytes | None:
        if not enabled():
            return None
        entry = self._entries().get(key)
        if not (isinstance(entry, tuple) and len(entry) == 2 and isinstance(entry[0], bytes)
                and entry[1] == sha(key, entry[0])):
            return None
        self.used.add(key)
        return entry[0]

    def compute(self, parts: tuple, fn, dump=lambda value: value, load=lambda data: data):
        """``fn()``, kept under ``parts``: the stored value (read back with ``load``) when the key is known,
        else ``fn()`` computed and stored (written with ``dump``). When ``fn`` raises, nothing is stored."""
        key = self.key(*parts)
        cached = self.get(key)
        if cached is not None:
            return load(cached)
        value = fn()
        self.put(key, dump(value))
        return value

    def put(self, key: str, value: bytes) -> None:
        if not enabled():
            return
        self._entries()[key] = (value, sha(key, value))
        self.used.add(key)
        if not self.dirty:
            self.dirty = True
            if not Memo._open:
                import atexit
                atexit.register(save_memos)
            Memo._open.append(self)

    def save(self) -> None:
        if not self.dirty or not enabled() or self.entries is None:
            return
        import marshal
        entries = self.entries
        if len(entries) > 4 * max(len(self.used), 100):   # old inputs pile up: keep what this run used
            entries = {k: v for k, v in entries.items() if k in self.used}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
            with os.fdopen(fd, "wb") as f:
                f.write(marshal.dumps(entries))
            os.replace(tmp, self.path)
        except OSError:
            pass
        self.dirty = False


def save_memos() -> None:
    while Memo._open:
        Memo._open.pop().save()
