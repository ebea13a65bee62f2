"""The values schema: one source for ``values.schema.json``, the generated
``values.yaml`` and the validation of every environment file.

The schema is inferred from ``values/defaults.yaml`` (the type of each
default, the documentation above each key, ``@schema`` fragments), then
extended by the content: one property per dashboard and per alert, so a
misspelt dashboard uid or alert name fails ``helm lint`` by name.
Every object is closed (``additionalProperties: false``) unless its
``@schema`` says what its entries are.
"""
from __future__ import annotations

import copy
import datetime
import math
import re
from typing import Any

from . import yamlio
from .errors import ValuesError
from .values import Defaults, Environment, merge

SCHEMA_ID = "https://virtengine.io/observability/values.schema.json"
REQUIRED = "x-required"      # source-only marker: the setting must be set by an environment


def _infer(value: Any, path: tuple, defaults: Defaults) -> dict:
    doc = defaults.docs.get(path)
    if doc is None and path:
        raise ValuesError("undocumented setting: add a comment above it that starts with its name",
                          file=defaults.file, line=yamlio.line_of(defaults.data, list(path)), key=".".join(path))
    fragment = copy.deepcopy(doc.schema) if doc else {}
    if isinstance(value, dict) and "additionalProperties" not in fragment:
        # every key of a fixed-shape object must stay: null (which deletes a key) is refused by name, at
        # render and at install alike (Helm reads the same "required"); but a map that is empty by default
        # (labels, per-item settings) may be null, which means what its default means: empty
        node: dict = {"type": "object", "additionalProperties": False,
                      "properties": {k: _infer(v, path + (k,), defaults) for k, v in value.items()},
                      "required": sorted(k for k, v in value.items() if v != {})}
    elif isinstance(value, dict):
        node = {"type": "object"}
    elif isinstance(value, bool):
        node = {"type": "boolean"}
    elif isinstance(value, int):
        node = {"type": "integer"}
    elif isinstance(value, float):
        node = {"type": "number"}
    elif isinstance(value, str):
        node = {"type": "string"}
    elif isinstance(value, list):
        node = {"type": "array"}
    elif value is None:
        if "type" not in fragment:
            raise ValuesError("a null default needs '# @schema {\"type\": ...}' above it",
                              file=defaults.file, line=doc.line if doc else None, key=".".join(path))
        node = {}
    else:
        raise ValuesError(f"unsupported default of type {type(value).__name__}", file=defaults.file,
                          key=".".join(path))
    if doc and path:
        name = path[-1]
        if not doc.text:
            raise ValuesError(f"undocumented setting: add a comment above it that starts with its name, "
                              f"e.g. '# {name} -- what it does'", file=defaults.file, line=doc.line,
                              key=".".join(path))
        if not doc.text.startswith(name):
            raise ValuesError(f"the comment above {name!r} must start with its name, "
                              f"e.g. '# {name} -- what it does'", file=defaults.file, line=doc.line,
                              key=".".join(path))
        node["description"] = doc.text[len(name):].lstrip(" -:").strip() or doc.text
    node.update(fragment)
    if path:
        node["default"] = yamlio.plain(value)
    return node


def build(defaults: Defaults, extensions: dict[tuple, dict] | None = None) -> dict:
    """The full JSON Schema (draft 7) for the chart's values."""
    root = _infer(defaults.data, (), defaults)
    for path, properties in sorted((extensions or {}).items()):
        node = root
        for part in path:
            node = node["properties"][part]
        node.setdefault("properties", {}).update(copy.deepcopy(properties))
        node["additionalProperties"] = False
    _allow_hidden(root)
    root["$schema"] = "http://json-schema.org/draft-07/schema#"
    root["$id"] = SCHEMA_ID
    root["title"] = "Values of the virtengine-observability chart"
    return root


def _allow_hidden(node: dict) -> None:
    """Closed objects still accept hidden ``_`` keys, so values/<env>.yaml installs as written."""
    if node.get("additionalProperties") is False:
        node["patternProperties"] = {"^_": {}}
    for sub in node.get("properties", {}).values():
        _allow_hidden(sub)
    if isinstance(node.get("additionalProperties"), dict):
        _allow_hidden(node["additionalProperties"])


def for_helm(schema: dict) -> dict:
    """The schema as shipped: source-only markers removed."""
    if isinstance(schema, dict):
        return {k: for_helm(v) for k, v in schema.items() if k != REQUIRED}
    if isinstance(schema, list):
        return [for_helm(v) for v in schema]
    return schema


