"""PromQL checked against the metrics catalog: ``generator lint`` check ``promql``.

Every rule expression (``chart/files/rules/*.json``) and every panel query and variable query
(``chart/files/dashboards/*.json``) is parsed with the Prometheus grammar (``promql.parse_many``, one Node
process) and read with the catalog (``templates_src/metrics/``) as its type system: each metric's type,
labels, the labels Prometheus adds to its source's series (``targetLabels``) and its scope (``chain``: every
full node exports the same value). Each finding names the file, the rule or panel, what is wrong and the fix:

- ``unknown-metric`` / ``unknown-label``: a selector on a metric, or a matcher / grouping on a label, the
  catalog does not have (a typo, a label the exporter never sets);
- ``rate-on-gauge``: rate/increase/irate of a gauge; ``counter-delta``: changes/deriv/delta/idelta of a
  counter (``resets`` and ``rate`` are meant for counters);
- ``quantile-drops-le``: histogram_quantile over an aggregation that drops ``le``;
- ``one-major-bound``: a ``le`` / ``quantile`` matcher only one Prometheus major matches (2 stores
  ``le="10"``, 3 stores ``le="10.0"``, world fact 5);
- ``chain-sum``: a sum or count across nodes of a chain-level metric without the per-node dedupe of the
  ``chainwide`` pattern (world fact 4);
- ``never-matches``: a binary operation whose two sides can never share their matching labels;
- label flow (``label-flow``): the labels each alert's result carries (derived through aggregations, joins,
  functions and recording rules, plus its static labels) checked against ``$labels.x`` in its annotations
  (description, dashboard link variables), and the Alertmanager routing of every environment: ``groupBy``,
  each route's matchers, each inhibition's ``equal`` on its source and target alerts;
- ``no-comparison``: an alert expression without a comparison (it fires on every series it returns, pint's
  ``alerts/comparison``);
- ``absent-routing``: an ``absent()`` alert whose result lacks a label its route or inhibitions need.

Label sets are upper bounds (every label a result series CAN carry); a finding is raised only where a label
can never be there, so an unknown shape (a label set the catalog cannot tell) never raises one.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from . import promql
from .promql import Node, selector_name, unquote

RANGE_FUNCS = {"rate", "increase", "irate"}
COUNTER_ONLY_NOT = {"changes", "deriv", "delta", "idelta", "predict_linear"}
COMPARISONS = {"Eql", "Neq", "Gtr", "Lss", "Gte", "Lte"}
SET_OPS = {"And", "Or", "Unless"}
SCALAR_FUNCS = {"scalar", "time", "pi", "minute", "hour", "day_of_week", "day_of_month", "day_of_year",
                "days_in_month", "month", "year"}
# labels Prometheus and the chart always put on an alert
ALERT_LABELS = {"alertname"}
WHOLE = re.compile(r"^\+?(\d+)(\.0+)?$")


@dataclass
class Info:
    kind: str                          # scalar | vector | matrix | string
    labels: frozenset | None = None    # every label a result series can carry; None: unknown
    exact: bool = False                # the labels are exactly these (an aggregation ``by``)
    absent: frozenset | None = None    # labels of the series absent()/absent_over_time() makes, if it is used


@dataclass
class Finding:
    code: str
    where: str
    message: str
    fix: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message} [{self.code}]; fix: {self.fix}"


@dataclass
class Context:
    catalog: object
    recorded: dict = field(default_factory=dict)        # record name -> (Info, static label names)
    findings: list = field(default_factory=list)
    where: str = ""

    def add(self, code: str, node: Node | None, expr: str, message: str, fix: str) -> None:
        at = ""
        if node is not None:
            line = expr.count("\n", 0, node.start) + 1
            col = node.start - (expr.rfind("\n", 0, node.start) + 1) + 1
            at = f" (line {line}, column {col})" if "\n" in expr else f" (column {col})"
        self.findings.append(Finding(code, self.where + at, message, fix))


def _exprs(node: Node) -> list[Node]:
    """The expression children of a node (punctuation and keywords left out)."""
    return [c for c in node.children if c.name not in (
        "AggregateOp", "AggregateModifier", "FunctionIdentifier", "MatchingModifierClause", "BoolModifier",
        "UnaryOp", "Offset", "At", "OffsetDurationExpr", "DurationExpr", "AtModifierPreprocessors", "FillModifier",
        "Pow", "Mul", "Div", "Mod", "Atan2", "Add", "Sub", "Eql", "Gte", "Gtr", "Lte", "Lss", "Neq", "And",
        "Unless", "Or", "TrimUpper", "TrimLower", "⚠")]


def _grouping(modifier: Node | None) -> tuple[str | None, list[str]]:
    if modifier is None:
        return None, []
    mode = "by" if modifier.child("By") else "without"
    return mode, [c.text for c in modifier.find("LabelName")]


def _matchers(selector: Node) -> list[tuple[str, str, str, Node]]:
    found = []
    for m in selector.find("UnquotedLabelMatcher"):
        name, op, value = m.child("LabelName"), m.child("MatchOp"), m.child("StringLiteral")
        if name and op and value:
            found.append((name.text, op.text, unquote(value.text), m))
    return found


def bound_problem(label: str, op: str, value: str) -> str | None:
    """Why a ``le`` / ``quantile`` matcher fits only one Prometheus major, or None."""
    if op in ("=", "!="):
        m = WHOLE.match(value)
        if m:
            n = m.group(1)
            return f'{label}{op}"{value}" matches only Prometheus {"2" if not m.group(2) else "3"} ' \
                   f'(Prometheus 2 stores {label}="{n}", Prometheus 3 {label}="{n}.0")'
        return None
    try:
        pattern = re.compile(value)
    except re.error:
        return None
    for n in sorted(set(re.findall(r"\d+", value)), key=int):
        one, two = pattern.fullmatch(n) is not None, pattern.fullmatch(f"{n}.0") is not None
        if one != two:
            return f'{label}{op}"{value}" matches {label}="{n if one else n + ".0"}" but not ' \
                   f'{label}="{n + ".0" if one else n}": only Prometheus {"2" if one else "3"} stores that spelling'
    return None


class Checker:
    def __init__(self, ctx: Context, expr: str) -> None:
        self.ctx, self.expr = ctx, expr

    def add(self, code, node, message, fix):
        self.ctx.add(code, node, self.expr, message, fix)

    # --- selectors ---------------------------------------------------------------------------------------
    def selector(self, node: Node) -> Info:
        name = selector_name(node)
        matchers = _matchers(node)
        if name and ":" in name:
            rec = self.ctx.recorded.get(name)
            if rec is None:
                self.add("unknown-metric", node, f"recording rule {name!r} is not defined by any rule group",
                         "define it in templates_src/rules/recording.yaml.j2 or fix the name")
                return Info("vector")
            info, static = rec
            labels = None if info.labels is None else frozenset(info.labels | static)
            self._matcher_labels(node, matchers, labels, f"the recording rule {name}")
            return Info("vector", labels, info.exact)
        metric = None
        if name:
            base = self.ctx.catalog.resolve(name)
            if base is None:
                self.add("unknown-metric", node, f"metric {name!r} is not in the metrics catalog",
                         "fix the name, or add the metric to templates_src/metrics/<source>.yaml")
                return Info("vector")
            metric = self.ctx.catalog.metrics[base]
        labels = None
        if metric is not None:
            own = set(metric.labels) | set(metric.target_labels)
            if name.endswith("_bucket") and metric.type == "histogram":
                own.add("le")
            if metric.type == "summary" and name == metric.name:
                own.add("quantile")
            labels = frozenset(own)
            self._matcher_labels(node, matchers, labels, f"{metric.name} ({metric.file})")
        for label, op, value, m in matchers:
            if label in ("le", "quantile"):
                why = bound_problem(label, op, value)
                if why:
                    n = re.search(r"\d+", value).group(0) if re.search(r"\d+", value) else "N"
                    self.add("one-major-bound", m, why, f'match both spellings: {label}=~"{n}|{n}\\\\.0"')
        return Info("vector", labels)

    def _matcher_labels(self, node, matchers, labels, what) -> None:
        if labels is None:
            return
        for label, op, value, m in matchers:
            if label == "__name__" or label in labels:
                continue
            if op == "=" and value == "":
                continue   # x{l=""}: selects series WITHOUT the label, a valid way to say so
            self.add("unknown-label", m, f"label {label!r} is not a label of {what}; it has: "
                     f"{', '.join(sorted(labels))}", "fix the label name, or add the label to the catalog entry if "
                     "the exporter sets it")

    # --- the walk ----------------------------------------------------------------------------------------
    def infer(self, node: Node) -> Info:
        name = node.name
        if name == "PromQL":
            inner = _exprs(node)
            return self.infer(inner[0]) if inner else Info("scalar")
        if name == "ParenExpr":
            return self.infer(_exprs(node)[0])
        if name in ("NumberDurationLiteral",):
            return Info("scalar", frozenset(), True)
        if name == "StringLiteral":
            return Info("string")
        if name == "UnaryExpr":
            return self.infer(_exprs(node)[-1])
        if name == "VectorSelector":
            return self.selector(node)
        if name in ("MatrixSelector", "SubqueryExpr"):
            inner = self.infer(_exprs(node)[0])
            return Info("matrix", inner.labels, inner.exact)
        if name in ("OffsetExpr", "StepInvariantExpr", "AnchoredExpr", "SmoothedExpr"):
            return self.infer(_exprs(node)[0])
        if name == "FunctionCall":
            return self.function(node)
        if name == "AggregateExpr":
            return self.aggregate(node)
        if name == "BinaryExpr":
            return self.binary(node)
        return Info("vector")

    def _matrix_metric(self, arg: Node):
        """The catalog metric (and series name) a range argument selects directly: rate(x[5m])."""
        while arg.name in ("ParenExpr", "OffsetExpr", "StepInvariantExpr"):
            arg = _exprs(arg)[0]
        if arg.name != "MatrixSelector":
            return None, None
        sel = _exprs(arg)[0]
        if sel.name != "VectorSelector":
            return None, None
        series = selector_name(sel)
        base = self.ctx.catalog.resolve(series) if series else None
        return (self.ctx.catalog.metrics[base] if base else None), series

    def function(self, node: Node) -> Info:
        fname = node.child("FunctionIdentifier").text
        body = node.child("FunctionCallBody")
        args = _exprs(body) if body else []
        infos = [self.infer(a) for a in args]
        if fname in RANGE_FUNCS | COUNTER_ONLY_NOT and args:
            metric, series = self._matrix_metric(args[0])
            if metric is not None:
                kind = "counter" if (metric.type == "counter" or metric.monotonic or (
                    metric.type in ("histogram", "summary") and series != metric.name)) else metric.type
                if fname in RANGE_FUNCS and kind == "gauge":
                    self.add("rate-on-gauge", node, f"{fname}() of the gauge {series} ({metric.file}): {fname} is "
                             "for counters and reads every decrease of a gauge as a counter reset",
                             "use delta()/deriv() or max_over_time()/changes() of the gauge, or read a counter")
                if fname in COUNTER_ONLY_NOT and kind == "counter":
                    self.add("counter-delta", node, f"{fname}() of the counter {series} ({metric.file}): a counter "
                             "reset (a restart) reads as a huge drop",
                             "use increase()/rate() (they handle resets), or resets() to count restarts")
        if fname == "histogram_quantile" and len(infos) == 2:
            inner = infos[1]
            if inner.labels is not None and "le" not in inner.labels:
                self.add("quantile-drops-le", node, "histogram_quantile() over an aggregation that drops the "
                         "bucket label le: every bucket is summed into one and the quantile is meaningless",
                         "keep le in the inner aggregation: sum by (..., le) (rate(x_bucket[w]))")
            return Info("vector", None if inner.labels is None else inner.labels - {"le"}, inner.exact)
        if fname in ("absent", "absent_over_time"):
            labels = set()
            if args:
                target = args[0]
                while target.name in ("MatrixSelector", "ParenExpr", "OffsetExpr"):
                    target = _exprs(target)[0]
                if target.name == "VectorSelector":
                    labels = {label for label, op, _, _ in _matchers(target) if op == "=" and label != "__name__"}
            return Info("vector", frozenset(labels), True, absent=frozenset(labels))
        if fname == "vector":
            return Info("vector", frozenset(), True)
        if fname in SCALAR_FUNCS:
            return Info("scalar", frozenset(), True)
        if fname in ("label_replace", "label_join") and len(args) >= 2:
            dst = unquote(args[1].text) if args[1].name == "StringLiteral" else None
            first = infos[0]
            if first.labels is None or dst is None:
                return Info("vector")
            return Info("vector", first.labels | {dst}, first.exact)
        for info in infos:
            if info.kind in ("vector", "matrix"):
                return Info("vector", info.labels, info.exact)
        return Info("vector", frozenset(), True)

    def aggregate(self, node: Node) -> Info:
        op = node.child("AggregateOp").text.lower()
        mode, grouping = _grouping(node.child("AggregateModifier"))
        body = node.child("FunctionCallBody")
        args = _exprs(body) if body else []
        infos = [self.infer(a) for a in args]
        inner = infos[-1] if infos else Info("vector")
        if inner.labels is not None and mode is not None:
            for label in grouping:
                if label not in inner.labels:
                    self.add("unknown-label", node.child("AggregateModifier"),
                             f"{op} {mode} ({', '.join(grouping)}): the input never has the label {label!r} "
                             f"(it can have: {', '.join(sorted(inner.labels)) or 'none'})",
                             "fix the label name, or aggregate a series that carries it")
        if op in ("topk", "bottomk", "limitk", "limit_ratio"):
            return inner
        if mode == "by":
            labels = set(grouping)
            if op == "count_values" and args and args[0].name == "StringLiteral":
                labels.add(unquote(args[0].text))
            return Info("vector", frozenset(labels), True)
        if mode == "without":
            return Info("vector", None if inner.labels is None else inner.labels - set(grouping))
        return Info("vector", frozenset(), True)

    def binary(self, node: Node) -> Info:
        sides = _exprs(node)
        left, right = self.infer(sides[0]), self.infer(sides[-1])
        op_node = next(c for c in node.children if c.name in COMPARISONS | SET_OPS | {
            "Pow", "Mul", "Div", "Mod", "Atan2", "Add", "Sub", "TrimUpper", "TrimLower"})
        op = op_node.name
        clause = node.child("MatchingModifierClause")
        on = ignoring = None
        group, group_labels = None, []
        if clause is not None:
            grouping = clause.kids("GroupingLabels")
            if clause.child("On"):
                on = [c.text for c in grouping[0].find("LabelName")] if grouping else []
            elif clause.child("Ignoring"):
                ignoring = [c.text for c in grouping[0].find("LabelName")] if grouping else []
            if clause.child("GroupLeft", "GroupRight"):
                group = "left" if clause.child("GroupLeft") else "right"
                group_labels = [c.text for c in grouping[1].find("LabelName")] if len(grouping) > 1 else []
        if left.kind == "scalar" or right.kind == "scalar":
            return right if left.kind == "scalar" else left
        if op != "Or":
            self._never_matches(node, op_node, left, right, on, ignoring, group, group_labels)
        if op in ("And", "Unless"):
            return left
        if op == "Or":
            absent = left.absent if left.absent is not None else right.absent
            if left.labels is None or right.labels is None:
                return Info("vector", absent=absent)
            return Info("vector", left.labels | right.labels, left.exact and right.exact and left.labels == right.labels,
                        absent=absent)
        if group == "right":
            return Info("vector", None if right.labels is None else right.labels | set(group_labels))
        return Info("vector", None if left.labels is None else left.labels | set(group_labels),
                    left.exact and not group_labels)

    def _never_matches(self, node, op_node, left, right, on, ignoring, group, group_labels) -> None:
        opname = op_node.text
        if on is not None:
            for side, info in (("left", left), ("right", right)):
                if info.labels is None:
                    continue
                missing = [label for label in on if label not in info.labels]
                if missing:
                    self.add("never-matches", op_node, f"'{opname} on ({', '.join(on)})': the {side} side never "
                             f"has {', '.join(map(repr, missing))} (it can have: "
                             f"{', '.join(sorted(info.labels)) or 'no labels'}), so the two sides never match",
                             "match on labels both sides keep (add them to the inner by (...))")
            return
        if left.exact and right.exact and left.labels is not None and right.labels is not None:
            ign = set(ignoring or ())
            if (left.labels - ign) != (right.labels - ign):
                diff = sorted((left.labels ^ right.labels) - ign)
                self.add("never-matches", op_node, f"'{opname}' matches on all labels, but only one side has "
                         f"{', '.join(map(repr, diff))}, so the two sides never match",
                         f"say which labels to match: {opname} on ({', '.join(sorted(left.labels & right.labels))})")


# --- chain-level sums --------------------------------------------------------------------------------------

def chain_sum_nodes(tree: Node, chain: set[str], resolve) -> list[tuple[Node, str]]:
    """(aggregation, message) for each sum/count across nodes of a chain-level metric (world fact 4): the
    innermost aggregation over a chain metric's selector does not keep ``instance``. A sum that is the direct
    argument of histogram_quantile is allowed: a quantile of identical nodes' summed buckets is one node's."""
    found = []

    def walk(node: Node, aggs: list, fn: str | None):
        if node.name == "AggregateExpr":
            op = node.child("AggregateOp").text.lower()
            mode, grouping = _grouping(node.child("AggregateModifier"))
            aggs = aggs + [(node, op, mode, grouping, fn == "histogram_quantile")]
        if node.name == "VectorSelector" and aggs:
            name = selector_name(node)
            base = resolve(name) if name else None
            if base in chain:
                agg, op, mode, grouping, in_quantile = aggs[-1]
                keeps = ("instance" in grouping) if mode == "by" else (mode == "without" and "instance" not in grouping)
                if op in ("sum", "count") and not keeps and not in_quantile:
                    g = f" {mode} ({', '.join(grouping)})" if mode else ""
                    found.append((agg, f"{op}{g} of the chain-level metric {base} adds up every node's copy of the "
                                       "same chain state"))
        child_fn = None
        if node.name == "FunctionCall":
            child_fn = node.child("FunctionIdentifier").text
        for child in node.children:
            # the function name reaches its direct arguments only (FunctionCallBody -> argument)
            walk(child, aggs, child_fn if node.name == "FunctionCall" else (fn if node.name == "FunctionCallBody"
                                                                             else None))
    walk(tree, [], None)
    return found


CHAIN_FIX = ("use the chainwide macro of lib/queries.j2: max by (cluster, chain_id) (sum by (cluster, chain_id, "
             "instance) (...)), a sum per node, then the highest node")


def chain_sums(ctx: Context, expr: str, tree: Node) -> None:
    chain = {m.name for m in ctx.catalog.metrics.values() if m.scope == "chain"}
    for agg, message in chain_sum_nodes(tree, chain, ctx.catalog.resolve):
        ctx.add("chain-sum", agg, expr, message, CHAIN_FIX)


# --- comparisons -------------------------------------------------------------------------------------------

PASS_THROUGH = {"label_replace", "label_join", "sort", "sort_desc", "sort_by_label", "sort_by_label_desc"}


def has_comparison(node: Node) -> bool:
    """The expression filters: a comparison without ``bool``, absent(), or a set operation (``and``/``unless``
    keep only the series the other side has / lacks); ``or`` needs it on both sides; looked for through
    parentheses, aggregations and the functions that pass series through (label_replace, sort)."""
    if node.name in ("PromQL", "ParenExpr"):
        inner = _exprs(node)
        return bool(inner) and has_comparison(inner[0])
    if node.name == "BinaryExpr":
        op = next((c.name for c in node.children if c.name in COMPARISONS | SET_OPS), None)
        sides = _exprs(node)
        if op in COMPARISONS and node.child("BoolModifier") is None:
            return True
        if op in ("And", "Unless"):
            return True
        if op == "Or":
            return has_comparison(sides[0]) and has_comparison(sides[-1])
        return False
    if node.name == "FunctionCall":
        fname = node.child("FunctionIdentifier").text
        args = _exprs(node.child("FunctionCallBody")) if node.child("FunctionCallBody") else []
        if fname in PASS_THROUGH and args:
            return has_comparison(args[0])
        return fname in ("absent", "absent_over_time")
    if node.name == "AggregateExpr":
        body = node.child("FunctionCallBody")
        return bool(body) and bool(_exprs(body)) and has_comparison(_exprs(body)[-1])
    return False


def is_heartbeat(node: Node) -> bool:
    """``vector(1)``: an alert that fires always by design (the Watchdog)."""
    inner = _exprs(node) if node.name == "PromQL" else [node]
    return len(inner) == 1 and inner[0].name == "FunctionCall" and \
        inner[0].child("FunctionIdentifier").text == "vector"


# --- whole rule sets -------------------------------------------------------------------------------------

LABEL_USE = re.compile(r"\$labels\.([A-Za-z_][A-Za-z0-9_]*)")
# {{ with $labels.x }}...{{ end }} / {{ if $labels.x }}: the author says the label may be missing
GUARDED = re.compile(r"\{\{-?\s*(?:with|if)\s+\$labels\.([A-Za-z_][A-Za-z0-9_]*)\s*-?\}\}(.*?)\{\{-?\s*end\s*-?\}\}", re.S)


def label_uses(text: str) -> set[str]:
    """Labels a template reads unguarded (outside ``{{ with $labels.x }}`` of that same label)."""
    text = GUARDED.sub(lambda m: LABEL_USE.sub(lambda u: "" if u.group(1) == m.group(1) else u.group(0),
                                               m.group(2)), text)
    return set(LABEL_USE.findall(text))


MATCHER = re.compile(r'^([a-zA-Z_][a-zA-Z0-9_]*)(=~|!~|!=|=)"(.*)"$')


def check_expression(ctx: Context, expr: str, where: str) -> Info:
    ctx.where = where
    parsed = promql.parse(expr)
    problem = parsed.error_message()
    if problem:
        ctx.findings.append(Finding("syntax", where, problem, "fix the expression (see the column)"))
        return Info("vector")
    info = Checker(ctx, expr).infer(parsed.tree)
    chain_sums(ctx, expr, parsed.tree)
    return info


def check_rules(ctx: Context, groups: list[dict], file_of) -> dict[str, tuple[Info, dict]]:
    """Every rule of ``groups``; returns alert -> (result Info, rule). ``file_of(group name)`` names the file."""
    promql.parse_many([r["expr"] for g in groups for r in g["rules"]])
    # recording rules first, in order, so that alerts read their labels
    for group in groups:
        for rule in group["rules"]:
            if "record" in rule:
                info = check_expression(ctx, rule["expr"], f"{file_of(group['name'])}: recording rule "
                                                           f"{rule['record']}")
                ctx.recorded[rule["record"]] = (info, frozenset(rule.get("labels") or {}))
    alerts = {}
    for group in groups:
        for rule in group["rules"]:
            if "alert" not in rule:
                continue
            where = f"{file_of(group['name'])}: alert {rule['alert']}"
            info = check_expression(ctx, rule["expr"], where)
            parsed = promql.parse(rule["expr"])
            ctx.where = where
            if not parsed.errors and not has_comparison(parsed.tree) and not is_heartbeat(parsed.tree):
                ctx.add("no-comparison", None, rule["expr"], "the expression has no comparison: it fires for "
                        "every series it returns, whatever the value", "compare with a threshold "
                        "(> ${threshold}) or filter with and/unless on a condition")
            labels = alert_labels(info, rule)
            for key, text in sorted((rule.get("annotations") or {}).items()):
                for label in sorted(label_uses(str(text))):
                    if labels is not None and label not in labels:
                        kind = "dashboard link variable" if key == "dashboard_url" else f"annotation {key}"
                        ctx.add("label-flow", None, "", f"{kind} uses $labels.{label}, but the result never has "
                                f"{label!r} (it can have: {', '.join(sorted(labels))})",
                                f"keep {label} in the expression's aggregations (by (..., {label})) or drop the "
                                "reference")
            alerts[rule["alert"]] = (info, rule)
    return alerts


def alert_labels(info: Info, rule: dict) -> frozenset | None:
    if info.labels is None:
        return None
    return frozenset(info.labels | set(rule.get("labels") or {}) | ALERT_LABELS)


def _matches_static(matcher: str, alert: str, rule: dict, labels) -> bool | None:
    """True / False when the matcher is decided by the alert's name or static labels; None when it depends on
    labels of the expression's result (True if it can carry the label at all)."""
    m = MATCHER.match(matcher)
    if not m:
        return None
    name, op, value = m.groups()
    static = {"alertname": alert, **{k: str(v) for k, v in (rule.get("labels") or {}).items()}}
    if name in static:
        have = static[name]
        return {"=": have == value, "!=": have != value, "=~": re.fullmatch(value, have) is not None,
                "!~": re.fullmatch(value, have) is None}[op]
    if labels is not None and name not in labels:
        # the label is never there: it reads as ""
        return {"=": value == "", "!=": value != "", "=~": re.fullmatch(value, "") is not None,
                "!~": re.fullmatch(value, "") is None}[op]
    return None


