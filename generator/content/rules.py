"""Prometheus rules: ``templates_src/rules/*.yaml.j2`` -> rule data in the chart.

A rules template renders ``groups:``, each with recording rules and alerts
in a compact form (``severity``, ``team``, ``summary``, ``description``,
``dashboard``, named ``params`` used as ``${name}`` in the expression).
The SLO groups come from ``templates_src/slos.yaml`` (``slos.py``). This
module checks each rule (names, severities, static summaries, metrics in the
catalog, recording rules defined, dashboards that exist) and writes
``chart/files/rules/<group>.json``; the chart applies the per-environment
overrides (enabled, for, thresholds, labels) and renders PrometheusRules.
"""
from __future__ import annotations

import json
import re

from .. import promql, tools
from ..errors import ValidationError
from ..promql import syntax_error
from . import slos as slo_spec

SEVERITIES = ("critical", "warning", "info", "none")   # none: heartbeats and inhibitors, routed to nobody
ALERT_NAME = re.compile(r"^[A-Z][A-Za-z0-9]{2,39}$")
RECORD_NAME = re.compile(r"^[a-z_]+:[a-z0-9_]+:[a-z0-9_]+$")
GROUP_NAME = re.compile(r"^[a-z][a-z0-9_.-]{0,62}$")
DURATION = r"^(([0-9]+)(ms|s|m|h|d|w|y))+$"
PARAM = re.compile(r"\$\{([A-Za-z][A-Za-z0-9]*)\}")
# a param inside a range or subquery, e.g. [${windowMinutes}m]: a whole number, or the rule does not parse
RANGE_PARAM = re.compile(r"\[[^\]]*\$\{([A-Za-z][A-Za-z0-9]*)\}")
# Prometheus expands rule labels and annotations as templates: values set per environment are data, so
# template code is refused (a label with {{ ... }} in it would make Prometheus reject the whole group);
# annotations may still use the plain {{ $labels.x }}, {{ $value }} and {{ $externalLabels.x }} forms.
LABEL_VALUE = r"^([^{]|\{[^{])*\{?$"
ANNOTATION_VALUE = (r"^([^{]|\{[^{]|\{\{-? *\$(labels\.[A-Za-z_][A-Za-z0-9_]*|value|externalLabels\.[A-Za-z_][A-Za-z0-9_]*)"
                    r"( *\| *(humanize|humanize1024|humanizeDuration|humanizePercentage|humanizeTimestamp))? *-?\}\})*\{?$")
ALERT_FIELDS = {"alert", "expr", "for", "keep_firing_for", "severity", "team", "service", "summary",
                "description", "dashboard", "params", "labels", "runbook", "meaning"}
RECORD_FIELDS = {"record", "expr", "labels"}
# placeholders a description may use besides its params: the hold time as set for the environment
HOLD_PLACEHOLDERS = ("for",)
# a number with a unit of time or a percent sign, written as text: it goes stale when the value in values/ changes
LITERAL_AMOUNT = re.compile(r"(?<![\w.$])\d+(\.\d+)?\s*(ms|s|m|h|d|w|y|min|mins|minutes?|hours?|seconds?|days?|weeks?"
                            r"|%)(?![\w])")


def literal_amount(description: str) -> str | None:
    """The first duration or percentage written as literal text, outside ``${...}`` and ``{{ ... }}``."""
    text = re.sub(r"\{\{.*?\}\}", " ", description, flags=re.S)
    text = PARAM.sub(" ", text)
    m = LITERAL_AMOUNT.search(text)
    return m.group(0) if m else None


MAX_RULES_PER_GROUP = 20
# recording rules the chart itself renders from values (templates/prometheus/rules.yaml), not from a template:
# record name -> the values key they come from
CHART_RECORDS = {"denom:virtengine_escrow_balance_minimum:minor_units": "rules.escrowMinimumBalance"}


