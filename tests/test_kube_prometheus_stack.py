"""Installed beside the real kube-prometheus-stack 88.5.3: one working whole.

For every environment and Helm 3 and 4, the stack's packaged chart
(``../shared/peers/kube-prometheus-stack-88.5.3.tgz``, test data only) is
rendered with ``integrations/kube-prometheus-stack/<env>.yaml`` under the
release name the environment's labels name, next to this chart rendered with
``values/<env>.yaml``, and the pair is checked as the operator, Grafana and
Alertmanager would read it. Each check is a function that returns what is
wrong; each test also breaks one property in a copy and sees the check report
it. Last, promtool evaluates the union of both charts' rules on a healthy
cluster with one incident at a time (a crash-looping pod, a full disk, a dead
target), with and without a ``cluster`` label: each incident notifies once.
"""
from __future__ import annotations

import copy
import io
import json
import os
import re
import tarfile
from pathlib import Path

import pytest
import yaml

from conftest import ENVIRONMENTS, HELM_MAJORS, ROOT, helm_template, manifests
from generator import tools

KPS = Path(os.environ.get("VEMON_KPS_CHART", ROOT.parent / "shared" / "peers" / "kube-prometheus-stack-88.5.3.tgz"))
INTEGRATIONS = ROOT / "integrations" / "kube-prometheus-stack"
NAMESPACE = "monitoring"

pytestmark = pytest.mark.skipif(not KPS.is_file(), reason=f"kube-prometheus-stack chart not found at {KPS} "
                                                          "(set VEMON_KPS_CHART)")


def env_values(env: str) -> dict:
    return yaml.safe_load((ROOT / "values" / f"{env}.yaml").read_text()) or {}


def stack_release(env: str) -> str:
    """The stack's release name: the one the environment's rules.labels select (release=<name>)."""
    return ((env_values(env).get("rules") or {}).get("labels") or {}).get("release", "kube-prometheus-stack")


def render_stack(env: str, major: int, extra: list[str] | None = None) -> list[dict]:
    cmd = [tools.helm(major), "template", stack_release(env), str(KPS), "--namespace", NAMESPACE,
           "-f", str(INTEGRATIONS / f"{env}.yaml"), *(extra or [])]
    proc = tools.run(cmd, check=False, timeout=300)
    assert proc.returncode == 0, f"helm {major} template kube-prometheus-stack failed:\n{proc.stderr}"
    return manifests(proc.stdout)


@pytest.fixture(scope="module")
def pair() -> dict:
    """``{(env, major): (stack manifests, our manifests)}``: each chart rendered once per env and helm."""
    return {(env, major): (render_stack(env, major), manifests(helm_template(env, major).stdout))
            for env in ENVIRONMENTS for major in HELM_MAJORS}


def kinds(docs: list[dict], *names: str) -> list[dict]:
    return [d for d in docs if d.get("kind") in names]


def one(docs: list[dict], kind: str) -> dict:
    (found,) = kinds(docs, kind)
    return found


# --- label selectors, as the API server evaluates them -------------------------------------------

def selects(selector: dict | None, labels: dict) -> bool:
    """A Kubernetes LabelSelector: nil selects nothing, {} selects everything."""
    if selector is None:
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def namespace_selected(selector: dict | None, namespace: str, own: str) -> bool:
    """The operator's namespace selectors: nil means its own namespace only, {} every namespace."""
    if selector is None:
        return namespace == own
    if "any" in selector or "matchNames" in selector:    # the NamespaceSelector of monitors' targets
        return selector.get("any") or namespace in selector.get("matchNames", [])
    return selects(selector, {"kubernetes.io/metadata.name": namespace})


SELECTORS = {"PrometheusRule": ("ruleSelector", "ruleNamespaceSelector"),
             "ServiceMonitor": ("serviceMonitorSelector", "serviceMonitorNamespaceSelector"),
             "PodMonitor": ("podMonitorSelector", "podMonitorNamespaceSelector")}


def unselected(prometheus: dict, objects: list[dict]) -> list[str]:
    """The PrometheusRules, ServiceMonitors and PodMonitors the Prometheus resource does not load."""
    spec, own = prometheus["spec"], prometheus["metadata"]["namespace"]
    missed = []
    for obj in objects:
        by_labels, by_namespace = SELECTORS[obj["kind"]]
        meta = obj["metadata"]
        if not (selects(spec.get(by_labels), meta.get("labels") or {})
                and namespace_selected(spec.get(by_namespace), meta.get("namespace", NAMESPACE), own)):
            missed.append(f"{obj['kind']}/{meta['name']}")
    return missed


@pytest.mark.parametrize("env", ENVIRONMENTS)
@pytest.mark.parametrize("major", HELM_MAJORS)
def test_the_stack_prometheus_loads_every_rule_and_monitor_of_ours_and_of_its_own(pair, env, major):
    stack, ours = pair[(env, major)]
    prometheus = one(stack, "Prometheus")
    mine = kinds(ours, *SELECTORS)
    assert {o["kind"] for o in mine} == set(SELECTORS), f"{env}: this chart ships rules, ServiceMonitors and PodMonitors"
    assert unselected(prometheus, mine) == []
    # the stack's own rules and monitors stay selected (the selectors replace the stack's defaults)
    theirs = kinds(stack, *SELECTORS)
    assert len(theirs) > 40 and unselected(prometheus, theirs) == []
    # a rule labelled for another release is reported
    broken = copy.deepcopy(kinds(ours, "PrometheusRule")[0])
    broken["metadata"]["labels"] = {**broken["metadata"]["labels"], "release": "someone-else"}
    assert unselected(prometheus, [broken]) == [f"PrometheusRule/{broken['metadata']['name']}"]
    # a Prometheus that keeps rules to its own namespace misses ours in another
    narrow = copy.deepcopy(prometheus)
    narrow["spec"]["ruleNamespaceSelector"] = None
    moved = copy.deepcopy(kinds(ours, "PrometheusRule")[0])
    moved["metadata"]["namespace"] = "virtengine-observability"
    assert unselected(narrow, [moved]) and not unselected(prometheus, [moved])


