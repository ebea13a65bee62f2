"""Environments: each values/<env>.yaml renders manifests a cluster accepts, with its real differences.

Core kinds are validated against the Kubernetes API schemas of the chart's
lowest kubeVersion (kubernetes-validate, strict); custom resources against
the Prometheus Operator CRD schemas. A missing schema fails.
"""
from __future__ import annotations

import re

import pytest
import yaml

from conftest import ENVIRONMENTS, HELM_MAJORS, ROOT, helm_template, manifests
from generator import manifests as k8s

KUBE = k8s.kube_version(ROOT / "chart" / "Chart.yaml")


def env_values(env: str) -> dict:
    return yaml.safe_load((ROOT / "values" / f"{env}.yaml").read_text())


def by_kind(docs: list[dict], kind: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def _latest() -> str:
    from kubernetes_validate.utils import latest_version
    return latest_version()


@pytest.mark.parametrize("kube", [KUBE, _latest()])
@pytest.mark.parametrize("major", HELM_MAJORS)
@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_every_environment_renders_manifests_valid_against_kubernetes_and_crd_schemas(rendered, env, major, kube):
    docs = rendered[(env, major)]
    kinds = {d["kind"] for d in docs}
    assert {"ServiceMonitor", "PodMonitor", "ConfigMap"} <= kinds
    assert k8s.validate(docs, kube) == []


BROKEN = [
    ("an unknown field on a ConfigMap", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"},
                                         "data": {}, "extra": 1}, "extra"),
    ("a ServiceMonitor interval that is not a duration",
     {"apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor", "metadata": {"name": "b"},
      "spec": {"selector": {}, "endpoints": [{"port": "m", "interval": "often"}]}}, "interval"),
    ("a PrometheusRule rule without expr",
     {"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule", "metadata": {"name": "c"},
      "spec": {"groups": [{"name": "g", "rules": [{"alert": "A"}]}]}}, "expr"),
    ("a custom resource with no CRD schema",
     {"apiVersion": "grafana.integreatly.org/v1beta1", "kind": "GrafanaDashboard", "metadata": {"name": "d"}},
     "no schema"),
    ("an unknown monitoring.coreos.com kind",
     {"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusTypo", "metadata": {"name": "e"}},
     "no CRD schema"),
]


@pytest.mark.parametrize("what,doc,needle", BROKEN, ids=[b[0] for b in BROKEN])
def test_schema_validation_rejects_a_broken_manifest_by_name(what, doc, needle):
    problems = k8s.validate([doc], KUBE)
    assert problems, what
    assert doc["metadata"]["name"] in problems[0] and needle in " ".join(problems)


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_scrape_objects_carry_the_environments_cluster_chain_and_operator_selector_label(rendered, env):
    values = env_values(env)
    docs = rendered[(env, 3)]
    monitors = [d for d in docs if d["kind"] in ("ServiceMonitor", "PodMonitor")]
    assert monitors
    for m in monitors:
        assert m["metadata"]["labels"]["release"] == values["scrape"]["labels"]["release"]
        assert m["spec"]["namespaceSelector"]["matchNames"] == values["scrape"]["namespaces"]
        endpoint = (m["spec"].get("endpoints") or m["spec"]["podMetricsEndpoints"])[0]
        relabel = {r["targetLabel"]: r["replacement"] for r in endpoint["relabelings"]}
        assert relabel["cluster"] == values["global"]["cluster"]
        chain = endpoint["metricRelabelings"][0]
        assert (chain["sourceLabels"], chain["regex"], chain["replacement"]) == (
            ["chain_id"], "^$", values["global"]["chainId"])