def _check_alert(rule: dict, where: str, display: str) -> dict:
    name = rule.get("alert")
    unknown = set(rule) - ALERT_FIELDS
    if unknown:
        raise ValidationError(f"{where}: unknown field {sorted(unknown)[0]!r}; allowed: {', '.join(sorted(ALERT_FIELDS))}",
                              file=display)
    if not isinstance(name, str) or not ALERT_NAME.match(name):
        raise ValidationError(f"{where}: alert name {name!r} must be CamelCase, 3 to 40 letters and digits", file=display)
    for req in ("expr", "severity", "summary", "description", "team"):
        if not rule.get(req):
            raise ValidationError(f"alert {name}: missing {req!r}", file=display)
    if rule["severity"] not in SEVERITIES:
        raise ValidationError(f"alert {name}: severity {rule['severity']!r} is not allowed; allowed: "
                              f"{', '.join(SEVERITIES)}", file=display)
    if "{{" in rule["summary"]:
        raise ValidationError(f"alert {name}: summary must be a static sentence (put values in description)",
                              file=display)
    params = rule.get("params") or {}
    for key, value in params.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValidationError(f"alert {name}: param {key!r} must be a number, got {value!r}", file=display)
    for key, value in params.items():
        text, bounds = threshold_kind(key)
        if ("minimum" in bounds and value < bounds["minimum"]) or ("maximum" in bounds and value > bounds["maximum"]) \
                or ("exclusiveMinimum" in bounds and value <= bounds["exclusiveMinimum"]):
            raise ValidationError(f"alert {name}: param {key!r} = {value!r} is not {text} (its kind comes from its "
                                  "name, THRESHOLD_KINDS in generator/content/rules.py)", file=display)
    reserved = set(HOLD_PLACEHOLDERS) & set(params)
    if reserved:
        raise ValidationError(f"alert {name}: param {sorted(reserved)[0]!r} is reserved for the hold time", file=display)
    held = set(PARAM.findall(rule["expr"])) & set(HOLD_PLACEHOLDERS)
    if held:
        raise ValidationError(f"alert {name}: ${{{sorted(held)[0]}}} may only be used in the description",
                              file=display)
    literal = literal_amount(rule["description"])
    if literal:
        raise ValidationError(f"alert {name}: description writes {literal!r} as literal text; use the value "
                              "the rule uses (${param}, ${for}) or {{ $value }}, or leave the number out",
                              file=display)
    used = set(PARAM.findall(rule["expr"])) | (set(PARAM.findall(rule["description"])) - set(HOLD_PLACEHOLDERS))
    missing = used - set(params)
    if missing:
        raise ValidationError(f"alert {name}: ${{{sorted(missing)[0]}}} is used but not declared in params",
                              file=display)
    unused = set(params) - used
    if unused:
        raise ValidationError(f"alert {name}: param {sorted(unused)[0]!r} is declared but never used", file=display)
    return rule


