"""The local compose bundle (`python -m generator bundle`): valid for the real tools, identical to the chart.

Prometheus and Alertmanager run natively with exactly the bundle's files;
docker-compose (Debian) checks the compose file, promtool and amtool the
configurations. The rules and Alertmanager configuration must equal what
`helm template` of the chart gives for the same environment.
"""
from __future__ import annotations

import subprocess

import pytest
import requests
import yaml

from conftest import ENVIRONMENTS, ROOT, helm_template, manifests, run_generator
from generator import tools
from localstack import alertmanager, prometheus


@pytest.fixture(scope="module")
def bundles(snapshot, tmp_path_factory):
    out = {}
    for env in ENVIRONMENTS:
        dest = tmp_path_factory.mktemp("bundle") / "observability"
        proc = run_generator(snapshot, "bundle", "--env", env, "--out", str(dest))
        assert proc.returncode == 0, proc.stderr
        assert f"wrote the {env} local bundle" in proc.stdout
        out[env] = dest
    return out


def chart_objects(snapshot, env):
    return manifests(helm_template(env, chart=snapshot / "chart").stdout)


def load(path):
    return yaml.safe_load(path.read_text())


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_bundle_has_the_briefs_layout(bundles, env):
    b = bundles[env]
    for rel in ("docker-compose.yaml", "prometheus/prometheus.yml", "alertmanager/alertmanager.yml",
                "grafana/provisioning/dashboards", "grafana/provisioning/datasources", "grafana/provisioning/alerting"):
        assert (b / rel).exists(), rel
    assert list((b / "prometheus" / "rules").glob("*.yml"))
    assert list((b / "grafana" / "dashboards").rglob("*.json"))


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_bundle_configs_pass_promtool_amtool_and_docker_compose_config(bundles, env):
    b = bundles[env]
    prom = tools.run([tools.find("promtool"), "check", "config", str(b / "prometheus" / "prometheus.yml")],
                     check=False)
    assert prom.returncode == 0 and "SUCCESS" in prom.stdout, prom.stdout + prom.stderr
    am = tools.run([tools.find("amtool"), "check-config", str(b / "alertmanager" / "alertmanager.yml")], check=False)
    assert am.returncode == 0, am.stdout + am.stderr
    compose = subprocess.run(["docker-compose", "-f", str(b / "docker-compose.yaml"), "config"],
                             capture_output=True, text=True, timeout=60)
    assert compose.returncode == 0, compose.stderr
    services = yaml.safe_load(compose.stdout)["services"]
    assert set(services) == {"prometheus", "alertmanager", "grafana", "loki", "jaeger"}
    assert all(":" in s["image"] and not s["image"].endswith(":latest") for s in services.values())


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_bundle_rules_and_alertmanager_config_are_those_the_chart_installs(snapshot, bundles, env):
    docs = chart_objects(snapshot, env)
    chart_groups = {g["name"]: g for d in docs if d["kind"] == "PrometheusRule" for g in d["spec"]["groups"]}
    bundle_groups = {g["name"]: g for f in (bundles[env] / "prometheus" / "rules").glob("*.yml")
                     for g in load(f)["groups"]}
    assert bundle_groups == chart_groups
    secret = next(d for d in docs if d["kind"] == "Secret" and "alertmanager.yaml" in d.get("stringData", {}))
    assert load(bundles[env] / "alertmanager" / "alertmanager.yml") == yaml.safe_load(
        secret["stringData"]["alertmanager.yaml"])


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_bundle_dashboards_and_datasources_are_the_charts_with_compose_urls(snapshot, bundles, env):
    import json
    docs = chart_objects(snapshot, env)
    chart_dash = {k: json.loads(v) for d in docs if d["kind"] == "ConfigMap"
                  and "grafana_dashboard" in d["metadata"]["labels"] for k, v in d["data"].items()}
    bundle_dash = {p.name: json.loads(p.read_text()) for p in (bundles[env] / "grafana" / "dashboards").rglob("*.json")}
    assert bundle_dash == chart_dash
    ds = [d for f in (bundles[env] / "grafana" / "provisioning" / "datasources").glob("*")
          for d in load(f)["datasources"]]
    urls = {d["type"]: d["url"] for d in ds}
    assert urls.get("prometheus") == "http://prometheus:9090"


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_bundle_scrape_jobs_match_the_charts_service_and_pod_monitors(snapshot, bundles, env):
    jobs = {j["job_name"]: j for j in load(bundles[env] / "prometheus" / "prometheus.yml")["scrape_configs"]}
    monitors = [d for d in chart_objects(snapshot, env) if d["kind"] in ("ServiceMonitor", "PodMonitor")]
    assert monitors
    for m in monitors:
        ep = (m["spec"].get("endpoints") or m["spec"]["podMetricsEndpoints"])[0]
        # labels copied from the pod (role from app.kubernetes.io/component) exist only with Kubernetes service
        # discovery; the bundle's static targets get the fixed ones (job, cluster)
        relabel = {r["targetLabel"]: r["replacement"] for r in ep["relabelings"] if not r.get("sourceLabels")}
        from_pod = {r["targetLabel"]: r["sourceLabels"] for r in ep["relabelings"] if r.get("sourceLabels")}
        if relabel["job"] == "cometbft":
            assert from_pod == {"role": ["__meta_kubernetes_pod_label_app_kubernetes_io_component"]}
        job = jobs[relabel["job"]]
        assert (job["metrics_path"], job.get("params"), job["scrape_interval"], job["scrape_timeout"]) == (
            ep["path"], ep.get("params"), ep["interval"], ep["scrapeTimeout"])
        assert {r["target_label"]: r["replacement"] for r in job["relabel_configs"]} == relabel
        chain = ep["metricRelabelings"][0]
        assert job["metric_relabel_configs"][0]["replacement"] == chain["replacement"]
    assert len(jobs) == len(monitors) + 2          # plus Prometheus and Alertmanager themselves


