"""Install time as strict as render time.

What the generator refuses in ``values/<env>.yaml``, ``helm template`` refuses in the values of an install
(``--set``) too, with Helm 3 and Helm 4, naming the key: single-key constraints from ``values.schema.json``
(the schema the generator validates with), the cross-field checks and the key-shaped strings from
``templates/validate.yaml`` (reading ``files/checks/``, written by the generator's own check code). Each
refusal is also run through the generator's side with the same value in an environment file.

Then what the other install-time items promise: null where a map is expected, the vendors' ``enabled``,
``global.environment`` as the alerts' ``environment`` label, the name overrides and 63-character names under
a 53-character release, links to a dashboard turned off, no provisioning file beside the Grafana Operator.
"""
from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import HELM_MAJORS, ROOT, helm_template, manifests
from generator import secrets, tools, yamlio
from generator import schema as values_schema
from generator.build import CONTENT_STAGES, Output, load_sources
from generator.content import datasources, routing, scrape
from generator.errors import GeneratorError
from generator.values import Environment

PD_KEY = "a1b2c3d4e5f60718293a4b5c6d7e8f90"            # 32 letters and digits: a PagerDuty routing key's shape
OG_KEY = "0f8fad5b-d9cb-469f-a165-70867728950e"        # a UUID: an Opsgenie API key's shape
TOKEN = "k8Zq3LmP0xW7rT2v"

# (id, --set arguments, overlay of values/prod.yaml with the same values, key the message must name, secret)
REFUSALS = [
    ("negative queue threshold", ["rules.alerts.VEIDVerificationQueue.thresholds.threshold=-5"],
     {"rules": {"alerts": {"VEIDVerificationQueue": {"thresholds": {"threshold": -5}}}}},
     "rules.alerts.VEIDVerificationQueue.thresholds.threshold", None),
    ("ratio above 1", ["rules.alerts.MLInferenceTimeout.thresholds.maxTimeoutRatio=5"],
     {"rules": {"alerts": {"MLInferenceTimeout": {"thresholds": {"maxTimeoutRatio": 5}}}}},
     "rules.alerts.MLInferenceTimeout.thresholds.maxTimeoutRatio", None),
    ("negative ratio", ["rules.alerts.ValidatorsMissingPower.thresholds.maxMissingFraction=-0.1"],
     {"rules": {"alerts": {"ValidatorsMissingPower": {"thresholds": {"maxMissingFraction": -0.1}}}}},
     "rules.alerts.ValidatorsMissingPower.thresholds.maxMissingFraction", None),
    ("percentage above 100", ["rules.alerts.TargetDown.thresholds.maxDownPercent=150"],
     {"rules": {"alerts": {"TargetDown": {"thresholds": {"maxDownPercent": 150}}}}},
     "rules.alerts.TargetDown.thresholds.maxDownPercent", None),
    ("zero block time", ["rules.alerts.BlockTimeHigh.thresholds.maxSeconds=0"],
     {"rules": {"alerts": {"BlockTimeHigh": {"thresholds": {"maxSeconds": 0}}}}},
     "rules.alerts.BlockTimeHigh.thresholds.maxSeconds", None),
    ("zero-length range", ["rules.alerts.ConsensusStalled.thresholds.windowMinutes=0"],
     {"rules": {"alerts": {"ConsensusStalled": {"thresholds": {"windowMinutes": 0}}}}},
     "rules.alerts.ConsensusStalled.thresholds.windowMinutes", None),
    ("zero scrape interval", ["scrape.interval=0s"], {"scrape": {"interval": "0s"}}, "scrape.interval", None),
    ("unknown rule format", ["rules.format=Yaml"], {"rules": {"format": "Yaml"}}, "rules.format", None),
    ("unknown notify", ["alertmanager.routes.critical.notify=slack"],
     {"alertmanager": {"routes": {"critical": {"notify": "slack"}}}}, "alertmanager.routes.critical.notify", None),
    ("misspelt key", ["rules.alerts.BlockTimeHigh.treshold=3"],
     {"rules": {"alerts": {"BlockTimeHigh": {"treshold": 3}}}}, "treshold", None),
    ("Opsgenie removed", ["alertmanager.opsgenie=null"], {"alertmanager": {"opsgenie": None}},
     "opsgenie", None),
    ("teams removed", ["alertmanager.teams=null"], {"alertmanager": {"teams": None}}, "teams", None),
    ("provisioning removed", ["dashboards.provisioning=null"], {"dashboards": {"provisioning": None}},
     "provisioning", None),
    ("no environment", ["global.environment="], {"global": {"environment": ""}}, "global.environment", None),
    ("scrape timeout over the interval", ["scrape.scrapeTimeout=60s"], {"scrape": {"scrapeTimeout": "60s"}},
     "scrape.scrapeTimeout", None),
    ("component timeout over its interval", ["scrape.components.cosmosApi.scrapeTimeout=45s"],
     {"scrape": {"components": {"cosmosApi": {"scrapeTimeout": "45s"}}}},
     "scrape.components.cosmosApi.scrapeTimeout", None),
    ("two components, one job", ["scrape.components.cometbft.job=virtengine-app"],
     {"scrape": {"components": {"cometbft": {"job": "virtengine-app"}}}}, "scrape.components", None),
    ("a job the alerts select renamed", ["scrape.components.cometbft.job=comet"],
     {"scrape": {"components": {"cometbft": {"job": "comet"}}}}, "scrape.components", None),
    ("second default datasource", ["datasources.items.loki.isDefault=true"],
     {"datasources": {"items": {"loki": {"isDefault": True}}}}, "datasources.items.loki.isDefault", None),
    ("two datasources, one uid", ["datasources.items.jaeger.uid=loki"],
     {"datasources": {"items": {"jaeger": {"uid": "loki"}}}}, "datasources.items", None),
    ("failing vendor routed to itself", ["alertmanager.routes.vendorFailingOpsgenie.notify=opsgenie"],
     {"alertmanager": {"routes": {"vendorFailingOpsgenie": {"notify": "opsgenie"}}}},
     "alertmanager.routes.vendorFailingOpsgenie.notify", None),
    ("route naming no alert", ['alertmanager.routes.critical.matchers={alertname="NoSuchAlert"}'],
     {"alertmanager": {"routes": {"critical": {"matchers": ['alertname="NoSuchAlert"']}}}},
     "alertmanager.routes.critical.matchers", None),
    ("PagerDuty key in an annotation", [f"rules.alerts.EscrowBalanceLow.annotations.pdkey={PD_KEY}"],
     {"rules": {"alerts": {"EscrowBalanceLow": {"annotations": {"pdkey": PD_KEY}}}}},
     "rules.alerts.EscrowBalanceLow.annotations.pdkey", PD_KEY),
    ("token in ruleLabels", [f"rules.ruleLabels.token={TOKEN}"], {"rules": {"ruleLabels": {"token": TOKEN}}},
     "rules.ruleLabels.token", TOKEN),
    ("Opsgenie UUID in the tags", [f"alertmanager.opsgenie.tags={{virtengine,{OG_KEY}}}"],
     {"alertmanager": {"opsgenie": {"tags": ["virtengine", OG_KEY]}}}, "alertmanager.opsgenie.tags", OG_KEY),
    ("bearer token in a label", [f"global.labels.auth=Bearer {TOKEN}x"],
     {"global": {"labels": {"auth": f"Bearer {TOKEN}x"}}}, "global.labels.auth", f"{TOKEN}x"),
]