def test_environments_really_differ_in_cluster_urls_intervals_and_components(rendered):
    values = {env: env_values(env) for env in ENVIRONMENTS}
    for key in ("cluster", "chainId", "grafanaUrl"):
        assert len({v["global"][key] for v in values.values()}) == len(ENVIRONMENTS), key
    assert values["prod"]["global"]["runbookUrl"] != values["dev"]["global"]["runbookUrl"]
    monitors = {env: by_kind(rendered[(env, 3)], "PodMonitor") | by_kind(rendered[(env, 3)], "ServiceMonitor")
                for env in ENVIRONMENTS}
    assert "vemon-virtengine-observability-mlinference" in monitors["prod"]
    assert "vemon-virtengine-observability-mlinference" not in monitors["dev"]
    cometbft = {env: monitors[env]["vemon-virtengine-observability-cometbft"]["spec"]["endpoints"][0]["interval"]
                for env in ENVIRONMENTS}
    assert cometbft == {"dev": "60s", "staging": "30s", "prod": "15s"}


COMPONENTS = [("cometbft", "ServiceMonitor", "prometheus", "/metrics", None),
              ("cosmosApi", "ServiceMonitor", "api", "/metrics", {"format": ["prometheus"]}),
              ("providerDaemon", "PodMonitor", "metrics", "/metrics", None),
              ("mlInference", "PodMonitor", "metrics", "/metrics", None)]


@pytest.mark.parametrize("key,kind,port,path,params", COMPONENTS)
def test_each_component_can_be_switched_off_with_set(key, kind, port, path, params):
    name = f"vemon-virtengine-observability-{key.lower()}"
    on = by_kind(manifests(helm_template("prod").stdout), kind)
    endpoint = (on[name]["spec"].get("endpoints") or on[name]["spec"].get("podMetricsEndpoints"))[0]
    assert (endpoint["port"], endpoint["path"], endpoint.get("params")) == (port, path, params)
    off = by_kind(manifests(helm_template("prod", extra=["--set", f"scrape.components.{key}.enabled=false"]).stdout),
                  kind)
    assert name not in off and len(off) == len(on) - 1


def test_one_value_overridden_with_set_reaches_the_manifests():
    docs = manifests(helm_template("staging", extra=["--set", "global.cluster=virtengine-staging-b"]).stdout)
    monitor = by_kind(docs, "ServiceMonitor")["vemon-virtengine-observability-cometbft"]
    relabel = {r["targetLabel"]: r["replacement"] for r in monitor["spec"]["endpoints"][0]["relabelings"]}
    assert relabel["cluster"] == "virtengine-staging-b"


def test_a_misspelt_set_override_fails_the_install_by_name():
    proc = helm_template("prod", extra=["--set", "scrape.intervall=10s"], check=False)
    assert proc.returncode != 0 and "intervall" in proc.stderr


def test_object_names_are_the_same_in_every_environment_and_chart_version(rendered, tmp_path):
    import shutil
    names = {env: {(d["kind"], d["metadata"]["name"]) for d in rendered[(env, 3)]} for env in ENVIRONMENTS}
    for env in ENVIRONMENTS:
        for kind, name in names[env]:
            assert env not in name.split("-") and not re.search(r"\d+-\d+-\d+", name), (kind, name)
    chart = tmp_path / "chart"
    shutil.copytree(ROOT / "chart", chart)
    before = {(d["kind"], d["metadata"]["name"]) for d in manifests(helm_template("prod", chart=chart).stdout)}
    meta = chart / "Chart.yaml"
    meta.write_text(re.sub(r"(?m)^version: .*$", "version: 99.0.0", meta.read_text()))
    bumped = {(d["kind"], d["metadata"]["name"]) for d in manifests(helm_template("prod", chart=chart).stdout)}
    assert bumped == before


KEY = re.compile(r"^(\s*)([A-Za-z_][A-Za-z0-9_.-]*):")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _comment_above(lines: list[str], i: int) -> str:
    """The comment block directly above line i."""
    text = []
    for line in reversed(lines[:i]):
        if not line.strip().startswith("#"):
            break
        text.append(line.strip()[1:])
    return " ".join(reversed(text))


def _names(comment: str, key: str) -> bool:
    return re.search(rf"(^|[^A-Za-z0-9]){re.escape(key)}([^A-Za-z0-9]|$)", comment) is not None