def required_paths(schema: dict, prefix: tuple = ()) -> list[tuple]:
    out = []
    for key, sub in schema.get("properties", {}).items():
        if sub.get(REQUIRED):
            out.append(prefix + (key,))
        out.extend(required_paths(sub, prefix + (key,)))
    return out


def _get(data: Any, path: tuple) -> Any:
    for part in path:
        if not isinstance(data, dict) or part not in data:
            return None
        data = data[part]
    return data


def validate_environment(schema: dict, defaults: Defaults, env: Environment) -> dict:
    """Validates an environment overlay; returns the merged values (hidden keys dropped)."""
    merged = merge(yamlio.plain(defaults.data), env.overlay)
    _check_finite(env.overlay, env, [])
    if _surely_valid(schema, merged):   # the common case: no need to load jsonschema to find no errors
        errors = []
    else:
        import jsonschema
        validator = jsonschema.Draft7Validator(for_helm(schema))
        errors = sorted(
            validator.iter_errors(merged), key=lambda e: (list(map(str, e.absolute_path)), e.message))
    for error in errors:
        raise _values_error(error, env)
    for path in required_paths(schema):
        if _get(merged, path) in (None, "", [], {}):
            sub = _get_schema(schema, path)
            raise ValuesError(f"required setting has no value: {sub.get('description', '')}".rstrip(": "),
                              file=env.file, key=".".join(path))
    return merged


class _Unsure(Exception):
    """A schema keyword or a comparison ``_valid`` does not decide exactly; jsonschema decides."""


_IGNORED = frozenset({"description", "default", "title", "$id", "$schema", "examples", REQUIRED})
_TYPES = {
    "string": lambda v: isinstance(v, str),
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "integer": lambda v: (isinstance(v, int) and not isinstance(v, bool)) or (isinstance(v, float) and v.is_integer()),
}


def _same(a, b) -> bool:
    """JSON Schema equality for enum and const, where it is plain: strings, None, same-typed scalars."""
    if type(a) is type(b) and isinstance(a, (str, bool, int, float, type(None))):
        return a == b
    if isinstance(a, str) or isinstance(b, str) or a is None or b is None:
        return False
    raise _Unsure("enum")   # numbers of two types, booleans against numbers, lists, objects


def _valid(schema, value) -> bool:
    """Draft 7 validity of ``value`` against ``schema`` (the source schema; its source-only markers are
    ignored as ``for_helm`` removes them), exactly, for the keywords the values schema uses; any other
    keyword or comparison raises ``_Unsure``."""
    if schema is True or schema == {}:
        return True
    if schema is False:
        return False
    if not isinstance(schema, dict):
        raise _Unsure("schema")
    for keyword, arg in schema.items():
        if keyword in _IGNORED:
            continue
        if keyword == "type":
            names = arg if isinstance(arg, list) else [arg]
            if any(name not in _TYPES for name in names):
                raise _Unsure("type")
            if not any(_TYPES[name](value) for name in names):
                return False
        elif keyword in ("properties", "patternProperties", "additionalProperties", "required", "propertyNames",
                         "minProperties"):
            if not isinstance(value, dict):
                continue
            if keyword == "properties":
                if not all(_valid(sub, value[k]) for k, sub in arg.items() if k in value):
                    return False
            elif keyword == "patternProperties":
                for pattern, sub in arg.items():
                    if not all(_valid(sub, v) for k, v in value.items() if isinstance(k, str) and re.search(pattern, k)):
                        return False
                    if any(not isinstance(k, str) for k in value):
                        raise _Unsure("key")
            elif keyword == "additionalProperties":
                if any(not isinstance(k, str) for k in value):
                    raise _Unsure("key")
                patterns = list(schema.get("patternProperties", {}))
                extra = [k for k in value if k not in schema.get("properties", {})
                         and not any(re.search(p, k) for p in patterns)]
                if not all(_valid(arg, value[k]) for k in extra):
                    return False
            elif keyword == "required":
                if not all(k in value for k in arg):
                    return False
            elif keyword == "propertyNames":
                if not all(_valid(arg, k) for k in value):
                    return False
            elif len(value) < arg:   # minProperties
                return False
        elif keyword in ("pattern", "minLength", "maxLength"):
            if not isinstance(value, str):
                continue
            if keyword == "pattern" and not re.search(arg, value):
                return False
            if keyword == "minLength" and len(value) < arg or keyword == "maxLength" and len(value) > arg:
                return False
        elif keyword in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
            if not _TYPES["number"](value):
                continue
            if isinstance(arg, bool) or not isinstance(arg, (int, float)):
                raise _Unsure(keyword)
            if keyword == "minimum" and value < arg or keyword == "maximum" and value > arg \
                    or keyword == "exclusiveMinimum" and value <= arg or keyword == "exclusiveMaximum" and value >= arg:
                return False
        elif keyword in ("items", "minItems"):
            if not isinstance(value, list):
                continue
            if keyword == "minItems":
                if len(value) < arg:
                    return False
            elif isinstance(arg, dict):
                if not all(_valid(arg, v) for v in value):
                    return False
            else:
                raise _Unsure("items")
        elif keyword == "enum":
            if not any(_same(v, value) for v in arg):
                return False
        elif keyword == "const":
            if not _same(arg, value):
                return False
        elif keyword == "oneOf":
            if sum(1 for sub in arg if _valid(sub, value)) != 1:
                return False
        elif keyword == "not":
            if _valid(arg, value):
                return False
        else:
            raise _Unsure(keyword)
    return True