def _normalised(text: str) -> str:
    """Helm 4 names a key as '/a/b/c', Helm 3 as 'a.b.c' (or 'a: c is required'): one spelling."""
    return text.replace("/", ".").replace(": ", ".")


@pytest.mark.parametrize("major", HELM_MAJORS)
@pytest.mark.parametrize("case,sets,overlay,key,secret", REFUSALS, ids=[c[0] for c in REFUSALS])
def test_helm_refuses_at_install_what_the_generator_refuses_naming_the_key(case, sets, overlay, key, secret, major):
    args = [a for s in sets for a in ("--set", s)]
    proc = helm_template("prod", major, extra=args, check=False)
    assert proc.returncode != 0, f"{case}: helm {major} installed it"
    assert key in proc.stderr or key in _normalised(proc.stderr), f"{case}: the message names no {key}:\n{proc.stderr}"
    assert "nil pointer" not in proc.stderr, proc.stderr
    if secret:
        assert secret not in proc.stderr and secret not in proc.stdout, "the secret is shown"


@pytest.fixture(scope="module")
def generator_side():
    """The generator's own value checks (generator/build.py), run in-process on an overlay of values/prod.yaml."""
    src = load_sources(ROOT, ["prod"])
    out = Output()
    for stage in CONTENT_STAGES:
        stage.build(src, out)
    schema = values_schema.build(src.defaults, out.schema_extensions)
    prod = yamlio.plain(src.envs["prod"].data)
    default_jobs = {k: c["job"] for k, c in src.defaults.data["scrape"]["components"].items()}

    def overlaid(base, overlay):
        """``overlay`` written into the prod file as a user would (a null stays in the file, as written)."""
        if not isinstance(base, dict) or not isinstance(overlay, dict):
            return overlay
        return {**base, **{k: overlaid(base.get(k), v) for k, v in overlay.items()}}

    def check(overlay: dict) -> None:
        data = overlaid(prod, overlay)
        text = yaml.safe_dump(data, sort_keys=False)
        env = Environment(name="prod", file="values/prod.yaml", data=yamlio.loads_yaml(text, "values/prod.yaml"),
                          text=text)
        secrets._raise(secrets.scan_text(text, env.file, secrets._key_lines(env.data)), "values/")
        merged = values_schema.validate_environment(schema, src.defaults, env)
        scrape.check(merged, env.file)
        scrape.check_rule_jobs(merged, env.file, out.shared["alerts"], default_jobs)
        datasources.check("prod", env.file, merged)
        routing.check_failover(merged["alertmanager"]["routes"], env.file)
        routing.check_values(env.data.get("alertmanager") or {}, set(out.shared["alerts"]),
                             set(out.shared["rule_groups"]), env.file)
    return check


