"""Alertmanager: notification templates and receiver shapes shipped as chart files.

The routing tree, receivers and inhibitions are built by the chart from
``.Values.alertmanager`` (``templates/alertmanager/``), so every environment
and every ``--set`` gets its own. What is the same everywhere is data here:

- ``templates_src/alertmanager/*.tmpl``: the Go templates that format
  notifications, copied to ``chart/files/alertmanager/`` (Helm never parses
  their ``{{ }}``; the configuration Secret carries them next to
  ``alertmanager.yaml``);
- ``templates_src/alertmanager/receivers.yaml``: the fields of each kind of
  receiver (PagerDuty, Opsgenie, webhook) that do not depend on the team,
  emitted as ``chart/files/alertmanager/receivers.json`` (with the fields of
  Grafana contact points under ``grafana``).

The stage checks that every template a receiver uses is defined, and that
every alert name the routing values match on (``alertname="X"``) and every
rule group a route names exists in the rules, so renaming an alert cannot
silently break its route or inhibition; and that no route sends the alerts
about a failing vendor (``integration="pagerduty"``) to that same vendor.
"""
from __future__ import annotations

import re

from ..errors import ValidationError
from ..yamlio import dump_json, load_yaml_file

KINDS = ("pagerduty", "opsgenie", "webhook", "grafana")
TEMPLATE_USE = re.compile(r'\{\{-?\s*template\s+"([^"]+)"')
TEMPLATE_DEF = re.compile(r'\{\{-?\s*define\s+"([^"]+)"')
ALERTNAME = re.compile(r'^alertname(=~|=)"(.*)"$')
# alerts of kube-prometheus-stack's default rules, left on beside this chart (integrations/kube-prometheus-stack),
# that the routing may name although this chart does not define them: InfoInhibitor (severity none) fires while
# info alerts fire without a warning or critical one beside them; KubePodNotReady (every namespace) fires with our
# KubePodCrashLooping or VirtEnginePodPending in one incident
EXTERNAL_ALERTS = {"InfoInhibitor", "KubePodNotReady"}


def _strings(node):
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for v in node.values():
            yield from _strings(v)
    elif isinstance(node, list):
        for v in node:
            yield from _strings(v)


def _alert_names(matcher: str) -> list[str]:
    """Alert names a matcher names literally (``alertname="X"`` or ``alertname=~"A|B"`` without regex)."""
    m = ALERTNAME.match(matcher)
    if not m:
        return []
    if m.group(1) == "=":
        return [m.group(2)]
    parts = m.group(2).split("|")
    return [p for p in parts if re.fullmatch(r"[A-Za-z0-9]+", p)]


INTEGRATION = re.compile(r'^integration="(pagerduty|opsgenie)"$')


def check_failover(routes: dict, where: str) -> None:
    """A route for a failing vendor's alerts (matcher ``integration="<vendor>"``) must not notify that vendor."""
    for key, route in sorted(routes.items()):
        if not isinstance(route, dict) or route.get("enabled") is False:
            continue
        for matcher in route.get("matchers") or []:
            m = INTEGRATION.match(matcher)
            if m and route.get("notify") == m.group(1):
                raise ValidationError(f"routes the alerts about failing {m.group(1)} notifications to {m.group(1)} "
                                      "itself, which cannot deliver them; notify the other vendor (or none)",
                                      file=where, key=f"alertmanager.routes.{key}.notify")


def check_values(alertmanager: dict, alerts: set[str], groups: set[str], where: str) -> None:
    """Alert names and rule groups the routing values refer to must exist."""
    for key, route in sorted((alertmanager.get("routes") or {}).items()):
        for group in route.get("ruleGroups") or []:
            if group not in groups:
                raise ValidationError(f"rule group {group!r} does not exist; groups: {', '.join(sorted(groups))}",
                                      file=where, key=f"alertmanager.routes.{key}.ruleGroups")
        for matcher in route.get("matchers") or []:
            for name in _alert_names(matcher):
                if name not in alerts and name not in EXTERNAL_ALERTS:
                    raise ValidationError(f"no alert named {name!r} (in {matcher}); a renamed or removed alert?",
                                          file=where, key=f"alertmanager.routes.{key}.matchers")
    for key, rule in sorted((alertmanager.get("inhibitions") or {}).items()):
        for side in ("sourceMatchers", "targetMatchers"):
            for matcher in rule.get(side) or []:
                for name in _alert_names(matcher):
                    if name not in alerts and name not in EXTERNAL_ALERTS:
                        raise ValidationError(f"no alert named {name!r} (in {matcher}); a renamed or removed alert?",
                                              file=where, key=f"alertmanager.inhibitions.{key}.{side}")


def build(src, out) -> None:
    folder = src.templates / "alertmanager"
    defined: set[str] = set()
    for path in sorted(folder.glob("*.tmpl")):
        text = path.read_text(encoding="utf-8")
        names = TEMPLATE_DEF.findall(text)
        if not names:
            raise ValidationError("an Alertmanager template file defines named templates ({{ define \"...\" }})",
                                  file=str(path.relative_to(src.root)))
        defined.update(names)
        out.add(f"chart/files/alertmanager/{path.name}", text)
    shapes_path = folder / "receivers.yaml"
    display = str(shapes_path.relative_to(src.root))
    shapes = load_yaml_file(shapes_path, display)
    if not isinstance(shapes, dict) or set(shapes) != set(KINDS):
        raise ValidationError(f"expected the receiver kinds {', '.join(KINDS)} as top-level keys", file=display)
    for kind, shape in shapes.items():
        for text in _strings(shape):
            for name in TEMPLATE_USE.findall(text) if kind != "grafana" else ():
                if name not in defined:
                    raise ValidationError(f"{kind}: template {name!r} is not defined in templates_src/alertmanager/"
                                          f"*.tmpl; defined: {', '.join(sorted(defined))}", file=display, key=kind)
    out.add("chart/files/alertmanager/receivers.json", dump_json(shapes))
    # for the same checks at install (templates/validate.yaml): alerts the routing may name besides the chart's
    out.add("chart/files/checks/routing.json", dump_json({"externalAlerts": sorted(EXTERNAL_ALERTS)}))
    alerts = set(out.shared.get("alerts", {}))
    groups = set(out.shared.get("rule_groups", {}))
    base_routes = (src.defaults.data.get("alertmanager") or {}).get("routes") or {}
    check_failover(base_routes, "values/defaults.yaml")
    for name, env in sorted(src.envs.items()):
        data = getattr(env, "data", None) or {}
        routes = (data.get("alertmanager") or {}).get("routes") if isinstance(data, dict) else None
        if isinstance(routes, dict):
            merged = {k: {**(base_routes.get(k) or {}), **(v or {})} for k, v in routes.items() if isinstance(v, dict)}
            check_failover(merged, f"values/{name}.yaml")
    if alerts:
        check_values(src.defaults.data.get("alertmanager") or {}, alerts, groups, "values/defaults.yaml")
        for name, env in sorted(src.envs.items()):
            data = getattr(env, "data", None) or {}
            if isinstance(data, dict) and isinstance(data.get("alertmanager"), dict):
                check_values(data["alertmanager"], alerts, groups, f"values/{name}.yaml")
