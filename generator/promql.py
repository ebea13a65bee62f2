"""PromQL read with the Prometheus project's own grammar.

Expressions are parsed by ``@prometheus-io/lezer-promql`` (the grammar Prometheus's UI uses; npm, installed
by ``scripts/bootstrap`` into ``.tools/node``) in ONE Node process per render or lint (``promqlparse.mjs``):
the process is started on first use, every expression is sent to it as JSON and its syntax tree comes back as
JSON. Trees are kept in memory for the life of the Python process, and on disk by ``toolcache`` (keyed by the
exact text sent and the grammar's version; ``VEMON_NO_CACHE=1`` turns it off): an expression the grammar has
parsed before is not sent again, and when none is new the Node process is never started.

Before parsing, chart placeholders (``${threshold}``) and Grafana variables (``$__rate_interval``,
``$namespace``) outside strings are replaced by a number or duration of the SAME length, so every position
the parser reports is a position in the text the author wrote.

``metric_names`` (the catalog check), ``syntax_error`` (render refuses what does not parse) and
``label_value`` (escaping settings into matchers) are the helpers the rest of the generator uses;
``promqlcheck`` reads the trees for meaning.
"""
from __future__ import annotations

import atexit
import json
import re
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ToolError

SCRIPT = Path(__file__).parent / "promqlparse.mjs"
PACKAGE = "@prometheus-io/lezer-promql"

_STRING = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`')
# ${name}, $__name, $name: chart placeholders and Grafana variables
_VARIABLE = re.compile(r"\$\{[^}]*\}|\$\w+")
# variables that stand for a duration wherever they appear ([$__rate_interval], offset $__range)
_DURATION_VARS = {"__rate_interval", "__interval", "__range", "__auto_interval"}


def substitute(expr: str) -> str:
    """``expr`` with placeholders and variables outside strings replaced by a number (``1111``) or, for
    Grafana's interval variables and inside ``[...]`` ranges, a duration (``111s``) of the same length."""
    out, pos = [], 0
    for m in _STRING.finditer(expr):
        out.append(_substitute_code(expr[pos:m.start()]))
        out.append(m.group(0))
        pos = m.end()
    out.append(_substitute_code(expr[pos:]))
    text = "".join(out)
    assert len(text) == len(expr)
    return text


def _substitute_code(code: str) -> str:
    def repl(m: re.Match) -> str:
        token = m.group(0)
        name = token.strip("${}").split(":")[0]
        if name in _DURATION_VARS and len(token) >= 2:
            return "1" * (len(token) - 1) + "s"   # [$__rate_interval] -> [111111111111111s]
        return "1" * len(token)                   # ${threshold} -> 111111111111; [${w}m] -> [1111m]
    return _VARIABLE.sub(repl, code)


@dataclass
class Node:
    name: str
    start: int
    end: int
    children: list["Node"] = field(default_factory=list)
    text: str = ""        # the expression's text of this node (as written, before substitution)

    def find(self, *names: str):
        """This node and every node under it whose name is one of ``names``, in document order."""
        if self.name in names:
            yield self
        for child in self.children:
            yield from child.find(*names)

    def child(self, *names: str) -> "Node | None":
        return next((c for c in self.children if c.name in names), None)

    def kids(self, *names: str) -> list["Node"]:
        return [c for c in self.children if not names or c.name in names]


class Parsed:
    """An expression, its syntax tree and the spans the grammar could not parse. The tree of ``Node`` objects is
    built from the grammar's answer on first use (a render reads most trees only for their metric names)."""

    __slots__ = ("expr", "errors", "_raw", "_tree", "_names")

    def __init__(self, expr: str, raw: list, errors: list[tuple[int, int]]) -> None:
        self.expr = expr
        self.errors = errors
        self._raw = raw
        self._tree: Node | None = None
        self._names: frozenset[str] | None = None

    @property
    def tree(self) -> Node:
        if self._tree is None:
            self._tree = _build(self._raw, self.expr)
        return self._tree

    def metric_names(self) -> frozenset[str]:
        """The names the expression's vector selectors select (each selector's subtree built alone)."""
        if self._names is None:
            if self._tree is not None:
                selectors = self._tree.find("VectorSelector")
            else:
                selectors = (_build(raw, self.expr) for raw in _raw_find(self._raw, "VectorSelector"))
            self._names = frozenset(n for n in (selector_name(s) for s in selectors) if n)
        return self._names

    def error_message(self) -> str | None:
        if not self.errors:
            return None
        start, end = self.errors[0]
        where = self.place(start)
        opener = open_bracket(self.expr, start)
        inside = f" (inside the {opener[0]!r} opened at {self.place(opener[1])})" if opener else ""
        near = self.expr[start:end].strip() or self.expr[start:start + 12].strip()
        if not near:
            if opener:
                return f"syntax error at {where}: the expression ends while the {opener[0]!r} opened at " \
                       f"{self.place(opener[1])} is never closed"
            return f"syntax error at {where}: the expression ends too early (an operand is missing)"
        return f"syntax error at {where}: unexpected {near[:30]!r}{inside}"

    def place(self, offset: int) -> str:
        line = self.expr.count("\n", 0, offset) + 1
        column = offset - (self.expr.rfind("\n", 0, offset) + 1) + 1
        return f"line {line}, column {column}" if "\n" in self.expr.strip() else f"column {column}"


def open_bracket(expr: str, upto: int) -> tuple[str, int] | None:
    """The innermost bracket still open at offset ``upto`` (strings and comments skipped): (bracket, offset)."""
    stack: list[tuple[str, int]] = []
    i = 0
    while i < min(upto, len(expr)):
        ch = expr[i]
        if ch in "\"'`":
            m = _STRING.match(expr, i)
            if not m:
                return (ch, i)
            i = m.end()
            continue
        if ch == "#":
            newline = expr.find("\n", i)
            i = len(expr) if newline < 0 else newline
            continue
        if ch in "([{":
            stack.append((ch, i))
        elif ch in ")]}" and stack and stack[-1][0] == {")": "(", "]": "[", "}": "{"}[ch]:
            stack.pop()
        i += 1
    return stack[-1] if stack else None


