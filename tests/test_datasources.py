"""Grafana datasources: the provisioning format, the uids dashboards and links
use, trace links between Prometheus, Loki and Jaeger, credentials by reference."""
from __future__ import annotations

import json
import re

import pytest
import yaml

from conftest import ENVIRONMENTS, HELM_MAJORS, ROOT, helm_template, manifests

KNOWN_TYPES = {"prometheus", "loki", "jaeger"}


def provisioning(docs: list[dict]) -> dict:
    cms = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-datasources")]
    assert len(cms) == 1
    assert cms[0]["metadata"]["labels"]["grafana_datasource"] == "1"
    return yaml.safe_load(cms[0]["data"]["virtengine-datasources.yaml"])


def reuses_stack(env: str) -> bool:
    """The environment leaves the Prometheus datasource to kube-prometheus-stack (its uid prometheus)."""
    data = yaml.safe_load((ROOT / "values" / f"{env}.yaml").read_text()) or {}
    return bool((data.get("datasources") or {}).get("reuseStackPrometheus"))


STANDALONE = {"datasources": {"reuseStackPrometheus": False}}


def standalone(values: dict) -> dict:
    """values with the chart's own Prometheus datasource (no kube-prometheus-stack)."""
    return {**values, "datasources": {**STANDALONE["datasources"], **values.get("datasources", {})}}


def with_values(tmp_path, values: dict, major: int = 3, check: bool = True):
    extra = tmp_path / "extra.yaml"
    extra.write_text(yaml.safe_dump(values))
    return helm_template("prod", major, extra=["-f", str(extra)], check=check)


@pytest.mark.parametrize("env", ENVIRONMENTS)
@pytest.mark.parametrize("major", HELM_MAJORS)
def test_provisioning_file_has_api_version_1_known_types_and_exactly_one_default(rendered, env, major):
    prov = provisioning(rendered[(env, major)])
    assert prov["apiVersion"] == 1
    sources = prov["datasources"]
    assert {d["type"] for d in sources} <= KNOWN_TYPES
    # beside kube-prometheus-stack its Prometheus datasource is the one default (tests/test_kube_prometheus_stack.py)
    assert [d["type"] for d in sources if d["isDefault"]] == ([] if reuses_stack(env) else ["prometheus"])
    assert not reuses_stack(env) or "prometheus" not in {d["type"] for d in sources}
    uids = [d["uid"] for d in sources]
    assert len(uids) == len(set(uids))
    for d in sources:
        assert d["url"].startswith("http") and d["access"] == "proxy" and d["editable"] is False


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_every_datasource_uid_a_dashboard_or_link_uses_exists_in_the_environment(rendered, env):
    docs = rendered[(env, 3)]
    uids = {d["uid"] for d in provisioning(docs)["datasources"]}
    if reuses_stack(env):
        uids.add("prometheus")   # kube-prometheus-stack's, pinned by its integration values
    used = set()
    for d in docs:
        if d["kind"] == "ConfigMap" and "virtengine.io/dashboard" in d["metadata"].get("labels", {}):
            for text in d["data"].values():
                dashboard = json.loads(text)
                used.add(dashboard["templating"]["list"][0]["current"]["value"])
                used |= {m for m in re.findall(r'"uid":\s*"([^"$]+)"', text) if m not in ("-- Grafana --",)}
                used -= {dashboard["uid"]}
    for ds in provisioning(docs)["datasources"]:
        js = ds.get("jsonData", {})
        used |= {x["datasourceUid"] for x in js.get("exemplarTraceIdDestinations", [])}
        used |= {x["datasourceUid"] for x in js.get("derivedFields", [])}
        if "tracesToLogsV2" in js:
            used.add(js["tracesToLogsV2"]["datasourceUid"])
    assert used and used <= uids, f"{env}: {sorted(used - uids)} are used but not provisioned"


