"""``generator diff``: what a change does, as a diff of rendered manifests.

Two forms:

- ``diff staging prod``: the chart rendered from the working tree's sources
  with each environment's values file;
- ``diff prod --base main``: the chart rendered by ``main``'s generator from
  ``main``'s sources (a temporary ``git worktree``) against the working tree,
  both with ``values/prod.yaml`` of their own tree.

The diff is per object (``Kind/namespace/name``): added, removed, changed
with a unified diff of its YAML. Embedded documents (dashboard JSON, rule
files, the Alertmanager configuration) are parsed and shown as YAML, so a
changed threshold is one line, not a changed one-line JSON blob.
"""
from __future__ import annotations

import base64
import difflib
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from . import tools
from .errors import GeneratorError


def _expand(value):
    """Strings holding JSON or YAML documents become data; the rest is kept."""
    if isinstance(value, dict):
        return {k: _expand(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v) for v in value]
    if isinstance(value, str) and "\n" in value.strip() or isinstance(value, str) and value[:1] in "{[":
        for parse in (json.loads, yaml.safe_load):
            try:
                data = parse(value)
            except Exception:  # noqa: BLE001 - not a document: keep the text
                continue
            if isinstance(data, (dict, list)):
                return _expand(data)
    return value


_IDS = ("name", "alert", "record")


def _keyed(value):
    """Lists of named items (receivers, rule groups, rules, panels by title are not unique) become maps keyed by
    their name, so an added or removed item is one block and the others line up by name, not by position."""
    if isinstance(value, dict):
        return {k: _keyed(v) for k, v in value.items()}
    if isinstance(value, list):
        items = [_keyed(v) for v in value]
        for ident in _IDS:
            names = [v.get(ident) if isinstance(v, dict) else None for v in items]
            if items and all(isinstance(n, str) for n in names) and len(set(names)) == len(names):
                return {f"{ident}={n}": {k: v for k, v in item.items() if k != ident} for n, item in zip(names, items)}
        return items
    return value


def objects(text: str) -> dict[str, str]:
    """``{Kind/namespace/name: normalised YAML}`` of a ``helm template`` output."""
    out = {}
    for doc in yaml.safe_load_all(text):
        if not doc:
            continue
        meta = doc.get("metadata") or {}
        key = f"{doc.get('kind')}/{meta.get('namespace', '-')}/{meta.get('name')}"
        if doc.get("kind") == "Secret" and isinstance(doc.get("data"), dict):
            doc = dict(doc, data={k: base64.b64decode(v).decode("utf-8", "replace") for k, v in doc["data"].items()})
        out[key] = yaml.safe_dump(_keyed(_expand(doc)), sort_keys=True, width=100_000, allow_unicode=True)
    return out


# a change (the same lines removed and added, indentation aside) seen this often is shown once, with a count
GROUP_AT = 3


