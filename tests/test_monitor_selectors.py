"""Every ServiceMonitor / PodMonitor the chart renders finds its component's pods, and only those.

The pods and Services come from ``tests/fixtures/virtengine-workloads.yaml``: the labels, named
ports and namespaces the VirtEngine platform gives its workloads (the fixture says where each
comes from). The monitors come from ``helm template`` (Helm 3 and 4) of every environment. A
monitor matches the way the Prometheus Operator matches: ``namespaceSelector`` names the
workload's namespace; a ServiceMonitor's ``selector`` matches a Service's labels, the Service's
own selector matches the pods, and the endpoint's ``port`` is one of the Service's port names
whose target is a port the pod's container declares; a PodMonitor's ``selector`` matches the
pod's labels and its ``port`` is a container port name.
"""
from __future__ import annotations

import pytest
import yaml

from conftest import ENVIRONMENTS, HELM_MAJORS, ROOT, helm_template, manifests

FIXTURE = ROOT / "tests" / "fixtures" / "virtengine-workloads.yaml"
MONITORS = ("ServiceMonitor", "PodMonitor")


@pytest.fixture(scope="module")
def world() -> dict:
    return yaml.safe_load(FIXTURE.read_text())


def workloads(world: dict, env: str) -> dict[str, dict]:
    """The pods (one per role for the nodes) and Services of an environment, by component."""
    out = {}
    for comp, spec in world["components"].items():
        namespace = world["namespaces"][env][comp]
        pods = []
        for role in spec["pod"].get("roles", [comp]):
            labels = dict(spec["pod"]["labels"])
            if "roles" in spec["pod"]:
                labels["app.kubernetes.io/component"] = role
            pods.append({"name": f"{comp}-{role}-0", "namespace": namespace, "labels": labels,
                         "ports": dict(spec["pod"]["ports"])})
        services = []
        if "service" in spec:
            s = spec["service"]
            services.append({"name": s["name"], "namespace": namespace, "labels": dict(s["labels"]),
                             "selector": dict(s["selector"]), "ports": dict(s["ports"])})
        out[comp] = {"pods": pods, "services": services}
    return out


def _matches(selector: dict, labels: dict) -> bool:
    """A Kubernetes LabelSelector (matchLabels and matchExpressions) against a label set."""
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for e in selector.get("matchExpressions") or []:
        key, op, values = e["key"], e["operator"], e.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return bool(selector.get("matchLabels") or selector.get("matchExpressions"))


def _in_namespaces(monitor: dict, namespace: str) -> bool:
    sel = monitor["spec"].get("namespaceSelector") or {}
    if sel.get("any"):
        return True
    names = sel.get("matchNames")
    return namespace in (names if names else [monitor["metadata"]["namespace"]])


def scraped_pods(monitor: dict, world_now: dict[str, dict]) -> tuple[list[str], list[str]]:
    """(pods the monitor scrapes, why each candidate was not scraped)."""
    spec, kind = monitor["spec"], monitor["kind"]
    endpoints = spec.get("endpoints") if kind == "ServiceMonitor" else spec.get("podMetricsEndpoints")
    ports = {e.get("port") for e in endpoints or []}
    found, why = [], []
    for comp, w in world_now.items():
        for pod in w["pods"]:
            if not _in_namespaces(monitor, pod["namespace"]):
                why.append(f"{pod['name']}: namespace {pod['namespace']} not in the namespaceSelector")
                continue
            if kind == "PodMonitor":
                if not _matches(spec.get("selector") or {}, pod["labels"]):
                    why.append(f"{pod['name']}: labels {pod['labels']} do not match {spec.get('selector')}")
                elif not ports <= set(pod["ports"]):
                    why.append(f"{pod['name']}: no container port named {sorted(ports - set(pod['ports']))}")
                else:
                    found.append(pod["name"])
                continue
            for svc in w["services"]:
                if svc["namespace"] != pod["namespace"] or not _matches(spec.get("selector") or {}, svc["labels"]):
                    why.append(f"{pod['name']}: Service {svc['name']} labels {svc['labels']} do not match "
                               f"{spec.get('selector')}")
                    continue
                if not all(pod["labels"].get(k) == v for k, v in svc["selector"].items()):
                    why.append(f"{pod['name']}: Service {svc['name']} does not select it")
                    continue
                missing = sorted(p for p in ports if p not in svc["ports"] or svc["ports"][p] not in pod["ports"])
                if missing:
                    why.append(f"{pod['name']}: Service {svc['name']} has no port {missing} reaching a container port")
                    continue
                found.append(pod["name"])
    return sorted(set(found)), why