def route_tree(route: dict) -> tuple:
    """The receivers of a routing tree, in order (Alertmanager adds defaults to the rest when it loads)."""
    return route.get("receiver"), [route_tree(r) for r in route.get("routes") or []]


def test_prometheus_and_alertmanager_run_natively_with_exactly_the_bundles_files(bundles, tmp_path):
    b = bundles["prod"]
    files = {g["name"] for f in (b / "prometheus" / "rules").glob("*.yml") for g in load(f)["groups"]}
    with alertmanager(b / "alertmanager" / "alertmanager.yml", tmp_path) as am:
        status = requests.get(am + "/api/v2/status", timeout=5).json()
        loaded, ours = yaml.safe_load(status["config"]["original"]), load(b / "alertmanager" / "alertmanager.yml")
        assert {r["name"] for r in loaded["receivers"]} == {r["name"] for r in ours["receivers"]}
        assert route_tree(loaded["route"]) == route_tree(ours["route"])
        with prometheus(b / "prometheus" / "prometheus.yml", tmp_path) as prom:
            groups = requests.get(prom + "/api/v1/rules", timeout=5).json()["data"]["groups"]
            assert {g["name"] for g in groups} == files
            rules = sum(len(g["rules"]) for g in groups)
            assert rules == sum(len(g["rules"]) for f in (b / "prometheus" / "rules").glob("*.yml")
                                for g in load(f)["groups"])
            config = requests.get(prom + "/api/v1/status/config", timeout=5).json()["data"]["yaml"]
            assert "virtengine-prod" in config


