"""A global view over many clusters: the chart's rules evaluated once, centrally, for three clusters.

Three simulated clusters, each with its own Prometheus (external label ``cluster``, no rules), send their
series by ``remote_write`` to two central engines at once:

- a central Prometheus 2.42 (``--web.enable-remote-write-receiver``) loading the Mimir/Cortex ruler files
  ``integrations/mimir/prod/*.yaml`` (a Prometheus rule file once the ``namespace`` key is left out), sending
  to a real Alertmanager with the chart's prod routing and the PagerDuty/Opsgenie stand-ins;
- VictoriaMetrics 1.79 with vmalert loading ``integrations/vmalert/prod.yaml``, sending to a second
  Alertmanager.

c1 and c2 run nodes of two different chains (c2's ``chain_id`` rewritten by its Prometheus'
``metric_relabel_configs``), c3 runs provider daemons only. Time is compressed as in ``pipeline.py``
(``for`` and range windows divided by ``FACTOR``, windows at least ``MIN_WINDOW`` so that they span several
remote-write batches; the engines' lookback ``LOOKBACK``). One fault at a time, each added to the
ones before: c1's chain halts (validator_halt), a c2 node exporter dies (exporter_down), then c3's
Prometheus dies (the cluster goes silent). After each step every alert of both engines names the cluster
of its fault, the other clusters' alerts are what they were (nothing paged or muted across clusters), and
the silent cluster is named by VirtEngineTargetsAbsent.

The static tests check the generated rule forms: the same groups as the chart renders per environment,
vmalert's ``-dryRun``, promtool, the Prometheus Operator CRD schemas, and the ThanosRuler's selection.
"""
from __future__ import annotations

import subprocess
import re
from pathlib import Path

import pytest
import yaml

from pipeline import Pipeline, compressed

from generator import manifests, rulelint, tools
from generator.content import globalview
from generator.servers import Servers, wait_until

ROOT = Path(__file__).resolve().parents[2]
ENVIRONMENTS = ("dev", "staging", "prod")
FACTOR = 30
MIN_WINDOW = 15        # seconds: the shortest range window after compression
LOOKBACK = "20s"       # the lookback of both engines (Prometheus' 5m, compressed, with room for batches)
TIMEOUT = 150          # a safety net per condition; the test polls
CLUSTERS = ("c1", "c2", "c3")
C2_CHAIN = "virtengine-testnet-1"


def integration(kind: str, env: str):
    folder = ROOT / globalview.FOLDERS[kind]
    if kind == "mimir":
        return {p.name: yaml.safe_load(p.read_text()) for p in sorted((folder / env).glob("*.yaml"))}
    if kind == "thanos":
        return [d for d in yaml.safe_load_all((folder / f"{env}.yaml").read_text()) if d]
    return yaml.safe_load((folder / f"{env}.yaml").read_text())


def chart_groups(env: str) -> list[dict]:
    return sorted(rulelint.render_rules(ROOT, env, 3), key=lambda g: g["name"])


def without_keep_firing(groups: list[dict]) -> list[dict]:
    return [{**g, "rules": [{k: v for k, v in r.items() if k != "keep_firing_for"} for r in g["rules"]]}
            for g in groups]


