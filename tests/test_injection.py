"""Injection: no operator-supplied string is evaluated as a template or spliced into PromQL.

* Every string an environment file may set (every string leaf of the shipped
  ``chart/values.schema.json``) is set to ``{{ lookup "v1" "Secret" "" "" }}``;
  with Helm 3 and Helm 4 each one is either refused by the schema, naming
  its key, or comes out literally (never evaluated). Where it lands in a
  Prometheus rule, promtool must still load the rules: rule labels and
  annotations are templates to Prometheus, so the schema refuses template
  code there except the plain ``{{ $labels.x }}`` / ``{{ $value }}`` forms.
* No chart template calls ``tpl`` or ``lookup``.
* Values that reach PromQL are typed: thresholds are numbers; a quote or a
  brace in a threshold, the cluster, the chain id or a job is refused.
* ``generator.promql.label_value`` escapes a hostile label value so that
  Prometheus's own parser (promtool) sees one matcher that selects exactly
  the series with that value.
"""
from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml

from conftest import HELM_MAJORS, ROOT, manifests
from generator import tools
from generator.promql import label_value

PAYLOAD = '{{ lookup "v1" "Secret" "" "" }}'
SCHEMA = json.loads((ROOT / "chart/values.schema.json").read_text())
PROD = yaml.safe_load((ROOT / "values/prod.yaml").read_text())


def string_leaves(node: dict, path: tuple = ()) -> list[tuple]:
    """Every place a values file can put a string: (path, subschema); map entries use their defaults' keys."""
    out: list[tuple] = []
    kind = node.get("type")
    if kind == "string" or (kind is None and ("pattern" in node or "enum" in node)):
        return [(path, node)]
    if kind == "object" or "properties" in node:
        for key, sub in node.get("properties", {}).items():
            out += string_leaves(sub, path + (key,))
        extra = node.get("additionalProperties")
        if isinstance(extra, dict):
            for key in list((node.get("default") or {}).keys()) or ["zzinjected"]:
                out += string_leaves(extra, path + (key,))
    if kind == "array" and isinstance(node.get("items"), dict):
        out += string_leaves(node["items"], path + (0,))
    return out


LEAVES = string_leaves(SCHEMA)


def set_leaf(values: dict, path: tuple, value: str) -> None:
    node = values
    for i, part in enumerate(path[:-1]):
        if path[i + 1] == 0:
            node[part] = [value]
            return
        node = node.setdefault(part, {})
    node[path[-1]] = value


def payload(i: int) -> str:
    return f"{PAYLOAD} id{i}"


def overlay(leaves: list[tuple]) -> dict:
    """prod's values with each given leaf (index, path) set to its numbered payload."""
    values = json.loads(json.dumps(PROD))
    for i, path in leaves:
        set_leaf(values, path, payload(i))
    return values


def accepted_by_schema(path: tuple, i: int) -> bool:
    values = overlay([(i, path)])
    merged = values  # schema validation of the overlay alone is what helm does with -f on top of defaults
    return not list(jsonschema.Draft7Validator(SCHEMA).iter_errors(_merge_defaults(merged)))


def _merge_defaults(values: dict) -> dict:
    from generator.values import merge
    defaults = yaml.safe_load((ROOT / "chart/values.yaml").read_text())
    return merge(defaults, values)


CLASSIFIED = [(i, path, accepted_by_schema(path, i)) for i, (path, _) in enumerate(LEAVES)]


def helm_with(values: dict, major: int, tmp: Path) -> subprocess.CompletedProcess:
    path = tmp / f"inject-{major}.yaml"
    path.write_text(yaml.safe_dump(values, sort_keys=False))
    return subprocess.run([tools.helm(major), "template", "vemon", str(ROOT / "chart"), "--namespace", "monitoring",
                           "-f", str(path)], capture_output=True, text=True, timeout=120)


def dotted(path: tuple) -> str:
    return ".".join(str(p) for p in path)


def test_the_walk_covers_every_section_of_the_values():
    sections = {path[0] for path, _ in LEAVES}
    assert set(SCHEMA["properties"]) - sections <= {"grafanaOperator"} | {
        k for k, v in SCHEMA["properties"].items() if not string_leaves(v)}
    assert len(LEAVES) >= 100
    print(f"\n[figures] {len(LEAVES)} string values an environment file may set; "
          f"{sum(1 for *_, ok in CLASSIFIED if not ok)} refused by the schema, "
          f"{sum(1 for *_, ok in CLASSIFIED if ok)} accepted as data")


@pytest.mark.parametrize("major", HELM_MAJORS, ids=lambda m: f"helm {m}")
def test_lookup_in_a_patterned_string_is_refused_by_the_schema_naming_the_key(major, tmp_path):
    refused = [(i, path) for i, path, ok in CLASSIFIED if not ok]
    assert refused
    proc = helm_with(overlay(refused), major, tmp_path)
    assert proc.returncode != 0
    assert "don't meet the specifications of the schema" in proc.stderr
    for i, path in refused:
        slash = "/" + "/".join(str(p) for p in path)
        assert f"- {dotted(path)}:" in proc.stderr or f"'{slash}'" in proc.stderr, \
            f"helm {major} did not name {dotted(path)}"