# --- Alertmanager ---------------------------------------------------------------------------------

def secret_paths(node) -> list[str]:
    """Every ``*_file`` path (credentials, keys) in an Alertmanager configuration."""
    found = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key.endswith("_file") and isinstance(value, str):
                found.append(value)
            else:
                found += secret_paths(value)
    elif isinstance(node, list):
        for value in node:
            found += secret_paths(value)
    return found


def alertmanager_problems(alertmanager: dict, ours: list[dict]) -> list[str]:
    """What keeps the stack's Alertmanager from running our configuration with its credentials."""
    spec = alertmanager["spec"]
    secrets = {s["metadata"]["name"]: s for s in kinds(ours, "Secret")}
    name = spec.get("configSecret")
    if name not in secrets or "alertmanager.yaml" not in secrets[name].get("stringData", {}):
        return [f"configSecret {name!r} is not this chart's configuration ({', '.join(sorted(secrets))})"]
    data = secrets[name]["stringData"]
    config = yaml.safe_load(data["alertmanager.yaml"])
    problems = []
    mounted = set(spec.get("secrets") or [])
    read = set()
    for path in secret_paths(config):
        m = re.fullmatch(r"/etc/alertmanager/secrets/([^/]+)/([^/]+)", path)
        if not m or m.group(1) not in mounted:
            problems.append(f"{path} is not in a mounted Secret (alertmanagerSpec.secrets: {sorted(mounted)})")
        else:
            read.add(m.group(1))
    problems += [f"Secret {s} is mounted but never read (the pod waits for it)" for s in sorted(mounted - read)]
    for pattern in config.get("templates") or []:   # the operator mounts configSecret at /etc/alertmanager/config
        folder, _, glob = pattern.rpartition("/")
        keys = [k for k in data if re.fullmatch(glob.replace(".", r"\.").replace("*", ".*"), k)]
        if folder != "/etc/alertmanager/config" or not keys:
            problems.append(f"template {pattern} is not in the configuration Secret")
    return problems


@pytest.mark.parametrize("env", ENVIRONMENTS)
@pytest.mark.parametrize("major", HELM_MAJORS)
def test_the_stack_alertmanager_loads_our_configuration_and_mounts_every_secret_it_reads(pair, env, major):
    stack, ours = pair[(env, major)]
    alertmanager = one(stack, "Alertmanager")
    assert alertmanager_problems(alertmanager, ours) == []
    config_secret = next(s for s in kinds(ours, "Secret") if s["metadata"]["name"] == alertmanager["spec"]["configSecret"])
    paths = secret_paths(yaml.safe_load(config_secret["stringData"]["alertmanager.yaml"]))
    assert bool(paths) == (env != "dev"), f"{env}: dev pages nobody; staging and prod read keys"
    # a Secret left out of the mounts, and another configuration Secret, are reported
    if paths:
        dropped = copy.deepcopy(alertmanager)
        dropped["spec"]["secrets"] = []
        assert any("is not in a mounted Secret" in p for p in alertmanager_problems(dropped, ours))
    other = copy.deepcopy(alertmanager)
    other["spec"]["configSecret"] = f"alertmanager-{stack_release(env)}-alertmanager"
    assert "is not this chart's configuration" in alertmanager_problems(other, ours)[0]


# --- one owner per rule name ----------------------------------------------------------------------

def rule_names(docs: list[dict]) -> tuple[list[str], list[str]]:
    alerts, records = [], []
    for rule in kinds(docs, "PrometheusRule"):
        for group in rule["spec"]["groups"]:
            for r in group["rules"]:
                (alerts if "alert" in r else records).append(r.get("alert") or r["record"])
    return alerts, records


def defined_twice(stack: list[dict], ours: list[dict]) -> list[str]:
    (sa, sr), (oa, orr) = rule_names(stack), rule_names(ours)
    return sorted({f"alert {n}" for n in set(sa) & set(oa)} | {f"record {n}" for n in set(sr) & set(orr)})


