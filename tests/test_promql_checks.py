"""PromQL checked against the metrics catalog (``generator lint`` check ``promql``, ``generator/promqlcheck.py``).

Every check has a planted mistake (a small rule, panel or route built here, or a copy of the templates with
one change) and the finding it must produce, beside the corrected form that must produce none; the shipped
content passes them all. Selectors on ``le`` / ``quantile`` are fed in both Prometheus 2 (``le="10"``) and
Prometheus 3 (``le="10.0"``) spelling. The expressions are parsed by the Prometheus grammar
(``@prometheus-io/lezer-promql``) in one Node process.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from conftest import ROOT, run_generator, tree_bytes
from generator import promql, promqlcheck
from generator.content import catalog as catalog_mod

CATALOG = catalog_mod.load(SimpleNamespace(templates=ROOT / "templates_src", root=ROOT))
GRAFANA = "@@VEMON_GRAFANA_URL@@/d/virtengine-node"


def alert(name: str, expr: str, *, labels: dict | None = None, description: str = "x",
          dashboard_url: str = GRAFANA) -> dict:
    return {"alert": name, "expr": expr, "for": "5m",
            "labels": {"severity": "warning", "team": "chain", **(labels or {})},
            "annotations": {"summary": "s", "description": description, "dashboard_url": dashboard_url}}


def check(rules: list[dict] = (), *, panels: list[str] = (), routing: dict | None = None) -> list[str]:
    groups = [{"name": "test.group", "rules": list(rules)}] if rules else []
    dashboards = {}
    if panels:
        dashboards["test-dash"] = {"uid": "test-dash", "templating": {"list": [{"name": "datasource"}]},
                                   "panels": [{"id": i + 1, "title": f"p{i + 1}", "type": "timeseries",
                                               "targets": [{"refId": "A", "expr": e}]}
                                              for i, e in enumerate(panels)]}
    envs = {"values/test.yaml": routing} if routing is not None else {}
    return [str(f) for f in promqlcheck.run_all(ROOT, CATALOG, groups, dashboards, envs,
                                                {"test.group": "templates_src/rules/test.yaml.j2"},
                                                {"test-dash": "templates_src/dashboards/test-dash.yaml.j2"})]


def only(findings: list[str], code: str) -> list[str]:
    return [f for f in findings if f"[{code}]" in f]


# --- the parser -----------------------------------------------------------------------------------------------

def test_placeholders_and_grafana_variables_keep_their_columns():
    expr = 'rate(x{a="$namespace"}[$__rate_interval]) > ${threshold} )'
    text = promql.substitute(expr)
    assert len(text) == len(expr) and '"$namespace"' in text   # strings untouched
    assert "$" not in text.replace('"$namespace"', "")
    message = promql.syntax_error(expr)
    # the stray ")" is at column 59 of what the author wrote
    assert message == f"syntax error at column {expr.rindex(')') + 1}: unexpected ')'", message


def test_columns_count_characters_beyond_the_basic_plane():
    """Node reports UTF-16 offsets; a label value with an emoji must not shift the column of what follows."""
    expr = 'up{team="\U0001F600"} == 0 )'
    assert promql.syntax_error(expr) == f"syntax error at column {expr.index(')') + 1}: unexpected ')'"


@pytest.mark.parametrize("expr,column", [
    ("max by (chain_id) (rate(cometbft_consensus_height[5m]) == 0", None),
    ('cometbft_consensus_height{chain_id=virtengine} == 0', 36),
    ("changes(cometbft_consensus_height[5 minutes]) == 0", 37),
    ("changes(cometbft_consensus_height[${windowMinutes}m]) == 0 and", None),
])
def test_the_grammar_refuses_with_the_place(expr, column):
    message = promql.syntax_error(expr)
    assert message and message.startswith("syntax error at")
    if column:
        assert f"column {column}:" in message, message


def test_metric_names_come_from_selectors_not_from_words():
    expr = ('label_replace(sum by (cluster) (rate(virtengine_tx_total{result="failed"}[5m])), "x", "$1", '
            '"instance", "(.*)") / on (cluster) group_left max by (cluster) ({__name__="up"}) # rate(nope[1m])')
    assert promql.metric_names(expr) == {"virtengine_tx_total", "up"}


def test_one_parser_process_serves_a_whole_lint(tmp_path):
    code = ("import sys; from pathlib import Path; sys.path.insert(0, %r)\n"
            "from generator import lint, promql\n"
            "ctx = lint.LintContext(root=Path(%r))\n"
            "lint.run(ctx, only=['promql'])\n"
            "print(ctx.notes[-1]); print('processes', promql.processes_started())\n") % (str(ROOT), str(ROOT))
    # without the verdict cache: every expression goes to the parser, all through one process
    env = {**os.environ, "VEMON_NO_CACHE": "1"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "processes 1" in proc.stdout
    count = int(re.search(r"promql: (\d+) expressions parsed", proc.stdout).group(1))
    assert count >= 300


# --- the checks, each planted ---------------------------------------------------------------------------------

def test_unknown_metric():
    bad = check([alert("A", "max by (cluster, chain_id) (cometbft_consensus_heigth) == 0")])
    assert only(bad, "unknown-metric") == [
        "templates_src/rules/test.yaml.j2: alert A (column 29): metric 'cometbft_consensus_heigth' is not in the "
        "metrics catalog [unknown-metric]; fix: fix the name, or add the metric to "
        "templates_src/metrics/<source>.yaml"]
    assert check([alert("A", "max by (cluster, chain_id) (cometbft_consensus_height) == 0")]) == []


def test_unknown_label_in_a_matcher_and_in_a_grouping():
    bad = check([alert("A", 'max by (cluster, chain_id) (cometbft_p2p_peers{chainid="x"}) < 2')])
    assert any("label 'chainid' is not a label of cometbft_p2p_peers" in f for f in only(bad, "unknown-label")), bad
    bad = check(panels=['max by (cluster, validator) (cometbft_consensus_height)'])
    assert any("the input never has the label 'validator'" in f and "dashboard test-dash, panel 1" in f
               for f in only(bad, "unknown-label")), bad
    # a label Prometheus adds (role, from the chart's scrape config) is known
    assert check([alert("A", 'max by (cluster, chain_id, role) (cometbft_p2p_peers{role="validator"}) < 2')]) == []


def _variable_board(query: str) -> dict:
    return {"uid": "v", "panels": [], "templating": {"list": [
        {"name": "datasource"}, {"name": "pod", "type": "query", "query": {"query": query}}]}}


def test_a_dashboard_variable_reading_a_label_its_series_never_have():
    def run(query):
        return [str(f) for f in promqlcheck.run_all(ROOT, CATALOG, [], {"v": _variable_board(query)}, {})]
    bad = run('label_values(cometbft_consensus_height{cluster="$cluster"}, validator)')
    assert len(bad) == 1 and "label_values(..., validator): the selected series never have 'validator'" in bad[0]
    assert "dashboard v, variable 'pod'" in bad[0]
    assert run('label_values(cometbft_consensus_height{cluster="$cluster"}, pod)') == []


def test_rate_of_a_gauge_and_delta_of_a_counter():
    bad = check(panels=["max by (cluster) (rate(cometbft_consensus_height[5m]))",
                        "max by (cluster) (delta(virtengine_tx_total[5m]))",
                        "max by (cluster) (changes(cometbft_consensus_validator_missed_blocks[1h]))"])
    assert len(only(bad, "rate-on-gauge")) == 1 and "rate() of the gauge cometbft_consensus_height" in bad[0]
    counters = only(bad, "counter-delta")
    assert any("delta() of the counter virtengine_tx_total" in f for f in counters), bad
    # a gauge CometBFT only adds to (monotonic in the catalog) is read like a counter: changes() is refused
    assert any("changes() of the counter cometbft_consensus_validator_missed_blocks" in f for f in counters), bad
    assert check(panels=["max by (cluster) (changes(cometbft_consensus_height[5m]))",
                         "max by (cluster, chain_id) (sum by (cluster, chain_id, instance) "
                         "(rate(virtengine_tx_total[5m])))",
                         "max by (cluster) (increase(cometbft_consensus_validator_missed_blocks[1h]))"]) == []


def test_histogram_quantile_without_le():
    bad = check(panels=["histogram_quantile(0.99, sum by (cluster) (rate(cometbft_consensus_block_interval_seconds"
                        "_bucket[5m])))"])
    assert len(only(bad, "quantile-drops-le")) == 1 and "keep le in the inner aggregation" in bad[0]
    assert check(panels=["histogram_quantile(0.99, sum by (cluster, le) (rate(cometbft_consensus_block_interval_"
                         "seconds_bucket[5m])))"]) == []


@pytest.mark.parametrize("matcher,major", [('le="10"', "2"), ('le="10.0"', "3"), ('le=~"10|5"', "2"),
                                           ('le=~"10\\\\.0"', "3")])
def test_a_bound_matcher_fitting_one_prometheus_major(matcher, major):
    expr = f"sum by (cluster) (rate(cometbft_consensus_block_interval_seconds_bucket{{{matcher}}}[5m]))"
    bad = only(check(panels=[expr]), "one-major-bound")
    assert len(bad) == 1 and f"only Prometheus {major}" in bad[0], bad
    assert 'le=~"10|10\\\\.0"' in bad[0]


@pytest.mark.parametrize("matcher", ['le=~"10|10\\\\.0"', 'le=~"10(\\\\.0)?"', 'le="0.5"', 'le="+Inf"'])
def test_bound_matchers_fitting_both_majors_pass(matcher):
    expr = f"sum by (cluster) (rate(cometbft_consensus_block_interval_seconds_bucket{{{matcher}}}[5m]))"
    assert check(panels=[expr]) == []


def test_sum_of_a_chain_metric_across_nodes():
    bad = check(panels=["sum by (cluster, chain_id) (rate(virtengine_tx_total[5m]))"])
    assert only(bad, "chain-sum") == [
        "templates_src/dashboards/test-dash.yaml.j2: dashboard test-dash, panel 1 'p1', target A (column 1): "
        "sum by (cluster, chain_id) of the chain-level metric virtengine_tx_total adds up every node's copy of the "
        "same chain state [chain-sum]; fix: " + promqlcheck.CHAIN_FIX]
    assert check(panels=["max by (cluster, chain_id) (sum by (cluster, chain_id, instance) "
                         "(rate(virtengine_tx_total[5m])))"]) == []


def test_binary_operation_whose_sides_never_match():
    bad = check([alert("A", "max by (cluster, chain_id) (cometbft_consensus_missing_validators_power)\n"
                            "/ on (cluster, pod) max by (cluster, chain_id) (cometbft_consensus_validators_power) > 0.3")])
    assert any("the left side never has 'pod'" in f and "(line 2, column 1)" in f for f in only(bad, "never-matches"))
    bad = check([alert("A", "max by (cluster, chain_id) (cometbft_consensus_missing_validators_power)"
                            " / max by (cluster) (cometbft_consensus_validators_power) > 0.3")])
    assert any("only one side has 'chain_id'" in f for f in only(bad, "never-matches")), bad
    assert check([alert("A", "max by (cluster, chain_id) (cometbft_consensus_missing_validators_power)"
                             " / on (cluster, chain_id) max by (cluster, chain_id) "
                             "(cometbft_consensus_validators_power) > 0.3")]) == []


def test_alert_without_a_comparison():
    bad = check([alert("A", "max by (cluster, chain_id) (cometbft_consensus_missing_validators_power)")])
    assert only(bad, "no-comparison") == [
        "templates_src/rules/test.yaml.j2: alert A: the expression has no comparison: it fires for every series it "
        "returns, whatever the value [no-comparison]; fix: compare with a threshold (> ${threshold}) or filter "
        "with and/unless on a condition"]
    for good in ("max by (cluster, chain_id) (cometbft_consensus_missing_validators_power) > 0",
                 'absent(up{job="cometbft"})', "vector(1)",
                 'label_replace(max by (cluster) (up) == 0, "x", "y", "", "")'):
        assert only(check([alert("A", good)]), "no-comparison") == [], good


def test_label_in_an_annotation_the_result_never_has():
    bad = check([alert("A", "max by (cluster) (cometbft_consensus_height) == 0",
                       description="Chain {{ $labels.chain_id }} halted")])
    assert any("annotation description uses $labels.chain_id, but the result never has 'chain_id'" in f
               for f in only(bad, "label-flow")), bad
    # guarded by {{ with }}: the author says it may be missing
    assert check([alert("A", "max by (cluster) (cometbft_consensus_height) == 0",
                        description="{{ with $labels.chain_id }}Chain {{ . }}{{ end }} halted")]) == []


def test_dashboard_link_variable_the_result_never_has():
    bad = check([alert("A", "max by (cluster, chain_id) (cometbft_consensus_height) == 0",
                       dashboard_url=GRAFANA + "?var-pod={{ $labels.pod | urlquery }}")])
    assert any("dashboard link variable uses $labels.pod" in f for f in only(bad, "label-flow")), bad
    assert check([alert("A", "max by (cluster, chain_id, pod) (cometbft_consensus_height) == 0",
                        dashboard_url=GRAFANA + "?var-pod={{ $labels.pod | urlquery }}")]) == []


def _routing(**extra) -> dict:
    return {"groupBy": ["alertname", "cluster", "chain_id"],
            "routes": {"critical": {"order": 30, "matchers": ['severity="critical"'], "notify": "pagerduty"}},
            "inhibitions": {}, **extra}


def test_group_by_a_label_no_alert_carries():
    rules = [alert("A", "max by (cluster, chain_id) (cometbft_consensus_height) == 0")]
    bad = check(rules, routing=_routing(groupBy=["alertname", "cluster", "chainid"]))
    assert any("alertmanager.groupBy: groups by 'chainid'" in f for f in only(bad, "label-flow")), bad
    assert check(rules, routing=_routing()) == []


def test_inhibition_equal_on_the_source_and_the_target_alerts():
    rules = [alert("Halt", "max by (cluster) (changes(cometbft_consensus_height[5m])) == 0",
                   labels={"severity": "critical"}),
             alert("Lag", "max by (cluster, chain_id, pod) (cometbft_consensus_height) < 1")]
    inhibit = {"haltMutesLag": {"sourceMatchers": ['alertname="Halt"'], "targetMatchers": ['alertname="Lag"'],
                                "equal": ["cluster", "chain_id"]}}
    bad = only(check(rules, routing=_routing(inhibitions=inhibit)), "label-flow")
    assert bad == ["values/test.yaml: alertmanager.inhibitions.haltMutesLag (sourceMatchers): equal ['cluster', "
                   "'chain_id']: alert Halt never carries 'chain_id' (it can have: alertname, cluster, severity, "
                   "team), so the inhibition never mutes anything with it [label-flow]; fix: keep chain_id in Halt's "
                   "aggregations, or drop it from equal"], bad
    inhibit["haltMutesLag"]["sourceMatchers"], inhibit["haltMutesLag"]["targetMatchers"] = \
        ['alertname="Lag"'], ['alertname="Halt"']
    bad = only(check(rules, routing=_routing(inhibitions=inhibit)), "label-flow")
    assert len(bad) == 1 and "(targetMatchers)" in bad[0] and "mutes it across every chain_id" in bad[0]
    rules[0]["expr"] = "max by (cluster, chain_id) (changes(cometbft_consensus_height[5m])) == 0"
    assert check(rules, routing=_routing(inhibitions=inhibit)) == []


def test_route_matcher_on_a_label_the_alert_drops():
    rules = [alert("NotificationsFailing", "sum by (cluster) (rate(alertmanager_notifications_failed_total[15m]))"
                                           " > 0", labels={"severity": "critical"})]
    routes = {"vendor": {"order": 1, "matchers": ['alertname="NotificationsFailing"', 'integration="pagerduty"'],
                         "notify": "opsgenie"}}
    routing = _routing(routes=routes, groupBy=["alertname", "cluster"])
    bad = only(check(rules, routing=routing), "label-flow")
    assert any("matcher integration=\"pagerduty\" never matches alert NotificationsFailing" in f for f in bad), bad
    rules[0]["expr"] = ("sum by (cluster, integration) (rate(alertmanager_notifications_failed_total[15m])) > 0")
    assert check(rules, routing=routing) == []


def test_absent_whose_labels_cannot_match_the_routing():
    expr = ('max by (cluster, chain_id) (cometbft_consensus_height) < 1\n'
            'or absent(cometbft_consensus_height{job="cometbft"})')
    rules = [alert("NoHeight", expr, labels={"severity": "critical"})]
    routes = {"chainPage": {"order": 10, "matchers": ['team="chain"', 'chain_id=~".+"'], "notify": "pagerduty"}}
    bad = only(check(rules, routing=_routing(routes=routes)), "absent-routing")
    assert bad and "the series absent() makes carries only job, severity, team" in bad[0] \
        and "alertmanager.routes.chainPage (chain_id=~\".+\")" in bad[0], bad
    rules[0]["expr"] = expr.replace('{job="cometbft"}', '{job="cometbft", chain_id="virtengine-1"}')
    assert only(check(rules, routing=_routing(routes=routes)), "absent-routing") == []


def test_recording_rule_labels_flow_into_the_alert():
    rules = [{"record": "cluster_chain:x:ratio", "expr": "max by (cluster, chain_id) "
                                                         "(cometbft_consensus_missing_validators_power)"},
             alert("A", "cluster_chain:x:ratio > 0.3", description="{{ $labels.pod }}")]
    bad = only(check(rules), "label-flow")
    assert any("$labels.pod" in f and "it can have: alertname, chain_id, cluster, severity, team" in f
               for f in bad), bad
    assert only(check([alert("A", "cluster_chain:undefined:ratio > 1")]), "unknown-metric")


# --- the shipped content, and the render ----------------------------------------------------------------------

def test_the_shipped_content_passes_every_check():
    proc = run_generator(ROOT, "lint", "--only", "promql")
    assert proc.returncode == 0, proc.stderr
    assert "checked against the catalog" in proc.stdout + proc.stderr


def test_lint_fails_on_a_copy_of_the_templates_with_one_mistake(project):
    """ConsensusStalled with chain_id aggregated away: its `unless on (cluster, chain_id)` never matches, its
    description's $labels.chain_id is empty and the inhibitions on chain_id never mute with it."""
    rules = project / "templates_src" / "rules" / "critical.yaml.j2"
    text = rules.read_text()
    good = "max by (cluster, chain_id) (changes(cometbft_consensus_height[${windowMinutes}m])) == 0"
    assert good in text
    rules.write_text(text.replace(good, good.replace("by (cluster, chain_id)", "by (cluster)"), 1))
    assert run_generator(project, "render").returncode == 0
    proc = run_generator(project, "lint", "--only", "promql")
    assert proc.returncode == 1
    found = [line.strip() for line in proc.stderr.splitlines() if "alert ConsensusStalled" in line]
    assert any(f.startswith("templates_src/rules/critical.yaml.j2: alert ConsensusStalled (line 2, column 1): "
                            "'unless on (cluster, chain_id)': the left side never has 'chain_id'") for f in found), \
        proc.stderr
    assert any("[label-flow]" in f and "$labels.chain_id" in f for f in found), proc.stderr


