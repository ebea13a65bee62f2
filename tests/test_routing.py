"""Alert routing: the Alertmanager configuration the chart renders, checked by the real amtool.

For every environment, ``helm template`` renders the configuration Secret;
``amtool check-config`` must accept it (with its notification templates),
and ``amtool config routes test`` must send each kind of alert to the
receivers the environment's policy promises. Keys never appear in values:
a key-shaped value fails ``helm template`` with how to reference a Secret.
"""
from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

import promql_labels
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
    ("Watchdog", {"alertname": "Watchdog", "severity": "info", "team": "sre"},
     {"prod": "heartbeat", "staging": "null", "dev": "null"}),
    ("critical alert of an unknown team", {"alertname": "NewThing", "severity": "critical", "team": "nobody"},
     {"prod": "pagerduty-sre", "staging": "opsgenie-sre-p3", "dev": "null"}),
    ("warning alert without a team", {"alertname": "NewThing", "severity": "warning"},
     {"prod": "opsgenie-sre-p3", "staging": "opsgenie-sre-p4", "dev": "null"}),
    ("alert with a misspelt severity", {"alertname": "NewThing", "severity": "critcal", "team": "chain"},
     {"prod": "opsgenie-sre-p3", "staging": "opsgenie-sre-p5", "dev": "null"}),
    # a failing vendor cannot carry its own outage notice: it goes through the other vendor
    ("PagerDuty failing", {"alertname": "AlertmanagerNotificationsFailing", "severity": "critical", "team": "sre",
                           "integration": "pagerduty"},
     {"prod": "opsgenie-sre-p1", "staging": "opsgenie-sre-p3", "dev": "null"}),
    ("Opsgenie failing", {"alertname": "AlertmanagerNotificationsFailing", "severity": "critical", "team": "sre",
                          "integration": "opsgenie"},
     {"prod": "pagerduty-sre", "staging": "opsgenie-sre-p3", "dev": "null"}),
    ("heartbeat webhook failing", {"alertname": "AlertmanagerNotificationsFailing", "severity": "critical",
                                   "team": "sre", "integration": "webhook"},
     {"prod": "pagerduty-sre", "staging": "opsgenie-sre-p3", "dev": "null"}),
    ("every Alertmanager unreachable", {"alertname": "PrometheusAlertSendFailures", "severity": "critical",
                                       "team": "sre"},
     {"prod": "pagerduty-sre", "staging": "opsgenie-sre-p3", "dev": "null"}),
    ("one Alertmanager of several unreachable", {"alertname": "PrometheusAlertSendFailuresPartial",
                                                 "severity": "warning", "team": "sre"},
     {"prod": "opsgenie-sre-p3", "staging": "opsgenie-sre-p4", "dev": "null"}),
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
    # ValidatorDown warns before a halt; once the chain halts, the halt pages and ValidatorDown (its rounds
    # signal still fires) is muted: one incident, one page, and the halt page is never the one hidden
    assert rules[(('alertname="ConsensusStalled"',), ('alertname="ValidatorDown"',))] == ["cluster", "chain_id"]
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
    assert re.search(r"alertmanager\.inhibitions\.(validatorDownMutesMissingPower\.sourceMatchers|"
                     r"consensusStalledMutesValidatorDown\.targetMatchers)", proc.stderr)
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


# -- what each receiver sends, and how alerts are grouped and muted (issue 12, section 3) ---------------------

def _receiver_configs(config: dict, kind: str) -> dict[str, dict]:
    return {r["name"]: c for r in config["receivers"] for c in r.get(f"{kind}_configs", [])}


@pytest.mark.parametrize("env", ["prod", "staging"])
def test_vendor_receivers_send_resolved_so_incidents_close_and_the_heartbeat_does_not(configs, env):
    """PagerDuty incidents and Opsgenie alerts close when the alert resolves; a heartbeat ping is never a resolve."""
    config = yaml.safe_load(configs[env].read_text())
    vendors = {**_receiver_configs(config, "pagerduty"), **_receiver_configs(config, "opsgenie")}
    assert vendors
    assert {name: c.get("send_resolved") for name, c in vendors.items()} == {name: True for name in vendors}
    for name, hook in _receiver_configs(config, "webhook").items():
        assert hook["send_resolved"] is False, f"{env}: {name} would ping the heartbeat for a resolved Watchdog"


