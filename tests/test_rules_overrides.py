"""Per-environment rule settings reach the rules Helm renders (Helm 3 and Helm 4).

One test per kind of override: threshold, for, keepFiringFor, severity,
enabled, labels, annotations; per group: enabled, interval, labels; global:
rule labels, runbook URL prefix, Grafana URL; the output format. The
environment files' own settings are checked as they ship.
"""
from __future__ import annotations

import pytest
import yaml

from conftest import HELM_MAJORS, ROOT, helm_template, manifests
from generator import rulelint


def rules_of(docs: list[dict]) -> dict[str, dict]:
    return {r.get("alert") or r["record"] + str(sorted((r.get("labels") or {}).items())): dict(r, group=g["name"])
            for g in rulelint.extract_groups(docs) for r in g["rules"]}


def groups_of(docs: list[dict]) -> dict[str, dict]:
    return {g["name"]: g for g in rulelint.extract_groups(docs)}


def render(tmp_path, major: int, values: dict, env: str = "prod") -> list[dict]:
    path = tmp_path / "override.yaml"
    path.write_text(yaml.safe_dump(values))
    return manifests(helm_template(env, major, extra=["-f", str(path)]).stdout)


OVERRIDES = [
    # (what, values, alert, check)
    ("threshold", {"VEIDVerificationQueue": {"thresholds": {"threshold": 250}}}, "VEIDVerificationQueue",
     lambda r: r["expr"].strip().endswith("> 250") and "(limit 250)" in r["annotations"]["description"]),
    ("large whole-number threshold", {"OrderMatchingStalled": {"thresholds": {"minOrders": 25000000000}}},
     "OrderMatchingStalled", lambda r: ">= 25000000000\n" in r["expr"]),
    ("fractional threshold", {"ValidatorDown": {"thresholds": {"maxMissingFraction": 0.3}}}, "ValidatorDown",
     lambda r: ">= 0.3\n" in r["expr"] and "(limit 0.3)" in r["annotations"]["description"]),
    ("for", {"MempoolBacklog": {"for": "45m"}}, "MempoolBacklog",
     lambda r: r["for"] == "45m" and r["annotations"]["description"].endswith("for 45m.")),
    ("keepFiringFor", {"NodeSyncLag": {"keepFiringFor": "20m"}}, "NodeSyncLag",
     lambda r: r.get("keep_firing_for") == "20m"),
    ("severity", {"BlockTimeHigh": {"severity": "critical"}}, "BlockTimeHigh",
     lambda r: r["labels"]["severity"] == "critical"),
    ("labels", {"TargetDown": {"labels": {"owner": "sre-emea"}}}, "TargetDown",
     lambda r: r["labels"].get("owner") == "sre-emea" and r["labels"]["team"] == "platform"),
    ("annotations", {"NodeLowPeers": {"annotations": {"chat": "#chain-ops"}}}, "NodeLowPeers",
     lambda r: r["annotations"].get("chat") == "#chain-ops" and r["annotations"]["summary"]),
]


# `for` set per environment reaches the description through ${for}: alerts with thresholds (the rule is rebuilt
# from its template), without thresholds, in every rules file, together with a threshold override
HOLD_TIMES = [
    ("MempoolBacklog", {"for": "30m"}, "for 30m.", "for 15m."),
    ("VirtEngineNodesDown", {"for": "30m"}, "answered a scrape for 30m.", "for 3m."),
    ("ConsensusStalled", {"for": "30m"}, "(then held for 30m)", "(then held for 2m)"),
    ("NodeSyncLag", {"for": "45m", "thresholds": {"maxBlocksBehind": 50}}, "(limit 50) for 45m.", "(limit 20) for 10m."),
    ("KubeNodeNotReady", {"for": "30m"}, "Ready for 30m;", "Ready for 15m;"),
    ("EscrowSettlementsStalled", {"for": "1h"}, "(then held for 1h)", "(then held for 30m)"),
    ("PrometheusNotConnectedToAlertmanagers", {"for": "30m"}, "no Alertmanager for 30m;", "for 10m;"),
]


@pytest.mark.parametrize("major", HELM_MAJORS)
@pytest.mark.parametrize("alert,setting,after,before", HOLD_TIMES, ids=[h[0] for h in HOLD_TIMES])
def test_a_hold_time_set_in_values_is_the_one_the_description_states(tmp_path, prod_rules, major, alert, setting,
                                                                     after, before):
    default = prod_rules[major][alert]
    assert before in default["annotations"]["description"] and after not in default["annotations"]["description"]
    rule = rules_of(render(tmp_path, major, {"rules": {"alerts": {alert: setting}}}))[alert]
    assert rule["for"] == setting["for"]
    assert after in rule["annotations"]["description"], rule["annotations"]["description"]
    assert "${" not in rule["annotations"]["description"] and "${" not in rule["expr"]