def check_routing(ctx: Context, alerts: dict, alertmanager: dict, where: str, groups_of: dict,
                  external: set[str] = frozenset()) -> None:
    """Label flow into the Alertmanager routing of one environment (values ``alertmanager``)."""
    ctx.where = where
    label_sets = {a: alert_labels(info, rule) for a, (info, rule) in alerts.items()}

    def selected(matchers: list[str]) -> list[str]:
        out = []
        for alert, (info, rule) in alerts.items():
            results = [_matches_static(m, alert, rule, label_sets[alert]) for m in matchers]
            if all(r is not False for r in results):
                out.append(alert)
        return out

    routes = alertmanager.get("routes") or {}
    ordered = sorted(((k, v) for k, v in routes.items() if isinstance(v, dict) and v.get("enabled", True)),
                     key=lambda kv: kv[1].get("order", 0))
    group_by = [g for g in (alertmanager.get("groupBy") or []) if g != "..."]
    known = [labels for labels in label_sets.values() if labels is not None]
    if known and len(known) == len(label_sets):
        carried = set().union(*known)
        for label in group_by:
            if label not in carried:
                ctx.findings.append(Finding(
                    "label-flow", f"{where}: alertmanager.groupBy",
                    f"groups by {label!r}, which no alert of the chart carries (every alert's result drops it): the "
                    "grouping does nothing", f"group by labels the alerts keep, or keep {label} in the rules' "
                    "aggregations"))
    for key, route in ordered:
        matchers = list(route.get("matchers") or [])
        rule_groups = route.get("ruleGroups")
        chosen = selected(matchers)
        if rule_groups:
            chosen = [a for a in chosen if groups_of.get(a) in rule_groups]
        named = {n for m in matchers for n in re.findall(r'^alertname=~?"([\w|]+)"$', m) for n in n.split("|")}
        ours = named - set(external)
        for alert in sorted(ours & set(alerts)):
            labels = label_sets[alert]
            for m in matchers:
                mm = MATCHER.match(m)
                if labels is not None and mm and mm.group(1) not in labels and \
                        _matches_static(m, alert, alerts[alert][1], labels) is False:
                    ctx.findings.append(Finding(
                        "label-flow", f"{where}: alertmanager.routes.{key}",
                        f"matcher {m} never matches alert {alert}: its result never has {mm.group(1)!r} (it can "
                        f"have: {', '.join(sorted(labels))})", f"keep {mm.group(1)} in {alert}'s aggregations, or "
                        "route on a label it carries"))
        if not named:
            carried = set().union(*[l for l in label_sets.values() if l is not None]) if label_sets else set()
            for m in matchers:
                mm = MATCHER.match(m)
                if mm and mm.group(1) not in carried and _matches_static(m, "", {}, frozenset()) is False \
                        and all(v is not None for v in label_sets.values()):
                    ctx.findings.append(Finding(
                        "label-flow", f"{where}: alertmanager.routes.{key}",
                        f"matcher {m}: no alert of the chart ever carries {mm.group(1)!r}",
                        "route on a label the alerts carry (static rule labels or labels the expression keeps)"))
        for alert in chosen:
            labels = label_sets[alert]
            if labels is None:
                continue
            info, rule = alerts[alert]
            if info.absent is None:
                continue
            # the series absent() makes carries only its equality matchers' labels and the static ones
            made = frozenset(info.absent | set(rule.get("labels") or {}) | ALERT_LABELS)
            for m in matchers:
                mm = MATCHER.match(m)
                if mm and mm.group(1) not in made and _matches_static(m, alert, rule, made) is False:
                    ctx.findings.append(Finding(
                        "absent-routing", f"{where}: alert {alert}",
                        f"the series absent() makes carries only {', '.join(sorted(made - ALERT_LABELS)) or 'no labels'}"
                        f", so alertmanager.routes.{key} ({m}), which routes the alert's other series, never "
                        "matches it: it falls through to another receiver",
                        f"give absent() an equality matcher {mm.group(1)}=\"...\" or the rule a static label "
                        f"{mm.group(1)}"))
    for key, inhibit in sorted((alertmanager.get("inhibitions") or {}).items()):
        if not isinstance(inhibit, dict) or not inhibit.get("enabled", True):
            continue
        equal = inhibit.get("equal") or []
        if "alertname" in equal:
            continue
        for side in ("sourceMatchers", "targetMatchers"):
            matchers = inhibit.get(side) or []
            for alert in selected(matchers):
                labels = label_sets[alert]
                if labels is None:
                    continue
                missing = [label for label in equal if label not in labels]
                if missing:
                    ctx.findings.append(Finding(
                        "label-flow", f"{where}: alertmanager.inhibitions.{key} ({side})",
                        f"equal {equal}: alert {alert} never carries {', '.join(map(repr, missing))} (it can have: "
                        f"{', '.join(sorted(labels))}), so the inhibition {'never mutes anything with it' if side == 'sourceMatchers' else 'mutes it across every ' + missing[0]}",
                        f"keep {missing[0]} in {alert}'s aggregations, or drop it from equal"))


