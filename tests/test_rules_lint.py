"""Rule lint (``generator lint`` check ``rules``) and the SLO spec.

The lint runs on what Helm renders for each environment; here each of its
rules is broken once on a copy of the rendered groups, and the whole check
runs on the project and on a copy with a broken source.
"""
from __future__ import annotations

import copy
import re
import shutil
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, run_generator, tree_bytes
from generator import rulelint, tools
from generator.build import load_sources
from generator.content import catalog as catalog_mod
from generator.errors import ValidationError


@pytest.fixture(scope="module")
def groups() -> list[dict]:
    return rulelint.render_rules(ROOT, "prod", 3)


@pytest.fixture(scope="module")
def catalog():
    return catalog_mod.load(load_sources(ROOT))


DASHBOARDS = rulelint.dashboard_variables(ROOT / "chart" / "files" / "dashboards")


def _alert(groups, name):
    return next(r for g in groups for r in g["rules"] if r.get("alert") == name)


def _rename(groups, old, new):
    rule = _alert(groups, old)
    rule["alert"] = new
    rule["annotations"]["runbook_url"] = rule["annotations"]["runbook_url"].replace(old, new)


BREAKS = [
    ("alert name not CamelCase", lambda g: _rename(g, "NodeLowPeers", "node_low_peers"), "CamelCase"),
    ("alert name over 40 characters", lambda g: _rename(g, "NodeLowPeers", "NodeLowPeers" + "X" * 30), "CamelCase"),
    ("21 rules in a group", lambda g: g[0]["rules"].extend(copy.deepcopy(g[0]["rules"][:1]) * 21), "at most 20"),
    ("severity outside the set", lambda g: _alert(g, "NodeLowPeers")["labels"].update(severity="page"), "severity"),
    ("templated summary", lambda g: _alert(g, "NodeLowPeers")["annotations"].update(summary="{{ $value }} peers"),
     "summary must be static"),
    ("missing description", lambda g: _alert(g, "NodeLowPeers")["annotations"].pop("description"), "description"),
    ("runbook_url not the alert's runbook",
     lambda g: _alert(g, "NodeLowPeers")["annotations"].update(runbook_url="https://x/NodeSyncLag.md"), "runbook_url"),
    ("metric outside the catalog",
     lambda g: _alert(g, "NodeLowPeers").update(expr="max by (cluster) (cometbft_p2p_peer_count) < 3"),
     "not in the metrics catalog"),
    ("aggregation dropping cluster",
     lambda g: _alert(g, "NodeLowPeers").update(expr="sum(cometbft_p2p_peers) < 3"), "drops the cluster label"),
    ("aggregation by other labels only",
     lambda g: _alert(g, "NodeLowPeers").update(expr="max by (pod) (cometbft_p2p_peers) < 3"),
     "drops the cluster label"),
    ("dashboard variable the dashboard lacks",
     lambda g: _alert(g, "NodeLowPeers")["annotations"].update(
         dashboard_url="https://g/d/virtengine-node?var-cluster=c1&var-peer=x"), "has no variable 'peer'"),
    ("dashboard the chart does not ship",
     lambda g: _alert(g, "NodeLowPeers")["annotations"].update(dashboard_url="https://g/d/nope?var-cluster=x"),
     "opens no dashboard"),
]


def test_the_rendered_rules_pass_the_rule_lint(groups, catalog):
    count = rulelint.lint_groups(groups, catalog=catalog, runbooks=ROOT / "docs" / "runbooks",
                                 dashboards=DASHBOARDS, where="prod")
    assert count == len([r for g in groups for r in g["rules"] if "alert" in r]) >= 30


