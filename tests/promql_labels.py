"""Which labels the result of a PromQL expression is sure to carry, read from the expression's structure.

Used by the routing tests to check that every inhibition's ``equal`` labels exist on the alerts on both
sides. It follows the rules of PromQL only where they are certain:

* ``sum/min/max/avg/group/count/stddev/stdvar by (a, b) (...)`` -> exactly ``{a, b}``; ``without`` or a plain
  selector -> unknown (the labels depend on the targets), ``topk``/``bottomk`` keep the inner labels;
* ``and`` / ``unless`` -> the left side's labels; ``or`` -> the labels both sides have;
* arithmetic and comparisons -> the side that is not a number; one-to-one and ``group_left`` -> the left
  side (plus the ``group_left`` labels), ``group_right`` -> the right side;
* ``rate``, ``changes``, ``*_over_time``, ``predict_linear``, ... -> their vector argument; ``vector()`` ->
  none; ``absent(x{a="v"})`` -> the labels matched with ``=``; ``histogram_quantile`` drops ``le``;
* a recording rule's name -> the labels of its expression plus its static labels.

Anything else is unknown (``None``): the caller then relies on other evidence (the promtool cases).
"""
from __future__ import annotations

import re

SCALAR = "scalar"
_TOKEN = re.compile(r"""
    (?P<ws>\s+|\#[^\n]*)
  | (?P<string>"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|`[^`]*`)
  | (?P<braces>\{(?:"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|[^{}"'])*\})
  | (?P<range>\[[^\]]*\])
  | (?P<number>(?:0x[0-9a-fA-F]+|\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+)(?![A-Za-z_]))
  | (?P<duration>\d+(?:ms|s|m|h|d|w|y))
  | (?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)
  | (?P<op>==|!=|>=|<=|=~|!~|[-+*/%^<>(),])
""", re.X)
AGGREGATIONS = {"sum", "min", "max", "avg", "group", "count", "stddev", "stdvar", "topk", "bottomk", "quantile",
                "count_values", "limitk", "limit_ratio"}
PRECEDENCE = {"or": 1, "and": 2, "unless": 2, "==": 3, "!=": 3, ">": 3, "<": 3, ">=": 3, "<=": 3,
              "+": 4, "-": 4, "*": 5, "/": 5, "%": 5, "atan2": 5, "^": 6}
SCALAR_FUNCTIONS = {"scalar", "time", "pi"}


