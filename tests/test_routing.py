"""Alert routing: the Alertmanager configuration the chart renders, checked by the real amtool.

For every environment, ``helm template`` renders the configuration Secret;
``amtool check-config`` must accept it (with its notification templates),
and ``amtool config routes test`` must send each kind of alert to the
receivers the environment's policy promises. Keys never appear in values:
a key-shaped value fails ``helm template`` with how to reference a Secret.
"""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import ENVIRONMENTS, HELM_MAJORS, ROOT, helm_template, manifests, run_generator
from generator import tools

SECRET_TEMPLATE = "templates/alertmanager/config-secret.yaml"

# (case, labels, {env: expected receivers})
ROUTES = [
    ("critical chain alert", {"alertname": "ConsensusStalled", "severity": "critical", "team": "chain"},
     {"prod": "pagerduty-chain", "staging": "opsgenie-chain-p3", "dev": "null"}),
    ("critical escrow alert", {"alertname": "EscrowBalanceLow", "severity": "critical", "team": "escrow"},
     {"prod": "pagerduty-escrow", "staging": "opsgenie-escrow-p3", "dev": "null"}),
    ("warning alert", {"alertname": "HighTransactionLatency", "severity": "warning", "team": "chain"},
     {"prod": "opsgenie-chain-p3", "staging": "opsgenie-chain-p4", "dev": "null"}),
    ("info alert", {"alertname": "SomethingToKnow", "severity": "info", "team": "sre"},
     {"prod": "null", "staging": "null", "dev": "null"}),
    ("business alert", {"alertname": "OrderMatchingStalled", "severity": "warning", "team": "market"},
     {"prod": "opsgenie-market-p3", "staging": "opsgenie-market-p5", "dev": "null"}),
    ("SLO page alert", {"alertname": "SLOVEIDResponseTime", "severity": "critical", "team": "veid",
                        "slo": "veid_response_time", "burn": "fast"},
     {"prod": "pagerduty-veid", "staging": "opsgenie-veid-p3", "dev": "null"}),
    ("SLO ticket alert", {"alertname": "SLOVEIDResponseTimeBudgetBurn", "severity": "warning", "team": "veid",
                          "slo": "veid_response_time", "burn": "slow"},
     {"prod": "opsgenie-veid-p3", "staging": "opsgenie-veid-p5", "dev": "null"}),
    ("Watchdog", {"alertname": "Watchdog", "severity": "none", "team": "sre"},
     {"prod": "heartbeat", "staging": "null", "dev": "null"}),
    ("kube-prometheus-stack's InfoInhibitor", {"alertname": "InfoInhibitor", "severity": "none"},
     {"prod": "null", "staging": "null", "dev": "null"}),
    ("critical alert of an unknown team", {"alertname": "NewThing", "severity": "critical", "team": "nobody"},
     {"prod": "pagerduty-sre", "staging": "opsgenie-sre-p3", "dev": "null"}),
    ("warning alert without a team", {"alertname": "NewThing", "severity": "warning"},
     {"prod": "opsgenie-sre-p3", "staging": "opsgenie-sre-p4", "dev": "null"}),
    ("alert with a misspelt severity", {"alertname": "NewThing", "severity": "critcal", "team": "chain"},
     {"prod": "opsgenie-sre-p3", "staging": "opsgenie-sre-p5", "dev": "null"}),
]


def alertmanager_files(env: str | None, folder: Path, major: int = 3, extra: list[str] | None = None) -> Path:
    """Writes the rendered alertmanager.yaml and its templates into ``folder``; returns the config path."""
    folder.mkdir(parents=True, exist_ok=True)
    proc = helm_template(env, major, extra=["--set", f"alertmanager.templatesPath={folder}",
                                            "--show-only", SECRET_TEMPLATE, *(extra or [])])
    (secret,) = manifests(proc.stdout)
    for key, text in secret["stringData"].items():
        (folder / key).write_text(text)
    return folder / "alertmanager.yaml"


@pytest.fixture(scope="module")
def configs(tmp_path_factory) -> dict[str, Path]:
    return {env: alertmanager_files(env, tmp_path_factory.mktemp(env)) for env in ENVIRONMENTS}