def test_render_refuses_what_the_grammar_rejects_and_leaves_the_chart(project):
    rules = project / "templates_src" / "rules" / "warning.yaml.j2"
    text = rules.read_text()
    good = '(cometbft_p2p_peers{role="validator"})'
    assert good in text
    rules.write_text(text.replace(good, '(cometbft_p2p_peers{role=validator})', 1))
    before = tree_bytes(project / "chart")
    proc = run_generator(project, "render")
    assert proc.returncode == 1
    assert re.search(r"alert NodeLowPeers: expression does not parse: syntax error at (line \d+, )?column \d+: "
                     r"unexpected 'validator'", proc.stderr), proc.stderr
    assert "templates_src/rules/warning.yaml.j2" in proc.stderr
    assert tree_bytes(project / "chart") == before


def test_render_refuses_a_panel_query_the_grammar_rejects(project):
    """The range of $__rate_interval is substituted before parsing: the stray bracket is what is refused."""
    board = project / "templates_src" / "dashboards" / "k8s-nodes.yaml.j2"
    text = board.read_text()
    good = '"1 - avg by (instance) (rate(node_cpu_seconds_total{" ~ NX ~ \', mode="idle"}[$__rate_interval]))\''
    assert good in text
    board.write_text(text.replace(good, good.replace("[$__rate_interval]))", "[$__rate_interval])))"), 1))
    before = tree_bytes(project / "chart")
    proc = run_generator(project, "render")
    assert proc.returncode == 1
    assert "templates_src/dashboards/k8s-nodes.yaml.j2" in proc.stderr, proc.stderr
    assert re.search(r"panel \d+ 'CPU utilisation': target A: the query does not parse: syntax error at column "
                     r"\d+: unexpected '\)'", proc.stderr), proc.stderr
    assert tree_bytes(project / "chart") == before