@pytest.mark.parametrize("case,sets,overlay,key,secret", REFUSALS, ids=[c[0] for c in REFUSALS])
def test_the_generator_refuses_the_same_values_in_an_environment_file(generator_side, case, sets, overlay, key,
                                                                       secret):
    with pytest.raises(GeneratorError) as refused:
        generator_side(overlay)
    message = str(refused.value)
    assert key in message or key.rsplit(".", 1)[0] in message, f"{case}: {message}"
    if secret:
        assert secret not in message


def test_the_values_that_pass_install(generator_side):
    """Values at the edges of their ranges install and render: the bounds do not refuse real settings."""
    edges = {"rules": {"alerts": {"MLInferenceTimeout": {"thresholds": {"maxTimeoutRatio": 1}},
                                  "VEIDVerificationQueue": {"thresholds": {"threshold": 0}},
                                  "TargetDown": {"thresholds": {"maxDownPercent": 100}}}},
             "scrape": {"scrapeTimeout": "15s"}}
    generator_side(edges)
    for major in HELM_MAJORS:
        proc = helm_template("prod", major, extra=["--set", "rules.alerts.MLInferenceTimeout.thresholds.maxTimeoutRatio=1",
                                                   "--set", "rules.alerts.VEIDVerificationQueue.thresholds.threshold=0",
                                                   "--set", "scrape.scrapeTimeout=15s"])
        exprs = {a["alert"]: a["expr"] for a in _alerts(manifests(proc.stdout))}
        # a threshold of 0 is a threshold, not "unset"
        assert exprs["VEIDVerificationQueue"] == "max by (cluster) (virtengine_veid_pending_verifications) > 0"
        assert exprs["MLInferenceTimeout"].endswith("> 1")


EMPTY_BY_DEFAULT = ["dashboards.items", "rules.groups", "rules.ruleLabels", "global.labels",
                    "alertmanager.alertmanagerConfig.labels"]   # none set by values/prod.yaml


@pytest.mark.parametrize("major", HELM_MAJORS)
@pytest.mark.parametrize("key", EMPTY_BY_DEFAULT)
def test_null_for_a_map_empty_by_default_means_its_default(generator_side, key, major):
    """Null deletes a key; for a map that is empty by default that is the default itself: same manifests."""
    overlay: dict = {}
    node = overlay
    *parents, last = key.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = None
    generator_side(overlay)
    assert helm_template("prod", major, extra=["--set", f"{key}=null"]).stdout == helm_template("prod", major).stdout


@pytest.mark.parametrize("major", HELM_MAJORS)
def test_null_alert_settings_leave_every_alert_at_its_defaults(major):
    """values/prod.yaml keeps ConsensusStalled firing 5m after blocks resume; rules.alerts=null drops that."""
    alerts = {a["alert"]: a for a in _alerts(manifests(helm_template("prod", major).stdout))}
    assert alerts["ConsensusStalled"]["keep_firing_for"] == "5m"
    alerts = {a["alert"]: a for a in _alerts(manifests(helm_template("prod", major, extra=["--set", "rules.alerts=null"]).stdout))}
    assert "keep_firing_for" not in alerts["ConsensusStalled"] and len(alerts) >= 40