def _tokens(expr: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    while pos < len(expr):
        m = _TOKEN.match(expr, pos)
        if not m:
            raise ValueError(f"cannot read {expr[pos:pos + 20]!r}")
        pos = m.end()
        if m.lastgroup != "ws":
            out.append((m.lastgroup, m.group()))
    return out


def _equality_matchers(braces: str) -> set[str]:
    return set(re.findall(r'([A-Za-z_][A-Za-z0-9_]*)\s*=\s*["\'`]', braces)) - \
        set(re.findall(r'([A-Za-z_][A-Za-z0-9_]*)\s*(?:!=|=~|!~)', braces))


class _Parser:
    def __init__(self, expr: str, recorded: dict[str, tuple[str, set[str]]]) -> None:
        self.toks, self.i, self.recorded = _tokens(expr), 0, recorded

    def peek(self, k: int = 0) -> tuple[str, str]:
        return self.toks[self.i + k] if self.i + k < len(self.toks) else ("eof", "")

    def take(self, value: str | None = None) -> tuple[str, str]:
        tok = self.peek()
        if value is not None and tok[1] != value:
            raise ValueError(f"expected {value!r}, got {tok[1]!r}")
        self.i += 1
        return tok

    def names(self) -> set[str]:
        self.take("(")
        found = set()
        while self.peek()[1] != ")":
            kind, value = self.take()
            if kind == "ident":
                found.add(value)
        self.take(")")
        return found

    def expression(self, min_prec: int = 0):
        left = self.unary()
        while True:
            op = self.peek()[1]
            prec = PRECEDENCE.get(op)
            if prec is None or prec <= min_prec:
                return left
            self.take()
            if self.peek()[1] == "bool":
                self.take()
            on = group = None
            group_labels: set[str] = set()
            while self.peek()[1] in ("on", "ignoring", "group_left", "group_right"):
                word = self.take()[1]
                labels = self.names() if self.peek()[1] == "(" else set()
                if word in ("on", "ignoring"):
                    on = word
                else:
                    group, group_labels = word, labels
            right = self.expression(prec if op != "^" else prec - 1)
            left = self.combine(op, left, right, group, group_labels)

    @staticmethod
    def combine(op, left, right, group, group_labels):
        if op in ("and", "unless"):
            return left
        if op == "or":
            if left is None or right is None:
                return None
            return left & right
        if left == SCALAR:
            return right
        if right == SCALAR:
            return left
        if group == "group_right":
            return None if right is None else right | group_labels
        return None if left is None else left | group_labels

    def unary(self):
        if self.peek()[1] in ("-", "+"):
            self.take()
        return self.postfix(self.primary())

    def postfix(self, labels):
        while self.peek()[0] == "range" or self.peek()[1] in ("offset", "@"):
            if self.take()[1] in ("offset", "@"):
                self.take()
        return labels

    def primary(self):
        kind, value = self.peek()
        if kind == "number":
            self.take()
            return SCALAR
        if value == "(":
            self.take()
            inner = self.expression()
            self.take(")")
            return inner
        if kind == "braces":
            self.take()
            return None
        if kind != "ident":
            raise ValueError(f"unexpected {value!r}")
        self.take()
        nxt = self.peek()[1]
        if value in AGGREGATIONS and nxt in ("(", "by", "without"):
            return self.aggregation(value)
        if nxt == "(":
            return self.function(value)
        braces = self.take()[1] if self.peek()[0] == "braces" else ""
        if value in self.recorded:
            expr, static = self.recorded[value]
            inner = labels_of(expr, self.recorded)
            return None if inner is None else inner | static
        self._last_braces = braces
        return None

    def aggregation(self, name: str):
        mode, grouping = None, set()
        if self.peek()[1] in ("by", "without"):
            mode = self.take()[1]
            grouping = self.names()
        args = self.arguments()
        if self.peek()[1] in ("by", "without"):
            mode = self.take()[1]
            grouping = self.names()
        inner = args[-1] if args else None
        if name in ("topk", "bottomk", "limitk", "limit_ratio"):
            return inner
        extra = set()
        if name == "count_values":
            extra = {self._string_arg}
        if mode == "by":
            return grouping | extra
        if mode == "without":
            return None if inner is None or inner == SCALAR else (inner - grouping) | extra
        return set() | extra

    def arguments(self) -> list:
        self.take("(")
        args = []
        self._string_arg = ""
        while self.peek()[1] != ")":
            if self.peek()[0] == "string":
                self._string_arg = self.take()[1].strip("\"'`")
                args.append(SCALAR)
            else:
                args.append(self.expression())
            if self.peek()[1] == ",":
                self.take()
        self.take(")")
        return args

    def function(self, name: str):
        start = self.i
        args = self.arguments()
        if name in SCALAR_FUNCTIONS:
            return SCALAR
        if name == "vector":
            return set()
        if name in ("absent", "absent_over_time"):
            braces = [v for k, v in self.toks[start:self.i] if k == "braces"]
            return _equality_matchers(braces[0]) if braces else set()
        vectors = [a for a in args if a != SCALAR]
        inner = vectors[0] if vectors else SCALAR
        if inner is None or inner == SCALAR:
            return inner
        if name in ("label_replace", "label_join"):
            strings = [v.strip("\"'`") for k, v in self.toks[start:self.i] if k == "string"]
            return inner | {strings[0]} if strings else None
        if name == "histogram_quantile":
            return inner - {"le"}
        return inner


def labels_of(expr: str, recorded: dict[str, tuple[str, set[str]]] | None = None) -> set[str] | None:
    """The labels every series of ``expr``'s result carries for sure, or None when that depends on the targets."""
    parser = _Parser(expr, recorded or {})
    result = parser.expression()
    if parser.peek()[0] != "eof":
        raise ValueError(f"unread: {parser.peek()[1]!r}")
    return set() if result == SCALAR else result