@pytest.mark.parametrize("major", HELM_MAJORS, ids=lambda m: f"helm {m}")
def test_lookup_in_a_free_string_comes_out_literally_and_never_runs(major, tmp_path):
    accepted = [(i, path) for i, path, ok in CLASSIFIED if ok]
    proc = helm_with(overlay(accepted), major, tmp_path)
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    literal = [dotted(path) for i, path in accepted if re.search(rf"lookup\W+v1\W+Secret\W+id{i}\b", text)]
    for i, path in accepted:
        # evaluated, lookup would leave "map[] id<i>" behind (helm template has no cluster to read)
        assert not re.search(rf"map\[\]\s*id{i}\b", text), f"{dotted(path)} was evaluated by helm {major}"
    assert literal, "no planted string reached the manifests at all"
    print(f"\n[figures] helm {major}: {len(accepted)} free strings planted, {len(literal)} reach the manifests, "
          "all literally")


def _rule_groups(text: str) -> list[dict]:
    groups = []
    for doc in manifests(text):
        if doc.get("kind") == "PrometheusRule":
            groups += doc["spec"]["groups"]
        elif doc.get("kind") == "ConfigMap" and any(k.endswith(".rules.yaml") for k in doc.get("data", {})):
            for key, body in doc["data"].items():
                groups += yaml.safe_load(body)["groups"]
    return groups