# strings a values file may hold, and whether the generator's secrets lint finds a key in them
SECRET_SHAPES = [
    (PD_KEY, True), (PD_KEY.upper(), True), ("a" * 32, False), ("1" * 31 + "a", True), ("x" + PD_KEY, False),
    (f"https://events.example.com/{PD_KEY}", False), (f"https://events.example.com/x?{PD_KEY}", True), (OG_KEY, True), (f"{OG_KEY}-x", False),
    (f"Bearer {TOKEN}", True), ("Bearer short", False), ("Authorization: /etc/secrets/pd", False),
    ("Authorization: GenieKey abcdef123456789", True), ("AKIAABCDEFGHIJKLMNOP", True),
    ("ghp_" + "a1" * 18, True), ("virtengine-market-escrow-provider", False),
    ("https://wiki.virtengine.io/escrow/refill", False), (f"{PD_KEY} not-a-secret", False),
]


@pytest.mark.parametrize("major", HELM_MAJORS)
@pytest.mark.parametrize("value,is_key", SECRET_SHAPES, ids=[f"{i}-{k}" for i, (_, k) in enumerate(SECRET_SHAPES)])
def test_helm_finds_the_key_shapes_the_generator_finds(value, is_key, major):
    """One search: what generator/secrets.py finds in a values line, Helm finds in the same value."""
    line = f"rules:\n  alerts:\n    EscrowBalanceLow:\n      annotations:\n        note: {json.dumps(value)}\n"
    assert bool(secrets.scan_text(line, "v.yaml")) is is_key, "the case itself is wrong"
    proc = helm_template("prod", major, extra=["--set-string", f"rules.alerts.EscrowBalanceLow.annotations.note={value}"],
                         check=False)
    assert (proc.returncode != 0) is is_key, proc.stderr
    if is_key:
        assert "rules.alerts.EscrowBalanceLow.annotations.note: key-shaped string" in proc.stderr
        assert value not in proc.stderr