@pytest.mark.parametrize("what,breaker,message", BREAKS, ids=[b[0] for b in BREAKS])
def test_the_rule_lint_fails_on_a_broken_rule_and_says_which(groups, catalog, what, breaker, message):
    broken = copy.deepcopy(groups)
    breaker(broken)
    with pytest.raises(ValidationError, match=re.escape(message)):
        rulelint.lint_groups(broken, catalog=catalog, runbooks=ROOT / "docs" / "runbooks",
                             dashboards=DASHBOARDS, where="prod")


def test_an_alert_without_a_runbook_fails_the_rule_lint(groups, catalog, tmp_path):
    shutil.copytree(ROOT / "docs" / "runbooks", tmp_path / "runbooks")
    (tmp_path / "runbooks" / "MempoolBacklog.md").unlink()
    with pytest.raises(ValidationError, match="no runbook docs/runbooks/MempoolBacklog.md"):
        rulelint.lint_groups(groups, catalog=catalog, runbooks=tmp_path / "runbooks", dashboards=DASHBOARDS,
                             where="prod")


def test_every_alert_has_a_runbook_with_the_five_sections(groups):
    for name in (r["alert"] for g in groups for r in g["rules"] if "alert" in r):
        text = (ROOT / "docs" / "runbooks" / f"{name}.md").read_text()
        for section in ("## What it means", "## Impact", "## Diagnose", "## Mitigate", "## Escalate"):
            assert section in text, f"{name}.md lacks {section}"
        assert "```promql" in text and "kubectl" in text, f"{name}.md has no concrete PromQL or kubectl"


def test_promtool_check_rules_rejects_what_the_chart_must_never_ship(groups, tmp_path):
    broken = copy.deepcopy(groups)
    _alert(broken, "NodeLowPeers")["expr"] = "max by (cluster) (cometbft_p2p_peers < 3"
    path = rulelint.write_rule_file(broken, tmp_path)
    proc = tools.run([tools.find("promtool"), "check", "rules", str(path)], check=False)
    assert proc.returncode != 0 and "NodeLowPeers" in proc.stdout + proc.stderr


def test_generator_lint_rules_passes_for_every_environment_with_both_helms():
    proc = run_generator(ROOT, "lint", "--only", "rules")
    assert proc.returncode == 0, proc.stderr
    for env in ("dev", "staging", "prod"):
        assert re.search(rf"rules of {env}: \d+ alerts linted, promtool check rules passed", proc.stdout + proc.stderr)


def test_generator_lint_fails_on_a_rule_promtool_rejects(project):
    rules = project / "templates_src" / "rules" / "warning.yaml.j2"
    text = rules.read_text()
    good = 'max by (cluster, chain_id, namespace, pod, role) (cometbft_p2p_peers{role="validator"}) < ${minPeersValidator}'
    assert good in text
    rules.write_text(text.replace(good, good.replace('(cometbft_p2p_peers{role="validator"})',
                                                     '(rate(cometbft_p2p_peers{role="validator"}))')))
    before = tree_bytes(project / "chart")
    # the render refuses it (promtool over every rendered group in one call), naming the template and the rule
    refused = run_generator(project, "render")
    assert refused.returncode == 1 and "NodeLowPeers" in refused.stderr, refused.stderr
    assert "templates_src/rules/warning.yaml.j2" in refused.stderr and "range vector" in refused.stderr
    assert tree_bytes(project / "chart") == before, "a refused render changed chart/"
    # a chart edited by hand is still caught by lint
    group = project / "chart" / "files" / "rules" / "virtengine.warning.json"
    group.write_text(group.read_text().replace('(cometbft_p2p_peers{role=\\"validator\\"})',
                                               '(rate(cometbft_p2p_peers{role=\\"validator\\"}))', 1))
    assert "rate(cometbft_p2p_peers" in group.read_text()
    proc = run_generator(project, "lint", "--only", "rules")
    assert proc.returncode == 1 and "promtool check rules failed" in proc.stderr and "NodeLowPeers" in proc.stderr


# ---- descriptions: every number from the value the rule uses ----------------------------------------------------