@pytest.mark.parametrize("major", HELM_MAJORS)
def test_set_for_on_the_command_line_changes_the_description(major):
    docs = manifests(helm_template("prod", major, extra=["--set", "rules.alerts.HighTransactionLatency.for=30m"]).stdout)
    rule = rules_of(docs)["HighTransactionLatency"]
    assert rule["for"] == "30m"
    assert "the chain's average block interval, for 30m." in rule["annotations"]["description"]


@pytest.fixture(scope="module")
def prod_rules(rendered) -> dict[int, dict[str, dict]]:
    return {major: rules_of(rendered[("prod", major)]) for major in HELM_MAJORS}


@pytest.mark.parametrize("major", HELM_MAJORS)
@pytest.mark.parametrize("what,alerts,alert,check", OVERRIDES, ids=[o[0] for o in OVERRIDES])
def test_an_alert_override_in_values_reaches_the_rendered_rule(tmp_path, prod_rules, major, what, alerts, alert,
                                                               check):
    before = prod_rules[major][alert]
    after = rules_of(render(tmp_path, major, {"rules": {"alerts": alerts}}))[alert]
    assert not check(before), f"{what}: the default already satisfies the check"
    assert check(after), f"{what} override did not reach {alert}: {after}"


@pytest.mark.parametrize("major", HELM_MAJORS)
def test_disabling_an_alert_removes_it_and_keeps_the_recording_rules(tmp_path, major):
    rules = rules_of(render(tmp_path, major, {"rules": {"alerts": {
        "ProviderHighFailureRate": {"enabled": False}, "ValidatorDown": {"enabled": False}}}}))
    assert "ProviderHighFailureRate" not in rules and "ValidatorDown" not in rules
    assert "ValidatorsMissingPower" in rules
    records = {r["record"] for r in rules.values() if "record" in r}
    assert {"cluster_provider:virtengine_provider_workload_failures:ratio_rate1h",
            "cluster_chain:cometbft_consensus_missing_validators_power:ratio"} <= records


@pytest.mark.parametrize("major", HELM_MAJORS)
def test_group_settings_disable_a_group_set_its_interval_and_label_its_rules(tmp_path, major):
    groups = groups_of(render(tmp_path, major, {"rules": {"groups": {
        "virtengine.business": {"enabled": False},
        "virtengine.meta": {"interval": "15s", "labels": {"pipeline": "meta"}}}}}))
    assert "virtengine.business" not in groups
    assert groups["virtengine.meta"]["interval"] == "15s"
    assert all(r["labels"]["pipeline"] == "meta" for r in groups["virtengine.meta"]["rules"])
    assert "interval" not in groups["virtengine.warning"]


@pytest.mark.parametrize("major", HELM_MAJORS)
def test_global_rule_labels_runbook_prefix_and_grafana_url_reach_every_alert(tmp_path, major):
    docs = render(tmp_path, major, {"rules": {"ruleLabels": {"region": "eu-1"}},
                                    "global": {"runbookUrl": "https://runbooks.example.org/ve",
                                               "grafanaUrl": "https://g.example.org"}})
    rules = rules_of(docs)
    assert all(r["labels"]["region"] == "eu-1" for r in rules.values())
    alerts = {k: r for k, r in rules.items() if "alert" in r}
    assert all(r["annotations"]["runbook_url"] == f"https://runbooks.example.org/ve/{k}.md" for k, r in alerts.items())
    assert all(r["annotations"]["dashboard_url"].startswith("https://g.example.org/d/") for r in alerts.values())


@pytest.mark.parametrize("major", HELM_MAJORS)
def test_configmap_format_ships_plain_rule_files_with_the_same_rules(tmp_path, prod_rules, major):
    as_operator = prod_rules[major]
    docs = render(tmp_path, major, {"rules": {"format": "ConfigMap"}})
    assert not [d for d in docs if d["kind"] == "PrometheusRule"]
    maps = [d for d in docs if d["kind"] == "ConfigMap" and any(k.endswith(".rules.yaml") for k in d["data"])]
    assert maps and rules_of(docs) == as_operator


@pytest.mark.parametrize("major", HELM_MAJORS)
def test_prometheus_rules_carry_the_ruleselector_labels_of_the_environment(rendered, major):
    for env, release in (("dev", "monitoring"), ("staging", "kube-prometheus-stack"), ("prod", "kube-prometheus-stack")):
        objects = [d for d in rendered[(env, major)] if d["kind"] == "PrometheusRule"]
        assert objects and all(d["metadata"]["labels"]["release"] == release for d in objects)
        assert all(d["apiVersion"] == "monitoring.coreos.com/v1" for d in objects)


