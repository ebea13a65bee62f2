"""SLOs: ``templates_src/slos.yaml`` -> SLI recording rules and burn-rate alerts.

Each SLO (objective, window, a good/total or error/total query with
``${window}`` in place of the range) becomes, like sloth does it:

- ``slo:sli_error:ratio_rate<w>{slo="<name>"}`` for the windows in
  ``WINDOWS``: the error ratio, aggregated ``by (cluster)``; no series while
  there is no traffic (a zero denominator is no evidence of an outage); the
  5m ratio reads the SLI's query, every longer window (``RECORDED_WINDOWS``)
  sums the recorded 5m errors and events below, so its cost does not grow
  with the number of nodes;
- ``slo:sli_total:rate5m`` and ``slo:sli_errors:rate5m``: events and errors a
  second over 5m, and ``slo:error_budget_remaining:ratio{slo="<name>"}``:
  1 - (errors / events over the SLO window) / budget, weighted by events (a
  busy good hour outweighs a quiet bad one), can go negative;
- ``slo:sli_total:rate1h{slo="<name>"}`` when the SLO sets
  ``minEventsPerHour``: the SLI's events a second over 1h, ``by (cluster)``;
- multi-window, multi-burn-rate alerts (Google SRE workbook, chapter 5):
  page (critical) at 14.4x over 1h and 5m or 6x over 6h and 30m, ticket
  (warning) at 3x over 1d and 2h or 1x over 3d and 6h. With
  ``minEventsPerHour`` the page needs at least that many events in the last
  hour (``and on (cluster)``): on a quiet cluster one failed event is a 100%
  error ratio, which is no reason to wake anyone; the tickets keep no guard
  (their long windows gather enough events).

``rule_groups`` returns the groups in the compact form ``rules.py`` checks;
an SLO without an alert, an unknown field or a bad objective is an error
naming the file, line and key.
"""
from __future__ import annotations

import re
import textwrap

from ..errors import ValidationError
from ..yamlio import line_of, load_yaml_file

FILE = "templates_src/slos.yaml"
WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")
# windows whose error ratio is summed from the recorded 5m events and errors (one series per cluster) instead of
# rating the raw counters of every node again: every window longer than 5m, those of the page alert included.
# Their cost no longer grows with the nodes (the chain-state counters are deduplicated once per evaluation, in
# the 5m records), and a 3d window reads one recorded series, not 3 days of every node's buckets. The ratio of
# the sums weighs each 5m slice by its events, as the raw ratio does; it differs from it only at the window's
# edges (the first and last 5 minutes are weighed in part). Only the 5m ratio reads the SLI's own query.
RECORDED_WINDOWS = ("30m", "1h", "2h", "6h", "1d", "3d")
# (alert kind, severity, [(burn factor, long window, short window)], for, keep_firing_for)
# keep_firing_for: one incident is one firing episode (one PagerDuty incident). At low volume the short window's
# ratio dips under the burn line between two failed events while the long window still burns; without it every
# dip resolved the page and the next failure opened a new incident (8 pages a week in prod for one day of late
# orders). The page stays open 30 minutes after its condition last held, the ticket two hours.
BURN_RATES = {
    "page": ("critical", [(14.4, "1h", "5m"), (6, "6h", "30m")], "2m", "30m"),
    "ticket": ("warning", [(3, "1d", "2h"), (1, "3d", "6h")], "15m", "2h"),
}
FIELDS = {"summary", "meaning", "objective", "window", "team", "service", "dashboard", "sli", "alerts",
          "minEventsPerHour"}
NAME = re.compile(r"^[a-z][a-z0-9_]{1,40}$")
DURATION = re.compile(r"^[0-9]+[dhw]$")
# an exact match on a histogram bound or a summary quantile: one of the two spellings only (Prometheus 2 vs 3)
ONE_SPELLING = re.compile(r"\b(le|quantile)\s*=\s*\"")