LITERALS = [
    # (description, the literal the lint must name or None)
    ("has been unreachable for 10 minutes.", "10 minutes"),
    ("p99 latency over 5m is high", "5m"),
    ("latency is high (limit 5s).", "5s"),
    ("budget 1% errors", "1%"),
    ("held for 1.5h", "1.5h"),
    ("within 30 seconds", "30 seconds"),
    ("no block for ${windowMinutes} minutes (then held for ${for})", None),
    ("p99 is {{ $value | humanizeDuration }} (limit ${maxSeconds}s)", None),
    ("{{ printf \"%.0f\" $value }}% of targets (limit ${maxPercent}%)", None),
    ("consensus halts above 1/3; 10000 x (1 - 0.05) blocks", None),
    ("node virtengine-node-0 on port 26660", None),
]


@pytest.mark.parametrize("description,literal", LITERALS, ids=[d for d, _ in LITERALS])
def test_the_description_lint_finds_durations_and_percentages_written_as_text(description, literal):
    from generator.content.rules import literal_amount
    assert literal_amount(description) == literal


# a description line of each rules template; the lint covers the files every team owns
DESCRIPTION_FILES = [
    ("critical.yaml.j2", "ConsensusStalled", "(then held for ${for})", "(plus 2m hold)"),
    ("warning.yaml.j2", "NodeSyncLag", "(limit ${maxBlocksBehind}) for ${for}.", "(limit ${maxBlocksBehind}) for 10 minutes."),
    ("business.yaml.j2", "EscrowSettlementsStalled", "(then held for ${for})", "(plus 30m hold)"),
    ("infrastructure.yaml.j2", "KubeNodeNotReady", "has not been Ready for ${for};", "has not been Ready for 15 minutes;"),
    ("meta.yaml.j2", "PrometheusNotConnectedToAlertmanagers", "no Alertmanager for ${for};", "no Alertmanager for 10m;"),
]


@pytest.mark.parametrize("name,alert,good,bad", DESCRIPTION_FILES, ids=[f[0] for f in DESCRIPTION_FILES])
def test_a_description_with_a_literal_hold_time_fails_the_render_naming_file_and_alert(project, name, alert, good, bad):
    path = project / "templates_src" / "rules" / name
    text = path.read_text()
    assert good in text
    path.write_text(text.replace(good, bad))
    before = (project / "chart" / "files" / "rules-index.json").read_bytes()
    proc = run_generator(project, "render")
    assert proc.returncode == 1, proc.stdout
    literal = re.search(r"\d+(\.\d+)?\s*(m|minutes)\b", bad).group(0)
    assert f"templates_src/rules/{name}" in proc.stderr and alert in proc.stderr and repr(literal) in proc.stderr
    assert "Traceback" not in proc.stderr
    assert (project / "chart" / "files" / "rules-index.json").read_bytes() == before


def test_the_slo_alert_descriptions_pass_the_description_lint():
    from generator.content import slos
    from generator.content.rules import literal_amount
    spec = slos.load(load_sources(ROOT))
    found = [r for g in slos.rule_groups(spec) for r in g["rules"] if "alert" in r]
    assert len(found) == 2 * len(spec)
    assert [(r["alert"], literal_amount(r["description"])) for r in found if literal_amount(r["description"])] == []


def test_a_hold_time_placeholder_in_an_expression_fails_the_render(project):
    path = project / "templates_src" / "rules" / "warning.yaml.j2"
    text = path.read_text()
    good = "max by (cluster, chain_id, namespace, pod) (cometbft_mempool_size) > ${threshold}"
    assert good in text
    path.write_text(text.replace(good, good + " and on () vector(${for})"))
    proc = run_generator(project, "render")
    assert proc.returncode == 1 and "MempoolBacklog" in proc.stderr and "only be used in the description" in proc.stderr


# ---- the SLO spec --------------------------------------------------------------------------------------------