_LABEL_REF = re.compile(r"\{\{\s*(\$labels\.[A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_URLQUERY = r"{{ \1 | urlquery }}"


def _dashboard_path(dashboard, display: str, alert: str) -> str:
    """``/d/<uid>?var-cluster={{ $labels.cluster }}&var-...``: the chart prefixes the Grafana URL."""
    if not isinstance(dashboard, dict) or not dashboard.get("uid"):
        raise ValidationError(f"alert {alert}: missing dashboard: {{uid: ..., vars: {{...}}}} "
                              "(the dashboard that shows the problem)", file=display)
    variables = {"cluster": "{{ $labels.cluster }}", **(dashboard.get("vars") or {})}
    # label values are URL-encoded when Prometheus fills them in: a '&' in a value stays in its variable.
    # cluster only when the alert has one (a single cluster whose series carry no cluster label): never
    # `var-cluster=` empty, which would select no cluster on the dashboard
    plain = {k: f"var-{k}={_LABEL_REF.sub(_URLQUERY, str(v))}" for k, v in sorted(variables.items())}
    if variables["cluster"] != "{{ $labels.cluster }}":
        return f"/d/{dashboard['uid']}?" + "&".join(plain.values())
    before = [text for k, text in plain.items() if k < "cluster"]
    after = [text for k, text in plain.items() if k > "cluster"]
    cluster = ("&" if before else "") + "var-cluster={{ . | urlquery }}" + ("&" if after and not before else "")
    query = ("&".join(before) + "{{ with $labels.cluster }}" + cluster + "{{ end }}"
             + ("&" if before and after else "") + "&".join(after))
    return f"/d/{dashboard['uid']}?{query}"


# Phrases that name the alert's cluster in a description, and the same phrase only when the alert has a
# cluster label: a single cluster whose series carry none reads "Node n1 has ...", never "in cluster ".
_CLUSTER_PHRASES = (
    (" in cluster {{ $labels.cluster }}", "{{ with $labels.cluster }} in cluster {{ . }}{{ end }}"),
    (" (cluster {{ $labels.cluster }})", "{{ with $labels.cluster }} (cluster {{ . }}){{ end }}"),
    ("Cluster {{ $labels.cluster }}: ", "{{ with $labels.cluster }}Cluster {{ . }}: {{ end }}"),
)


def cluster_optional(description: str, alert: str, display: str) -> str:
    """The description with each cluster phrase shown only when the alert carries a cluster label."""
    for phrase, optional in _CLUSTER_PHRASES:
        description = description.replace(phrase, optional)
    if "$labels.cluster" in description.replace("{{ with $labels.cluster }}", ""):
        raise ValidationError(f"alert {alert}: the description names the cluster outside the phrases that "
                              f"disappear without a cluster label; write one of: "
                              f"{', '.join(repr(p.strip()) for p, _ in _CLUSTER_PHRASES)}", file=display)
    return description


def _check_dashboard(src, rule: dict, display: str) -> None:
    """An alert's dashboard_url must open a dashboard this chart ships."""
    uid = (rule.get("dashboard") or {}).get("uid") if isinstance(rule.get("dashboard"), dict) else None
    folder = src.templates / "dashboards"
    shipped = {p.name.split(".", 1)[0] for p in folder.glob("*.j2")} if folder.is_dir() else set()
    if uid and uid not in shipped:
        raise ValidationError(f"alert {rule['alert']}: dashboard {uid!r} does not exist; dashboards: "
                              f"{', '.join(sorted(shipped))}", file=display)


def build(src, out) -> None:
    catalog = out.shared["catalog"]
    groups: dict[str, dict] = {}
    alerts: dict[str, dict] = {}
    recorded: set[str] = set(CHART_RECORDS)
    sources: list[tuple[str, str, dict]] = []
    out.shared["slos"] = slo_spec.load(src)
    for group in slo_spec.rule_groups(out.shared["slos"]) if out.shared["slos"] else ():
        sources.append((slo_spec.FILE, slo_spec.FILE, group))
        recorded.update(r["record"] for r in group["rules"] if "record" in r)
    for path in sorted((src.templates / "rules").glob("*.yaml.j2")):
        name = str(path.relative_to(src.templates))
        display = src.renderer.display(name)
        doc = src.renderer.render_data(name, {"slos": out.shared.get("slos", {})})
        if not isinstance(doc, dict) or not isinstance(doc.get("groups"), list):
            raise ValidationError("a rules template renders a mapping with a 'groups:' list", file=display)
        for group in doc["groups"]:
            sources.append((name, display, group))
            for rule in group.get("rules", []):
                if "record" in rule:
                    recorded.add(rule["record"])
    # every expression of every group parsed in one request to the parser process
    promql.parse_many([str(r["expr"]) for _, _, g in sources for r in (g.get("rules") or [])
                       if isinstance(r, dict) and r.get("expr") is not None])
    for name, display, group in sources:
        gname = group.get("name")
        if not isinstance(gname, str) or not GROUP_NAME.match(gname):
            raise ValidationError(f"group name {gname!r} must be lowercase letters, digits, '.', '_' or '-'",
                                  file=display)
        if gname in groups:
            raise ValidationError(f"group {gname!r} is defined twice", file=display)
        rules = group.get("rules") or []
        if len(rules) > MAX_RULES_PER_GROUP:
            raise ValidationError(f"group {gname}: {len(rules)} rules; at most {MAX_RULES_PER_GROUP} "
                                  "a group (split it)", file=display)
        emitted = []
        for i, rule in enumerate(rules):
            where = f"group {gname}, rule {i + 1}"
            if "record" in rule:
                unknown = set(rule) - RECORD_FIELDS
                if unknown or not RECORD_NAME.match(str(rule["record"])):
                    raise ValidationError(f"{where}: recording rule {rule.get('record')!r} must be named "
                                          "level:metric:operations with only record, expr, labels", file=display)
                _check_syntax(rule["expr"], f"recording rule {rule['record']}", display)
                catalog.check_expr(rule["expr"], f"recording rule {rule['record']}", recorded=recorded, file=display)
                emitted.append({"record": rule["record"], "expr": rule["expr"].strip(),
                                "labels": rule.get("labels") or {}})
                continue
            rule = _check_alert(rule, where, display)
            _check_dashboard(src, rule, display)
            if rule["alert"] in alerts:
                raise ValidationError(f"alert {rule['alert']} is defined twice", file=display)
            _check_syntax(rule["expr"], f"alert {rule['alert']}", display)
            catalog.check_expr(rule["expr"], f"alert {rule['alert']}", recorded=recorded, file=display)
            item = {
                "alert": rule["alert"],
                "expr": rule["expr"].strip(),
                "for": rule.get("for", "0m"),
                "keep_firing_for": rule.get("keep_firing_for", ""),
                "severity": rule["severity"],
                "labels": {"team": rule["team"], "service": rule.get("service", rule["team"]),
                           **(rule.get("labels") or {})},
                "summary": rule["summary"].strip(),
                "description": cluster_optional(rule["description"].strip(), rule["alert"], display),
                "runbook": rule.get("runbook", rule["alert"]),
                "dashboard": {"path": _dashboard_path(rule.get("dashboard"), display, rule["alert"])},
                "params": rule.get("params") or {},
                "group": gname,
            }
            alerts[rule["alert"]] = dict(item, meaning=str(rule.get("meaning") or rule["summary"]).strip(),
                                         source=display)
            emitted.append(item)
        groups[gname] = {"name": gname, "interval": group.get("interval", ""), "rules": emitted}
        out.add(f"chart/files/rules/{gname}.json", _final_group(groups[gname]))
        templates = _templates(groups[gname])
        if templates:
            out.add(f"chart/{RULE_TEMPLATES}/{gname}.json", templates)
    out.add(f"chart/{RULES_INDEX}", _index(groups))
    check_with_promtool(groups, {g: d for _, d, grp in sources for g in [grp.get("name")]})
    out.shared["rule_groups"] = groups
    out.shared["alerts"] = alerts
    out.shared["recorded"] = recorded
    out.schema_extensions[("rules", "groups")] = {
        g: {"type": "object", "additionalProperties": False, "description": f"rule group {g}",
            "properties": {
                "enabled": {"type": "boolean", "default": True, "description": "ship this group"},
                "interval": {"type": "string", "pattern": DURATION, "description": "evaluation interval"},
                "labels": {"type": "object", "additionalProperties": {"type": "string", "pattern": LABEL_VALUE},
                           "description": "extra labels on every rule of the group"}}}
        for g in groups}
    out.schema_extensions[("rules", "alerts")] = {
        a: {"type": "object", "additionalProperties": False,
            "description": f"{item['severity']} alert: {item['summary']}",
            "properties": {
                "enabled": {"type": "boolean", "default": True, "description": "ship this alert"},
                "for": {"type": "string", "pattern": DURATION, "default": item["for"],
                        "description": "how long the condition must hold"},
                "keepFiringFor": {"type": "string", "pattern": DURATION,
                                  "description": "keep firing this long after the condition clears"},
                "severity": {"type": "string", "enum": list(SEVERITIES), "default": item["severity"],
                             "description": "severity label (routes the alert)"},
                "thresholds": {"type": "object", "additionalProperties": False,
                               "description": "named thresholds of the expression",
                               "properties": {p: _threshold_schema(p, v, item["expr"])
                                              for p, v in item["params"].items()}},
                "labels": {"type": "object", "additionalProperties": {"type": "string", "pattern": LABEL_VALUE},
                           "description": "extra labels"},
                "annotations": {"type": "object",
                                "additionalProperties": {"type": "string", "pattern": ANNOTATION_VALUE},
                                "description": "extra annotations"}}}
        for a, item in alerts.items()}


# The chart ships each group in its final form: what Helm renders with no override, thresholds at their
# defaults, the URL prefixes as placeholders (the chart puts global.runbookUrl / global.grafanaUrl in).
# With nothing in values touching a group, the chart copies that text as it is (no per-rule work); the
# index (alert -> group) finds the groups that overrides touch, rebuilt rule by rule in the chart with the
# ${param} templates of expression and description (files/rule-templates/<group>.json) where thresholds are set.
RULES_INDEX = "files/rules-index.json"
RULE_TEMPLATES = "files/rule-templates"
RUNBOOK_URL = "@@VEMON_RUNBOOK_URL@@"
GRAFANA_URL = "@@VEMON_GRAFANA_URL@@"
# every alert's `environment` label: global.environment, put in by the chart (never a ruleLabels copy per file)
ENVIRONMENT = "@@VEMON_ENVIRONMENT@@"


def _chart_json(data) -> str:
    """One line of ASCII JSON: Helm pastes it into a manifest as a YAML flow node."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True) + "\n"


def param_text(value) -> str:
    """A threshold as the chart prints it (Go's %v of a float64; whole numbers as integers)."""
    number = float(value)
    if number.is_integer() and abs(number) < 2 ** 63:
        return str(int(number))
    return repr(number)


def _substitute(text: str, params: dict, hold: str | None = None) -> str:
    for key, value in params.items():
        text = text.replace("${%s}" % key, param_text(value))
    if hold is not None:
        text = text.replace("${for}", hold)
    return text


def final_rule(rule: dict) -> dict:
    """A rule as Helm renders it without overrides (templates/prometheus/rules.yaml, slow path)."""
    if "record" in rule:
        return {"record": rule["record"], "expr": rule["expr"], "labels": dict(rule["labels"])}
    params = rule["params"]
    final = {
        "alert": rule["alert"],
        "expr": _substitute(rule["expr"], params),
        "for": rule["for"],
        "labels": {**rule["labels"], "severity": rule["severity"], "environment": ENVIRONMENT},
        "annotations": {
            "summary": rule["summary"],
            "description": _substitute(rule["description"], params, rule["for"]),
            "runbook_url": f"{RUNBOOK_URL}/{rule['runbook']}.md",
            "dashboard_url": f"{GRAFANA_URL}{rule['dashboard']['path']}",
        },
    }
    if rule["keep_firing_for"]:
        final["keep_firing_for"] = rule["keep_firing_for"]
    return final


def _final_group(group: dict) -> str:
    spec = {"name": group["name"], "rules": [final_rule(r) for r in group["rules"]]}
    if group["interval"]:
        spec["interval"] = group["interval"]
    return _chart_json(spec)


def _index(groups: dict) -> str:
    """alert -> group (the chart reads it to find the groups that per-alert settings touch)."""
    alerts = {rule["alert"]: gname for gname, group in groups.items() for rule in group["rules"] if "alert" in rule}
    # alert -> the dashboard its dashboard_url opens: the chart drops the link when that dashboard is turned off
    dashboards = {rule["alert"]: rule["dashboard"]["path"].split("/")[2].split("?")[0]
                  for group in groups.values() for rule in group["rules"] if "alert" in rule}
    return _chart_json({"alerts": alerts, "dashboards": dashboards,
                        "slow": {g: True for g, group in groups.items() if not group["rules"]}})


def _templates(group: dict) -> str | None:
    """The ${param} / ${for} templates of a group's expressions and descriptions, for thresholds and hold
    times set in values."""
    alerts = {rule["alert"]: {"params": rule["params"], "expr": rule["expr"], "description": rule["description"]}
              for rule in group["rules"]
              if "alert" in rule and (rule["params"] or "${for}" in rule["description"])}
    return _chart_json(alerts) if alerts else None


def check_with_promtool(groups: dict, files: dict[str, str]) -> None:
    """``promtool check rules`` once over every group as the chart ships it (thresholds at their defaults): the
    full Prometheus 2.42 checks the grammar alone does not make (argument types, a range where a vector is
    needed, unknown functions). A refusal names the group's template.

    A group promtool has passed before, byte for byte and with the same promtool version, is not sent again
    (``toolcache``); the others go to one ``promtool check rules`` run."""
    import tempfile
    from pathlib import Path
    import yaml
    from .. import toolcache
    finals = [_final_group(g) for g in groups.values()]
    if not finals:
        return
    promtool = tools.find("promtool")
    version = toolcache.promtool_version(promtool) if toolcache.enabled() else ""
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    todo: list[tuple[dict, str]] = []
    for final in finals:
        # the file promtool reads is a function of the group's JSON and of the code that writes it (the YAML
        # dumper included): the key covers both, so no group is dumped to YAML only to compute its key
        key = toolcache.sha(version, "check rules", toolcache.code_version(), final) if toolcache.enabled() else ""
        if not toolcache.passed(key):
            todo.append((json.loads(final), key))
    if not todo:
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rules.yaml"
        path.write_text(yaml.dump({"groups": [spec for spec, _ in todo]}, Dumper=dumper, sort_keys=False),
                        encoding="utf-8")
        proc = tools.run([promtool, "check", "rules", str(path)], check=False)
    if proc.returncode == 0:
        for _, key in todo:
            toolcache.record_pass(key)
        return
    output = (proc.stdout + proc.stderr).strip()
    m = re.search(r'group "([^"]+)", rule (\d+), "([^"]*)": (.*)', output)
    if m:
        raise ValidationError(f"group {m.group(1)}, rule {m.group(2)} ({m.group(3)}): promtool check rules: "
                              f"{m.group(4).strip()}", file=files.get(m.group(1)))
    raise ValidationError(f"promtool check rules refused the rule groups:\n{output[:3000]}")


def _check_syntax(expr: str, where: str, display: str) -> None:
    """An expression the PromQL grammar refuses fails the render, with line and column."""
    problem = syntax_error(str(expr))
    if problem:
        raise ValidationError(f"{where}: expression does not parse: {problem}", file=display)


# What a threshold may be, by its name: the one source of the values schema (values.schema.json, checked by
# Helm at install) and of the generator's own validation of values/<env>.yaml. First match wins.
THRESHOLD_KINDS: list[tuple[re.Pattern, str, dict]] = [
    (re.compile(r"(Ratio|Fraction|Utilisation|PerWindow)$"), "a ratio from 0 to 1", {"minimum": 0, "maximum": 1}),
    (re.compile(r"Percent$"), "a percentage from 0 to 100", {"minimum": 0, "maximum": 100}),
    (re.compile(r"(Seconds|Minutes|Hours|Ahead|Intervals|Window)$"), "a positive amount",
     {"exclusiveMinimum": 0}),
    (re.compile(r""), "a count, 0 or more", {"minimum": 0}),
]


def threshold_kind(param: str) -> tuple[str, dict]:
    for pattern, text, bounds in THRESHOLD_KINDS:
        if pattern.search(param):
            return text, dict(bounds)
    raise AssertionError(param)  # the last kind matches every name


def _threshold_schema(param: str, default, expr: str) -> dict:
    """A number within the bounds of its kind (``THRESHOLD_KINDS``); a whole number from 1 to 10000 where it
    is the length of a range (``[${p}m]``)."""
    if param in RANGE_PARAM.findall(expr):
        return {"type": "integer", "minimum": 1, "maximum": 10000, "default": default,
                "description": f"{param} (default {default}; a whole number: the length of a range)"}
    text, bounds = threshold_kind(param)
    return {"type": "number", **bounds, "default": default, "description": f"{param} (default {default}; {text})"}