@pytest.fixture(scope="module")
def stack_defaults() -> list[dict]:
    """The stack as the issue found it: its defaults, without the integration values."""
    proc = tools.run([tools.helm(3), "template", "kube-prometheus-stack", str(KPS), "--namespace", NAMESPACE],
                     check=False, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return manifests(proc.stdout)


@pytest.mark.parametrize("env", ENVIRONMENTS)
@pytest.mark.parametrize("major", HELM_MAJORS)
def test_no_alert_or_recording_rule_is_defined_by_both_charts(pair, stack_defaults, env, major):
    stack, ours = pair[(env, major)]
    assert defined_twice(stack, ours) == []
    # rule names of ours are in VirtEngine's own namespace: every recording rule names a VirtEngine,
    # CometBFT or SLO metric
    assert all(re.search(r":(virtengine|cometbft)_|^slo:", r) for r in rule_names(ours)[1])
    # the stack's defaults define the nine alerts and two recording rules the issue found twice
    clash = defined_twice(stack_defaults, manifests(helm_template(env, major, extra=[
        "--set", "rules.alerts.NodeCPUHighUtilization.enabled=true"]).stdout))
    assert {"alert Watchdog", "alert KubeNodeNotReady", "alert KubePodCrashLooping", "alert TargetDown",
            "alert KubePersistentVolumeFillingUp", "alert NodeMemoryHighUtilization"} <= set(clash)
    # and the stack's old recording rule names would collide again
    renamed = copy.deepcopy(ours)
    for rule in kinds(renamed, "PrometheusRule"):
        for group in rule["spec"]["groups"]:
            for r in group["rules"]:
                if r.get("record") == "instance:virtengine_node_cpu_utilisation:rate5m":
                    r["record"] = "instance:node_cpu_utilisation:rate5m"
    assert defined_twice(stack, renamed) == ["record instance:node_cpu_utilisation:rate5m"]


# --- Grafana: datasources and folders -------------------------------------------------------------

def datasources(docs: list[dict], label: str = "grafana_datasource") -> list[dict]:
    found = []
    for cm in kinds(docs, "ConfigMap"):
        if label in (cm["metadata"].get("labels") or {}):
            for text in cm["data"].values():
                found += yaml.safe_load(text).get("datasources") or []
    return found


def datasource_problems(stack: list[dict], ours: list[dict]) -> list[str]:
    every = datasources(stack) + datasources(ours)
    problems = []
    defaults = [d["name"] for d in every if d.get("isDefault")]
    if len(defaults) != 1:
        problems.append(f"{len(defaults)} default datasources: {defaults} (Grafana provisions one per organisation)")
    for field in ("name", "uid"):
        values = [d[field] for d in every]
        problems += [f"{field} {v!r} is provisioned twice" for v in sorted({v for v in values if values.count(v) > 1})]
    uids = {d["uid"] for d in every}
    for cm in kinds(ours, "ConfigMap"):
        if "virtengine.io/dashboard" in (cm["metadata"].get("labels") or {}):
            for text in cm["data"].values():
                variable = json.loads(text)["templating"]["list"][0]
                if variable["current"]["value"] not in uids:
                    problems.append(f"dashboard {cm['metadata']['name']}: datasource {variable['current']['value']!r} "
                                    f"is not provisioned")
    for d in every:
        for link in (d.get("jsonData") or {}).get("exemplarTraceIdDestinations") or []:
            if link["datasourceUid"] not in uids:
                problems.append(f"{d['name']}: exemplars link to missing datasource {link['datasourceUid']!r}")
    return problems


@pytest.mark.parametrize("env", ENVIRONMENTS)
@pytest.mark.parametrize("major", HELM_MAJORS)
def test_grafana_gets_one_default_datasource_and_no_name_or_uid_twice(pair, env, major):
    stack, ours = pair[(env, major)]
    assert datasource_problems(stack, ours) == []
    by_type = {d["type"]: d for d in datasources(stack) + datasources(ours)}
    assert by_type["prometheus"]["uid"] == "prometheus" and by_type["prometheus"]["isDefault"] is True
    assert by_type["prometheus"]["jsonData"]["exemplarTraceIdDestinations"][0]["datasourceUid"] == by_type["jaeger"]["uid"]
    assert {"loki", "jaeger"} <= {d["type"] for d in datasources(ours)}
    # this chart in standalone mode beside the stack: two defaults and two uids prometheus, reported
    standalone = manifests(helm_template(env, major, extra=["--set", "datasources.reuseStackPrometheus=false"]).stdout)
    problems = datasource_problems(stack, standalone)
    assert any("2 default datasources" in p for p in problems) and "uid 'prometheus' is provisioned twice" in problems


def sidecar_env(stack: list[dict], container: str) -> dict:
    grafana = next(d for d in kinds(stack, "Deployment") if d["metadata"]["name"].endswith("-grafana"))
    spec = grafana["spec"]["template"]["spec"]
    c = next(c for c in spec.get("containers", []) + spec.get("initContainers", []) if c["name"] == container)
    return {e["name"]: e.get("value") for e in c.get("env", [])}


def folder_problems(stack: list[dict], ours: list[dict]) -> list[str]:
    env = sidecar_env(stack, "grafana-sc-dashboard")
    provider = next(cm for cm in kinds(stack, "ConfigMap") if cm["metadata"]["name"].endswith("-config-dashboards"))
    providers = yaml.safe_load(provider["data"]["provider.yaml"])["providers"]
    problems = []
    if not all(p["options"].get("foldersFromFilesStructure") for p in providers):
        problems.append("the sidecar's provider does not make folders from the file structure")
    if env.get("NAMESPACE") != "ALL":
        problems.append(f"the sidecar searches {env.get('NAMESPACE')!r}, not every namespace")
    for cm in kinds(ours, "ConfigMap"):
        meta = cm["metadata"]
        if "virtengine.io/dashboard" not in (meta.get("labels") or {}):
            continue
        if (meta["labels"].get(env.get("LABEL")) or None) != (env.get("LABEL_VALUE") or meta["labels"].get(env.get("LABEL"))):
            problems.append(f"{meta['name']}: not labelled {env.get('LABEL')}={env.get('LABEL_VALUE')}")
        if env.get("FOLDER_ANNOTATION") not in (meta.get("annotations") or {}):
            problems.append(f"{meta['name']}: the sidecar reads folder annotation {env.get('FOLDER_ANNOTATION')!r}, "
                            f"the ConfigMap has {sorted(meta.get('annotations') or {})}")
    return problems


@pytest.mark.parametrize("env", ENVIRONMENTS)
@pytest.mark.parametrize("major", HELM_MAJORS)
def test_the_dashboard_sidecar_puts_our_dashboards_into_their_folders(pair, env, major):
    stack, ours = pair[(env, major)]
    assert folder_problems(stack, ours) == []
    folders = {cm["metadata"]["annotations"]["grafana_folder"] for cm in kinds(ours, "ConfigMap")
               if "virtengine.io/dashboard" in (cm["metadata"].get("labels") or {})}
    assert len(folders) >= 2, folders
    # the datasource sidecar finds ours too
    ds_env = sidecar_env(stack, "grafana-sc-datasources")
    (ds_cm,) = [cm for cm in kinds(ours, "ConfigMap") if cm["metadata"]["name"].endswith("-datasources")]
    assert ds_cm["metadata"]["labels"].get(ds_env["LABEL"]) == ds_env["LABEL_VALUE"] and ds_env["NAMESPACE"] == "ALL"
    # dashboards annotated under another key land in one folder: reported
    renamed = copy.deepcopy(ours)
    for cm in kinds(renamed, "ConfigMap"):
        ann = cm["metadata"].get("annotations") or {}
        if "grafana_folder" in ann:
            ann["folder"] = ann.pop("grafana_folder")
    assert any("reads folder annotation" in p for p in folder_problems(stack, renamed))


# --- the cluster label on every scrape ------------------------------------------------------------

def without_cluster(prometheus: dict, monitors: list[dict], cluster: str) -> list[str]:
    """Monitors whose targets do not get cluster=<cluster> (from their scrape class or their own relabelings)."""
    classes = {c["name"]: c for c in prometheus["spec"].get("scrapeClasses") or []}
    default = next((c for c in classes.values() if c.get("default")), None)

    def sets_cluster(relabelings) -> bool:
        return any(r.get("targetLabel") == "cluster" and r.get("action", "replace") == "replace"
                   and r.get("replacement") == cluster and not r.get("sourceLabels") for r in relabelings or [])

    missing = []
    for m in monitors:
        cls = classes.get(m["spec"].get("scrapeClass")) if m["spec"].get("scrapeClass") else default
        endpoints = m["spec"].get("endpoints") or m["spec"].get("podMetricsEndpoints") or []
        if not (cls and sets_cluster(cls.get("relabelings"))) and not all(
                sets_cluster(e.get("relabelings")) for e in endpoints):
            missing.append(f"{m['kind']}/{m['metadata']['name']}")
    return missing


@pytest.mark.parametrize("env", ENVIRONMENTS)
@pytest.mark.parametrize("major", HELM_MAJORS)
def test_every_target_the_stack_scrapes_gets_the_cluster_label(pair, env, major):
    stack, ours = pair[(env, major)]
    prometheus = one(stack, "Prometheus")
    cluster = env_values(env)["global"]["cluster"]
    monitors = kinds(stack, "ServiceMonitor", "PodMonitor")
    names = " ".join(m["metadata"]["name"] for m in monitors)
    assert all(k in names for k in ("kube-state-metrics", "node-exporter", "kubelet")), names
    assert without_cluster(prometheus, monitors + kinds(ours, "ServiceMonitor", "PodMonitor"), cluster) == []
    # the stack's defaults: no scrape class, no cluster on any of its targets
    plain = copy.deepcopy(prometheus)
    plain["spec"].pop("scrapeClasses")
    assert len(without_cluster(plain, monitors, cluster)) == len(monitors)


# --- every key of the integration values is one of the stack's ------------------------------------

def stack_values() -> dict:
    """The stack's values.yaml with each subchart's values.yaml under its name, from the packaged chart."""
    with tarfile.open(KPS) as tar:
        def load(path):
            return yaml.safe_load(tar.extractfile(path).read()) or {}
        values = load("kube-prometheus-stack/values.yaml")
        for member in tar.getmembers():
            m = re.fullmatch(r"kube-prometheus-stack/charts/([^/]+)/values\.yaml", member.name)
            if m:
                sub = values.setdefault(m.group(1), {})
                base = load(member.name)
                values[m.group(1)] = merge(base, sub)
    return values


def merge(base, over):
    if isinstance(base, dict) and isinstance(over, dict):
        return {**base, **{k: merge(base.get(k), v) for k, v in over.items()}}
    return over if over is not None else base


# maps whose keys are the user's (the stack defaults them to {}), checked by what they mean
FREE_MAPS = {"defaultRules.disabled", "grafana.sidecar.datasources.exemplarTraceIdDestinations"}
SELECTOR_KEYS = {"matchLabels", "matchExpressions"}


def stack_templates() -> str:
    """Every template of the packaged chart (the subcharts' with their values paths under the subchart's name)."""
    texts = []
    with tarfile.open(KPS) as tar:
        for member in tar.getmembers():
            m = re.fullmatch(r"kube-prometheus-stack/(charts/([^/]+)/)?templates/.+", member.name)
            if m and member.isfile():
                text = tar.extractfile(member).read().decode()
                texts.append(text.replace(".Values.", f".Values.{m.group(2)}.") if m.group(2) else text)
    return "\n".join(texts)


def unknown_keys(values, known, path: str = "", templates: str = "") -> list[str]:
    """Keys neither in the stack's values.yaml nor read by its templates (a key only documented in a comment
    there, such as alertmanagerSpec.configSecret, counts when a template reads it)."""
    found = []
    for key, value in values.items():
        where = f"{path}.{key}" if path else key
        if not isinstance(known, dict) or key not in known:
            if not re.search(rf"\.Values\.{re.escape(where)}\b", templates):
                found.append(where)
        elif where in FREE_MAPS:
            continue
        elif where.endswith("Selector") and isinstance(value, dict):
            found += [f"{where}.{k}" for k in value if k not in SELECTOR_KEYS]
        elif isinstance(value, dict) and value:
            found += unknown_keys(value, known[key], where, templates)
    return found


def crd_unknown_fields(obj, schema: dict, path: str) -> list[str]:
    """Fields the API server would prune (not in the CRD's structural schema)."""
    found = []
    if isinstance(obj, dict) and "properties" in schema:
        for key, value in obj.items():
            if key not in schema["properties"]:
                found.append(f"{path}.{key}")
            else:
                found += crd_unknown_fields(value, schema["properties"][key], f"{path}.{key}")
    elif isinstance(obj, list) and "items" in schema:
        for i, value in enumerate(obj):
            found += crd_unknown_fields(value, schema["items"], f"{path}[{i}]")
    return found


def crd_schema(kind_plural: str) -> dict:
    with tarfile.open(KPS) as tar:
        crd = yaml.safe_load(tar.extractfile(f"kube-prometheus-stack/charts/crds/crds/crd-{kind_plural}.yaml").read())
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


@pytest.fixture(scope="module")
def known() -> tuple[dict, str]:
    return stack_values(), stack_templates()


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_every_key_of_the_integration_values_exists_in_the_stack(known, stack_defaults, pair, env):
    values = yaml.safe_load((INTEGRATIONS / f"{env}.yaml").read_text())
    assert unknown_keys(values, known[0], templates=known[1]) == []
    # every alert switched off by name is one of the stack's (a misspelt name would leave it on)
    stack_alerts = set(rule_names(stack_defaults)[0])
    assert set(values["defaultRules"]["disabled"]) <= stack_alerts
    # and it is really gone from the stack's rules
    assert not set(values["defaultRules"]["disabled"]) & set(rule_names(pair[(env, 3)][0])[0])
    # what the values put into the Prometheus resource is in the operator's CRD (scrape classes, selectors)
    prometheus = one(pair[(env, 3)][0], "Prometheus")
    assert crd_unknown_fields(prometheus["spec"], crd_schema("prometheuses")["properties"]["spec"], "spec") == []
    # a misspelt key, a misspelt alert name and a misspelt scrape class field are reported
    typo = copy.deepcopy(values)
    typo["grafana"]["sidecar"]["dashboards"]["folderAnnotations"] = "grafana_folder"
    typo["prometheus"]["prometheusSpec"]["ruleSelector"]["matchLabel"] = {}
    assert unknown_keys(typo, known[0], templates=known[1]) == ["prometheus.prometheusSpec.ruleSelector.matchLabel",
                                         "grafana.sidecar.dashboards.folderAnnotations"]
    assert "KubeNodeNotReadyy" not in stack_alerts
    bad_class = copy.deepcopy(prometheus["spec"])
    bad_class["scrapeClasses"][0]["relabeling"] = bad_class["scrapeClasses"][0].pop("relabelings")
    assert crd_unknown_fields(bad_class, crd_schema("prometheuses")["properties"]["spec"], "spec") == [
        "spec.scrapeClasses[0].relabeling"]


# values whose content is data (labels, lists, alert names): documented by the comment on their key
DATA_KEYS = {"disabled", "ruleSelector", "serviceMonitorSelector", "podMonitorSelector", "scrapeClasses", "secrets",
             "exemplarTraceIdDestinations"}


def undocumented_keys(text: str) -> list[str]:
    """Keys of the file without a `# <key> -- ...` comment right above them (data values excepted)."""
    lines, stack, missing = text.splitlines(), [], []
    for i, line in enumerate(lines):
        m = re.match(r"^(\s*)(- )?([A-Za-z][A-Za-z0-9_.-]*):", line)
        if not m or line.lstrip().startswith("#"):
            continue
        indent = len(m.group(1))
        while stack and stack[-1][0] >= indent:
            stack.pop()
        if not any(key in DATA_KEYS for _, key in stack) and not m.group(2):
            if not (i and re.match(rf"^\s*# {re.escape(m.group(3))} -- \S", lines[i - 1])):
                missing.append(f"line {i + 1}: {m.group(3)}")
        stack.append((indent, m.group(3)))
    return missing


def test_the_integration_folder_holds_one_documented_file_per_environment():
    assert sorted(p.name for p in INTEGRATIONS.iterdir()) == sorted(f"{e}.yaml" for e in ENVIRONMENTS)
    for env in ENVIRONMENTS:
        text = (INTEGRATIONS / f"{env}.yaml").read_text()
        assert text.startswith("# Generated by `python -m generator render`")
        assert undocumented_keys(text) == [], env
    # a key without its comment is reported
    text = (INTEGRATIONS / "prod.yaml").read_text()
    stripped = re.sub(r"\n\s*# folderAnnotation -- [^\n]*", "", text)
    assert [m.split(": ")[1] for m in undocumented_keys(stripped)] == ["folderAnnotation"]


# --- the union of both charts' rules: one incident, one notification ------------------------------
# Series as kube-prometheus-stack scrapes them (its ServiceMonitors' job, namespace, service and endpoint
# labels; kube-state-metrics with honorLabels, so a pod's own namespace), on a healthy cluster: every
# control-plane and exporter target up, three VirtEngine nodes committing blocks. `cluster` comes from the
# default scrape class when the integration values are used, and is absent on a stack without it.
# promtool checks exactly which alerts fire (every label); the real Alertmanager, with this chart's
# configuration, then receives them and must leave exactly one not inhibited: the incident notifies once.

NODES = ("10.0.0.1", "10.0.0.2", "10.0.0.3")
KSM = 'job="kube-state-metrics",instance="10.0.1.5:8080",service="kube-prometheus-stack-kube-state-metrics",endpoint="http"'
NODE_EXPORTER = ('job="node-exporter",namespace="monitoring",service="kube-prometheus-stack-prometheus-node-exporter",'
                 'endpoint="http-metrics",container="node-exporter"')
ROOT_FS = 'device="/dev/nvme0n1p1",fstype="ext4",mountpoint="/"'
POD = 'namespace="virtengine-mainnet",pod="virtengine-faucet-7d9f8-x2kq"'
DISK = f'{NODE_EXPORTER},instance="10.0.0.2:9100",{ROOT_FS}'


def healthy(minutes: int) -> dict[str, str]:
    series = {}
    for job, labels in (("apiserver", 'namespace="default",service="kubernetes",endpoint="https",instance="10.0.0.1:6443"'),
                        ("kube-controller-manager", 'namespace="kube-system",instance="10.0.0.1:10257"'),
                        ("kube-scheduler", 'namespace="kube-system",instance="10.0.0.1:10259"'),
                        ("kube-proxy", 'namespace="kube-system",instance="10.0.0.1:10249"'),
                        ("kube-state-metrics", 'namespace="monitoring",instance="10.0.1.5:8080"'),
                        ("kube-prometheus-stack-prometheus", 'namespace="monitoring",instance="10.0.1.6:9090"'),
                        ("kube-prometheus-stack-alertmanager", 'namespace="monitoring",instance="10.0.1.7:9093"')):
        series[f'up{{job="{job}",{labels}}}'] = f"1x{minutes}"
    for ip in NODES:
        series[f'up{{job="kubelet",metrics_path="/metrics",namespace="kube-system",instance="{ip}:10250",node="n-{ip[-1]}"}}'] = f"1x{minutes}"
        series[f'up{{{NODE_EXPORTER},instance="{ip}:9100"}}'] = f"1x{minutes}"
        series[f'node_filesystem_size_bytes{{{NODE_EXPORTER},instance="{ip}:9100",{ROOT_FS}}}'] = f"100000000000x{minutes}"
        series[f'node_filesystem_avail_bytes{{{NODE_EXPORTER},instance="{ip}:9100",{ROOT_FS}}}'] = f"60000000000x{minutes}"
        series[f'node_filesystem_readonly{{{NODE_EXPORTER},instance="{ip}:9100",{ROOT_FS}}}'] = f"0x{minutes}"
    for i, ip in enumerate(("10.0.2.1", "10.0.2.2", "10.0.2.3")):
        node = f'namespace="virtengine-mainnet",pod="virtengine-node-{i}",instance="{ip}:26660",chain_id="virtengine-1"'
        series[f'up{{job="cometbft",{node}}}'] = f"1x{minutes}"
        series[f'cometbft_consensus_height{{job="cometbft",{node}}}'] = f"1000+10x{minutes}"
    return series


# incident -> (minutes of series, evaluated at, series replacing or adding to the healthy ones,
#              the alerts that fire (labels besides cluster), the one that notifies)
INCIDENTS = {
    # a Deployment's pod whose container keeps crashing from minute 10: waiting in CrashLoopBackOff between
    # restarts, Running and not ready (kube-state-metrics' pod series)
    "a crash-looping pod": (40, "30m", {
        f'kube_pod_container_status_waiting_reason{{{KSM},{POD},container="faucet",reason="CrashLoopBackOff"}}':
            "_x10 1x30",
        f'kube_pod_container_status_restarts_total{{{KSM},{POD},container="faucet"}}': "0x10 0+0.2x30",
        f'kube_pod_status_phase{{{KSM},{POD},phase="Running"}}': "1x40",
        f'kube_pod_status_phase{{{KSM},{POD},phase="Pending"}}': "0x40",
        f'kube_pod_status_ready{{{KSM},{POD},condition="true"}}': "1x10 0x30",
        f'kube_pod_owner{{{KSM},{POD},owner_kind="ReplicaSet",owner_name="virtengine-faucet-7d9f8"}}': "1x40",
    }, [
        f'alertname="KubePodCrashLooping",{POD},container="faucet",environment="prod",severity="warning",team="platform",service="kubernetes"',
        f'alertname="KubePodNotReady",{POD},job="kube-state-metrics",severity="warning"',
    ], 'alertname="KubePodCrashLooping"'),
    # node 10.0.0.2's root filesystem fills at 1 GB a minute and stays full (1 GB free) from minute 44
    "a full disk": (90, "80m", {
        f'node_filesystem_avail_bytes{{{NODE_EXPORTER},instance="10.0.0.2:9100",{ROOT_FS}}}':
            "45000000000-1000000000x44 1000000000x46",
    }, [
        # the rule's own service label replaces the target's
        f'alertname="NodeFilesystemFillingUp",{DISK},environment="prod",severity="warning",team="platform",service="kubernetes"',
        f'alertname="VirtEngineNodeFilesystemAlmostFull",{DISK},environment="prod",severity="warning",team="platform",service="kubernetes"',
    ], 'alertname="VirtEngineNodeFilesystemAlmostFull"'),
    # node-exporter on 10.0.0.3 stops answering at minute 10 (one of the job's three targets)
    "a dead target": (30, "25m", {
        f'up{{{NODE_EXPORTER},instance="10.0.0.3:9100"}}': "1x10 0x20",
    }, [
        'alertname="TargetDown",job="node-exporter",namespace="monitoring",environment="prod",severity="warning",team="platform",'
        'service="monitoring"',
    ], 'alertname="TargetDown"'),
}


def with_cluster(selector: str, cluster: str | None) -> str:
    return selector if cluster is None else selector.replace("{", f'{{cluster="{cluster}",', 1)


def label_set(text: str, cluster: str | None) -> dict[str, str]:
    labels = dict(re.findall(r'([a-zA-Z_]+)="([^"]*)"', text))
    return {**labels, "cluster": cluster} if cluster else labels


def promtool_case(name: str, cluster: str | None) -> dict:
    minutes, at, changes, alerts, _ = INCIDENTS[name]
    series = {**healthy(minutes), **changes}
    exp = []
    for text in alerts:
        labels = {**label_set(text, cluster), "alertstate": "firing"}
        exp.append({"labels": "ALERTS{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}",
                    "value": 1})
    return {
        "name": f"{name}, {'cluster ' + cluster if cluster else 'no cluster label'}",
        "interval": "1m",
        "input_series": [{"series": with_cluster(s, cluster), "values": v} for s, v in sorted(series.items())],
        "promql_expr_test": [{
            # every firing alert but ours that always fires by design (the Watchdog heartbeat)
            "expr": 'ALERTS{alertstate="firing",alertname!="Watchdog"}', "eval_time": at, "exp_samples": exp}],
    }


@pytest.fixture(scope="module")
def union_rules(pair, tmp_path_factory) -> Path:
    """Both charts' enabled rules of prod in one rule file, as the stack's Prometheus loads them."""
    stack, ours = pair[("prod", 3)]
    folder = tmp_path_factory.mktemp("union")
    groups = [g for rule in kinds(stack, "PrometheusRule") + kinds(ours, "PrometheusRule") for g in rule["spec"]["groups"]]
    (folder / "rules.yaml").write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
    return folder


def test_on_the_union_of_both_charts_rules_each_incident_fires_exactly_these_alerts(union_rules):
    cluster = env_values("prod")["global"]["cluster"]
    tests = [promtool_case(name, c) for name in INCIDENTS for c in (cluster, None)]
    quiet = {"name": "a healthy cluster", "interval": "1m",
             "input_series": [{"series": with_cluster(s, cluster), "values": v} for s, v in sorted(healthy(40).items())],
             "promql_expr_test": [{"expr": 'ALERTS{alertstate="firing",alertname!="Watchdog"}', "eval_time": "30m",
                                   "exp_samples": []}]}
    (union_rules / "incidents.test.yaml").write_text(yaml.safe_dump(
        {"rule_files": ["rules.yaml"], "evaluation_interval": "1m", "tests": [quiet, *tests]}, sort_keys=False))
    proc = tools.run([tools.find("promtool"), "test", "rules", "incidents.test.yaml"], cwd=union_rules, check=False,
                     timeout=900)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]