def test_heartbeat_sends_no_resolved_notification_in_every_rendering():
    proc = helm_template("prod", 3, extra=["--set", "alertmanager.alertmanagerConfig.enabled=true",
                                           "--set", "alertmanager.grafana.enabled=true",
                                           "--show-only", SECRET_TEMPLATE,
                                           "--show-only", "templates/alertmanager/alertmanagerconfig.yaml",
                                           "--show-only", "templates/alertmanager/grafana-alerting.yaml"])
    docs = {d["kind"]: d for d in manifests(proc.stdout)}
    config = yaml.safe_load(docs["Secret"]["stringData"]["alertmanager.yaml"])
    (hook,) = next(r for r in config["receivers"] if r["name"] == "heartbeat")["webhook_configs"]
    assert hook["send_resolved"] is False
    cr = next(r for r in docs["AlertmanagerConfig"]["spec"]["receivers"] if r["name"] == "heartbeat")
    assert cr["webhookConfigs"][0]["sendResolved"] is False
    prov = yaml.safe_load(docs["ConfigMap"]["data"]["virtengine-alerting.yaml"])
    point = next(p for p in prov["contactPoints"] if p["name"] == "heartbeat")
    assert point["receivers"][0]["disableResolveMessage"] is True


# the severity Alertmanager sends to PagerDuty (payload.severity: critical, error, warning or info) for each
# severity label; anything unknown is "error" so a misspelt label still pages at a sensible level
PD_SEVERITY = [("critical", "critical"), ("warning", "warning"), ("info", "info"), ("critcal", "error"), ("", "error")]