def _slo_rules(groups, slo):
    return [r for g in groups for r in g["rules"] if (r.get("labels") or {}).get("slo") == slo]


@pytest.mark.parametrize("slo,objective", [("veid_response_time", 0.99), ("order_matching", 0.95)])
def test_each_slo_gets_sli_rules_over_the_standard_windows_a_budget_and_burn_rate_alerts(groups, slo, objective):
    rules = _slo_rules(groups, slo)
    records = {r["record"] for r in rules if "record" in r}
    assert records == {f"slo:sli_error:ratio_rate{w}" for w in ("5m", "30m", "1h", "2h", "6h", "1d", "3d")} \
        | {"slo:error_budget_remaining:ratio", "slo:sli_total:rate1h", "slo:sli_total:rate5m", "slo:sli_errors:rate5m"}
    budget = f"{1 - objective:g}"
    page = next(r for r in rules if r.get("labels", {}).get("burn") == "fast")
    ticket = next(r for r in rules if r.get("labels", {}).get("burn") == "slow")
    for factor, long, short in (("14.4", "1h", "5m"), ("6", "6h", "30m")):
        assert f"ratio_rate{long}{{slo=\"{slo}\"}} > ({factor} * {budget})" in page["expr"]
        assert f"ratio_rate{short}{{slo=\"{slo}\"}} > ({factor} * {budget})" in page["expr"]
    for factor, long, short in (("3", "1d", "2h"), ("1", "3d", "6h")):
        assert f"ratio_rate{long}{{slo=\"{slo}\"}} > ({factor} * {budget})" in ticket["expr"]
        assert f"ratio_rate{short}{{slo=\"{slo}\"}} > ({factor} * {budget})" in ticket["expr"]
    assert page["labels"]["severity"] == "critical" and ticket["labels"]["severity"] == "warning"
    minimum = yaml.safe_load((ROOT / "templates_src" / "slos.yaml").read_text())["slos"][slo]["minEventsPerHour"]
    guard = f"and on (cluster)\n(slo:sli_total:rate1h{{slo=\"{slo}\"}} * 3600 >= {minimum})"
    assert page["expr"].endswith(guard), "the page alert needs the minimum traffic of the SLO"
    assert "sli_total" not in ticket["expr"], "the ticket alerts keep no traffic guard"


def test_the_brief_slo_alert_names_are_kept(groups):
    names = {r.get("alert") for g in groups for r in g["rules"]}
    assert {"SLOVEIDResponseTime", "SLOOrderMatchingSuccess"} <= names


def test_the_sli_ratio_has_no_series_without_traffic(groups):
    ratio = next(r for r in _slo_rules(groups, "veid_response_time") if r.get("record") == "slo:sli_error:ratio_rate1h")
    assert "> 0)" in ratio["expr"], "the denominator must be guarded against zero"


def test_a_missing_good_series_is_no_data_not_total_failure(groups):
    """`good or total * 0` would turn a good series that does not exist (le="10" on Prometheus 3) into 100% errors."""
    ratio = next(r for r in _slo_rules(groups, "veid_response_time") if r.get("record") == "slo:sli_error:ratio_rate1h")
    assert " or " not in ratio["expr"], ratio["expr"]


def test_the_error_budget_weighs_events_not_minutes(groups):
    budget = next(r for r in _slo_rules(groups, "order_matching") if r.get("record") == "slo:error_budget_remaining:ratio")
    assert "avg_over_time" not in budget["expr"] and "sum_over_time(slo:sli_errors:rate5m" in budget["expr"]