def _objects(major: int, *args: str, release: str = "vemon", env: str = "prod") -> list[dict]:
    cmd = [tools.helm(major), "template", release, str(ROOT / "chart"), "--namespace", "monitoring",
           "-f", str(ROOT / "values" / f"{env}.yaml"), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return manifests(proc.stdout)


def _config(objs: list[dict]) -> dict:
    secret = next(o for o in objs if o["kind"] == "Secret")
    return yaml.safe_load(secret["stringData"]["alertmanager.yaml"])


def _amtool_route(config: dict, tmp_path: Path, **labels: str) -> str:
    path = tmp_path / "alertmanager.yaml"
    path.write_text(yaml.safe_dump(config))
    proc = subprocess.run([tools.find("amtool"), "config", "routes", "test", f"--config.file={path}",
                           *[f"{k}={v}" for k, v in labels.items()]], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


@pytest.mark.parametrize("major", HELM_MAJORS)
def test_a_vendor_turned_off_hands_its_routes_to_the_other(major, tmp_path):
    off = _config(_objects(major, "--set", "alertmanager.opsgenie.enabled=false"))
    assert not [r for r in off["receivers"] if r.get("opsgenie_configs")]
    warning = {"alertname": "HighTransactionLatency", "severity": "warning", "team": "chain"}
    assert _amtool_route(off, tmp_path, **warning) == "pagerduty-chain"
    # the notice that PagerDuty fails cannot go through PagerDuty: with Opsgenie off it goes nowhere
    assert _amtool_route(off, tmp_path, alertname="AlertmanagerNotificationsFailing", severity="critical",
                         team="sre", integration="pagerduty") == "null"
    both = _config(_objects(major, "--set", "alertmanager.opsgenie.enabled=false",
                            "--set", "alertmanager.pagerduty.enabled=false"))
    assert _amtool_route(both, tmp_path, alertname="ConsensusStalled", severity="critical", team="chain") == "null"
    on = _config(_objects(major))
    assert _amtool_route(on, tmp_path, **warning) == "opsgenie-chain-p3"


def _alerts(objs: list[dict]) -> list[dict]:
    return [r for o in objs if o["kind"] == "PrometheusRule" for g in o["spec"]["groups"] for r in g["rules"]
            if "alert" in r]


@pytest.mark.parametrize("major", HELM_MAJORS)
def test_every_alert_is_labelled_with_the_environment_it_is_installed_as(major, tmp_path):
    # a new environment copied from staging: its alerts say qa, never staging
    qa = tmp_path / "qa.yaml"
    qa.write_text((ROOT / "values" / "staging.yaml").read_text().replace("environment: staging", "environment: qa"))
    for env_file, expected in ((ROOT / "values" / "prod.yaml", "prod"), (qa, "qa")):
        proc = helm_template(None, major, extra=["-f", str(env_file), "--set", "rules.alerts.BlockTimeHigh.for=7m"])
        alerts = _alerts(manifests(proc.stdout))
        assert len(alerts) >= 40
        assert {a["labels"].get("environment") for a in alerts} == {expected}, expected
    proc = helm_template(None, major, extra=["--set", "global.cluster=x"], check=False)
    assert proc.returncode != 0 and "global.environment is required" in proc.stderr


@pytest.mark.parametrize("major", HELM_MAJORS)
def test_name_overrides_and_names_within_63_characters_under_a_53_character_release(major):
    release = "virtengine-monitoring-production-eu-west-1-cluster-ab"
    assert len(release) == 53
    for args in ([], ["--set", "grafanaOperator.enabled=true", "--set", "rules.format=ConfigMap"]):
        objs = _objects(major, *args, release=release)
        names = [(o["kind"], o["metadata"]["name"]) for o in objs]
        assert len(set(names)) == len(names)
        too_long = [n for n in names if len(n[1]) > 63]
        assert not too_long, too_long
    objs = _objects(major, "--set", "fullnameOverride=vemon", "--set", "namespaceOverride=observability",
                    "--set", "nameOverride=obs")
    assert all(o["metadata"]["name"].startswith("vemon-") for o in objs)
    assert {o["metadata"]["namespace"] for o in objs} == {"observability"}
    assert {o["metadata"]["labels"]["app.kubernetes.io/name"] for o in objs} == {"obs"}
    monitors = [o for o in objs if o["kind"] in ("ServiceMonitor", "PodMonitor")]
    assert monitors and all(o["spec"]["namespaceSelector"]["matchNames"] for o in monitors)


def _links(dashboard: dict) -> list[str]:
    panels = dashboard.get("panels", [])
    links = [l.get("url", "") for l in dashboard.get("links", [])]
    links += [l.get("url", "") for p in panels for l in (p.get("fieldConfig") or {}).get("defaults", {}).get("links", [])]
    return links


@pytest.mark.parametrize("major", HELM_MAJORS)
def test_a_dashboard_turned_off_is_linked_from_nowhere(major):
    off = "sla-compliance"
    before = _objects(major)
    objs = _objects(major, "--set", f"dashboards.items.{off}.enabled=false")
    dashboards = {o["metadata"]["name"]: json.loads(next(iter(o["data"].values()))) for o in objs
                  if o["kind"] == "ConfigMap" and "virtengine.io/dashboard" in o["metadata"]["labels"]}
    assert dashboards and not any(d["uid"] == off for d in dashboards.values())
    linked_before = [u for o in before if o["kind"] == "ConfigMap"
                     and o["metadata"]["labels"].get("virtengine.io/dashboard") not in (None, off)
                     for u in _links(json.loads(next(iter(o["data"].values()))))]
    assert any(u.startswith(f"/d/{off}") for u in linked_before), "the case needs a dashboard linked from others"
    linked = [u for d in dashboards.values() for u in _links(d)]
    assert not [u for u in linked if u.startswith(f"/d/{off}")]
    # the other links stay
    assert len(linked) == len([u for u in linked_before if not u.startswith(f"/d/{off}")])
    urls_before = [a["annotations"].get("dashboard_url", "") for a in _alerts(before)]
    assert any(f"/d/{off}?" in u for u in urls_before)
    alerts = _alerts(objs)
    assert not [a["alert"] for a in alerts if f"/d/{off}?" in a["annotations"].get("dashboard_url", "")]
    assert sum("dashboard_url" in a["annotations"] for a in alerts) == \
        sum(bool(u) and f"/d/{off}?" not in u for u in urls_before)


@pytest.mark.parametrize("major", HELM_MAJORS)
def test_no_provisioning_file_beside_the_grafana_operator(major):
    names = [o["metadata"]["name"] for o in _objects(major)]
    assert any(n.endswith("dashboard-provisioning") for n in names)
    objs = _objects(major, "--set", "grafanaOperator.enabled=true")
    assert not any(o["metadata"]["name"].endswith("dashboard-provisioning") for o in objs)
    assert any(o["kind"] == "GrafanaDashboard" for o in objs)