def monitor_problems(docs: list[dict], world: dict, env: str) -> list[str]:
    """Each rendered monitor against the pods of its component: finds all of them, and nothing else."""
    world_now = workloads(world, env)
    values = yaml.safe_load((ROOT / "values" / f"{env}.yaml").read_text()) or {}
    problems = []
    monitors = [d for d in docs if d["kind"] in MONITORS]
    if not monitors:
        return ["no ServiceMonitor or PodMonitor rendered"]
    by_component = {d["metadata"]["labels"]["app.kubernetes.io/component"]: d for d in monitors}
    for key, comp in world["jobs"].items():
        enabled = (((values.get("scrape") or {}).get("components") or {}).get(key) or {}).get("enabled", True)
        monitor = by_component.get(key.lower())
        if monitor is None:
            if enabled:
                problems.append(f"{key}: no monitor rendered")
            continue
        want = sorted(p["name"] for p in world_now[comp]["pods"])
        got, why = scraped_pods(monitor, world_now)
        if got != want:
            relevant = [w for w in why if w.startswith(tuple(want))]
            problems.append(f"{monitor['kind']} {monitor['metadata']['name']} ({key}) scrapes {got}, "
                            f"the {comp} pods are {want}: " + "; ".join(relevant[:3]))
    return problems


@pytest.mark.parametrize("env", ENVIRONMENTS)
@pytest.mark.parametrize("major", HELM_MAJORS)
def test_every_monitor_finds_all_of_its_components_pods_and_no_other(rendered, world, env, major):
    assert monitor_problems(rendered[(env, major)], world, env) == []


def test_the_node_monitors_reach_validators_sentries_and_full_nodes(rendered, world):
    docs = rendered[("prod", 3)]
    for d in docs:
        if d["kind"] == "ServiceMonitor":
            got, _ = scraped_pods(d, workloads(world, "prod"))
            assert {p.split("-")[1] for p in got} == {"validator", "sentry", "full"}, got


# the test above, shown to fail when the chart drifts from the workloads (the values change, the fixture stays)
BREAKS = [
    ("selector label renamed", ["--set", "scrape.components.cometbft.selector.app\\.kubernetes\\.io/name=virtengine"],
     "cometbft"),
    ("pod label value changed", ["--set", "scrape.components.providerDaemon.selector.app\\.kubernetes\\.io/name=provider"],
     "providerDaemon"),
    ("port name changed", ["--set", "scrape.components.mlInference.port=http-metrics"], "mlInference"),
    ("service port name changed", ["--set", "scrape.components.cosmosApi.port=rest"], "cosmosApi"),
    ("namespace dropped", ["--set", "scrape.namespaces={virtengine-mainnet}"], "providerDaemon"),
]


@pytest.mark.parametrize("major", HELM_MAJORS)
@pytest.mark.parametrize("name, args, key", BREAKS, ids=[b[0] for b in BREAKS])
def test_a_monitor_that_no_longer_matches_its_pods_is_reported(world, major, name, args, key):
    docs = manifests(helm_template("prod", major, extra=args).stdout)
    problems = monitor_problems(docs, world, "prod")
    assert any(f"({key})" in p for p in problems), f"{name}: not noticed: {problems}"