def test_latency_spike_leads_to_its_trace_and_logs(tmp_path):
    by_type = {d["type"]: d for d in provisioning(manifests(with_values(tmp_path, STANDALONE).stdout))["datasources"]}
    jaeger = by_type["jaeger"]["uid"]
    assert by_type["prometheus"]["jsonData"]["exemplarTraceIdDestinations"] == [
        {"name": "trace_id", "datasourceUid": jaeger}]
    field = by_type["loki"]["jsonData"]["derivedFields"][0]
    assert field["datasourceUid"] == jaeger and field["url"] == "${__value.raw}"
    assert re.search(field["matcherRegex"], 'level=error msg="slow" trace_id=4bf92f3577b34da6').group(1) == \
        "4bf92f3577b34da6"
    assert by_type["jaeger"]["jsonData"]["tracesToLogsV2"]["datasourceUid"] == by_type["loki"]["uid"]


@pytest.mark.parametrize("major", HELM_MAJORS)
def test_a_datasource_switched_off_is_gone_and_nothing_links_to_it(tmp_path, major):
    docs = manifests(with_values(tmp_path, standalone({"datasources": {"items": {"jaeger": {"enabled": False}}}}), major).stdout)
    sources = provisioning(docs)["datasources"]
    assert "jaeger" not in {d["type"] for d in sources}
    assert "jaeger" not in json.dumps(sources)


def test_urls_come_from_values_per_environment(tmp_path):
    docs = manifests(with_values(tmp_path, {"datasources": {"items": {
        "loki": {"url": "http://loki-gateway.logging.svc:80"}}}}).stdout)
    loki = next(d for d in provisioning(docs)["datasources"] if d["type"] == "loki")
    assert loki["url"] == "http://loki-gateway.logging.svc:80"


@pytest.mark.parametrize("auth, field, reference", [
    ({"type": "basic", "user": "grafana", "secretEnv": "PROM_PASSWORD"}, "basicAuthPassword", "$__env{PROM_PASSWORD}"),
    ({"type": "basic", "user": "grafana", "secretFile": "/etc/secrets/prom/password"}, "basicAuthPassword",
     "$__file{/etc/secrets/prom/password}"),
    ({"type": "bearer", "secretEnv": "PROM_TOKEN"}, "httpHeaderValue1", "Bearer $__env{PROM_TOKEN}"),
])
def test_credentials_are_only_references_grafana_resolves(tmp_path, auth, field, reference):
    docs = manifests(with_values(tmp_path, standalone({"datasources": {"items": {"prometheus": {"auth": auth}}}})).stdout)
    prom = next(d for d in provisioning(docs)["datasources"] if d["type"] == "prometheus")
    assert prom["secureJsonData"] == {field: reference}


@pytest.mark.parametrize("auth", [
    {"type": "basic", "user": "grafana", "password": "hunter2"},
    {"type": "basic", "user": "grafana", "secretEnv": "PROM_PASSWORD", "secretFile": "/etc/x"},
    {"type": "bearer"},
    {"type": "bearer", "secretEnv": "not an env var"},
])
def test_a_literal_or_ambiguous_credential_is_refused_by_the_values_schema(tmp_path, auth):
    proc = with_values(tmp_path, {"datasources": {"items": {"prometheus": {"auth": auth}}}}, check=False)
    assert proc.returncode != 0 and "datasources" in proc.stderr
    assert "hunter2" not in proc.stdout


@pytest.mark.parametrize("change, message", [
    ({"prometheus": {"isDefault": False}}, "exactly one enabled datasource must be the default"),
    ({"loki": {"isDefault": True}}, "exactly one enabled datasource must be the default"),
    ({"prometheus": {"enabled": False}, "loki": {"isDefault": True}}, "uid 'prometheus'"),
    ({"reuse": True, "loki": {"isDefault": True}}, "the stack's Prometheus datasource is the default"),
    ({"reuse": True, "loki": {"uid": "prometheus"}}, "kube-prometheus-stack's"),
    ({"reuse": True, "jaeger": {"name": "Alertmanager"}}, "kube-prometheus-stack's"),
])
def test_the_render_refuses_datasources_the_dashboards_cannot_use(project, change, message):
    from conftest import run_generator
    env = project / "values" / "staging.yaml"
    data = yaml.safe_load(env.read_text())
    change = dict(change)
    data["datasources"] = {"reuseStackPrometheus": change.pop("reuse", False), "items": change}
    env.write_text(yaml.safe_dump(data))
    proc = run_generator(project, "render")
    assert proc.returncode == 1 and message in proc.stderr and "values/staging.yaml" in proc.stderr