def load(src) -> dict[str, dict]:
    path = src.root / FILE
    if not path.is_file():
        return {}
    data = load_yaml_file(path, FILE)
    slos = data.get("slos") if isinstance(data, dict) else None
    if not isinstance(slos, dict) or not slos:
        raise ValidationError("expected a top-level 'slos:' mapping with at least one SLO", file=FILE, line=1)
    result = {}
    for name, spec in slos.items():
        line = line_of(data, ["slos", name])
        key = f"slos.{name}"
        if not NAME.match(str(name)):
            raise ValidationError("an SLO name is lowercase letters, digits and '_'", file=FILE, line=line, key=key)
        if not isinstance(spec, dict):
            raise ValidationError("an SLO is a mapping", file=FILE, line=line, key=key)
        unknown = set(spec) - FIELDS
        if unknown:
            raise ValidationError(f"unknown field {sorted(unknown)[0]!r}; allowed: {', '.join(sorted(FIELDS))}",
                                  file=FILE, line=line, key=key)
        for req in ("summary", "objective", "window", "team", "dashboard", "sli"):
            if not spec.get(req):
                raise ValidationError(f"missing {req!r}", file=FILE, line=line, key=key)
        objective = spec["objective"]
        if isinstance(objective, bool) or not isinstance(objective, (int, float)) or not 0.9 <= objective <= 0.9999:
            raise ValidationError(f"objective must be a fraction between 0.9 and 0.9999, got {objective!r}",
                                  file=FILE, line=line_of(data, ["slos", name, "objective"]), key=f"{key}.objective")
        if "minEventsPerHour" in spec:
            minimum = spec["minEventsPerHour"]
            if isinstance(minimum, bool) or not isinstance(minimum, (int, float)) or not minimum > 0 \
                    or minimum != minimum or minimum == float("inf"):
                raise ValidationError(f"minEventsPerHour must be a positive number of SLI events an hour "
                                      f"(the page alert's minimum traffic), got {minimum!r}",
                                      file=FILE, line=line_of(data, ["slos", name, "minEventsPerHour"]),
                                      key=f"{key}.minEventsPerHour")
        if not DURATION.match(str(spec["window"])):
            raise ValidationError(f"window must be a duration in days or weeks like 30d, got {spec['window']!r}",
                                  file=FILE, line=line, key=f"{key}.window")
        sli = spec["sli"]
        if not isinstance(sli, dict) or not sli.get("total") or bool(sli.get("good")) == bool(sli.get("error")) \
                or set(sli) - {"good", "error", "total"}:
            raise ValidationError("sli needs 'total' and exactly one of 'good' or 'error'",
                                  file=FILE, line=line, key=f"{key}.sli")
        for part, query in sli.items():
            if "${window}" not in str(query):
                raise ValidationError(f"sli.{part} must contain ${{window}} where the range goes",
                                      file=FILE, line=line, key=f"{key}.sli.{part}")
            exact = ONE_SPELLING.search(str(query))
            if exact:
                raise ValidationError(f"sli.{part} selects {exact.group(0)}...: Prometheus 3 stores whole-number "
                                      f"bounds as {exact.group(1)}=\"10.0\" where Prometheus 2 stored "
                                      f"{exact.group(1)}=\"10\"; match both, e.g. {exact.group(1)}=~\"10|10\\\\.0\"",
                                      file=FILE, line=line, key=f"{key}.sli.{part}")
            if "by (cluster" not in str(query):
                raise ValidationError(f"sli.{part} must aggregate `by (cluster)` so each cluster has its own SLI",
                                      file=FILE, line=line, key=f"{key}.sli.{part}")
        alerts = spec.get("alerts") or {}
        if not isinstance(alerts, dict) or not alerts:
            raise ValidationError("this SLO has no alert: set alerts.page and/or alerts.ticket to an alert name "
                                  "(an SLO nobody is told about is not an objective)", file=FILE, line=line,
                                  key=f"{key}.alerts")
        bad = set(alerts) - set(BURN_RATES)
        if bad:
            raise ValidationError(f"unknown alert kind {sorted(bad)[0]!r}; allowed: {', '.join(BURN_RATES)}",
                                  file=FILE, line=line, key=f"{key}.alerts")
        result[name] = dict(spec, name=name)
    return result


def _ratio(spec: dict, window: str) -> str:
    sli = spec["sli"]
    total = sli["total"].replace("${window}", window).strip()
    if sli.get("error"):
        errors = sli["error"].replace("${window}", window).strip()
        # no error series yet (a labelled counter appears at its first increment) counts as zero errors
        return f"({errors} or ({total}) * 0)\n/\n({total} > 0)"
    good = sli["good"].replace("${window}", window).strip()
    # no `or ... * 0` here: a good series that does not exist (a bucket bound spelt otherwise, a renamed
    # metric) is no data, not 100% errors
    return f"clamp_min(\n  1 - ({good})\n  / ({total} > 0),\n  0\n)"


def _recorded_ratio(sel: str, window: str) -> str:
    """Error ratio over ``window`` from the recorded 5m errors and events of the SLO (weighted by events, as the
    error budget): no series while there were no events, as the raw form."""
    return (f"sum_over_time(slo:sli_errors:rate5m{sel}[{window}])\n"
            f"/ on (cluster)\n(sum_over_time(slo:sli_total:rate5m{sel}[{window}]) > 0)")


def _number(value: float) -> str:
    return f"{value:g}"