def left_to_notify(folder: Path, extra: list[str], settled: bool = True) -> dict:
    """Posts the alerts of every incident (with and without cluster) to the real Alertmanager running this
    chart's prod configuration; returns {(incident, cluster): (alerts left to notify, the one expected)}."""
    import time

    import requests

    from localstack import alertmanager
    folder.mkdir(parents=True, exist_ok=True)
    secrets = folder / "secrets"
    proc = helm_template("prod", 3, extra=["--set", f"alertmanager.templatesPath={folder}", "--set",
                                           f"alertmanager.secretsMountPath={secrets}", *extra, "--show-only",
                                           "templates/alertmanager/config-secret.yaml"])
    (secret,) = manifests(proc.stdout)
    for key, text in secret["stringData"].items():
        (folder / key).write_text(text)
    for path in secret_paths(yaml.safe_load(secret["stringData"]["alertmanager.yaml"])):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text("0123456789abcdef\n")
    cluster = env_values("prod")["global"]["cluster"]
    posted = {}
    for name, (_, _, _, alerts, notifies) in INCIDENTS.items():
        for c in (cluster, None):
            sets = [label_set(text, c) for text in alerts]
            primary = label_set(notifies, None)
            posted[(name, c)] = (sets, [s for s in sets if primary.items() <= s.items()])
    with alertmanager(folder / "alertmanager.yaml", folder) as url:
        body = [{"labels": labels, "annotations": {"summary": "test"}} for sets, _ in posted.values() for labels in sets]
        requests.post(f"{url}/api/v2/alerts", json=body, timeout=10).raise_for_status()

        def left() -> dict:
            state = requests.get(f"{url}/api/v2/alerts", timeout=10).json()
            free = [a["labels"] for a in state if not a["status"]["inhibitedBy"]]
            seen = [a["labels"] for a in state]
            return {key: ([s for s in sets if s in free], primary, all(s in seen for s in sets))
                    for key, (sets, primary) in posted.items()}

        # the inhibitor learns of the muting alerts asynchronously: poll until each incident is settled
        # (settled=False: until every alert is in; nothing can mute them later)
        deadline = time.monotonic() + 30
        while True:
            result = left()
            done = all(seen and (free == primary or not settled) for free, primary, seen in result.values())
            if done or time.monotonic() > deadline:
                return {key: (free, primary) for key, (free, primary, _) in result.items()}
            time.sleep(0.2)