def amtool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([tools.find("amtool"), *args], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_rendered_alertmanager_config_passes_amtool_check_config(configs, env):
    proc = amtool("check-config", str(configs[env]))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 templates" in proc.stdout, proc.stdout   # the notification templates were found and parsed


@pytest.mark.parametrize("env", ENVIRONMENTS)
@pytest.mark.parametrize("case,labels,expected", ROUTES, ids=[r[0] for r in ROUTES])
def test_each_kind_of_alert_reaches_the_receiver_of_the_environment_policy(configs, env, case, labels, expected):
    proc = amtool("config", "routes", "test", f"--config.file={configs[env]}",
                  *[f"{k}={v}" for k, v in labels.items()])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [expected[env]], f"{case} in {env}: {proc.stdout}"


def test_dev_config_has_no_vendor_receiver(configs):
    config = yaml.safe_load(configs["dev"].read_text())
    assert [r["name"] for r in config["receivers"]] == ["null"]


def test_prod_receivers_read_keys_from_mounted_secret_files_only(configs):
    config = yaml.safe_load(configs["prod"].read_text())
    pd = [c for r in config["receivers"] for c in r.get("pagerduty_configs", [])]
    og = [c for r in config["receivers"] for c in r.get("opsgenie_configs", [])]
    assert pd and og
    for c in pd:
        assert "routing_key" not in c and "service_key" not in c
        assert c["routing_key_file"] == "/etc/alertmanager/secrets/virtengine-alerting/pagerduty-routing-key"
    for c in og:
        assert "api_key" not in c
        assert c["api_key_file"] == "/etc/alertmanager/secrets/virtengine-alerting/opsgenie-api-key"


def test_pagerduty_events_carry_runbook_and_dashboard_links_and_mapped_severity(configs):
    config = yaml.safe_load(configs["prod"].read_text())
    pd = next(c for r in config["receivers"] for c in r.get("pagerduty_configs", []))
    assert [link["text"] for link in pd["links"]] == ["Runbook", "Dashboard"]
    assert "runbookURL" in pd["links"][0]["href"] and "dashboardURL" in pd["links"][1]["href"]
    assert "virtengine.pagerduty.severity" in pd["severity"]
    assert {"runbook_url", "dashboard_url", "description", "firing"} <= set(pd["details"])


def test_opsgenie_alerts_go_to_the_team_with_priority_tags_and_updates(configs):
    config = yaml.safe_load(configs["staging"].read_text())
    receiver = next(r for r in config["receivers"] if r["name"] == "opsgenie-escrow-p4")
    (og,) = receiver["opsgenie_configs"]
    assert og["responders"] == [{"type": "team", "name": "virtengine-escrow"}]
    assert og["priority"] == "P4" and og["update_alerts"] is True
    assert og["tags"].startswith("virtengine,") and "virtengine.opsgenie.tags" in og["tags"]


def test_watchdog_pings_the_heartbeat_every_minute_with_its_credentials_from_a_secret(configs):
    config = yaml.safe_load(configs["prod"].read_text())
    (hook,) = next(r for r in config["receivers"] if r["name"] == "heartbeat")["webhook_configs"]
    assert hook["url"] == "https://api.opsgenie.com/v2/heartbeats/virtengine-prod/ping"
    assert hook["http_config"]["authorization"] == {
        "type": "GenieKey", "credentials_file": "/etc/alertmanager/secrets/virtengine-alerting/opsgenie-api-key"}
    watchdog = next(r for r in config["route"]["routes"] if 'alertname="Watchdog"' in r.get("matchers", []))
    assert watchdog["receiver"] == "heartbeat" and watchdog["repeat_interval"] == "1m"


def test_critical_alert_mutes_its_warning_twin_and_a_stall_mutes_its_symptoms(configs):
    config = yaml.safe_load(configs["prod"].read_text())
    rules = {(tuple(r["source_matchers"]), tuple(r["target_matchers"])): r["equal"] for r in config["inhibit_rules"]}
    assert rules[(('alertname="ValidatorDown"',), ('alertname="ValidatorsMissingPower"',))] == ["cluster", "chain_id"]
    # a halt caused by missing voting power pages once, for its cause
    assert rules[(('alertname="ValidatorDown"',), ('alertname="ConsensusStalled"',))] == ["cluster", "chain_id"]
    stall = [t for (s, t) in rules if s == ('alertname="ConsensusStalled"',)]
    assert any("BlockTimeHigh" in t[0] for t in stall) and any("HighTransactionLatency" in t[0] for t in stall)


def test_business_route_matches_every_alert_of_the_business_rule_group(configs):
    import json
    names = sorted(r["alert"] for r in json.loads((ROOT / "chart/files/rules/virtengine.business.json").read_text())[
        "rules"] if "alert" in r)
    config = yaml.safe_load(configs["prod"].read_text())
    assert any(f'alertname=~"{"|".join(names)}"' in r.get("matchers", []) for r in config["route"]["routes"])


@pytest.mark.parametrize("major", HELM_MAJORS)
def test_secret_name_and_key_are_configurable_for_kube_prometheus_stack(major):
    proc = helm_template("prod", major, extra=["--set", "alertmanager.secretName=alertmanager-virtengine",
                                               "--show-only", SECRET_TEMPLATE])
    (secret,) = manifests(proc.stdout)
    assert secret["metadata"]["name"] == "alertmanager-virtengine"
    assert "route" in yaml.safe_load(secret["stringData"]["alertmanager.yaml"])


KEY_SHAPED = [
    ("alertmanager.pagerduty.routingKeySecret.key", "0123456789abcdef0123456789abcdef"),
    ("alertmanager.opsgenie.apiKeySecret.name", "3fa85f64-5717-4562-b3fc-2c963f66afa6"),
    ("alertmanager.teams.chain.pagerdutyRoutingKeySecret.key", "R0QWERTY12345ASDFG67890ZXCV"),
]


@pytest.mark.parametrize("major", HELM_MAJORS)
@pytest.mark.parametrize("path,value", KEY_SHAPED, ids=[k[0] for k in KEY_SHAPED])
def test_key_shaped_value_fails_helm_template_saying_how_to_reference_a_secret(major, path, value):
    extra = ["--set", f"{path}={value}"]
    if path.startswith("alertmanager.teams.chain."):
        extra += ["--set", "alertmanager.teams.chain.pagerdutyRoutingKeySecret.name=chain-pagerduty"]
    proc = helm_template("prod", major, extra=extra, check=False)
    assert proc.returncode != 0
    assert path.rsplit(".", 1)[0] in proc.stderr and "create a Secret" in proc.stderr, proc.stderr
    assert value not in proc.stderr   # the message does not repeat the credential


@pytest.mark.parametrize("major", HELM_MAJORS)
def test_values_have_no_field_for_a_literal_key(major):
    proc = helm_template("prod", major, extra=["--set", "alertmanager.pagerduty.routingKey=abc"], check=False)
    assert proc.returncode != 0 and "routingKey" in proc.stderr, proc.stderr


@pytest.mark.parametrize("major", HELM_MAJORS)
def test_heartbeat_url_with_an_embedded_token_fails(major):
    proc = helm_template("prod", major, check=False, extra=[
        "--set", "alertmanager.heartbeat.url=https://hc-ping.com/3fa85f64-5717-4562-b3fc-2c963f66afa6"])
    assert proc.returncode != 0 and "alertmanager.heartbeat.url" in proc.stderr and "Secret" in proc.stderr


def test_alertmanager_config_resource_mirrors_the_routes_with_secret_key_selectors():
    proc = helm_template("prod", 3, extra=["--set", "alertmanager.alertmanagerConfig.enabled=true",
                                           "--show-only", "templates/alertmanager/alertmanagerconfig.yaml"])
    (cr,) = manifests(proc.stdout)
    assert cr["apiVersion"] == "monitoring.coreos.com/v1alpha1" and cr["kind"] == "AlertmanagerConfig"
    receivers = {r["name"]: r for r in cr["spec"]["receivers"]}
    assert receivers["pagerduty-chain"]["pagerdutyConfigs"][0]["routingKey"] == {
        "name": "virtengine-alerting", "key": "pagerduty-routing-key"}
    assert receivers["opsgenie-chain-p3"]["opsgenieConfigs"][0]["apiKey"]["key"] == "opsgenie-api-key"
    critical = next(r for r in cr["spec"]["route"]["routes"]
                    if {"name": "severity", "value": "critical"} in r["matchers"])
    assert critical["receiver"] == "pagerduty-sre"
    assert {"receiver": "pagerduty-chain", "matchers": [{"name": "team", "value": "chain"}]} in critical["routes"]


def test_grafana_provisioning_has_the_same_contact_points_and_policy():
    proc = helm_template("prod", 3, extra=["--set", "alertmanager.grafana.enabled=true",
                                           "--show-only", "templates/alertmanager/grafana-alerting.yaml"])
    (cm,) = manifests(proc.stdout)
    assert cm["metadata"]["labels"]["grafana_alert"] == "1"
    prov = yaml.safe_load(cm["data"]["virtengine-alerting.yaml"])
    points = {p["name"]: p["receivers"][0] for p in prov["contactPoints"]}
    assert points["pagerduty-chain"]["type"] == "pagerduty"
    assert points["pagerduty-chain"]["settings"]["integrationKey"] == \
        "$__file{/etc/grafana/secrets/virtengine-alerting/pagerduty-routing-key}"
    assert points["opsgenie-veid-p3"]["settings"]["responders"] == [{"type": "team", "name": "virtengine-veid"}]
    (policy,) = prov["policies"]
    assert policy["routes"][0] == {"receiver": "heartbeat", "matchers": ['alertname="Watchdog"'],
                                   "group_wait": "0s", "group_interval": "1m", "repeat_interval": "1m"}


def test_route_naming_an_alert_that_does_not_exist_fails_render_with_its_key(project):
    path = project / "values" / "defaults.yaml"
    path.write_text(path.read_text().replace("'alertname=\"ValidatorDown\"'", "'alertname=\"ValidatorGone\"'"))
    proc = run_generator(project, "render")
    assert proc.returncode == 1
    assert re.search(r"alertmanager\.inhibitions\.validatorDownMutes(MissingPower|ConsensusStalled)\.sourceMatchers",
                     proc.stderr)
    assert "ValidatorGone" in proc.stderr


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_routing_objects_with_every_option_on_are_valid_kubernetes_and_crd_manifests(env):
    from generator import manifests as kube
    proc = helm_template(env, 3, extra=["--set", "alertmanager.alertmanagerConfig.enabled=true",
                                        "--set", "alertmanager.grafana.enabled=true",
                                        "--show-only", SECRET_TEMPLATE,
                                        "--show-only", "templates/alertmanager/alertmanagerconfig.yaml",
                                        "--show-only", "templates/alertmanager/grafana-alerting.yaml"])
    docs = manifests(proc.stdout)
    assert sorted(d["kind"] for d in docs) == ["AlertmanagerConfig", "ConfigMap", "Secret"]
    assert kube.validate(docs, kube.kube_version(ROOT / "chart" / "Chart.yaml")) == []


def test_all_nodes_down_mutes_the_pages_it_causes_in_the_same_cluster(configs):
    import re
    config = yaml.safe_load(configs["prod"].read_text())
    muted = set()
    for rule in config["inhibit_rules"]:
        if rule["source_matchers"] == ['alertname="VirtEngineNodesDown"'] and rule["equal"] == ["cluster"]:
            for matcher in rule["target_matchers"]:
                m = re.fullmatch(r'alertname=~"(.*)"', matcher) or re.fullmatch(r'alertname="(.*)"', matcher)
                muted |= {name for name in ("VirtEngineNodeDown", "TargetDown", "CometBFTMetricsAbsent")
                          if re.fullmatch(m.group(1), name)}
    assert muted == {"VirtEngineNodeDown", "TargetDown", "CometBFTMetricsAbsent"}