def rule_groups(slos: dict[str, dict]) -> list[dict]:
    groups = []
    alerts = []
    for name, spec in slos.items():
        sel = f'{{slo="{name}"}}'
        budget = 1 - spec["objective"]
        rules = [{"record": f"slo:sli_error:ratio_rate{w}", "expr": _ratio(spec, w), "labels": {"slo": name}}
                 for w in WINDOWS if w not in RECORDED_WINDOWS]
        # the budget weighs events, not minutes: errors and events a second over 5m, recorded every evaluation,
        # summed over the SLO window (the evaluation interval and the 5m overlap cancel out in the ratio); the
        # events only count while the SLI is defined (the error ratio exists). Rules of a group run in order:
        # these come before the windows that read them.
        total5m = spec["sli"]["total"].replace("${window}", "5m").strip()
        rules.append({"record": "slo:sli_total:rate5m", "labels": {"slo": name},
                      "expr": f"{total5m}\nand on (cluster)\nslo:sli_error:ratio_rate5m{sel}"})
        rules.append({"record": "slo:sli_errors:rate5m", "labels": {"slo": name},
                      "expr": f"slo:sli_error:ratio_rate5m{sel}\n* on (cluster)\nslo:sli_total:rate5m{sel}"})
        rules += [{"record": f"slo:sli_error:ratio_rate{w}", "expr": _recorded_ratio(sel, w), "labels": {"slo": name}}
                  for w in WINDOWS if w in RECORDED_WINDOWS]
        rules.append({"record": "slo:error_budget_remaining:ratio", "labels": {"slo": name},
                      "expr": f"1 - (\n  sum_over_time(slo:sli_errors:rate5m{sel}[{spec['window']}])\n"
                              f"  / on (cluster)\n  (sum_over_time(slo:sli_total:rate5m{sel}[{spec['window']}]) > 0)\n"
                              f") / {_number(budget)}"})
        minimum = spec.get("minEventsPerHour")
        if minimum is not None:
            rules.append({"record": "slo:sli_total:rate1h", "labels": {"slo": name},
                          "expr": spec["sli"]["total"].replace("${window}", "1h").strip()})
        groups.append({"name": f"virtengine.slo.{name}", "rules": rules})
        for kind, alert_name in spec["alerts"].items():
            severity, rates, hold, keep = BURN_RATES[kind]
            conditions = [
                f"(\n  slo:sli_error:ratio_rate{long}{sel} > ({_number(factor)} * {_number(budget)})\n"
                f"  and\n  slo:sli_error:ratio_rate{short}{sel} > ({_number(factor)} * {_number(budget)})\n)"
                for factor, long, short in rates]
            windows = " or ".join(f"{_number(f)}x over {long} and {short}" for f, long, short in rates)
            percent = f"{spec['objective'] * 100:g}%"
            expr = "\nor\n".join(conditions)
            guard = ""
            if kind == "page" and minimum is not None:
                # `and` binds tighter than `or`: the guard applies to both burn conditions
                expr = (f"(\n{textwrap.indent(expr, '  ')}\n)\nand on (cluster)\n"
                        f"(slo:sli_total:rate1h{sel} * 3600 >= {_number(minimum)})")
                guard = (f" The page needs at least {_number(minimum)} events an hour in the cluster "
                         "(one failure on a quiet cluster is no outage).")
            alerts.append({
                "alert": alert_name,
                "expr": expr,
                "for": hold,
                "keep_firing_for": keep,
                "severity": severity,
                "team": spec["team"],
                "service": spec.get("service", spec["team"]),
                "labels": {"slo": name, "burn": "fast" if kind == "page" else "slow"},
                "summary": (f"The {name.replace('_', ' ')} SLO is burning its error budget "
                            f"{'fast: it will be gone within days' if kind == 'page' else 'faster than it refills'}."),
                # no number in the text but the value: the objective, windows and burn rates are in the meaning
                "description": (f"SLO {name} in cluster {{{{ $labels.cluster }}}}: error ratio "
                                "{{ $value | humanizePercentage }} over the long window; "
                                + ("at this burn the error budget of the SLO window is gone within days."
                                   if kind == "page" else
                                   "the error budget of the SLO window is spent faster than it refills.")),
                "dashboard": {"uid": spec["dashboard"]},
                "meaning": (f"{spec.get('meaning', spec['summary'])} Objective {percent} over {spec['window']} "
                            f"(budget {_number(budget * 100)}% errors); fires at {windows}. Without traffic, or "
                            "without the good series, there is no SLI and no alert."
                            f"{guard} Once firing it stays firing for {keep} after the burn condition last held "
                            "(keep_firing_for), so one incident at low volume is one notification, not one per "
                            "dip of the short window; it resolves that much later."),
            })
    groups.append({"name": "virtengine.slo", "rules": alerts})
    return groups
