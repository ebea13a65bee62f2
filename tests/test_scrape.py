"""Scraping: the chart's scrape jobs, as a plain Prometheus config, find every simulated VirtEngine target.

Real Prometheus scrapes the metrics simulator (one HTTP endpoint per
CometBFT node, API server, provider daemon and ML inference server) with the
jobs `generator.content.scrape` builds from the prod values: the same jobs,
paths, params and relabelling as the chart's ServiceMonitors/PodMonitors.
Only the targets (the simulator's ports) and the interval (1s, to keep the
test short) differ from the bundle.
"""
from __future__ import annotations

import time

import pytest
import requests
import yaml

from conftest import ROOT
from generator import schema as values_schema
from generator.build import build
from generator.content import scrape
from localstack import prometheus
from simulator import Simulator


@pytest.fixture(scope="module")
def prod_values():
    return build(ROOT, ["prod"]).merged_values["prod"]


@pytest.fixture(scope="module")
def sim():
    s = Simulator(block_time=1.0).start(0)
    try:
        yield s
    finally:
        s.stop()


def simulator_targets(sim, values) -> dict[str, list[str]]:
    by_job = {}
    for t in sim.targets:
        by_job.setdefault(t.job, []).append(f"127.0.0.1:{t.port}")
    return {key: sorted(by_job.get(c["job"], [])) for key, c in scrape.components(values)}


def wait_targets(url: str, want: int, timeout: float = 30) -> list[dict]:
    deadline = time.monotonic() + timeout
    targets = []
    while time.monotonic() < deadline:
        targets = requests.get(url + "/api/v1/targets", timeout=5).json()["data"]["activeTargets"]
        if len(targets) == want and all(t["health"] == "up" for t in targets):
            return targets
        time.sleep(0.5)
    return targets


def test_prometheus_with_the_generated_scrape_config_sees_every_simulated_target_up(sim, prod_values, tmp_path):
    targets = simulator_targets(sim, prod_values)
    assert all(targets.values()), f"the simulator serves no target for some job: {targets}"
    jobs = scrape.scrape_configs(prod_values, mode="static", targets=targets)
    for job in jobs:
        job["scrape_interval"] = job["scrape_timeout"] = "1s"
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump({"scrape_configs": jobs}))
    want = sum(len(v) for v in targets.values())
    with prometheus(tmp_path / "prometheus.yml", tmp_path) as url:
        seen = wait_targets(url, want)
        assert sorted((t["labels"]["job"], t["health"]) for t in seen) == sorted(
            (c["job"], "up") for key, c in scrape.components(prod_values) for _ in targets[key])
        for t in seen:
            assert t["labels"]["cluster"] == "virtengine-prod"
        # chain_id where the exporter has none (Cosmos SDK telemetry), the exporter's own elsewhere
        job_names = {t["labels"]["job"] for t in seen}

        def exported_by_every_job():   # poll until each job's own series are stored, instead of a fixed sleep
            found = requests.get(url + "/api/v1/series", params={"match[]": '{job=~".+"}'}, timeout=10).json()["data"]
            found = [s for s in found if s["__name__"] != "up" and not s["__name__"].startswith("scrape_")]
            return found if {s["job"] for s in found} >= job_names else None
        deadline = time.monotonic() + 60
        while not (exported := exported_by_every_job()):
            assert time.monotonic() < deadline, "some job's series never reached Prometheus"
            time.sleep(0.5)
        missing = sorted({s["__name__"] for s in exported if not s.get("chain_id")})
        assert exported and missing == []
        chains = {s["chain_id"] for s in exported}
        # the relabelling fills in the environment's chain id but never overwrites an exporter's own
        assert chains == {c.chain_id for c in sim.world.chains} | {prod_values["global"]["chainId"]}, chains


@pytest.mark.parametrize("key", ["cometbft", "cosmosApi", "providerDaemon", "mlInference"])
def test_a_component_switched_off_has_no_scrape_job(prod_values, key):
    import copy
    values = copy.deepcopy(prod_values)
    values["scrape"]["components"][key]["enabled"] = False
    jobs = {j["job_name"] for j in scrape.scrape_configs(values)}
    assert prod_values["scrape"]["components"][key]["job"] not in jobs
    assert len(jobs) == len(scrape.scrape_configs(prod_values)) - 1


def test_a_scrape_timeout_longer_than_the_interval_fails_with_the_file_and_key(project):
    env = project / "values" / "staging.yaml"
    env.write_text(env.read_text().replace("scrapeTimeout: 10s", "scrapeTimeout: 45s"))
    from conftest import run_generator
    proc = run_generator(project, "render")
    assert proc.returncode == 1
    assert "values/staging.yaml" in proc.stderr and "scrapeTimeout" in proc.stderr and "45s" in proc.stderr


def test_kubernetes_form_keeps_the_selector_labels_and_named_port(prod_values):
    jobs = {j["job_name"]: j for j in scrape.scrape_configs(prod_values, mode="kubernetes")}
    cometbft = jobs["cometbft"]
    assert cometbft["kubernetes_sd_configs"] == [{"role": "endpoints",
                                                  "namespaces": {"names": ["virtengine-mainnet", "virtengine-providers"]}}]
    keep = [r for r in cometbft["relabel_configs"] if r["action"] == "keep"]
    assert {"source_labels": ["__meta_kubernetes_service_label_app_kubernetes_io_name"],
            "regex": "virtengine\\-node", "action": "keep"} in keep
    assert jobs["provider-daemon"]["kubernetes_sd_configs"][0]["role"] == "pod"


