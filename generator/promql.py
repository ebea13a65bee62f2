"""Small, dependency-free helpers for PromQL text: which metric names an
expression uses, and escaping of label values that come from settings.

This is not a parser (promtool is the parser, see ``tools.py``); it is good
enough to find metric names for the catalog check, and it errs on the side
of reporting a name.
"""
from __future__ import annotations

import re

KEYWORDS = {
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
    "bool", "offset", "inf", "nan", "atan2", "start", "end",
}
_STRING = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_RANGE = re.compile(r"\[[^\]]*\]")
_IDENT = re.compile(r"(?<![\w:.$])([a-zA-Z_:][a-zA-Z0-9_:]*)(?![\w:])(\s*\()?")
_NUMBER_SUFFIX = re.compile(r"^\d")


def metric_names(expr: str) -> set[str]:
    """The metric (and recording rule) names an expression selects."""
    text = _STRING.sub('""', expr)
    text = re.sub(r"\$\{[^}]*\}", "0", text)   # chart placeholders such as ${threshold}
    text = re.sub(r"\$__\w+|\$\w+", "0", text)  # Grafana variables outside matchers
    prev = None
    while prev != text:
        prev = text
        text = _MATCHERS.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    text = _RANGE.sub(" ", text)
    names = set()
    for m in _IDENT.finditer(text):
        name, call = m.group(1), m.group(2)
        if call or name.lower() in KEYWORDS:
            continue
        names.add(name)
    return names


def label_value(value: str) -> str:
    """Escapes a string for use inside a double-quoted PromQL label matcher."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