def _changes(old: list[str], new: list[str]):
    """The changes between two line lists: ``(i1, i2, j1, j2, signature)``; a replaced block of equal length is
    split line by line, so the same label changed in many places is one repeated signature."""
    matcher = difflib.SequenceMatcher(None, old, new, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        if tag == "replace" and i2 - i1 == j2 - j1:
            for k in range(i2 - i1):
                yield i1 + k, i1 + k + 1, j1 + k, j1 + k + 1, ((old[i1 + k].strip(),), (new[j1 + k].strip(),))
        else:
            yield i1, i2, j1, j2, (tuple(x.strip() for x in old[i1:i2]), tuple(x.strip() for x in new[j1:j2]))


def diff_objects(old: dict[str, str], new: dict[str, str], old_label: str, new_label: str, context: int = 3,
                 group: bool = True) -> str:
    """Per object: added, removed, changed with a unified diff. With ``group``, a change repeated in
    ``GROUP_AT`` or more places (the environment label on every object) is listed once at the top with
    where it occurs, and left out of the per-object diffs."""
    keys = sorted(set(old) | set(new))
    changed = [k for k in keys if k in old and k in new and old[k] != new[k]]
    lines_of = {k: (old[k].splitlines(), new[k].splitlines()) for k in changed}
    changes = {k: list(_changes(*lines_of[k])) for k in changed}
    places: dict[tuple, list[str]] = {}
    first: dict[tuple, tuple[list[str], list[str]]] = {}
    for key in changed:
        a, b = lines_of[key]
        for i1, i2, j1, j2, sig in changes[key]:
            places.setdefault(sig, []).append(key)
            first.setdefault(sig, (a[i1:i2], b[j1:j2]))
    repeated = {sig for sig, where in places.items() if group and len(where) >= GROUP_AT}
    lines = []
    if repeated:
        total = sum(len(places[s]) for s in repeated)
        lines.append(f"= {len(repeated)} changes repeated in {total} places, each shown once "
                     f"(`diff --no-group` shows them in place):")
        for sig in sorted(repeated, key=lambda s: (-len(places[s]), s)):
            objs = sorted(set(places[sig]))
            named = ", ".join(objs[:3]) + (f" and {len(objs) - 3} more" if len(objs) > 3 else "")
            lines.append(f"= {len(places[sig])} places in {len(objs)} objects ({named}):")
            removed, added = first[sig]
            lines += ["  -" + x for x in removed] + ["  +" + x for x in added]
    counts = {"added": 0, "removed": 0, "changed": 0, "unchanged": 0}
    for key in keys:
        if key not in new:
            counts["removed"] += 1
            lines.append(f"- removed {key}")
        elif key not in old:
            counts["added"] += 1
            lines.append(f"+ added {key}")
            lines += ["  + " + line for line in new[key].splitlines()]
        elif old[key] != new[key]:
            counts["changed"] += 1
            a, b = lines_of[key]
            # the new text with only this object's own (not repeated) changes applied
            kept, pos = [], 0
            for i1, i2, j1, j2, sig in changes[key]:
                kept += a[pos:i1] + (a[i1:i2] if sig in repeated else b[j1:j2])
                pos = i2
            kept += a[pos:]
            if kept == a:
                lines.append(f"~ changed {key} (only repeated changes, listed above)")
                continue
            lines.append(f"~ changed {key}")
            body = difflib.unified_diff(a, kept, f"{old_label}", f"{new_label}", n=context, lineterm="")
            lines += ["  " + line for line in body]
        else:
            counts["unchanged"] += 1
    summary = (f"{old_label} -> {new_label}: {counts['changed']} changed, {counts['added']} added, "
               f"{counts['removed']} removed, {counts['unchanged']} unchanged")
    if repeated:
        summary += f"; {len(repeated)} repeated changes shown once"
    lines.append(summary)
    return "\n".join(lines) + "\n"


def _template(helm: str, chart: Path, values: Path) -> str:
    if not values.is_file():
        raise GeneratorError(f"no environment file {values.name}", file=str(values))
    proc = tools.run([helm, "template", "vemon", str(chart), "--namespace", "monitoring", "-f", str(values)],
                     timeout=120)
    return proc.stdout


def _render_sources(root: Path, into: Path) -> Path:
    """The chart rendered from ``root``'s sources by this generator, written under ``into``."""
    from .build import build
    for rel, data in build(root).files.items():
        if rel.startswith("chart/"):
            path = into / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
    return into / "chart"


def _render_ref(root: Path, ref: str, tmp: Path) -> Path:
    """The chart of git ``ref``, rendered by that ref's own generator in a temporary worktree."""
    tree = tmp / "base"
    proc = subprocess.run(["git", "-C", str(root), "worktree", "add", "--detach", str(tree), ref],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise GeneratorError(f"cannot check out {ref!r}: {proc.stderr.strip()}", key="--base")
    # the ref's generator finds its pinned tools (helm, the PromQL grammar) in <root>/.tools: lend it ours
    ours = tools.ROOT / ".tools"
    if ours.is_dir() and not (tree / ".tools").exists():
        (tree / ".tools").symlink_to(ours.resolve(), target_is_directory=True)
    render = subprocess.run([sys.executable, "-m", "generator", "--root", str(tree), "render"], cwd=tree,
                            capture_output=True, text=True, timeout=300)
    if render.returncode != 0:
        raise GeneratorError(f"{ref} does not render: {render.stderr.strip()}", key="--base")
    return tree


def run(root: Path, envs: list[str], *, base: str | None = None, helm_major: int = 3, context: int = 3,
        group: bool = True) -> str:
    helm = tools.helm(helm_major)
    with tempfile.TemporaryDirectory(prefix="vemon-diff-") as name:
        tmp = Path(name)
        chart = _render_sources(root, tmp / "work")
        if base:
            if len(envs) != 1:
                raise GeneratorError("with --base give one environment, e.g. `diff prod --base main`")
            env = envs[0]
            tree = _render_ref(root, base, tmp)
            try:
                old = objects(_template(helm, tree / "chart", tree / "values" / f"{env}.yaml"))
            finally:
                subprocess.run(["git", "-C", str(root), "worktree", "remove", "--force", str(tree)],
                               capture_output=True)
                shutil.rmtree(tree, ignore_errors=True)
            new = objects(_template(helm, chart, root / "values" / f"{env}.yaml"))
            return diff_objects(old, new, f"{base}:{env}", f"working-tree:{env}", context, group)
        if len(envs) != 2:
            raise GeneratorError("give two environments to compare (e.g. `diff staging prod`), "
                                 "or one with --base")
        a, b = envs
        old = objects(_template(helm, chart, root / "values" / f"{a}.yaml"))
        new = objects(_template(helm, chart, root / "values" / f"{b}.yaml"))
        return diff_objects(old, new, a, b, context, group)