# -- the generated forms ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_every_ruler_form_holds_the_groups_the_chart_renders_for_the_environment(env):
    chart = chart_groups(env)
    mimir = sorted((g for doc in integration("mimir", env).values() for g in doc["groups"]), key=lambda g: g["name"])
    thanos = sorted((g for d in integration("thanos", env) if d["kind"] == "PrometheusRule" for g in d["spec"]["groups"]),
                    key=lambda g: g["name"])
    assert mimir == chart
    assert thanos == chart
    assert integration("vmalert", env)["groups"] == without_keep_firing(chart)


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_mimir_files_are_one_group_each_in_the_virtengine_namespace(env):
    files = integration("mimir", env)
    assert files and all(doc["namespace"] == globalview.MIMIR_NAMESPACE and len(doc["groups"]) == 1
                         and name == doc["groups"][0]["name"] + ".yaml" for name, doc in files.items())


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_vmalert_dry_run_accepts_the_vmalert_form(env):
    path = ROOT / globalview.FOLDERS["vmalert"] / f"{env}.yaml"
    proc = subprocess.run([tools.find("vmalert"), "-dryRun", f"-rule={path}"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def test_vmalert_dry_run_refuses_keep_firing_for_so_the_form_must_leave_it_out(tmp_path):
    """The check above is a real check: vmalert 1.79 refuses what the Prometheus forms of prod keep."""
    prod = chart_groups("prod")
    kept = [r["alert"] for g in prod for r in g["rules"] if "keep_firing_for" in r]
    assert kept, "prod sets keepFiringFor on an alert (values/prod.yaml), which the vmalert form drops"
    path = tmp_path / "prometheus-form.yaml"
    path.write_text(yaml.safe_dump({"groups": prod}))
    proc = subprocess.run([tools.find("vmalert"), "-dryRun", f"-rule={path}"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode != 0 and "keep_firing_for" in proc.stdout + proc.stderr
    header = (ROOT / globalview.FOLDERS["vmalert"] / "prod.yaml").read_text().split("\ngroups:")[0]
    assert all(name in header for name in kept), "the vmalert file names the alerts that lose keep_firing_for"


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_promtool_accepts_the_mimir_and_thanos_forms(env, tmp_path):
    paths = []
    for name, doc in integration("mimir", env).items():
        paths.append(tmp_path / f"mimir-{name}")
        paths[-1].write_text(yaml.safe_dump({"groups": doc["groups"]}))
    for d in integration("thanos", env):
        if d["kind"] == "PrometheusRule":
            paths.append(tmp_path / f"thanos-{d['metadata']['name']}.yaml")
            paths[-1].write_text(yaml.safe_dump(d["spec"]))
    proc = subprocess.run([tools.find("promtool"), "check", "rules", *map(str, paths)], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_thanos_ruler_manifests_are_valid_against_the_operator_crd_schemas(env):
    docs = integration("thanos", env)
    assert {d["kind"] for d in docs} == {"ThanosRuler", "PrometheusRule"}
    assert manifests.validate_custom(docs) == []


def _selects(selector: dict, labels: dict) -> bool:
    return all(labels.get(k) == v for k, v in (selector.get("matchLabels") or {}).items())


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_thanos_ruler_selects_every_global_rule_and_the_cluster_prometheus_selects_none(env):
    docs = integration("thanos", env)
    ruler = next(d for d in docs if d["kind"] == "ThanosRuler")
    rules = [d for d in docs if d["kind"] == "PrometheusRule"]
    stack = yaml.safe_load((ROOT / "integrations" / "kube-prometheus-stack" / f"{env}.yaml").read_text())
    cluster_selector = stack["prometheus"]["prometheusSpec"]["ruleSelector"]
    assert cluster_selector.get("matchLabels"), "the clusters' Prometheus select by label"
    assert all(_selects(ruler["spec"]["ruleSelector"], d["metadata"]["labels"]) for d in rules)
    assert not any(_selects(cluster_selector, d["metadata"]["labels"]) for d in rules), \
        "the clusters' own Prometheus would evaluate the global rules a second time"


# -- three clusters, two central engines ---------------------------------------------------------------------

def compress_ranges(expr: str) -> str:
    """Range windows divided by FACTOR, at least MIN_WINDOW: remote write delivers in batches (up to a second
    apart, later on a loaded machine), so a window must span several batches or a healthy series looks idle."""
    return re.sub(r"\[(\d+(?:ms|s|m|h|d|w|y))\]", lambda m: f"[{compressed(m.group(1), FACTOR, MIN_WINDOW)}]", expr)


def compress_groups(groups: list[dict]) -> list[dict]:
    out = []
    for g in groups:
        rules = []
        for r in g["rules"]:
            r = {**r, "expr": compress_ranges(r["expr"])}
            for key in ("for", "keep_firing_for"):
                if key in r:
                    r[key] = compressed(r[key], FACTOR)
            rules.append(r)
        out.append({**g, "interval": "1s", "rules": rules})
    return out


def firing(engine) -> set[tuple[str, str, str]]:
    """(alertname, cluster, chain_id) of every firing alert but the Watchdog."""
    if "vmalert" in engine.name:
        alerts = [{"labels": a["labels"], "state": a["state"]} for a in engine.get_json("/api/v1/alerts")["data"]["alerts"]]
    else:
        alerts = engine.alerts()
    return {(a["labels"]["alertname"], a["labels"].get("cluster", ""), a["labels"].get("chain_id", ""))
            for a in alerts if a["state"] == "firing" and a["labels"]["alertname"] != "Watchdog"}


def of(alerts: set, cluster: str) -> set:
    return {a for a in alerts if a[1] == cluster}


# alerts a failed scrape raises -> the job whose scrape (None: any job)
SCRAPE_ALERTS = {"VirtEngineNodesDown": "cometbft", "VirtEngineNodeDown": "cometbft", "TargetDown": None}


def faults_only(alerts: set, timeline) -> set:
    """``alerts`` without the scrape alerts of a cluster whose own scrapes failed and recovered during the run.

    On a loaded machine a 1 s scrape can time out for several seconds in a row; the cluster's own data then
    holds ``up == 0`` and the engines rightly alert and resolve, whatever the other clusters do. Such an alert
    says nothing about cross-cluster leaks, so the comparisons leave it out; every other alert, and every
    scrape alert of a cluster whose scrapes never flapped, is compared.
    """
    flapped = timeline["flapped"]
    return {a for a in alerts
            if not (a[0] in SCRAPE_ALERTS
                    and any(c == a[1] and SCRAPE_ALERTS[a[0]] in (None, job) for c, job in flapped))}


@pytest.fixture(scope="module")
def timeline(tmp_path_factory):
    work = tmp_path_factory.mktemp("global-view")
    p = Pipeline(work)
    stack = p.stack
    group = Servers(work / "servers")
    seen: dict = {}
    try:
        p.prepare_receivers()   # the chart's prod routing with the vendor stand-ins, as the e2e tests
        _, am_config = p.render()
        am = group.alertmanager(am_config, name="alertmanager-central")
        am_vm = group.alertmanager({"route": {"receiver": "none"}, "receivers": [{"name": "none"}]},
                                   name="alertmanager-vm")

        rules = work / "global-rules"
        rules.mkdir()
        mimir = [g for doc in integration("mimir", "prod").values() for g in doc["groups"]]
        (rules / "central.yaml").write_text(yaml.safe_dump({"groups": compress_groups(mimir)}))
        (rules / "vmalert.yaml").write_text(yaml.safe_dump({"groups": compress_groups(integration("vmalert", "prod")["groups"])}))

        lookback = LOOKBACK
        central = group.prometheus({"global": {"evaluation_interval": "1s"},
                                    "alerting": {"alertmanagers": [{"static_configs": [{"targets": [am.url.split("//")[1]]}]}]}},
                                   rule_files=[rules / "central.yaml"], name="prometheus-central",
                                   args=["--web.enable-remote-write-receiver", f"--query.lookback-delta={lookback}"])
        vm = group.victoria_metrics(args=[f"-search.maxStalenessInterval={lookback}"])
        vmalert = group.vmalert([rules / "vmalert.yaml"], datasource=vm.url, remote_write=vm.url,
                                notifier=am_vm.url, name="vmalert")

        sims = {"c1": stack.simulator(chains=1, block_time=1.0, seed=11, exclude_sources=("prometheus", "alertmanager")),
                "c2": stack.simulator(chains=1, block_time=1.0, seed=12, exclude_sources=("prometheus", "alertmanager")),
                "c3": stack.simulator(chains=1, block_time=1.0, seed=13, provider_only=True,
                                      exclude_sources=("prometheus", "alertmanager"))}
        queue = {"batch_send_deadline": "1s", "min_backoff": "100ms", "max_backoff": "1s"}
        edge = {}
        for cluster, sim in sims.items():
            jobs = sim.scrape_configs(interval="1s")
            if cluster == "c2":   # another chain: its nodes export another chain_id
                for job in jobs:
                    job["metric_relabel_configs"] = [{"source_labels": ["chain_id"], "regex": "virtengine-1",
                                                      "target_label": "chain_id", "replacement": C2_CHAIN}]
            edge[cluster] = group.prometheus({
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "external_labels": {"cluster": cluster}},
                "scrape_configs": jobs,
                "remote_write": [{"url": central.url + "/api/v1/write", "queue_config": queue},
                                 {"url": vm.url + "/api/v1/write", "queue_config": queue}]}, name=f"prometheus-{cluster}")
        engines = (central, vmalert)
        seen["engines"] = [e.name for e in engines]

        def arrived():
            return all(central.query(f'count(up{{cluster="{c}"}})') and vm.query(f'count(up{{cluster="{c}"}})')
                       for c in CLUSTERS)
        wait_until(arrived, TIMEOUT, "series of every cluster on both central engines")
        seen["c2_chains"] = {r["metric"]["chain_id"] for r in central.query('count by (chain_id) (cometbft_consensus_height{cluster="c2"})')}
        seen["c1_chains"] = {r["metric"]["chain_id"] for r in central.query('count by (chain_id) (cometbft_consensus_height{cluster="c1"})')}
        # both engines evaluate the windows they need (the recording rules fill in) before the baseline
        wait_until(lambda: central.query("cluster_chain:cometbft_consensus_missing_validators_power:ratio")
                   and vm.query("cluster_chain:cometbft_consensus_missing_validators_power:ratio"), TIMEOUT,
                   "recording rules evaluated on both engines")
        seen["rule_errors"] = central.rule_health()
        seen["baseline"] = {e.name: firing(e) for e in engines}

        def step(name: str, expected: tuple[str, str]) -> None:
            def fired():
                now = {e.name: firing(e) for e in engines}
                return now if all(any(a[:2] == expected for a in now[e.name]) for e in engines) else None
            seen[name] = wait_until(fired, TIMEOUT, lambda: f"{expected} on both engines: {[(e.name, firing(e)) for e in engines]}")

        sims["c1"].activate("validator_halt", "virtengine-1")
        step("c1_halt", ("ConsensusStalled", "c1"))
        sims["c2"].activate("exporter_down", "virtengine-1")
        step("c2_exporter_down", ("VirtEngineNodeDown", "c2"))
        edge["c3"].stop(kill=True)   # c3's Prometheus dies: nothing of c3 arrives any more
        step("c3_silent", ("VirtEngineTargetsAbsent", "c3"))

        def opsgenie_named_c3():
            return [r.body for r in p.og.valid() if r.path == "/v2/alerts" and isinstance(r.body, dict)
                    and r.body.get("details", {}).get("alertname") == "VirtEngineTargetsAbsent"]
        seen["og_absent"] = wait_until(opsgenie_named_c3, TIMEOUT, "VirtEngineTargetsAbsent at the Opsgenie stand-in")
        seen["pd_triggers"] = {(r.body["payload"].get("class"), r.body["payload"].get("source"))
                               for r in p.pd.valid() if r.body.get("event_action") == "trigger"}
        seen["am_central"] = am.alerts()
        # targets whose scrape failed and came back: no fault of this test does that (exporter_down stays down),
        # a loaded machine does (a 1 s scrape timeout missed by the simulator or the edge Prometheus)
        seen["flapped"] = {(r["metric"]["cluster"], r["metric"]["job"]) for r in central.query(
            'group by (cluster, job) ((min_over_time(up[1h]) == 0 and up == 1) or changes(up[1h]) >= 2)')}
        yield seen
    finally:
        try:
            group.close()
        finally:
            stack.close()


def test_both_engines_receive_every_cluster_with_its_own_chain(timeline):
    assert timeline["c1_chains"] == {"virtengine-1"}
    assert timeline["c2_chains"] == {C2_CHAIN}
    assert timeline["rule_errors"] == []


def test_healthy_clusters_fire_nothing_on_either_engine(timeline):
    assert {k: faults_only(v, timeline) for k, v in timeline["baseline"].items()} == \
        {name: set() for name in timeline["engines"]}


@pytest.mark.parametrize("engine", ["prometheus-central", "vmalert"])
def test_a_halted_chain_alerts_for_its_cluster_and_chain_only(timeline, engine):
    now = faults_only(timeline["c1_halt"][engine], timeline)
    assert ("ConsensusStalled", "c1", "virtengine-1") in now
    assert of(now, "c2") == set() and of(now, "c3") == set(), "a fault of c1 reached another cluster"
    assert all(a[1] for a in now), f"an alert without a cluster: {now}"


@pytest.mark.parametrize("engine", ["prometheus-central", "vmalert"])
def test_a_second_clusters_fault_neither_mutes_nor_pages_the_first(timeline, engine):
    before, now = timeline["c1_halt"][engine], timeline["c2_exporter_down"][engine]
    assert ("VirtEngineNodeDown", "c2", "") in {(a[0], a[1], "") for a in now}
    before, now = faults_only(before, timeline), faults_only(now, timeline)
    assert of(now, "c1") >= of(before, "c1"), "an alert of c1 stopped when c2 failed"
    assert {a[0] for a in of(now, "c2")} <= {"VirtEngineNodeDown", "TargetDown"}, of(now, "c2")
    assert of(now, "c3") == set()


@pytest.mark.parametrize("engine", ["prometheus-central", "vmalert"])
def test_a_silent_cluster_is_named_and_the_others_keep_their_alerts(timeline, engine):
    before, now = timeline["c2_exporter_down"][engine], timeline["c3_silent"][engine]
    assert ("VirtEngineTargetsAbsent", "c3", "") in now
    before, now = faults_only(before, timeline), faults_only(now, timeline)
    assert {a[0] for a in of(now, "c3")} == {"VirtEngineTargetsAbsent"}
    for cluster in ("c1", "c2"):
        assert of(now, cluster) >= of(before, cluster), f"c3 going silent muted an alert of {cluster}"
        assert "VirtEngineTargetsAbsent" not in {a[0] for a in of(now, cluster)}, f"{cluster} taken for silent"


def test_pages_name_the_cluster_of_their_fault(timeline):
    triggers = {(name, cluster) for name, cluster, _ in
                faults_only({(name, cluster, "") for name, cluster in timeline["pd_triggers"]}, timeline)}
    assert ("ConsensusStalled", "c1") in triggers, triggers
    assert {source for _, source in triggers} == {"c1"}, f"a page for a cluster without a paging fault: {triggers}"
    assert {a.get("source") for a in timeline["og_absent"]} == {"c3"}


def test_no_alert_of_one_cluster_is_muted_by_another_clusters_alert(timeline):
    alerts = timeline["am_central"]
    by_fingerprint = {a["fingerprint"]: a for a in alerts}
    crossed = [(a["labels"]["alertname"], a["labels"].get("cluster"), by_fingerprint[f]["labels"]["alertname"],
                by_fingerprint[f]["labels"].get("cluster"))
               for a in alerts for f in a["status"]["inhibitedBy"]
               if f in by_fingerprint and by_fingerprint[f]["labels"].get("cluster") != a["labels"].get("cluster")]
    assert crossed == []
    active = {(a["labels"]["alertname"], a["labels"].get("cluster")) for a in alerts if a["status"]["state"] == "active"}
    assert {("ConsensusStalled", "c1"), ("VirtEngineNodeDown", "c2"), ("VirtEngineTargetsAbsent", "c3")} <= active


# joins that leave cluster out on purpose: (alert, join) -> why
CLUSTERLESS_JOINS = {
    ("EscrowBalanceLow", "on (denom)"): "the minimum of a denom comes from values, one series for every cluster",
    ("VirtEngineTargetsAbsent", "on ()"): "absent() adds an alert only when no cluster has any VirtEngine target",
}


def test_every_join_of_the_shipped_rules_matches_on_cluster():
    """A join without cluster pairs one cluster's series with another's on a central engine. A join on
    namespace only is allowed in a branch that reads series without a cluster label (cluster="")."""
    found = []
    for group in chart_groups("prod"):
        for rule in group["rules"]:
            for branch in rule["expr"].split("\nor\n"):
                for m in re.finditer(r"\b(on|ignoring)\s*\(([^)]*)\)", branch):
                    labels = [x.strip() for x in m.group(2).split(",") if x.strip()]
                    keeps = ("cluster" in labels) == (m.group(1) == "on")
                    name = rule.get("alert") or rule.get("record")
                    if keeps or (name, m.group(0)) in CLUSTERLESS_JOINS or 'cluster=""' in branch:
                        continue
                    found.append((name, m.group(0)))
    assert found == []