# --- panels ------------------------------------------------------------------------------------------------

def _panels(dashboard: dict):
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", []) if panel.get("type") == "row" else []


def dashboard_queries(uid: str, dashboard: dict) -> list[tuple[str, str]]:
    """(where, expression) of every panel query and query variable of a dashboard."""
    out = []
    for var in (dashboard.get("templating") or {}).get("list", [])[1:]:
        query = var.get("query")
        query = query.get("query", "") if isinstance(query, dict) else str(query or "")
        if var.get("type") != "query" or not query:
            continue
        m = re.match(r"^\s*label_values\((.*),\s*\w+\)\s*$", query, re.S)
        if m:
            query = m.group(1)
        elif re.match(r"^\s*(label_names|metrics|query_result)\(", query):
            continue
        out.append((f"dashboard {uid}, variable {var.get('name')!r}", query))
    for panel in _panels(dashboard):
        for target in panel.get("targets", []) or []:
            expr = str(target.get("expr", "")).strip()
            if expr:
                out.append((f"dashboard {uid}, panel {panel.get('id')} {panel.get('title')!r}, target "
                            f"{target.get('refId')}", expr))
    return out


def check_dashboards(ctx: Context, dashboards: dict[str, dict], file_of) -> None:
    queries = [(f"{file_of(uid)}: {w}", e) for uid, d in dashboards.items() for w, e in dashboard_queries(uid, d)]
    promql.parse_many([e for _, e in queries])
    for where, expr in queries:
        check_expression(ctx, expr, where)
    # label_values(selector, label): the variable's values come from a label the selector's series must have
    for uid, dashboard in dashboards.items():
        for var in (dashboard.get("templating") or {}).get("list", [])[1:]:
            query = var.get("query")
            query = query.get("query", "") if isinstance(query, dict) else str(query or "")
            m = re.match(r"^\s*label_values\((.*),\s*(\w+)\)\s*$", query, re.S)
            if not m:
                continue
            ctx.where = f"{file_of(uid)}: dashboard {uid}, variable {var.get('name')!r}"
            info = Checker(ctx, m.group(1)).infer(promql.parse(m.group(1)).tree)
            if info.labels is not None and m.group(2) not in info.labels:
                ctx.add("unknown-label", None, "", f"label_values(..., {m.group(2)}): the selected series never "
                        f"have {m.group(2)!r} (they can have: {', '.join(sorted(info.labels))}), so the variable "
                        "has no values", "take the values from a label the series carry, or select other series")


