"""Strict reading and canonical writing of YAML and JSON.

Reading refuses what YAML would silently accept: duplicate keys (no "last
one wins"), alias bombs, non-UTF-8 bytes, oversized files. Every mapping
read remembers the line of each key so errors can name it. Writing is
canonical: sorted keys, two-space indent, a trailing newline, no timestamps.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from .errors import GeneratorError

MAX_BYTES = 4 * 1024 * 1024        # a values or content file larger than this is refused
MAX_NODES = 200_000                # an expanded document larger than this is refused
MAX_DEPTH = 64                     # mappings and lists nested deeper than this are refused


class LineDict(dict):
    """A dict that remembers the source line of each key (1-based)."""

    lines: dict

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.lines = {}


class _StrictLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # libyaml when built with it
    def resolve(self, kind, value, implicit):
        """PyYAML's tag of a plain or quoted scalar, remembered by (text, implicit flags): the answer is a function
        of those and of this class's implicit resolvers (fixed at import; no path resolvers), and the resolver's
        regular expressions otherwise run again for every scalar of every document."""
        if kind is not yaml.ScalarNode or self.yaml_path_resolvers or type(self) is not _StrictLoader:
            return super().resolve(kind, value, implicit)
        key = (value, implicit)
        tag = _RESOLVED.get(key)
        if tag is None:
            tag = super().resolve(kind, value, implicit)
            if len(_RESOLVED) < 200_000:
                _RESOLVED[key] = tag
        return tag


_RESOLVED: dict[tuple[str, tuple[bool, bool]], str] = {}


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode) -> LineDict:
    loader.flatten_mapping(node)
    out = LineDict()
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(
                None, None, "a mapping key must be a plain value", key_node.start_mark)
        if key in out:
            raise yaml.constructor.ConstructorError(
                None, None,
                f"duplicate key {key!r} (first at line {out.lines[key]}); a key may appear once",
                key_node.start_mark)
        out[key] = loader.construct_object(value_node, deep=True)
        out.lines[key] = key_node.start_mark.line + 1
    return out


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)

_STR, _SEQ, _MAP = "tag:yaml.org,2002:str", "tag:yaml.org,2002:seq", "tag:yaml.org,2002:map"


class _Unusual(Exception):
    """Something the fast constructor leaves to PyYAML's (merge keys, tags, duplicates, recursion)."""


def _construct_fast(loader: _StrictLoader, root: yaml.Node) -> Any:
    """The data of a composed document, as PyYAML's constructor with ``_construct_mapping`` builds it, for
    the documents the generator reads (plain mappings, lists and scalars); anything else raises ``_Unusual``
    and the document is read again by PyYAML's own constructor, so errors and unusual input are its.
    An alias yields the same object as its anchor (no expansion here: ``_count_nodes`` counts it)."""
    done: dict[int, Any] = {}
    active: set[int] = set()
    scalar = yaml.ScalarNode
    mapping = yaml.MappingNode
    sequence = yaml.SequenceNode

    def build(node):
        cls = node.__class__
        if cls is scalar:
            if node.tag == _STR:
                return node.value
            return loader.construct_object(node, deep=True)   # numbers, booleans, null, dates
        ident = id(node)
        if ident in done:
            return done[ident]
        if ident in active:
            raise _Unusual("recursive")
        active.add(ident)
        if cls is mapping and node.tag == _MAP:
            out = LineDict()
            lines = out.lines
            for key_node, value_node in node.value:
                if key_node.__class__ is not scalar or key_node.tag in ("tag:yaml.org,2002:merge",
                                                                          "tag:yaml.org,2002:value"):
                    raise _Unusual("key")
                key = key_node.value if key_node.tag == _STR else build(key_node)
                if key in out:
                    raise _Unusual("duplicate")
                out[key] = build(value_node)
                lines[key] = key_node.start_mark.line + 1
        elif cls is sequence and node.tag == _SEQ:
            out = [build(item) for item in node.value]
        else:
            raise _Unusual(node.tag)
        active.discard(ident)
        done[ident] = out
        return out

    return build(root)


def _load(text: str) -> Any:
    loader = _StrictLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        try:
            return _construct_fast(loader, node)
        except Exception:  # noqa: BLE001 - PyYAML's constructor reads it again and says what is wrong
            pass
    finally:
        loader.dispose()
    return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - SafeLoader subclass


def _count_nodes(data: Any, limit: int) -> int:
    """Counts nodes of the expanded document, stopping past ``limit``."""
    count = 0
    stack = [(data, 1)]
    while stack:
        item, depth = stack.pop()
        count += 1
        if count > limit:
            return count
        if depth > MAX_DEPTH:
            raise ValueError(depth)
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return count


def decode(raw: bytes, file: str) -> str:
    if len(raw) > MAX_BYTES:
        raise GeneratorError(f"file is {len(raw)} bytes; the limit is {MAX_BYTES} bytes", file=file)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise GeneratorError(f"not valid UTF-8 (byte {e.start}: {raw[e.start:e.start + 1]!r}); "
                             "save the file as UTF-8", file=file, line=line) from None