def test_bundle_refuses_to_replace_a_folder_it_did_not_write(snapshot, tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    proc = run_generator(snapshot, "bundle", "--env", "dev", "--out", str(tmp_path / "mine"))
    assert proc.returncode == 1 and "not written by `generator bundle`" in proc.stderr
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_bundle_of_an_unknown_environment_fails_by_name(snapshot, tmp_path):
    proc = run_generator(snapshot, "bundle", "--env", "qa", "--out", str(tmp_path / "x"))
    assert proc.returncode == 1 and "qa" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_in_cluster_scrape_config_has_the_same_jobs_and_passes_promtool(bundles, env, tmp_path):
    b = bundles[env]
    # Debian's Prometheus is built without Kubernetes service discovery: promtool checks everything else
    data = load(b / "prometheus" / "kubernetes.yml")
    for job in data["scrape_configs"]:
        assert job.pop("kubernetes_sd_configs")[0]["role"] in ("endpoints", "pod")
        job["static_configs"] = [{"targets": ["placeholder:1"]}]
    (tmp_path / "k.yml").write_text(yaml.safe_dump(data))
    proc = tools.run([tools.find("promtool"), "check", "config", str(tmp_path / "k.yml")], check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    k8s_jobs = {j["job_name"]: j for j in load(b / "prometheus" / "kubernetes.yml")["scrape_configs"]}
    static = {j["job_name"]: j for j in load(b / "prometheus" / "prometheus.yml")["scrape_configs"]
              if "relabel_configs" in j}
    assert set(k8s_jobs) == set(static)
    for name, job in k8s_jobs.items():
        fixed = [r for r in job["relabel_configs"] if r.get("action") == "replace" and not r.get("source_labels")]
        assert fixed == static[name]["relabel_configs"]
        # the node's role comes from its pod label, as the chart's ServiceMonitor copies it
        role = [r for r in job["relabel_configs"] if r.get("target_label") == "role"]
        assert (name == "cometbft") == bool(role)
        if role:
            assert role[0]["source_labels"] == ["__meta_kubernetes_pod_label_app_kubernetes_io_component"]
        assert job.get("metric_relabel_configs") == static[name].get("metric_relabel_configs")


@pytest.mark.parametrize("where", ["a file", "under a file"])
def test_bundle_into_a_place_that_cannot_be_a_folder_fails_with_the_path_not_a_traceback(snapshot, tmp_path, where):
    (tmp_path / "plain.txt").write_text("not a folder")
    out = tmp_path / "plain.txt" if where == "a file" else tmp_path / "plain.txt" / "bundle"
    proc = run_generator(snapshot, "bundle", "--env", "dev", "--out", str(out))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "plain.txt" in proc.stderr
    assert (tmp_path / "plain.txt").read_text() == "not a folder"


def test_the_bundle_folder_is_readable_by_other_users(snapshot, tmp_path):
    import stat
    proc = run_generator(snapshot, "bundle", "--env", "dev", "--out", str(tmp_path / "stack"))
    assert proc.returncode == 0, proc.stderr
    mode = stat.S_IMODE((tmp_path / "stack").stat().st_mode)
    assert mode & 0o055 == 0o055, f"the bundle folder has mode {oct(mode)}: the stack's other users cannot read it"


# -- the HA layout: two Prometheus replicas, three Alertmanager peers ------------------------------------------

@pytest.fixture(scope="module")
def ha_bundle(snapshot, tmp_path_factory):
    dest = tmp_path_factory.mktemp("bundle-ha") / "observability"
    proc = run_generator(snapshot, "bundle", "--env", "prod", "--ha", "--out", str(dest))
    assert proc.returncode == 0, proc.stderr
    assert "wrote the prod local bundle (high availability)" in proc.stdout
    return dest


def test_ha_bundle_compose_runs_a_prometheus_pair_and_an_alertmanager_cluster(ha_bundle):
    b = ha_bundle
    check = subprocess.run(["docker-compose", "-f", str(b / "docker-compose.yaml"), "config"],
                           capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stderr
    services = load(b / "docker-compose.yaml")["services"]
    peers = ["alertmanager-0", "alertmanager-1", "alertmanager-2"]
    assert [s for s in services if s.startswith(("prometheus", "alertmanager"))] == \
        ["prometheus-0", "prometheus-1", *peers]
    for name in peers:   # each peer joins the two others
        joined = sorted(a.split("=", 1)[1] for a in services[name]["command"] if a.startswith("--cluster.peer="))
        assert joined == [f"{p}:9094" for p in peers if p != name]
        assert "--cluster.listen-address=0.0.0.0:9094" in services[name]["command"]
    for i, name in enumerate(["prometheus-0", "prometheus-1"]):
        assert f"--config.file=/etc/prometheus/{name}.yml" in services[name]["command"]
        config = load(b / "prometheus" / f"{name}.yml")
        assert config["global"]["external_labels"]["prometheus_replica"] == name
        assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == \
            [f"{p}:9093" for p in peers]                        # every replica sends to EVERY peer
        assert config["alerting"]["alert_relabel_configs"] == [{"action": "labeldrop", "regex": "prometheus_replica"}]
        checked = tools.run([tools.find("promtool"), "check", "config", str(b / "prometheus" / f"{name}.yml")],
                            check=False)
        assert checked.returncode == 0, checked.stdout + checked.stderr
    # the two replicas scrape the same targets
    jobs = [[(j["job_name"], j.get("static_configs")) for j in load(b / "prometheus" / f"{n}.yml")["scrape_configs"]]
            for n in ("prometheus-0", "prometheus-1")]
    assert jobs[0] == jobs[1]
    assert not (b / "prometheus" / "prometheus.yml").exists()


def sent(prom, peer) -> float:
    """Alerts ``prom`` delivered to ``peer`` (its own ``prometheus_notifications_sent_total``)."""
    import re
    from generator.servers import http
    text = http(prom.url + "/metrics")[1].decode()
    found = re.findall(rf'prometheus_notifications_sent_total{{alertmanager="http://127\.0\.0\.1:{peer.port}/api/v2/alerts"}} (\S+)',
                       text)
    return sum(map(float, found))


def test_ha_bundle_runs_natively_one_alert_per_incident_in_every_peer(ha_bundle, tmp_path):
    """The bundle's files on the real binaries: three peers gossip, both replicas send Watchdog (always firing)
    to all of them, and each peer holds it once, without the replica label."""
    from generator.servers import Servers, wait_until
    b = ha_bundle
    with Servers(tmp_path) as group:
        first = group.alertmanager(b / "alertmanager" / "alertmanager.yml", cluster=True, name="alertmanager-0")
        peers = [first] + [group.alertmanager(b / "alertmanager" / "alertmanager.yml", peers=[first.cluster_address],
                                              name=f"alertmanager-{i}") for i in (1, 2)]
        wait_until(lambda: all(len(p.peers()) == 3 for p in peers), 60, lambda: [p.peers() for p in peers])
        proms = []
        for name in ("prometheus-0", "prometheus-1"):
            # the bundle's configuration as written, with the compose host names pointed at the local peers
            text = (b / "prometheus" / f"{name}.yml").read_text()
            for i, peer in enumerate(peers):
                text = text.replace(f"alertmanager-{i}:9093", f"127.0.0.1:{peer.port}")
            (b / "prometheus" / f"local-{name}.yml").write_text(text)
            # a batch sent before the peers were discovered is dropped; resend soon, not after the 1 min default
            proms.append(group.prometheus(b / "prometheus" / f"local-{name}.yml", name=name,
                                          args=["--rules.alert.resend-delay=2s"]))
        for prom in proms:
            wait_until(lambda: len(prom.api("alertmanagers")["activeAlertmanagers"]) == 3, 60,
                       lambda: prom.api("alertmanagers"))
        wait_until(lambda: all(prom.alerts("firing", alertname="Watchdog") for prom in proms), 120,
                   "Watchdog never fired in both replicas")
        wait_until(lambda: all(sent(prom, peer) for prom in proms for peer in peers), 60,
                   lambda: f"{ {(prom.name, peer.name): sent(prom, peer) for prom in proms for peer in peers} }")
        for peer in peers:
            held = peer.alerts(alertname="Watchdog")
            assert len(held) == 1, [a["labels"] for a in held]
            assert "prometheus_replica" not in held[0]["labels"]
            assert held[0]["labels"]["cluster"] == "virtengine-prod"
        # the replicas themselves keep their label (their own series tell them apart)
        for name, prom in zip(("prometheus-0", "prometheus-1"), proms):
            assert prom.api("status/config")["yaml"].count(f"prometheus_replica: {name}") == 1