def test_accepted_strings_that_land_in_rules_still_load_in_prometheus(tmp_path):
    accepted = [(i, path) for i, path, ok in CLASSIFIED if ok]
    proc = helm_with(overlay(accepted), 3, tmp_path)
    assert proc.returncode == 0, proc.stderr
    groups = _rule_groups(proc.stdout)
    assert groups
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump({"groups": groups}))
    check = subprocess.run([tools.find("promtool"), "check", "rules", str(rules)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


@pytest.mark.parametrize("where", ["rules.ruleLabels.team", "rules.alerts.{alert}.labels.team",
                                   "rules.alerts.{alert}.annotations.note", "rules.groups.{group}.labels.team"])
@pytest.mark.parametrize("major", HELM_MAJORS, ids=lambda m: f"helm {m}")
def test_template_code_in_rule_labels_and_annotations_is_refused(where, major, tmp_path):
    alerts = SCHEMA["properties"]["rules"]["properties"]["alerts"]["properties"]
    groups = SCHEMA["properties"]["rules"]["properties"]["groups"]["properties"]
    path = tuple(where.replace("{alert}", sorted(alerts)[0]).replace("{group}", sorted(groups)[0]).split("."))
    values = json.loads(json.dumps(PROD))
    set_leaf(values, path, PAYLOAD)
    proc = helm_with(values, major, tmp_path)
    assert proc.returncode != 0 and "schema" in proc.stderr


def test_plain_label_and_value_references_stay_allowed_in_annotations(tmp_path):
    alert = sorted(SCHEMA["properties"]["rules"]["properties"]["alerts"]["properties"])[0]
    values = json.loads(json.dumps(PROD))
    set_leaf(values, ("rules", "alerts", alert, "annotations", "note"),
             "{{ $labels.instance }} at {{ $value | humanize }} ({{ $externalLabels.cluster }})")
    proc = helm_with(values, 3, tmp_path)
    assert proc.returncode == 0, proc.stderr
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump({"groups": _rule_groups(proc.stdout)}))
    check = subprocess.run([tools.find("promtool"), "check", "rules", str(rules)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout


def test_no_chart_template_evaluates_values_as_templates():
    offenders = []
    for path in sorted((ROOT / "chart/templates").rglob("*")):
        if path.is_file():
            for number, line in enumerate(path.read_text().splitlines(), start=1):
                # a call inside a template action: {{ tpl ... }}, {{ lookup ... }}, {{ x | tpl }}
                if re.search(r"\{\{[^}]*(\btpl\b|\blookup\b)[^}]*\}\}", line) and "/*" not in line:
                    offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert offenders == []


def test_every_threshold_is_a_number_and_every_duration_a_prometheus_duration():
    alerts = SCHEMA["properties"]["rules"]["properties"]["alerts"]["properties"]
    thresholds = 0
    for name, alert in alerts.items():
        for param, sub in alert["properties"]["thresholds"].get("properties", {}).items():
            assert sub["type"] in ("number", "integer"), f"{name}.thresholds.{param}"
            thresholds += 1
        for key in ("for", "keepFiringFor"):
            assert re.fullmatch(r"\^.*\(ms\|s\|m\|h\|d\|w\|y\).*\$", alert["properties"][key]["pattern"])
    assert thresholds > 0


HOSTILE = ['1) or vector(1', '5"} or vector(1) #', "0 unless on() vector(0)", "{{ $value }}"]


@pytest.mark.parametrize("value", HOSTILE)
@pytest.mark.parametrize("major", HELM_MAJORS, ids=lambda m: f"helm {m}")
def test_a_quote_or_brace_in_a_value_reaching_promql_is_refused_by_helm(major, value, tmp_path):
    alerts = SCHEMA["properties"]["rules"]["properties"]["alerts"]["properties"]
    alert, param = next((a, sorted(s["properties"]["thresholds"]["properties"])[0]) for a, s in sorted(alerts.items())
                        if s["properties"]["thresholds"].get("properties"))
    for path in [("rules", "alerts", alert, "thresholds", param), ("global", "cluster"), ("global", "chainId"),
                 ("scrape", "components", "cometbft", "job")]:
        values = json.loads(json.dumps(PROD))
        set_leaf(values, path, value)
        proc = helm_with(values, major, tmp_path)
        assert proc.returncode != 0, f"helm {major} accepted {value!r} in {dotted(path)}"
        assert "schema" in proc.stderr


@pytest.mark.parametrize("major", HELM_MAJORS, ids=lambda m: f"helm {m}")
@pytest.mark.parametrize("value", [0, -5, 2.5, 10001, 123456789012])
def test_a_range_threshold_that_would_break_the_expression_is_refused(major, value, tmp_path):
    alerts = SCHEMA["properties"]["rules"]["properties"]["alerts"]["properties"]
    name, param = next((a, p) for a, s in sorted(alerts.items())
                       for p, sub in s["properties"]["thresholds"].get("properties", {}).items()
                       if sub["type"] == "integer")
    values = json.loads(json.dumps(PROD))
    set_leaf(values, ("rules", "alerts", name, "thresholds", param), value)
    proc = helm_with(values, major, tmp_path)
    assert proc.returncode != 0 and "schema" in proc.stderr and param in proc.stderr


def test_odd_but_valid_numbers_keep_every_rule_parseable(tmp_path):
    alerts = SCHEMA["properties"]["rules"]["properties"]["alerts"]["properties"]
    values = json.loads(json.dumps(PROD))
    odd = {"number": [1e-9, -3, 123456789012, 0.5, 1], "integer": [1, 10000]}

    def allowed(sub: dict, value: float) -> bool:
        """Within the schema's bounds for this threshold (a ratio stays within 0..1, a window above 0)."""
        return (value >= sub.get("minimum", float("-inf")) and value <= sub.get("maximum", float("inf"))
                and value > sub.get("exclusiveMinimum", float("-inf"))
                and value < sub.get("exclusiveMaximum", float("inf")))
    planted = 0
    for n, (name, alert) in enumerate(sorted(alerts.items())):
        for param, sub in alert["properties"]["thresholds"].get("properties", {}).items():
            choices = [v for v in odd[sub["type"]] if allowed(sub, v)]
            assert choices, f"no odd value fits {name}.{param}: {sub}"
            set_leaf(values, ("rules", "alerts", name, "thresholds", param), choices[planted % len(choices)])
            planted += 1
    proc = helm_with(values, 3, tmp_path)
    assert proc.returncode == 0, proc.stderr
    rules = tmp_path / "rules.yaml"
    groups = _rule_groups(proc.stdout)
    rules.write_text(yaml.safe_dump({"groups": groups}))
    check = subprocess.run([tools.find("promtool"), "check", "rules", str(rules)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout
    assert "${" not in rules.read_text(), "a threshold placeholder was left in an expression"


LABEL_VALUES = ['prod"} or vector(1) #', "back\\slash", "new\nline", "{{ $labels.x }}", "it's", "ünïcode"]


def test_label_value_escaping_selects_exactly_the_hostile_series_in_promtool(tmp_path):
    """An alert per hostile value selects it with label_value(); promtool says each fires once, for it alone."""
    rules, tests = [], []
    for n, value in enumerate(LABEL_VALUES):
        rules.append({"alert": f"Hostile{n}", "expr": f'vemon_test{{cluster="{label_value(value)}"}} == 1'})
    series = [{"series": f'vemon_test{{cluster="{label_value(v)}"}}', "values": "1x5"} for v in LABEL_VALUES]
    series.append({"series": 'vemon_test{cluster="other"}', "values": "1x5"})
    for n, value in enumerate(LABEL_VALUES):
        tests.append({"eval_time": "2m", "alertname": f"Hostile{n}",
                      "exp_alerts": [{"exp_labels": {"cluster": value}}]})
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": [{"name": "hostile", "rules": rules}]}))
    (tmp_path / "test.yaml").write_text(yaml.safe_dump({
        "rule_files": ["rules.yaml"], "evaluation_interval": "1m",
        "tests": [{"interval": "1m", "input_series": series, "alert_rule_test": tests}]}))
    proc = subprocess.run([tools.find("promtool"), "test", "rules", "test.yaml"], capture_output=True, text=True,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
