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


_DURATION = r"((\d+(ms|s|m|h|d|w|y))+|\$\{?\w+\}?)"   # a Grafana variable ($__rate_interval) counts as one
_RANGE_BODY = re.compile(rf"^\s*{_DURATION}\s*(:\s*({_DURATION})?\s*)?$")
_CLOSERS = {")": "(", "]": "[", "}": "{"}
_MATCHERS_BODY = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_]*\s*(=~|!~|!=|=)\s*""\s*(,\s*)?)*')


def syntax_error(expr: str) -> str | None:
    """A structural PromQL mistake (unclosed bracket or string, a range that is not a duration), or None.

    Not the full grammar (``promtool check rules`` in ``generator lint`` is): this catches the typos that
    would otherwise only surface when Prometheus refuses the whole rule group. ``${param}`` placeholders
    count as numbers.
    """
    text = re.sub(r"\$\{[^}]*\}", "1", expr)
    stack: list[tuple[str, int]] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch in "\"'`":
            end = i + 1
            while end < len(text) and text[end] != ch:
                end += 2 if text[end] == "\\" and ch != "`" else 1
            if end >= len(text):
                return f"string opened at column {i + 1} is never closed"
            i = end + 1
            continue
        if ch == "#":
            newline = text.find("\n", i)
            i = len(text) if newline < 0 else newline
            continue
        if ch in "([{":
            stack.append((ch, i))
        elif ch in ")]}":
            if not stack or stack[-1][0] != _CLOSERS[ch]:
                return f"{ch!r} at column {i + 1} closes nothing"
            opener, start = stack.pop()
            if opener == "[" and not _RANGE_BODY.match(text[start + 1:i]):
                return f"range [{text[start + 1:i]}] at column {start + 1} is not a duration such as [5m] or [1h:5m]"
            if opener == "{" and not _MATCHERS_BODY.fullmatch(_STRING.sub('""', text[start + 1:i])):
                return (f"label matchers at column {start + 1} are not name=\"value\" pairs "
                        "(=, !=, =~ or !~ with a quoted value, separated by commas)")
        i += 1
    if stack:
        opener, start = stack[-1]
        return f"{opener!r} at column {start + 1} is never closed"
    return None