SLO_BREAKS = [
    ("an SLO without alerts", lambda s: s["slos"]["order_matching"].pop("alerts"), "slos.order_matching.alerts",
     "has no alert"),
    ("an empty alerts map", lambda s: s["slos"]["order_matching"].update(alerts={}), "slos.order_matching.alerts",
     "has no alert"),
    ("an objective of 99.9 (percent, not fraction)", lambda s: s["slos"]["veid_response_time"].update(objective=99.9),
     "slos.veid_response_time.objective", "fraction"),
    ("a query without ${window}",
     lambda s: s["slos"]["veid_response_time"]["sli"].update(
         total="sum by (cluster) (rate(virtengine_veid_submission_seconds_count[5m]))"),
     "slos.veid_response_time.sli.total", "${window}"),
    ("a query over every cluster at once",
     lambda s: s["slos"]["veid_response_time"]["sli"].update(
         total="sum(rate(virtengine_veid_submission_seconds_count[${window}]))"),
     "slos.veid_response_time.sli.total", "by (cluster)"),
    ("a bucket bound in one spelling only (Prometheus 2's le=\"10\", not Prometheus 3's le=\"10.0\")",
     lambda s: s["slos"]["veid_response_time"]["sli"].update(
         good='sum by (cluster) (rate(virtengine_veid_submission_seconds_bucket{le="10"}[${window}]))'),
     "slos.veid_response_time.sli.good", 'le=~"10|10\\\\.0"'),
    ("an unknown alert kind", lambda s: s["slos"]["order_matching"]["alerts"].update(sms="X"),
     "slos.order_matching.alerts", "allowed: page, ticket"),
    ("a minimum traffic of zero", lambda s: s["slos"]["order_matching"].update(minEventsPerHour=0),
     "slos.order_matching.minEventsPerHour", "positive number"),
    ("a negative minimum traffic", lambda s: s["slos"]["veid_response_time"].update(minEventsPerHour=-20),
     "slos.veid_response_time.minEventsPerHour", "positive number"),
    ("a minimum traffic given as text", lambda s: s["slos"]["veid_response_time"].update(minEventsPerHour="20/h"),
     "slos.veid_response_time.minEventsPerHour", "positive number"),
]


@pytest.mark.parametrize("what,breaker,key,message", SLO_BREAKS, ids=[b[0] for b in SLO_BREAKS])
def test_a_broken_slo_spec_fails_the_render_naming_file_and_key(project, what, breaker, key, message):
    path = project / "templates_src" / "slos.yaml"
    spec = yaml.safe_load(path.read_text())
    breaker(spec)
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    proc = run_generator(project, "render")
    assert proc.returncode == 1
    assert "templates_src/slos.yaml" in proc.stderr and key in proc.stderr and message in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


def test_an_alert_pointing_at_a_dashboard_that_does_not_exist_fails_the_render(project):
    rules = project / "templates_src" / "rules" / "warning.yaml.j2"
    rules.write_text(rules.read_text().replace("dashboard: {uid: veid-module}", "dashboard: {uid: tx-overview}", 1))
    proc = run_generator(project, "render")
    assert proc.returncode == 1 and "dashboard 'tx-overview' does not exist" in proc.stderr, proc.stderr


def test_the_alerts_table_lists_every_alert_with_severity_and_runbook(groups):
    text = (ROOT / "docs" / "alerts.md").read_text()
    for rule in (r for g in groups for r in g["rules"] if "alert" in r):
        row = next((line for line in text.splitlines() if line.startswith(f"| `{rule['alert']}` |")), None)
        assert row, f"{rule['alert']} missing from docs/alerts.md"
        assert f"| {rule['labels']['severity']} |" in row and f"(runbooks/{rule['alert']}.md)" in row


def test_each_runbook_shows_the_rule_as_it_is_today():
    """A runbook quotes its alert's expression; changing the rule without the runbook fails here."""
    from generator.build import build
    alerts = build(ROOT).shared["alerts"]
    stale = [name for name, a in alerts.items()
             if f"```promql\n{a['expr']}\n```" not in (ROOT / "docs" / "runbooks" / f"{name}.md").read_text()]
    assert not stale, f"runbooks quoting an old expression (update their 'What it means' block): {stale}"