def _surely_valid(schema: dict, merged: dict) -> bool:
    """True when ``merged`` is valid against ``schema``; False when it may not be (jsonschema then says why)."""
    try:
        return _valid(schema, merged)
    except (_Unsure, re.error, TypeError):
        return False


def _check_finite(data: Any, env: Environment, path: list) -> None:
    """JSON Schema calls .nan and .inf numbers; a threshold of .inf would silently never fire."""
    if isinstance(data, float) and not math.isfinite(data):
        raise ValuesError(f"expected a finite number, got {data!r}", file=env.file,
                          line=yamlio.line_of(env.data, path), key=".".join(map(str, path)) or None)
    if isinstance(data, dict):
        for k, v in data.items():
            _check_finite(v, env, path + [k])
    elif isinstance(data, list):
        for i, v in enumerate(data):
            _check_finite(v, env, path + [i])


def _get_schema(schema: dict, path: tuple) -> dict:
    for part in path:
        schema = schema["properties"][part]
    return schema


def _values_error(error, env: Environment) -> ValuesError:
    path = list(error.absolute_path)
    key = ".".join(str(p) for p in path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(k for k in error.instance if k not in error.schema.get("properties", {}))
        bad = extra[0] if extra else "?"
        full = path + [bad]
        return ValuesError(f"unknown key {bad!r}; allowed here: {', '.join(allowed) or '(none)'}",
                           file=env.file, line=yamlio.line_of(env.data, full),
                           key=".".join(str(p) for p in full))
    if error.validator == "required" and isinstance(error.instance, dict):
        missing = [k for k in error.validator_value if k not in error.instance]
        full = path + [missing[0] if missing else "?"]
        return ValuesError("is missing (null deletes a key, and this one cannot go); set it, or turn the part off "
                           "with its 'enabled: false' where it has one",
                           file=env.file, line=yamlio.line_of(env.data, full), key=".".join(str(p) for p in full))
    if error.validator == "enum":
        message = f"{error.instance!r} is not allowed; allowed: {', '.join(map(str, error.validator_value))}"
    elif error.validator == "type" and isinstance(error.instance, (datetime.date, datetime.datetime)):
        message = (f"expected {error.validator_value}, got the date {error.instance.isoformat()} "
                   "(YAML reads an unquoted date as a date: quote it)")
    elif error.validator == "type":
        message = f"expected {error.validator_value}, got {type(error.instance).__name__} {error.instance!r}"
    elif error.validator in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        bounds = {k: error.schema[k] for k in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")
                  if k in error.schema}
        allowed = ", ".join(f"{k} {v}" for k, v in bounds.items())
        hint = error.schema.get("description", "")
        message = f"{error.instance!r} is out of range; allowed: {allowed}" + (f" ({hint})" if hint else "")
    elif error.validator == "pattern":
        hint = error.schema.get("description", "")
        message = f"{error.instance!r} does not match {error.validator_value}" + (f" ({hint})" if hint else "")
    else:
        message = error.message
    return ValuesError(message, file=env.file, line=yamlio.line_of(env.data, path), key=key or None)


def values_yaml(defaults: Defaults, header: str) -> str:
    """``chart/values.yaml``: the defaults file as written, without ``@schema`` lines."""
    lines = [line for line in defaults.text.splitlines() if not line.strip().startswith("# @schema")]
    return header + "\n".join(lines).rstrip("\n") + "\n"