def _explained(lines: list[str], i: int, key: str) -> bool:
    """A key is explained by a comment above it that names it, or, in a map none of whose keys has its own
    comment, by its explained parent (a map documented as a whole, like `labels: {release: x}`)."""
    if _names(_comment_above(lines, i), key):
        return True
    own = _indent(lines[i])
    parent = next((j for j in range(i - 1, -1, -1) if KEY.match(lines[j]) and _indent(lines[j]) < own), None)
    if parent is None or not _explained(lines, parent, KEY.match(lines[parent]).group(2)):
        return False
    siblings = []
    for j in range(parent + 1, len(lines)):
        if lines[j].strip() and not lines[j].strip().startswith("#") and _indent(lines[j]) < own:
            break
        if KEY.match(lines[j]) and _indent(lines[j]) == own:
            siblings.append(j)
    return not any(_comment_above(lines, j) for j in siblings)


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_every_key_of_an_environment_file_is_explained_in_a_comment_above_it(env):
    lines = (ROOT / "values" / f"{env}.yaml").read_text().splitlines()
    undocumented = [f"{env}.yaml:{i + 1}: {m.group(2)}" for i, line in enumerate(lines)
                    if (m := KEY.match(line)) and not _explained(lines, i, m.group(2))]
    assert undocumented == []


@pytest.mark.parametrize("text,bad", [
    ("# global -- g\nglobal:\n  # cluster -- c\n  cluster: a\n  chainId: b\n", ["chainId"]),
    ("# labels -- the release label\nlabels:\n  release: x\n  team: y\n", []),
    ("global:\n  # cluster -- c\n  cluster: a\n", ["global"]),
    ("# x -- the map\nx:\n  # a -- documented\n  a: 1\n  b: 2\n", ["b"]),
    ("# alerts -- a\nalerts:\n  # A -- slower\n  A:\n    annotations:\n      procedure: p\n", []),
    ("rules:\n  groups:\n    g:\n      enabled: false\n", ["rules", "groups", "g", "enabled"]),
])
def test_the_key_documentation_rule_itself(text, bad):
    lines = text.splitlines()
    found = [m.group(2) for i, line in enumerate(lines) if (m := KEY.match(line)) and not _explained(lines, i, m.group(2))]
    assert found == bad


def install_notes(env: str, *extra: str) -> str:
    """NOTES.txt as `helm install` prints it (helm 4 renders it without a cluster)."""
    from generator import tools
    proc = tools.run([tools.helm(4), "install", "--dry-run=client", "vemon", str(ROOT / "chart"), "-n", "monitoring",
                      "-f", str(ROOT / "values" / f"{env}.yaml"), *extra], timeout=120)
    return proc.stdout.split("NOTES:", 1)[1]


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_install_notes_list_what_was_installed_and_how_to_check_it(env):
    values = env_values(env)
    notes = install_notes(env)
    assert f"installed for cluster {values['global']['cluster']} ({env})" in notes
    assert f'up{{cluster="{values["global"]["cluster"]}"}}' in notes
    for job in ("cometbft", "virtengine-app", "provider-daemon"):
        assert f"  {job}: " in notes
    assert ("  ml-inference: " in notes) == (env != "dev")
    assert "WARNING: scrape.labels is empty" not in notes


def test_install_notes_warn_when_the_operator_selector_label_is_missing():
    assert "WARNING: scrape.labels is empty" in install_notes("prod", "--set", "scrape.labels=null")


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_rules_and_scrape_objects_carry_the_label_the_environments_operator_selects(rendered, env):
    values = env_values(env)
    release = values["rules"]["labels"]["release"]
    assert release == values["scrape"]["labels"]["release"]
    selected = [d for d in rendered[(env, 3)] if d["kind"] in ("PrometheusRule", "ServiceMonitor", "PodMonitor")]
    assert {d["kind"] for d in selected} == {"PrometheusRule", "ServiceMonitor", "PodMonitor"}
    assert {d["metadata"]["labels"].get("release") for d in selected} == {release}