def test_alertmanager_with_our_configuration_notifies_each_incident_once(tmp_path):
    """The alerts promtool saw fire, posted to the real Alertmanager with this chart's prod configuration:
    for each incident, with and without cluster, exactly one is left to notify (the others inhibited)."""
    for key, (free, primary) in left_to_notify(tmp_path / "ours", []).items():
        assert len(primary) == 1 and free == primary, f"{key}: left to notify {free}, expected {primary}"
    # without the inhibitions that join the stack's alerts to ours, the pod and the disk notify twice or more
    off = []
    for key in ("criticalMutesWarningTwin", "crashLoopingMutesPodNotReady", "nodeFilesystemFullMutesFillingUp"):
        off += ["--set", f"alertmanager.inhibitions.{key}.enabled=false"]
    twice = {key[0] for key, (free, _) in left_to_notify(tmp_path / "without", off, settled=False).items() if len(free) > 1}
    assert twice == {"a crash-looping pod", "a full disk"}


# --- single cluster (no cluster label) and multi-cluster ------------------------------------------

def cluster_problems(ours: list[dict]) -> list[str]:
    """What breaks when the stack's series carry no cluster label (a single cluster without the scrape class):
    a cluster variable that cannot be All, a panel that matches cluster exactly, an alert whose link or
    description names an empty cluster."""
    problems = []
    for cm in kinds(ours, "ConfigMap"):
        if "virtengine.io/dashboard" not in (cm["metadata"].get("labels") or {}):
            continue
        for text in cm["data"].values():
            dashboard = json.loads(text)
            var = next((v for v in dashboard["templating"]["list"] if v["name"] == "cluster"), None)
            if var and not (var.get("includeAll") and var.get("allValue") == ".*"):
                problems.append(f"{dashboard['uid']}: the cluster variable has no All matching an absent label")
            if re.search(r'cluster\s*=\s*\\?"\$cluster', text):
                problems.append(f"{dashboard['uid']}: a query matches cluster=\"$cluster\" exactly (no series without it)")
    for rule in kinds(ours, "PrometheusRule"):
        for group in rule["spec"]["groups"]:
            for r in group["rules"]:
                ann = r.get("annotations") or {}
                for key in ("dashboard_url", "description"):
                    outside = re.sub(r"\{\{ with \$labels\.cluster \}\}.*?\{\{ end \}\}", "", ann.get(key, ""))
                    if "$labels.cluster" in outside or "var-cluster=" in outside:
                        problems.append(f"{r['alert']}: {key} names the cluster even when the alert has none")
    return problems


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_dashboards_and_alerts_work_with_and_without_a_cluster_label(pair, env):
    ours = pair[(env, 3)][1]
    assert cluster_problems(ours) == []
    # the alert links and descriptions as they were: var-cluster= empty and "in cluster " without one
    old = copy.deepcopy(ours)
    rule = next(r for p in kinds(old, "PrometheusRule") for g in p["spec"]["groups"] for r in g["rules"]
                if r.get("alert") == "KubeNodeNotReady")
    rule["annotations"]["dashboard_url"] = "https://grafana/d/k8s-nodes?var-cluster={{ $labels.cluster }}&var-node=n1"
    assert cluster_problems(old) == ["KubeNodeNotReady: dashboard_url names the cluster even when the alert has none"]