@pytest.mark.parametrize("label,expected", PD_SEVERITY, ids=[f"{s or 'none'}->{e}" for s, e in PD_SEVERITY])
def test_pagerduty_severity_is_mapped_from_the_severity_label(configs, tmp_path, label, expected):
    """The prod receivers' ``severity`` field rendered by amtool with the chart's templates."""
    config = yaml.safe_load(configs["prod"].read_text())
    fields = {c["severity"] for c in _receiver_configs(config, "pagerduty").values()}
    assert len(fields) == 1, fields
    data = tmp_path / "data.json"
    labels = {"alertname": "ConsensusStalled", "cluster": "c1", **({"severity": label} if label else {})}
    data.write_text(json.dumps({"receiver": "pagerduty-chain", "status": "firing", "alerts": [
        {"status": "firing", "labels": labels, "annotations": {}, "startsAt": "2026-01-01T00:00:00Z",
         "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "", "fingerprint": "0123456789abcdef"}],
        "groupLabels": {}, "commonLabels": labels, "commonAnnotations": {}, "externalURL": "http://am"}))
    proc = amtool("template", "render", f"--template.glob={configs['prod'].parent}/*.tmpl",
                  f"--template.text={fields.pop()}", f"--template.data={data}")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == expected


def test_alerts_are_grouped_by_alert_cluster_and_chain_in_every_rendering(configs):
    """One notification per alert name, cluster and chain: inhibitions and the PagerDuty dedup rest on it."""
    want = yaml.safe_load((ROOT / "values" / "defaults.yaml").read_text())["alertmanager"]["groupBy"]
    assert want == ["alertname", "cluster", "chain_id"]
    for env in ENVIRONMENTS:
        assert yaml.safe_load(configs[env].read_text())["route"]["group_by"] == want, env
    proc = helm_template("prod", 3, extra=["--set", "alertmanager.alertmanagerConfig.enabled=true",
                                           "--set", "alertmanager.grafana.enabled=true",
                                           "--show-only", "templates/alertmanager/alertmanagerconfig.yaml",
                                           "--show-only", "templates/alertmanager/grafana-alerting.yaml"])
    docs = {d["kind"]: d for d in manifests(proc.stdout)}
    assert docs["AlertmanagerConfig"]["spec"]["route"]["groupBy"] == want
    assert yaml.safe_load(docs["ConfigMap"]["data"]["virtengine-alerting.yaml"])["policies"][0]["group_by"] == want


# Every inhibition of prod as a contract: (source matchers, target matchers) -> equal. A changed `equal`
# (one label more is as broken as one less: the rule stops muting) fails here.
INHIBITIONS = {
    (('alertname="ValidatorDown"',), ('alertname="ValidatorsMissingPower"',)): ["cluster", "chain_id"],
    (('alertname="ConsensusStalled"',), ('alertname="ValidatorDown"',)): ["cluster", "chain_id"],
    (('alertname="VirtEngineNodesDown"',), ('alertname=~"VirtEngineNodeDown|TargetDown|CometBFTMetricsAbsent"',)):
        ["cluster"],
    (('alertname="KubePersistentVolumeAlmostFull"',), ('alertname="KubePersistentVolumeFillingUp"',)):
        ["cluster", "namespace", "persistentvolumeclaim"],
    (('alertname="VirtEngineNodeFilesystemAlmostFull"',), ('alertname="NodeFilesystemFillingUp"',)):
        ["cluster", "instance", "mountpoint"],
    (('alertname="PrometheusAlertSendFailures"',), ('alertname="PrometheusAlertSendFailuresPartial"',)):
        ["cluster", "namespace", "pod"],
    (('slo=~".+"', 'burn="fast"'), ('slo=~".+"', 'burn="slow"')): ["cluster", "slo"],
    (('alertname="ConsensusStalled"',),
     ('alertname=~"BlockTimeHigh|NodeSyncLag|MempoolBacklog|ValidatorsMissingPower"',)): ["cluster", "chain_id"],
    (('alertname="ConsensusStalled"',),
     ('alertname=~"HighTransactionLatency|OrderMatchingStalled|EscrowSettlementsStalled|VEIDVerificationThroughputLow"',)):
        ["cluster"],
}


def test_every_inhibition_mutes_with_the_labels_it_was_designed_with(configs):
    config = yaml.safe_load(configs["prod"].read_text())
    rendered = {(tuple(r["source_matchers"]), tuple(r["target_matchers"])): r["equal"] for r in config["inhibit_rules"]}
    assert {key: rendered.get(key) for key in INHIBITIONS} == INHIBITIONS


def _rendered_rules() -> tuple[dict[str, dict], dict[str, tuple[str, set[str]]]]:
    """(alert -> rule, recording rule -> (expr, static label names)) as the chart ships them."""
    rules, recorded = {}, {}
    for path in sorted((ROOT / "chart" / "files" / "rules").glob("*.json")):
        for rule in json.loads(path.read_text())["rules"]:
            if "alert" in rule:
                rules[rule["alert"]] = rule
            else:
                recorded[rule["record"]] = (rule["expr"], set(rule.get("labels") or {}))
    return rules, recorded


def _matches(matcher: str, labels: dict) -> bool:
    m = re.fullmatch(r'([a-zA-Z_][a-zA-Z0-9_]*)(=~|!~|!=|=)"(.*)"', matcher)
    name, op, value = m.groups()
    have = labels.get(name, "")
    return {"=": have == value, "!=": have != value, "=~": re.fullmatch(value, have) is not None,
            "!~": re.fullmatch(value, have) is None}[op]


_SERIES_LABELS = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"')


def _firing_cases() -> dict[str, list[tuple[str, set[str], set[str]]]]:
    """alert -> [(where, label names of the case's firing alerts, label names of the test's input series)].

    The exp_labels of a promtool case are what the real Prometheus computed from the inputs (promtool
    compares them exactly), so they show which labels an expression keeps."""
    found: dict[str, list] = {}
    for path in sorted((ROOT / "tests" / "rules").glob("*.test.yaml")):
        for i, test in enumerate(yaml.safe_load(path.read_text())["tests"]):
            inputs = {name for s in test.get("input_series", []) for name in _SERIES_LABELS.findall(s["series"])}
            for case in test.get("alert_rule_test", []):
                if case.get("exp_alerts"):
                    labels = {name for alert in case["exp_alerts"] for name in alert.get("exp_labels") or {}}
                    found.setdefault(case["alertname"], []).append(
                        (f"{path.name} test {i + 1} at {case['eval_time']}", labels, inputs))
    return found


def _labels_kept(alert: str, rule: dict, label: str, cases: dict, recorded: dict | None = None) -> str | None:
    """None when ``alert`` carries ``label``; otherwise why not.

    Two kinds of evidence: the labels the expression keeps by its structure (outermost ``by (...)``, set
    operations, recording rules; ``promql_labels``) where that is certain, and the promtool cases."""
    if label in rule.get("labels", {}):
        return None
    if "expr" in rule:
        kept = promql_labels.labels_of(rule["expr"], recorded or {})
        if kept is not None and label not in kept:
            return f"{alert}'s expression keeps only {sorted(kept)}, not {label!r}"
    mine = cases.get(alert, [])
    dropped = [where for where, labels, inputs in mine if label in inputs and label not in labels]
    if dropped:
        return f"{alert} drops {label!r} although its input series have it ({dropped[0]})"
    if not any(label in labels for _, labels, _ in mine):
        return f"no firing promtool case of {alert} has {label!r}"
    return None


def test_every_inhibition_label_exists_on_both_the_muting_and_the_muted_alerts(configs):
    """An `equal` label missing on one side never matches: the inhibition silently mutes nothing (or, missing on
    both, mutes across clusters or chains). Checked against what the rules keep in their promtool cases."""
    from generator.content import routing
    external = getattr(routing, "EXTERNAL_ALERTS", set())   # the stack's alerts that the routing may name
    (rules, recorded), cases = _rendered_rules(), _firing_cases()
    config = yaml.safe_load(configs["prod"].read_text())
    problems = []
    for inhibit in config["inhibit_rules"]:
        if "alertname" in inhibit["equal"]:
            continue   # twins: both sides are the same alert, so every label is on both sides or on neither
        for side in ("source_matchers", "target_matchers"):
            alerts = [a for a, rule in rules.items()
                      if all(_matches(m, {"alertname": a, **rule.get("labels", {})}) for m in inhibit[side])]
            names = {n for m in inhibit[side] for n in re.findall(r'^alertname="(\w+)"$', m)}
            assert alerts or not names or names <= external, f"{side} {inhibit[side]} matches no alert of the chart"
            # no alert of this chart on this side: the inhibition is about kube-prometheus-stack's alerts
            # (InfoInhibitor, its info alerts), whose labels are the stack's business
            for alert in alerts:
                for label in inhibit["equal"]:
                    why = _labels_kept(alert, rules[alert], label, cases, recorded)
                    if why:
                        problems.append(f"{inhibit['source_matchers']} -> {inhibit['target_matchers']} "
                                        f"equal {inhibit['equal']}: {why}")
    assert not problems, "\n".join(problems)


def test_inhibition_label_check_notices_an_alert_that_drops_the_label():
    """The check above on a rule that aggregates chain_id away (MempoolBacklog as it was)."""
    cases = {"X": [("t", {"cluster"}, {"cluster", "chain_id", "pod"})]}
    assert "drops 'chain_id'" in _labels_kept("X", {"labels": {}}, "chain_id", cases)
    assert "no firing promtool case" in _labels_kept("Y", {"labels": {}}, "chain_id", cases)
    assert _labels_kept("X", {"labels": {}}, "cluster", cases) is None
    assert _labels_kept("X", {"labels": {"slo": "a"}}, "slo", cases) is None
    assert "keeps only ['cluster']" in _labels_kept(
        "X", {"labels": {}, "expr": "sum by (cluster) (cometbft_mempool_size) > 100"}, "chain_id", {})


# (expression, labels its result carries for sure; None: depends on the targets)
LABELS_OF = [
    ("sum by (cluster) (rate(x_total[5m])) > 0.5", {"cluster"}),
    ("max by (cluster, chain_id) (changes(h[3m])) == 0", {"cluster", "chain_id"}),
    ("sum(rate(x_total[5m]))", set()),
    ("x > 3", None),
    ("sum without (pod) (x)", None),
    ("a / on (cluster) group_left (chain_id) max by (cluster, chain_id) (b)", None),
    ("sum by (cluster) (a) / on (cluster) group_left (chain_id) max by (cluster, chain_id) (b)", {"cluster", "chain_id"}),
    ("sum by (cluster) (a) * on (cluster) group_right (pod) max by (cluster, job) (b)", {"cluster", "job", "pod"}),
    ("max by (cluster, pod) (a) and on (cluster) sum by (cluster) (b)", {"cluster", "pod"}),
    ("max by (cluster, pod) (a) unless on (cluster) sum by (cluster) (b)", {"cluster", "pod"}),
    ("max by (cluster, pod) (a) or sum by (cluster, job) (b)", {"cluster"}),
    ("group by (cluster) (up) or on () absent(up{job=\"x\",cluster=~\"c.*\"})", set()),
    ("absent(up{job=\"cometbft\"})", {"job"}),
    ("vector(1)", set()),
    ("100 * (count by (cluster, job) (up == 0) / on (cluster, job) count by (cluster, job) (up)) > 10",
     {"cluster", "job"}),
    ("histogram_quantile(0.99, sum by (cluster, le) (rate(b_bucket[5m]))) > 2", {"cluster"}),
    ("label_replace(sum by (cluster) (a), \"team\", \"chain\", \"\", \"\")", {"cluster", "team"}),
    ("topk by (cluster) (3, sum by (cluster, pod) (a))", {"cluster", "pod"}),
    ("count_values by (cluster) (\"version\", v)", {"cluster", "version"}),
    ("rec:metric:ratio > 0.5", {"cluster", "chain_id", "slo"}),
    ("2 ^ 3 ^ max by (cluster) (a)", {"cluster"}),
]


@pytest.mark.parametrize("expr,expected", LABELS_OF, ids=[e for e, _ in LABELS_OF])
def test_label_inference_follows_promql(expr, expected):
    recorded = {"rec:metric:ratio": ("max by (cluster, chain_id) (a) / max by (cluster, chain_id) (b)", {"slo"})}
    assert promql_labels.labels_of(expr, recorded) == expected


def test_label_inference_reads_every_rendered_alert():
    """Every alert and recording rule of the chart parses (an unreadable one would escape the inhibition check)."""
    rules, recorded = _rendered_rules()
    for expr, _ in recorded.values():
        promql_labels.labels_of(expr, recorded)
    known = {name: promql_labels.labels_of(rule["expr"], recorded) for name, rule in rules.items()}
    assert known["ConsensusStalled"] == {"cluster", "chain_id"}
    assert known["Watchdog"] == set()


def test_install_notes_list_the_secrets_alertmanager_must_mount_with_each_teams_own_key():
    from generator import tools
    proc = tools.run([tools.helm(4), "install", "--dry-run=client", "vemon", str(ROOT / "chart"), "-n", "monitoring",
                      "-f", str(ROOT / "values" / "prod.yaml"),
                      "--set", "alertmanager.teams.chain.pagerdutyRoutingKeySecret.key=pagerduty-routing-key-chain",
                      "--set", "alertmanager.teams.escrow.pagerdutyRoutingKeySecret.name=escrow-alerting"], timeout=120)
    notes = proc.stdout.split("NOTES:", 1)[1]
    assert "alertmanager.alertmanagerSpec.secrets: [escrow-alerting, virtengine-alerting]" in notes
    listed = [line.strip() for line in notes.splitlines() if line.startswith("  ") and "/" in line
              and " " not in line.strip()]
    assert listed == ["escrow-alerting/pagerduty-routing-key", "virtengine-alerting/opsgenie-api-key",
                      "virtengine-alerting/pagerduty-routing-key", "virtengine-alerting/pagerduty-routing-key-chain"]


@pytest.mark.parametrize("team_secret,expected_file", [
    ({}, "virtengine-alerting/pagerduty-routing-key"),
    ({"key": "pagerduty-routing-key-chain"}, "virtengine-alerting/pagerduty-routing-key-chain"),
    ({"name": "chain-alerting"}, "chain-alerting/pagerduty-routing-key"),
    ({"name": "chain-alerting", "key": "routing-key"}, "chain-alerting/routing-key"),
], ids=["shared", "own key in the shared Secret", "own Secret, shared key name", "own Secret and key"])
def test_a_team_pages_with_its_own_routing_key_file_and_the_others_keep_the_shared_one(tmp_path, team_secret,
                                                                                     expected_file):
    extra = []
    for field, value in team_secret.items():
        extra += ["--set", f"alertmanager.teams.chain.pagerdutyRoutingKeySecret.{field}={value}"]
    config = yaml.safe_load(alertmanager_files("prod", tmp_path, extra=extra).read_text())
    files = {name: c["routing_key_file"] for name, c in _receiver_configs(config, "pagerduty").items()}
    assert files.pop("pagerduty-chain") == f"/etc/alertmanager/secrets/{expected_file}"
    assert set(files.values()) == {"/etc/alertmanager/secrets/virtengine-alerting/pagerduty-routing-key"}
    proc = amtool("check-config", str(tmp_path / "alertmanager.yaml"))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_routing_a_failing_vendor_to_itself_fails_render_with_its_key(project):
    path = project / "values" / "prod.yaml"
    path.write_text(path.read_text().replace("alertmanager:\n", "alertmanager:\n  routes:\n"
                                             "    vendorFailingOpsgenie: {notify: opsgenie}\n", 1))
    proc = run_generator(project, "render")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "values/prod.yaml" in proc.stderr and "alertmanager.routes.vendorFailingOpsgenie.notify" in proc.stderr
    assert "failing opsgenie" in proc.stderr