def _build(raw, expr: str) -> Node:
    name, start, end, *children = raw
    return Node(name, start, end, [_build(c, expr) for c in children], expr[start:end])


def _raw_find(raw: list, name: str):
    """The nodes of a grammar answer (``[name, from, to, *children]``) named ``name``, in document order, as
    ``Node.find`` visits them."""
    stack = [raw]
    while stack:
        node = stack.pop()
        if node[0] == name:
            yield node
        stack.extend(reversed(node[3:]))


class _Service:
    """The one Node process of this Python process."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None
        self.lock = threading.Lock()
        self.memo: dict[str, Parsed] = {}
        self.started = 0
        self.cache = None

    def _start(self) -> subprocess.Popen:
        from .manifests import node_modules
        modules = node_modules()
        if not (modules / PACKAGE).is_dir():
            raise ToolError(f"the PromQL grammar {PACKAGE} is not in {modules}; run `scripts/bootstrap`")
        try:
            proc = subprocess.Popen(["node", str(SCRIPT), str(modules)], stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, encoding="utf-8")
        except FileNotFoundError:
            raise ToolError("node not found: the PromQL parser runs on Node.js; run `scripts/bootstrap`") from None
        self.started += 1
        atexit.register(self.close)
        return proc

    def close(self) -> None:
        proc, self.proc = self.proc, None
        if proc and proc.poll() is None:
            proc.stdin.close()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()

    def _disk(self):
        """The on-disk cache of the grammar's answers (None when turned off)."""
        from . import toolcache
        if not toolcache.enabled():
            return None
        if self.cache is None:
            from .manifests import node_modules
            self.cache = toolcache.GrammarCache(toolcache.grammar_version(SCRIPT, node_modules()))
            atexit.register(self.cache.save)
        return self.cache

    def parse_many(self, exprs: list[str]) -> list[Parsed]:
        with self.lock:
            todo = sorted({e for e in exprs if e not in self.memo})
            cache = self._disk() if todo else None
            if cache is not None:
                missing = []
                for expr in todo:
                    result = cache.get(substitute(expr))
                    if result is None:
                        missing.append(expr)
                    else:
                        self._remember(expr, result)
                todo = missing
            if todo:
                if self.proc is None or self.proc.poll() is not None:
                    self.proc = self._start()
                sent_exprs = [substitute(e) for e in todo]
                self.proc.stdin.write(json.dumps(sent_exprs) + "\n")
                self.proc.stdin.flush()
                line = self.proc.stdout.readline()
                if not line:
                    err = self.proc.stderr.read()
                    self.proc = None
                    raise ToolError(f"the PromQL parser (node {SCRIPT.name}) stopped: {err.strip()[:2000]}")
                for expr, sent, result in zip(todo, sent_exprs, json.loads(line)):
                    self._remember(expr, result)
                    if cache is not None:
                        cache.put(sent, result)
            return [self.memo[e] for e in exprs]

    def _remember(self, expr: str, result: dict) -> None:
        self.memo[expr] = Parsed(expr, result["tree"], [(e["from"], e["to"]) for e in result["errors"]])


_SERVICE = _Service()


def parse_many(exprs: list[str]) -> list[Parsed]:
    """Syntax trees of ``exprs``, all in one request to the parser process."""
    return _SERVICE.parse_many([str(e) for e in exprs])


def parse(expr: str) -> Parsed:
    return parse_many([expr])[0]


def processes_started() -> int:
    """How many parser processes this Python process has started (one, unless one died)."""
    return _SERVICE.started


def unquote(literal: str) -> str:
    """The value of a PromQL string literal ("a\\"b", 'x', `raw`)."""
    if literal[:1] == "`":
        return literal[1:-1]
    try:
        return json.loads('"' + literal[1:-1].replace('\\\'', "'").replace('"', '\\"').replace('\\\\"', '\\"') + '"') \
            if literal[:1] == "'" else json.loads(literal)
    except ValueError:
        return literal[1:-1]


def selector_name(selector: Node) -> str | None:
    """The metric name a VectorSelector selects (``x{}`` or ``{__name__="x"}``)."""
    ident = selector.child("Identifier")
    if ident is not None:
        return ident.text
    for matcher in selector.find("UnquotedLabelMatcher"):
        label, op = matcher.child("LabelName"), matcher.child("MatchOp")
        value = matcher.child("StringLiteral")
        if label and label.text == "__name__" and op and op.text == "=" and value is not None:
            return unquote(value.text)
    return None


def metric_names(expr: str) -> set[str]:
    """The metric (and recording rule) names an expression selects."""
    if not str(expr).strip():
        return set()
    return set(parse(str(expr)).metric_names())


def syntax_error(expr: str) -> str | None:
    """What the PromQL grammar refuses in ``expr`` (line, column and the text there), or None."""
    if not str(expr).strip():
        return "the expression is empty"
    return parse(str(expr)).error_message()


def label_value(value: str) -> str:
    """Escapes a string for use inside a double-quoted PromQL label matcher."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
