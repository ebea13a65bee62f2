"""The dashboards a preview shows: rendered from sources, now or at a git ref.

``dashboards(root, env)`` runs the generator's pipeline in memory (nothing
is written) and returns the dashboards the chart ships in ``env``: those of
``chart/files/dashboards/``, less any turned off by ``dashboards.enabled``
or ``dashboards.items.<uid>.enabled``. ``dashboards_at(root, ref, env)``
does the same with ``templates_src/`` and ``values/`` as they were at a git
ref (the "before" of a diff); when today's generator cannot build those old
sources it falls back to the ``chart/`` committed at that ref.
"""
from __future__ import annotations

import json
import subprocess
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path

from ..errors import GeneratorError

PREFIX, SUFFIX = "chart/files/dashboards/", ".json"


def _select(files: dict[str, bytes], values: dict | None) -> dict[str, dict]:
    values = values or {}
    conf = values.get("dashboards") or {}
    if conf.get("enabled") is False:
        return {}
    items = conf.get("items") or {}
    out = {}
    for path, data in sorted(files.items()):
        if path.startswith(PREFIX) and path.endswith(SUFFIX) and "/" not in path[len(PREFIX):]:
            dashboard = json.loads(data)
            uid = dashboard.get("uid") or path[len(PREFIX):-len(SUFFIX)]
            if (items.get(uid) or {}).get("enabled", True):
                out[uid] = dashboard
    return out


def dashboards(root: Path, env: str) -> dict[str, dict]:
    from ..build import build
    out = build(root)
    if env not in out.merged_values:
        raise GeneratorError(f"unknown environment {env!r}; allowed: {', '.join(sorted(out.merged_values))}")
    return _select(out.files, out.merged_values[env])


def _git(root: Path, *args: str) -> bytes:
    proc = subprocess.run(["git", "-C", str(root), *args], capture_output=True, timeout=60)
    if proc.returncode != 0:
        raise GeneratorError(f"git {' '.join(args[:2])}: {proc.stderr.decode(errors='replace').strip()}")
    return proc.stdout


def dashboards_at(root: Path, ref: str, env: str) -> dict[str, dict]:
    try:
        _git(root, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    except GeneratorError:
        raise GeneratorError(f"--diff {ref}: no such git commit or branch in {root}") from None
    with tempfile.TemporaryDirectory(prefix="vemon-preview-base-") as tmp:
        data = _git(root, "archive", "--format=tar", ref, "templates_src", "values")
        with tarfile.open(fileobj=BytesIO(data)) as tar:
            tar.extractall(tmp, filter="data")
        try:
            return dashboards(Path(tmp), env)
        except GeneratorError:
            pass
    listing = _git(root, "ls-tree", "--name-only", ref, PREFIX).decode().split()
    files = {p: _git(root, "show", f"{ref}:{p}") for p in listing if p.endswith(SUFFIX)}
    return _select(files, None)