def loads_yaml(text: str, file: str, *, line_offset: int = 0) -> Any:
    """Parses one YAML document strictly; errors name ``file`` and the line."""
    try:
        data = _load(text)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 + line_offset if mark else None
        problem = e.problem or str(e)
        if mark and "cannot start any token" in problem and "character '" not in problem:
            lines = text.splitlines()   # libyaml's message leaves the character out: name it
            if mark.line < len(lines) and mark.column < len(lines[mark.line]):
                problem = problem.replace("character", f"character {lines[mark.line][mark.column]!r}", 1)
        if e.context and "duplicate" not in problem:
            problem = f"{e.context}: {problem}"
        raise GeneratorError(f"invalid YAML: {problem}", file=file, line=line) from None
    except yaml.YAMLError as e:
        raise GeneratorError(f"invalid YAML: {e}", file=file) from None
    except RecursionError:
        raise GeneratorError(f"invalid YAML: nested more than {MAX_DEPTH} levels deep", file=file) from None
    try:
        too_big = _count_nodes(data, MAX_NODES) > MAX_NODES
    except ValueError:
        raise GeneratorError(f"invalid YAML: nested more than {MAX_DEPTH} levels deep", file=file) from None
    if too_big:
        raise GeneratorError(f"document expands to more than {MAX_NODES} values "
                             "(are anchors and aliases nesting each other?)", file=file)
    return data


def load_yaml_file(path: Path, display: str | None = None) -> Any:
    display = display or str(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise GeneratorError(f"cannot read: {e.strerror}", file=display) from None
    return loads_yaml(decode(raw, display), display)


def loads_json(text: str, file: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise GeneratorError(f"invalid JSON: {e.msg} (column {e.colno})", file=file, line=e.lineno) from None


def plain(data: Any) -> Any:
    """Converts LineDicts and tuples into plain dicts and lists."""
    if isinstance(data, dict):
        return {k: plain(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [plain(v) for v in data]
    return data


def line_of(data: Any, path: list) -> int | None:
    """The source line of the deepest key of ``path`` that is known."""
    line = None
    node = data
    for part in path:
        if isinstance(node, LineDict) and part in node:
            line = node.lines.get(part, line)
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        else:
            break
    return line


class _Dumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # libyaml's emitter when built with it: same bytes, faster
    pass


def _str_representer(dumper: yaml.SafeDumper, value: str):
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str_representer)


def dump_yaml(data: Any) -> str:
    return yaml.dump(plain(data), Dumper=_Dumper, sort_keys=True, default_flow_style=False,
                     allow_unicode=True, width=100, indent=2)


def dump_json(data: Any, *, minify: bool = False) -> str:
    if minify:
        return json.dumps(plain(data), sort_keys=True, separators=(",", ":"), ensure_ascii=False) + "\n"
    try:
        parts: list[str] = []
        _pretty(data, "\n", parts)
        return "".join(parts) + "\n"
    except _Unusual:
        return json.dumps(plain(data), sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def json_exact(data: Any) -> str | None:
    """``dump_json(data)`` when that text tells the data apart from any other (dicts with string keys, lists,
    strings, ints, finite floats, booleans, None); None for anything else (tuples, other keys, NaN, other
    types). A key for memoising a function of such data."""
    try:
        parts: list[str] = []
        _pretty(data, "\n", parts, exact=True)
        return "".join(parts) + "\n"
    except (_Unusual, TypeError):
        return None


_EXACT = {str, int, float, bool, type(None), list, dict, LineDict}
_encode_str = json.encoder.encode_basestring   # libjson's C function where built, as json.dumps uses
_float_repr = float.__repr__
_int_repr = int.__repr__


def _pretty(value: Any, newline: str, out: list[str], exact: bool = False) -> None:
    """Appends ``json.dumps(value, sort_keys=True, indent=2, ensure_ascii=False)`` to ``out``, the same text
    (json's indented form runs its pure-Python encoder; this is the same walk without its generators).
    String keys only; anything else raises ``_Unusual`` and json.dumps writes it. ``exact``: tuples and
    subclasses of str, int and float raise ``_Unusual`` too (the text then names one value only)."""
    if exact and value.__class__ not in _EXACT:
        raise _Unusual(type(value).__name__)
    if isinstance(value, str):
        out.append(_encode_str(value))
    elif value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int):
        out.append(_int_repr(value))
    elif isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise _Unusual("float")
        out.append(_float_repr(value))
    elif isinstance(value, dict):
        if not value:
            out.append("{}")
            return
        inner = newline + "  "
        first = True
        for key in sorted(value):   # sorted() raises TypeError for mixed keys, as json.dumps does
            if not isinstance(key, str) or (exact and key.__class__ is not str):
                raise _Unusual("key")
            out.append(("{" if first else ",") + inner + _encode_str(key) + ": ")
            first = False
            _pretty(value[key], inner, out, exact)
        out.append(newline + "}")
    elif isinstance(value, (list, tuple)):
        if not value:
            out.append("[]")
            return
        inner = newline + "  "
        first = True
        for item in value:
            out.append(("[" if first else ",") + inner)
            first = False
            _pretty(item, inner, out, exact)
        out.append(newline + "]")
    else:
        raise _Unusual(type(value).__name__)