# what the environment files set (values/<env>.yaml, rules section), as rendered
ENV_EXPECTATIONS = [
    ("dev", "ConsensusStalled", lambda r: r is not None and r["for"] == "15m"),
    ("dev", "ValidatorDown", lambda r: r is not None and r["labels"]["severity"] == "warning"),
    ("dev", "EscrowBalanceLow", lambda r: r is None),
    ("dev", "SLOVEIDResponseTime", lambda r: r is None),
    ("dev", "SLOVEIDResponseTimeBudgetBurn", lambda r: r is not None),
    ("dev", "OrderMatchingStalled", lambda r: r is None),
    ("dev", "VEIDVerificationQueue", lambda r: r["expr"].strip().endswith("> 1000") and r["for"] == "1h"),
    ("staging", "VEIDVerificationQueue", lambda r: r["expr"].strip().endswith("> 500")),
    ("staging", "EscrowBalanceLow", lambda r: r["labels"]["severity"] == "warning"
     and r["expr"].strip().endswith("denom:virtengine_escrow_balance_minimum:minor_units")),
    ("staging", "SLOOrderMatchingSuccess", lambda r: r["labels"]["severity"] == "warning"),
    ("staging", "Watchdog", lambda r: r["labels"]["environment"] == "staging"),
    ("prod", "ConsensusStalled", lambda r: r["keep_firing_for"] == "5m" and r["for"] == "2m"),
    ("prod", "SLOVEIDResponseTime", lambda r: r["labels"]["severity"] == "critical"),
    ("prod", "EscrowBalanceLow", lambda r: r["annotations"]["procedure"].startswith("https://")),
]


@pytest.mark.parametrize("major", HELM_MAJORS)
@pytest.mark.parametrize("env,alert,check", ENV_EXPECTATIONS, ids=[f"{e}-{a}" for e, a, _ in ENV_EXPECTATIONS])
def test_environment_files_rule_settings_are_what_ships(rendered, major, env, alert, check):
    assert check(rules_of(rendered[(env, major)]).get(alert))


def test_a_misspelt_alert_or_threshold_name_fails_the_schema_with_its_path(tmp_path):
    for values, needle in (({"rules": {"alerts": {"ConsensusStaled": {"for": "5m"}}}}, "ConsensusStaled"),
                           ({"rules": {"alerts": {"VEIDVerificationQueue": {"thresholds": {"treshold": 5}}}}},
                            "treshold"),
                           ({"rules": {"alerts": {"BlockTimeHigh": {"severity": "page"}}}}, "severity"),
                           ({"rules": {"alerts": {"BlockTimeHigh": {"for": "ten minutes"}}}}, "for")):
        path = tmp_path / "bad.yaml"
        path.write_text(yaml.safe_dump(values))
        proc = helm_template("prod", 3, extra=["-f", str(path)], check=False)
        assert proc.returncode != 0 and needle in proc.stderr, proc.stderr


@pytest.mark.parametrize("env", ("dev", "staging", "prod"))
def test_helm_3_and_helm_4_render_the_same_rules(rendered, env):
    assert rulelint.extract_groups(rendered[(env, 3)]) == rulelint.extract_groups(rendered[(env, 4)])


MINIMUM = "denom:virtengine_escrow_balance_minimum:minor_units"


def _minimums(docs: list[dict]) -> dict[str, str]:
    return {r["labels"]["denom"]: r["expr"] for g in rulelint.extract_groups(docs) for r in g["rules"]
            if r.get("record") == MINIMUM}


@pytest.mark.parametrize("major", HELM_MAJORS)
def test_escrow_minimums_per_denom_come_from_values_and_a_denom_can_be_removed(tmp_path, prod_rules, major):
    """rules.escrowMinimumBalance (denom -> minimum) becomes one recording rule per denom that EscrowBalanceLow
    compares with; a denom added in values gets one, null removes one, a large whole number stays exact."""
    assert MINIMUM in prod_rules[major]["EscrowBalanceLow"]["expr"]
    assert _minimums(render(tmp_path, major, {})) == {"uve": "vector(1000000000)"}
    docs = render(tmp_path, major, {"rules": {"escrowMinimumBalance": {"uve": None, "ibc/27394FB0": 25000000000,
                                                                        "uakt": 0.5}}})
    assert _minimums(docs) == {"ibc/27394FB0": "vector(25000000000)", "uakt": "vector(0.5)"}


@pytest.mark.parametrize("major", HELM_MAJORS)
def test_staging_sets_its_own_escrow_minimum(rendered, major):
    assert _minimums(rendered[("staging", major)]) == {"uve": "vector(100000000)"}