@pytest.mark.parametrize("component, job, alert", [
    ("cometbft", "chain-node", "VirtEngineNodesDown"),          # job="cometbft"
    ("mlInference", "inference", "VirtEngineTargetsAbsent"),    # job=~"...|ml-inference"
])
def test_renaming_a_job_an_alert_selects_fails_render_naming_the_key_and_the_alert(project, component, job, alert):
    env = project / "values" / "staging.yaml"
    text = env.read_text()
    assert "\nscrape:\n" in text
    env.write_text(text.replace("\nscrape:\n", f"\nscrape:\n  components:\n    {component}:\n"
                                              f"      # job -- renamed\n      job: {job}\n", 1))
    from conftest import run_generator
    proc = run_generator(project, "render")
    assert proc.returncode == 1, proc.stdout
    assert f"values/staging.yaml: scrape.components.{component}.job" in proc.stderr
    assert alert in proc.stderr and "could never fire" in proc.stderr and "Traceback" not in proc.stderr


# ---- the node's role (world fact 7): pod label app.kubernetes.io/component -> target label role --------------------

def _chart_relabelings(major: int) -> dict[str, list[dict]]:
    """job -> the relabelings of each rendered ServiceMonitor/PodMonitor endpoint, in Prometheus' own spelling."""
    from conftest import helm_template, manifests
    keys = {"sourceLabels": "source_labels", "targetLabel": "target_label"}
    found = {}
    for doc in manifests(helm_template("prod", major).stdout):
        if doc["kind"] not in ("ServiceMonitor", "PodMonitor"):
            continue
        for ep in doc["spec"].get("endpoints") or doc["spec"].get("podMetricsEndpoints"):
            rules = [{keys.get(k, k): v for k, v in r.items()} for r in ep["relabelings"]]
            job = next(r["replacement"] for r in rules if r.get("target_label") == "job")
            found[job] = rules
    return found


@pytest.mark.parametrize("major", (3, 4))
def test_the_cometbft_scrape_copies_the_pod_component_label_to_role_in_both_forms(prod_values, major):
    chart = _chart_relabelings(major)
    role = [r for r in chart["cometbft"] if r.get("target_label") == "role"]
    assert role == [{"action": "replace", "source_labels": ["__meta_kubernetes_pod_label_app_kubernetes_io_component"],
                     "regex": "(.+)", "target_label": "role", "replacement": "$1"}]
    assert not [r for job, rules in chart.items() if job != "cometbft" for r in rules if r.get("target_label") == "role"]
    # the plain Prometheus form (no operator) carries the same rule
    plain = {j["job_name"]: j for j in scrape.scrape_configs(prod_values, mode="kubernetes")}["cometbft"]
    assert [r for r in plain["relabel_configs"] if r.get("target_label") == "role"] == role


def test_prometheus_gives_each_node_target_the_role_of_its_pod_and_none_without_the_label(sim, prod_values, tmp_path):
    """Real Prometheus applies the chart's relabelings to targets that carry the pod labels Kubernetes discovery
    would set: a validator pod, a sentry pod, and a pod without the component label."""
    rules = _chart_relabelings(3)["cometbft"]
    ports = sorted(t.port for t in sim.targets if t.job == "cometbft")[:3]
    assert len(ports) == 3
    pods = [("validator-0", "validator"), ("sentry-0", "sentry"), ("rpc-0", None)]
    static = []
    for port, (pod, component) in zip(ports, pods):
        labels = {"__meta_kubernetes_pod_name": pod}
        if component:
            labels["__meta_kubernetes_pod_label_app_kubernetes_io_component"] = component
        static.append({"targets": [f"127.0.0.1:{port}"], "labels": labels})
    job = {"job_name": "cometbft", "scrape_interval": "1s", "scrape_timeout": "1s", "static_configs": static,
           "relabel_configs": rules + [{"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod",
                                        "action": "replace"}]}
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump({"scrape_configs": [job]}))
    with prometheus(tmp_path / "prometheus.yml", tmp_path) as url:
        seen = wait_targets(url, 3)
        roles = {t["labels"]["pod"]: t["labels"].get("role") for t in seen}
        assert roles == {"validator-0": "validator", "sentry-0": "sentry", "rpc-0": None}, roles
        # and every series of the target carries it (the rules read cometbft_p2p_peers{role=...})
        deadline = time.monotonic() + 30
        series = []
        while time.monotonic() < deadline:
            series = requests.get(url + "/api/v1/series", params={"match[]": "cometbft_p2p_peers"},
                                  timeout=10).json()["data"]
            if {s.get("pod") for s in series} == {"validator-0", "sentry-0", "rpc-0"}:
                break
            time.sleep(0.5)
        assert {(s["pod"], s.get("role")) for s in series} >= {("validator-0", "validator"), ("sentry-0", "sentry")}
        assert all("role" not in s for s in series if s["pod"] == "rpc-0")