# --- the lint check ----------------------------------------------------------------------------------------

def chart_groups(chart: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((chart / "files" / "rules").glob("*.json"))]


def run_all(root: Path, catalog, groups: list[dict], dashboards: dict[str, dict], environments: dict[str, dict],
            rule_sources: dict[str, str] | None = None, dashboard_sources: dict[str, str] | None = None,
            external: set[str] = frozenset()) -> list[Finding]:
    """Every check over rule groups, dashboards and each environment's ``alertmanager`` values."""
    ctx = Context(catalog)
    from .content.rules import CHART_RECORDS
    for record in CHART_RECORDS:   # recording rules the chart adds from values (one per denom)
        ctx.recorded[record] = (Info("vector", frozenset({"denom"}), True), frozenset())
    rule_sources = rule_sources or {}
    dashboard_sources = dashboard_sources or {}
    promql.parse_many([r["expr"] for g in groups for r in g["rules"]]
                      + [e for uid, d in dashboards.items() for _, e in dashboard_queries(uid, d)])
    alerts = check_rules(ctx, groups, lambda g: rule_sources.get(g, f"rule group {g}"))
    groups_of = {r["alert"]: g["name"] for g in groups for r in g["rules"] if "alert" in r}
    check_dashboards(ctx, dashboards, lambda uid: dashboard_sources.get(uid, f"dashboard {uid}"))
    for env, am in sorted(environments.items()):
        check_routing(ctx, alerts, am, env, groups_of, external)
    seen, out = set(), []
    for f in ctx.findings:
        if str(f) not in seen:
            seen.add(str(f))
            out.append(f)
    return out


