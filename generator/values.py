"""Layered values: ``values/defaults.yaml`` plus one overlay per environment.

Merge rules (Helm's own, tested as a table in tests/test_values_merge.py):
maps merge deeply, lists replace, ``null`` deletes a key, any other value
replaces. Keys beginning with ``_`` are hidden settings: they may annotate a
values file but are never emitted into the chart.

``values/defaults.yaml`` documents every key in the comment block above it,
starting with the key's name; a ``# @schema {...}`` line adds JSON Schema
constraints to the type that is inferred from the default.
"""
from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import yamlio
from .errors import ValuesError

DEFAULTS_FILE = "defaults.yaml"
ENV_NAME = re.compile(r"^[a-z][a-z0-9-]{0,30}$")


def merge(base: Any, overlay: Any) -> Any:
    """Returns ``base`` with ``overlay`` applied by Helm's rules; inputs are not changed."""
    if not isinstance(base, dict) or not isinstance(overlay, dict):
        return copy.deepcopy(overlay)
    out = {k: copy.deepcopy(v) for k, v in base.items()}
    for key, value in overlay.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def strip_hidden(data: Any) -> Any:
    """Drops every key that begins with ``_``, at any depth."""
    if isinstance(data, dict):
        return {k: strip_hidden(v) for k, v in data.items() if not (isinstance(k, str) and k.startswith("_"))}
    if isinstance(data, list):
        return [strip_hidden(v) for v in data]
    return data


@dataclass
class KeyDoc:
    line: int
    text: str
    schema: dict = field(default_factory=dict)


_KEY_LINE = re.compile(r"^( *)([A-Za-z_][A-Za-z0-9_.-]*|\"[^\"]+\"|'[^']+'):(?:\s|$)")


def parse_docs(text: str, file: str) -> dict[tuple, KeyDoc]:
    """Reads the comment block above each key of a block-style YAML file.

    Returns ``{key path: KeyDoc}``. ``# @schema {json}`` lines in the block
    are parsed as JSON Schema fragments; the other lines form the text.
    """
    docs: dict[tuple, KeyDoc] = {}
    stack: list[tuple[int, str]] = []
    pending: list[tuple[int, str]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped:
            pending = []
            continue
        if stripped.startswith("#"):
            pending.append((number, stripped[1:].strip()))
            continue
        m = _KEY_LINE.match(line)
        if not m:
            pending = []
            continue
        indent, key = len(m.group(1)), m.group(2).strip("\"'")
        while stack and stack[-1][0] >= indent:
            stack.pop()
        path = tuple(k for _, k in stack) + (key,)
        stack.append((indent, key))
        schema: dict = {}
        lines = []
        for n, comment in pending:
            if comment.startswith("@schema"):
                try:
                    fragment = json.loads(comment[len("@schema"):].strip())
                except json.JSONDecodeError as e:
                    raise ValuesError(f"@schema is not JSON: {e.msg}", file=file, line=n) from None
                if not isinstance(fragment, dict):
                    raise ValuesError("@schema must be a JSON object", file=file, line=n)
                schema.update(fragment)
            else:
                lines.append(comment)
        docs[path] = KeyDoc(line=number, text=" ".join(lines).strip(), schema=schema)
        pending = []
    return docs


@dataclass
class Defaults:
    data: dict
    docs: dict[tuple, KeyDoc]
    file: str
    text: str


@dataclass
class Environment:
    name: str
    file: str
    data: dict          # the overlay as written (hidden keys included, with lines)
    text: str

    @property
    def overlay(self) -> dict:
        return strip_hidden(yamlio.plain(self.data))


def load_defaults(values_dir: Path, display_root: Path | None = None) -> Defaults:
    path = values_dir / DEFAULTS_FILE
    display = _display(path, display_root)
    if not path.exists():
        raise ValuesError("the defaults file is missing; it holds every chart setting with its documentation",
                          file=display)
    text = yamlio.decode(path.read_bytes(), display)
    data = yamlio.loads_yaml(text, display)
    if not isinstance(data, dict) or not data:
        raise ValuesError("must be a mapping of settings", file=display)
    return Defaults(data=data, docs=parse_docs(text, display), file=display, text=text)


def environment_names(values_dir: Path) -> list[str]:
    names = []
    for p in sorted(values_dir.glob("*.yaml")):
        if p.name == DEFAULTS_FILE or p.name.startswith("_"):
            continue
        names.append(p.stem)
    return names


def load_environment(values_dir: Path, name: str, display_root: Path | None = None) -> Environment:
    names = environment_names(values_dir)
    if name not in names:
        allowed = ", ".join(names) or "(none: add values/<name>.yaml)"
        raise ValuesError(f"unknown environment {name!r}; allowed: {allowed}")
    path = values_dir / f"{name}.yaml"
    display = _display(path, display_root)
    if not ENV_NAME.match(name):
        raise ValuesError("an environment name is lowercase letters, digits and '-', starting with a letter",
                          file=display)
    text = yamlio.decode(path.read_bytes(), display)
    data = yamlio.loads_yaml(text, display)
    if data is None:
        raise ValuesError("the file is empty; an environment file sets at least global.environment "
                          "and global.cluster", file=display)
    if not isinstance(data, dict):
        raise ValuesError(f"must be a mapping of settings, not a {type(data).__name__}", file=display, line=1)
    return Environment(name=name, file=display, data=data, text=text)


def _display(path: Path, root: Path | None) -> str:
    if root is not None:
        try:
            return str(path.resolve().relative_to(root.resolve()))
        except ValueError:
            pass
    return str(path)