def test_the_generator_owns_the_integration_folder_whole(project):
    from conftest import run_generator
    assert run_generator(project, "render").returncode == 0
    folder = project / "integrations" / "kube-prometheus-stack"
    assert sorted(p.name for p in folder.iterdir()) == sorted(f"{e}.yaml" for e in ENVIRONMENTS)
    # a stale file and a changed cluster: `render --check` names both; `render` removes and rewrites them
    (folder / "qa.yaml").write_text("prometheus: {}\n")
    prod = project / "values" / "prod.yaml"
    prod.write_text(prod.read_text().replace("cluster: virtengine-prod", "cluster: virtengine-prod-2"))
    proc = run_generator(project, "render", "--check")
    assert proc.returncode == 1
    assert "not generated from any source (remove it): integrations/kube-prometheus-stack/qa.yaml" in proc.stderr
    assert "differs: integrations/kube-prometheus-stack/prod.yaml" in proc.stderr
    assert run_generator(project, "render").returncode == 0
    assert not (folder / "qa.yaml").exists() and "replacement: virtengine-prod-2" in (folder / "prod.yaml").read_text()
    assert not list(folder.parent.glob(".kube-prometheus-stack.*"))


@pytest.mark.parametrize("major", HELM_MAJORS)
def test_an_ha_pair_of_the_stack_keeps_the_replica_label_the_operator_drops_and_sends_to_every_peer(major):
    """With prometheusSpec.replicas 2 and three Alertmanager replicas, the rendered Prometheus resource names the
    replica label the operator adds per pod and drops before Alertmanager (prometheus_replica, as our bundle's --ha
    and tests/e2e/test_ha.py drop it), and points at the Alertmanager service, whose endpoints are every peer."""
    docs = render_stack("prod", major, ["--set", "prometheus.prometheusSpec.replicas=2",
                                        "--set", "alertmanager.alertmanagerSpec.replicas=3"])
    prometheus, alertmanager = one(docs, "Prometheus"), one(docs, "Alertmanager")
    assert prometheus["spec"]["replicas"] == 2 and alertmanager["spec"]["replicas"] == 3
    assert prometheus["spec"]["replicaExternalLabelName"] == "prometheus_replica"
    assert "prometheus_replica" not in (prometheus["spec"].get("externalLabels") or {})
    (target,) = prometheus["spec"]["alerting"]["alertmanagers"]
    services = {d["metadata"]["name"]: d for d in kinds(docs, "Service")}
    assert target["name"] in services
    assert services[target["name"]]["spec"]["selector"].get("alertmanager") == alertmanager["metadata"]["name"]
    # our routing never groups by the replica label, nor by every label ('...'): either would split the pair again
    (secret,) = manifests(helm_template("prod", major, extra=[
        "--show-only", "templates/alertmanager/config-secret.yaml"]).stdout)

    def group_bys(route: dict) -> list[list[str]]:
        return [route.get("group_by") or []] + [g for r in route.get("routes") or [] for g in group_bys(r)]
    found = group_bys(yaml.safe_load(secret["stringData"]["alertmanager.yaml"])["route"])
    assert [g for g in found if "prometheus_replica" in g or "..." in g] == [] and found[0]