def rule_sources(root: Path) -> dict[str, str]:
    """rule group -> the template that defines it (templates_src/rules/*.yaml.j2)."""
    found = {}
    for path in sorted((root / "templates_src" / "rules").glob("*.yaml.j2")):
        for name in re.findall(r"^\s*-?\s*name:\s*['\"]?([a-z0-9_.-]+)", path.read_text(encoding="utf-8"), re.M):
            found.setdefault(name, str(path.relative_to(root)))
    return found


def lint_check(ctx) -> None:
    """``generator lint`` check ``promql``."""
    from .build import load_sources
    from .content import catalog as catalog_mod
    from .content.routing import EXTERNAL_ALERTS
    from .errors import ValidationError
    from .values import merge
    src = load_sources(ctx.root)
    catalog = catalog_mod.load(src)
    groups = chart_groups(ctx.chart)
    dashboards = {p.stem: json.loads(p.read_text()) for p in sorted((ctx.chart / "files" / "dashboards").glob("*.json"))}
    base = src.defaults.data.get("alertmanager") or {}
    envs = {"values/defaults.yaml": base}
    for name, env in sorted(src.envs.items()):
        data = getattr(env, "data", None) or {}
        envs[f"values/{name}.yaml"] = merge(base, data.get("alertmanager") or {})
    sources = rule_sources(ctx.root)
    findings = run_all(ctx.root, catalog, groups, dashboards, envs, sources,
                       {uid: f"templates_src/dashboards/{uid}.yaml.j2" for uid in dashboards}, EXTERNAL_ALERTS)
    if findings:
        raise ValidationError(f"PromQL checks: {len(findings)} finding(s):\n  " + "\n  ".join(map(str, findings[:60]))
                              + (f"\n  ... {len(findings) - 60} more" if len(findings) > 60 else ""))
    exprs = sum(len(g["rules"]) for g in groups) + sum(len(dashboard_queries(u, d)) for u, d in dashboards.items())
    ctx.notes.append(f"promql: {exprs} expressions parsed (lezer-promql, {promql.processes_started()} parser "
                     f"process) and checked against the catalog; routing of {len(envs)} values files checked")
