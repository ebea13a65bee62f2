"""Dashboards: Grafana's schema, our lint, PromQL, the brief's items, the chart's
ConfigMaps and their settings from values, and planted faults each check catches."""
from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess

import pytest
import yaml

from conftest import ENVIRONMENTS, HELM_MAJORS, ROOT, helm_template, manifests, run_generator
from generator import dashlint, promql
from generator.build import build
from generator.content import dashboards as dashboards_stage

SIDECAR_KINDS = ("ConfigMap",)


@pytest.fixture(scope="module")
def built():
    """Dashboards as the generator builds them from the sources (placeholders included)."""
    out = build(ROOT)
    return {uid: d for uid, d in out.shared["dashboards"].items()}, out


@pytest.fixture(scope="module")
def shipped(rendered):
    """``{(env, major): {uid: (configmap, dashboard JSON)}}`` from `helm template`."""
    result = {}
    for key, docs in rendered.items():
        result[key] = {}
        for d in docs:
            if d["kind"] == "ConfigMap" and "virtengine.io/dashboard" in d["metadata"].get("labels", {}):
                uid = d["metadata"]["labels"]["virtengine.io/dashboard"]
                result[key][uid] = (d, json.loads(d["data"][f"{uid}.json"]))
    return result


def titles(dashboard: dict) -> set[str]:
    return {p["title"] for p in dashlint._panels(dashboard) if p.get("type") != "row"}


# --- validity -----------------------------------------------------------------

def test_schema_version_is_the_one_grafana_gives_a_new_dashboard():
    assert dashboards_stage.SCHEMA_VERSION == dashlint.versions()["schemaVersion"]


def test_every_shipped_dashboard_matches_grafanas_own_schema(shipped):
    for (env, major), dashboards in shipped.items():
        assert dashboards, f"{env}: no dashboards"
        for uid, (_, dashboard) in dashboards.items():
            assert dashlint.schema_problems(dashboard) == [], f"{env} helm{major} {uid}"


def test_every_dashboard_passes_the_dashboard_lint(built):
    dashboards, _ = built
    for uid, dashboard in dashboards.items():
        assert dashlint.structural(dashboard, set(dashboards)) == [], uid


def test_every_promql_expression_of_every_dashboard_parses_with_promtool(built):
    dashboards, _ = built
    assert dashlint.promql_problems(dashboards) == []


def test_generator_lint_runs_the_dashboard_checks():
    proc = subprocess.run([str(ROOT / ".venv/bin/python"), "-m", "generator", "lint", "--only", "dashboards"],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "valid against Grafana's schema" in proc.stdout and "parsed by promtool" in proc.stdout


def test_every_dashboard_has_a_datasource_variable_of_type_prometheus_defaulting_to_the_prometheus_uid(built):
    for uid, dashboard in built[0].items():
        var = dashboard["templating"]["list"][0]
        assert (var["name"], var["type"], var["query"], var["current"]["value"]) == \
            ("datasource", "datasource", "prometheus", "prometheus"), uid


def test_every_dashboard_has_a_description_tags_and_links_to_the_others(built):
    for uid, dashboard in built[0].items():
        assert dashboard["description"] and "virtengine" in dashboard["tags"], uid
        assert dashboard["links"][0]["type"] == "dashboards" and dashboard["links"][0]["tags"] == ["virtengine"]
        assert len(dashboard["links"]) > 1, f"{uid} links to no other dashboard"


def test_overview_drills_down_to_modules_and_to_a_node(built):
    overview = json.dumps(built[0]["virtengine-overview"])
    for uid in ("veid-module", "market-module", "escrow-module", "provider-daemon", "ml-inference"):
        assert f"/d/{uid}?" in overview
    assert "/d/virtengine-node?" in overview and "var-instance=${__field.labels.instance}" in overview


def test_the_render_reports_each_dashboards_size(built):
    _, out = built
    for uid in built[0]:
        assert any(line.startswith(f"dashboard {uid}: ") and "bytes" in line for line in out.report), uid


@pytest.mark.parametrize("uid", sorted(p.name.split(".")[0] for p in (ROOT / "templates_src/dashboards").glob("*.j2")))
def test_dashboard_matches_its_golden_file(built, golden, uid):
    golden(f"dashboards/{uid}.json", json.dumps(built[0][uid], indent=2, sort_keys=True) + "\n")


# --- the brief, item by item ----------------------------------------------------

# brief item -> (dashboard uid, panel titles that show it)
BRIEF = [
    ("AC-1 Kubernetes cluster overview", "k8s-cluster", ["Nodes ready", "Nodes not ready", "Pods not running",
                                                        "CPU used", "Memory used", "Scrape targets down"]),
    ("AC-1 Node health and resource utilization", "k8s-nodes", ["Not ready", "Under pressure", "CPU utilisation",
                                                               "Memory utilisation", "Load per core", "Disk busy"]),
    ("AC-1 Pod status and restarts", "k8s-pods", ["Pods by phase", "Restarts (1h)", "Crash-looping",
                                                 "Most restarted containers (24h)", "Last termination reason"]),
    ("AC-1 Network I/O and latency", "k8s-network", ["Received by node", "Sent by node", "Errors and drops",
                                                    "TCP retransmits by node"]),
    ("AC-1 Storage utilization", "k8s-storage", ["Volume usage", "Volume time to full", "Filesystem usage",
                                                "Filesystem time to full", "Soonest full"]),
    ("AC-2 Node metrics (block height, sync lag)", "virtengine-overview", [
        "Block height", "Block height by node", "Sync lag behind the highest node", "Block time p50 and p99",
        "Voting power online", "Peers by node", "Mempool size by node"]),
    ("AC-2 Node detail", "virtengine-node", ["Blocks behind", "Block sync", "Peers", "Mempool size",
                                            "Block processing time p99", "ABCI method time p99"]),
    ("AC-2 Transaction throughput and latency", "transactions", [
        "Transactions per second", "Transactions per second by module", "Inclusion latency p50, p95, p99",
        "Failure ratio by module"]),
    ("AC-2 VEID module", "veid-module", ["Pending verifications", "Submissions and verifications per hour",
                                        "Response time p50 and p99", "Verifications by result"]),
    ("AC-2 Market module", "market-module", ["Open orders", "Active leases", "Orders created and matched per hour",
                                            "Match ratio (1h)", "Bids by result"]),
    ("AC-2 Escrow module", "escrow-module", ["Escrow balance", "Settlements per hour by result",
                                            "Amount settled per hour", "Failed settlements (1h)"]),
    ("AC-2 Provider daemon metrics", "provider-daemon", [
        "Active providers", "Bid success rate (1h)", "Workload status", "Resource utilization - CPU",
        "Resource utilization - Memory", "Lease operations latency"]),
    ("AC-2 ML inference metrics", "ml-inference", ["Requests per second", "Error ratio", "Latency p50 and p99 by model",
                                                  "Timeouts per second", "Queue depth"]),
    ("AC-3 Active users and VEID verifications", "business-metrics", [
        "Daily active users", "Monthly active users", "VEID verifications by tier", "New verifications (24h)"]),
    ("AC-3 Order volume and value", "business-metrics", ["Order volume", "Order value"]),
    ("AC-3 Provider utilization rates", "business-metrics", ["Provider utilization rates", "Providers active"]),
    ("AC-3 Revenue metrics (escrow settlements)", "business-metrics", ["Revenue (settlements)", "Total value locked"]),
    ("AC-3 SLA compliance metrics", "sla-compliance", [
        "Error budget remaining: veid_response_time", "Burn rate (1h): veid_response_time",
        "Error budget remaining: order_matching", "Attainment (3d): order_matching"]),
]


@pytest.mark.parametrize("item, uid, panels", BRIEF, ids=[b[0] for b in BRIEF])
def test_brief_item_is_shown_by_its_panels_in_the_rendered_chart(shipped, item, uid, panels):
    _, dashboard = shipped[("prod", 3)][uid]
    missing = set(panels) - titles(dashboard)
    assert not missing, f"{item}: {uid} lacks {sorted(missing)}"
    for panel in dashlint._panels(dashboard):
        if panel["title"] in panels:
            assert panel["description"] and panel["targets"]


def test_brief_dashboards_keep_their_uids(built):
    for uid in ("virtengine-overview", "provider-daemon", "veid-module", "market-module", "ml-inference",
                "business-metrics"):
        assert built[0][uid]["uid"] == uid


def test_money_is_shown_in_tokens_never_as_usd(built):
    for uid, dashboard in built[0].items():
        assert "currencyUSD" not in json.dumps(dashboard), uid
    revenue = next(p for p in dashlint._panels(built[0]["business-metrics"]) if p["title"] == "Revenue (settlements)")
    assert "virtengine_escrow_settled_amount:rate5m" in revenue["targets"][0]["expr"]
    assert '/ 1e6, "denom", "VE", "denom", "uve")' in revenue["targets"][0]["expr"]


def test_ratios_guard_their_denominator(built):
    """A ratio over a rate that can be 0 must not show NaN or +Inf: its denominator is `> 0`."""
    for uid, dashboard in built[0].items():
        for panel in dashlint._panels(dashboard):
            for t in panel.get("targets", []):
                expr = t["expr"]
                if ") / (" in expr and re.search(r"rate\(|:rate\d+[smhd]\b", expr.split(") / (", 1)[1]):
                    assert ") > 0)" in expr, f"{uid} {panel['title']}: {expr}"


# --- cost at fleet size (issue 16) ---------------------------------------------

def _raw_range_reads(built) -> list[str]:
    """Panels that rate, over the dashboard's time range, a chain-state metric (every node's copy) or raw histogram
    buckets: their cost grows with the nodes and the range, at every load."""
    dashboards, out = built
    catalog = out.shared["catalog"]
    chain = {m.name for m in catalog.metrics.values() if m.scope == "chain"}
    found = []
    for uid, dashboard in sorted(dashboards.items()):
        for panel in dashlint._panels(dashboard):
            for target in panel.get("targets", []):
                tree = promql.parse(promql.substitute(target["expr"])).tree
                for matrix in tree.find("MatrixSelector"):
                    for selector in matrix.find("VectorSelector"):
                        name = promql.selector_name(selector) or ""
                        if catalog.resolve(name) in chain or (":" not in name and name.endswith("_bucket")):
                            found.append(f"{uid} / {panel['title']}: {name}")
    return found


def test_no_panel_rates_chain_state_or_raw_histogram_buckets_over_every_node(built):
    """A panel's cost must not grow with the nodes: chain state and histograms are read from the recording rules
    (templates_src/rules/recording-panels.yaml.j2 and recording.yaml.j2), one series per chain, model or provider."""
    assert _raw_range_reads(built) == []


def test_the_raw_read_check_finds_a_panel_that_rates_every_nodes_copy(built):
    dashboards, out = built
    planted = copy.deepcopy(dashboards)
    panel = next(p for p in dashlint._panels(planted["transactions"]) if p["title"] == "Failure ratio by module")
    panel["targets"][0]["expr"] = ('max by (chain_id) (sum by (chain_id, instance) '
                                   '(rate(virtengine_tx_total{chain_id=~"$chain_id"}[$__rate_interval])))')
    assert _raw_range_reads((planted, out)) == ["transactions / Failure ratio by module: virtengine_tx_total"]


# --- the chart ------------------------------------------------------------------

@pytest.mark.parametrize("env", ENVIRONMENTS)
@pytest.mark.parametrize("major", HELM_MAJORS)
def test_one_configmap_per_enabled_dashboard_with_sidecar_label_and_folder(shipped, built, env, major):
    index = json.loads((ROOT / "chart/files/dashboards-index.json").read_text())["dashboards"]
    values = yaml.safe_load((ROOT / "values" / f"{env}.yaml").read_text()) or {}
    items = (values.get("dashboards") or {}).get("items") or {}
    expected = {uid for uid in index if (items.get(uid) or {}).get("enabled", True)}
    assert set(shipped[(env, major)]) == expected
    for uid, (cm, dashboard) in shipped[(env, major)].items():
        assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
        folder = (items.get(uid) or {}).get("folder", index[uid]["folder"])
        assert cm["metadata"]["annotations"]["grafana_folder"] == folder
        assert dashboard["refresh"] == "30s" and dashboard["timezone"] == "utc"
        assert "@@VEMON" not in json.dumps(dashboard)


def _template_with(tmp_path, values: dict, major: int = 3) -> list[dict]:
    extra = tmp_path / "extra.yaml"
    extra.write_text(yaml.safe_dump(values))
    return manifests(helm_template("prod", major, extra=["-f", str(extra)]).stdout)


@pytest.mark.parametrize("major", HELM_MAJORS)
def test_turning_a_dashboard_off_or_moving_its_folder_in_values_does_what_it_says(tmp_path, major):
    docs = _template_with(tmp_path, {"dashboards": {"items": {
        "ml-inference": {"enabled": False}, "escrow-module": {"folder": "Money"}}}}, major)
    cms = {d["metadata"]["labels"]["virtengine.io/dashboard"]: d for d in docs
           if d["kind"] == "ConfigMap" and "virtengine.io/dashboard" in d["metadata"].get("labels", {})}
    assert "ml-inference" not in cms and "veid-module" in cms
    assert cms["escrow-module"]["metadata"]["annotations"]["grafana_folder"] == "Money"
    provisioning = next(d for d in docs if d["metadata"]["name"].endswith("-dashboard-provisioning"))
    providers = yaml.safe_load(provisioning["data"]["virtengine-dashboards.yaml"])["providers"]
    assert "Money" in {p["folder"] for p in providers}


def test_chart_wide_refresh_time_range_timezone_and_sidecar_keys_come_from_values(tmp_path):
    docs = _template_with(tmp_path, {"dashboards": {
        "refresh": "1m", "timeFrom": "now-24h", "timezone": "Europe/Berlin",
        "sidecarLabel": "my_dashboards", "sidecarLabelValue": "yes", "folderAnnotation": "k8s-sidecar-target-directory"}})
    cm = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("virtengine-overview"))
    assert cm["metadata"]["labels"]["my_dashboards"] == "yes" and "grafana_dashboard" not in cm["metadata"]["labels"]
    assert cm["metadata"]["annotations"]["k8s-sidecar-target-directory"] == "VirtEngine"
    dashboard = json.loads(cm["data"]["virtengine-overview.json"])
    assert (dashboard["refresh"], dashboard["time"], dashboard["timezone"]) == \
        ("1m", {"from": "now-24h", "to": "now"}, "Europe/Berlin")
    business = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("business-metrics"))
    assert json.loads(business["data"]["business-metrics.json"])["time"]["from"] == "now-30d"


@pytest.mark.parametrize("bad", [{"refresh": "soon"}, {"timezone": "local time"}, {"timeFrom": "yesterday"},
                                 {"items": {"no-such-dashboard": {"enabled": False}}}])
def test_a_bad_dashboard_setting_fails_helm_by_name(tmp_path, bad):
    extra = tmp_path / "bad.yaml"
    extra.write_text(yaml.safe_dump({"dashboards": bad}))
    proc = helm_template("prod", 3, extra=["-f", str(extra)], check=False)
    assert proc.returncode != 0
    assert list(bad)[0] in proc.stderr or "no-such-dashboard" in proc.stderr


@pytest.mark.parametrize("major", HELM_MAJORS)
def test_grafana_operator_dashboards_are_off_by_default_and_complete_valid_dashboards_when_on(rendered, tmp_path,
                                                                                           major):
    import base64
    import gzip
    assert not [d for d in rendered[("prod", major)] if d["kind"] == "GrafanaDashboard"]
    docs = _template_with(tmp_path, {"grafanaOperator": {"enabled": True}, "dashboards": {"items": {
        "ml-inference": {"enabled": False}, "escrow-module": {"folder": "Money"}}}}, major)
    gds = {d["metadata"]["name"]: d for d in docs if d["kind"] == "GrafanaDashboard"}
    assert not [d for d in docs if d["kind"] == "ConfigMap" and "virtengine.io/dashboard" in d["metadata"]["labels"]]
    uids = set()
    for gd in gds.values():
        assert gd["apiVersion"] == "grafana.integreatly.org/v1beta1"
        # gzipJson when an environment file enables the operator at render, plain json otherwise (-f at install)
        spec = gd["spec"]
        dashboard = json.loads(gzip.decompress(base64.b64decode(spec["gzipJson"])) if "gzipJson" in spec
                               else spec["json"])
        uids.add(dashboard["uid"])
        assert "@@VEMON" not in json.dumps(dashboard) and dashboard["refresh"] == "30s"
        assert dashlint.schema_problems(dashboard) == []
        if dashboard["uid"] == "escrow-module":
            assert gd["spec"]["folder"] == "Money"
    assert "ml-inference" not in uids and "virtengine-overview" in uids


def test_every_dashboard_configmap_stays_well_under_the_object_limits(shipped):
    for (env, major), dashboards in shipped.items():
        for uid, (cm, _) in dashboards.items():
            size = len(json.dumps(cm).encode())
            assert size < 262_144, f"{env} {uid}: {size} bytes, over kubectl apply's annotation limit"


# --- planted faults ---------------------------------------------------------------

def _first(dashboard, kind):
    return next(p for p in dashlint._panels(dashboard) if p["type"] == kind)


def _plant_bad_enum(d):
    _first(d, "stat")["options"]["colorMode"] = "bright"


def _plant_bad_variable_hide(d):
    d["templating"]["list"][1]["hide"] = 7


def _plant_deprecated_style(d):
    d["style"] = "dark"


def _plant_overlap(d):
    panels = [p for p in d["panels"] if p["type"] != "row"]
    panels[1]["gridPos"] = dict(panels[0]["gridPos"])


def _plant_past_column_24(d):
    _first(d, "timeseries")["gridPos"]["x"] = 20


def _plant_hard_coded_datasource(d):
    _first(d, "timeseries")["targets"][0]["datasource"] = {"type": "prometheus", "uid": "PBFA97CFB590B2093"}


def _plant_datasource_by_name(d):
    _first(d, "stat")["datasource"] = "Prometheus"


def _plant_duplicate_id(d):
    panels = [p for p in d["panels"] if p["type"] != "row"]
    panels[1]["id"] = panels[0]["id"]


def _plant_missing_description(d):
    _first(d, "timeseries")["description"] = ""


def _plant_missing_refid(d):
    del _first(d, "stat")["targets"][0]["refId"]


def _plant_dead_link(d):
    _first(d, "stat")["fieldConfig"]["defaults"]["links"] = [{"title": "x", "url": "/d/no-such-dashboard?x=1"}]


def _plant_rolling_daily_bars(d):
    p = _first(d, "timeseries")
    p["fieldConfig"]["defaults"]["custom"]["drawStyle"] = "bars"
    p["targets"][0]["expr"] = "sum(increase(virtengine_provider_workload_starts_total[1d]))"


def _plant_percent_on_a_status_table(d):
    table = next((p for p in dashlint._panels(d) if p["type"] == "table"), None) or _first(d, "stat")
    table["type"] = "table"
    table["targets"].append(dict(table["targets"][0], refId="Z"))
    table["fieldConfig"]["defaults"]["unit"] = "percent"


def _plant_float_noise(d):
    _first(d, "stat")["fieldConfig"]["defaults"]["thresholds"]["steps"][-1]["value"] = 0.1 + 0.2


def _plant_prometheus_2_bucket_bound(d):
    _first(d, "stat")["targets"][0]["expr"] = 'sum(rate(virtengine_veid_submission_seconds_bucket{le="10"}[5m]))'


FAULTS = [
    ("bad enum", _plant_bad_enum, "schema", "'bright' is not one of"),
    ("bad variable enum", _plant_bad_variable_hide, "schema", "7 is not one of"),
    ("deprecated field", _plant_deprecated_style, "schema", "'style' was unexpected"),
    ("overlap", _plant_overlap, "lint", "overlaps"),
    ("past column 24", _plant_past_column_24, "lint", "outside the 24-column grid"),
    ("hard-coded datasource uid", _plant_hard_coded_datasource, "lint", "datasource must be"),
    ("datasource by name", _plant_datasource_by_name, "lint", "hard-coded datasource 'Prometheus'"),
    ("duplicate panel id", _plant_duplicate_id, "lint", "is also used by panel"),
    ("missing description", _plant_missing_description, "lint", "no description"),
    ("missing refId", _plant_missing_refid, "lint", "has no refId"),
    ("dead link", _plant_dead_link, "lint", "links to dashboard 'no-such-dashboard'"),
    ("rolling daily bars", _plant_rolling_daily_bars, "lint", "bars of increase(...[1d]) need the panel's and the query's interval '1d'"),
    ("percent unit on a status table", _plant_percent_on_a_status_table, "lint", "unit 'percent' applies to every column"),
    ("float noise", _plant_float_noise, "lint", "0.30000000000000004 is float noise"),
    ("Prometheus 2 bucket bound", _plant_prometheus_2_bucket_bound, "lint", "matches nothing on Prometheus 3"),
]


@pytest.mark.parametrize("name, plant, check, message", FAULTS, ids=[f[0] for f in FAULTS])
def test_each_check_catches_its_planted_fault(built, name, plant, check, message):
    dashboards = built[0]
    for uid in ("virtengine-overview", "provider-daemon"):
        clean = dashboards[uid]
        bad = copy.deepcopy(clean)
        plant(bad)
        run = (dashlint.schema_problems if check == "schema"
               else lambda d: dashlint.structural(d, set(dashboards)))
        assert run(clean) == []
        problems = run(bad)
        assert any(message in p for p in problems), f"{uid}: {name} not caught: {problems}"


def test_promtool_catches_a_query_that_does_not_parse(built):
    bad = copy.deepcopy(built[0]["veid-module"])
    panel = _first(bad, "timeseries")
    panel["targets"][0]["expr"] = "sum(rate(virtengine_veid_submissions_total[5m])"
    problems = dashlint.promql_problems({"veid-module": bad})
    assert len(problems) == 1 and f"panel {panel['id']} {panel['title']!r}" in problems[0]


def _copy_sources(tmp_path):
    for name in ("templates_src", "values"):
        shutil.copytree(ROOT / name, tmp_path / name)
    return tmp_path


def test_an_unknown_metric_fails_the_render_with_its_name_and_panel(tmp_path):
    root = _copy_sources(tmp_path)
    path = root / "templates_src/dashboards/veid-module.yaml.j2"
    path.write_text(path.read_text().replace("virtengine_veid_pending_verifications{",
                                             "virtengine_veid_pendng_verifications{", 1))
    proc = run_generator(root, "render")
    assert proc.returncode == 1
    assert "virtengine_veid_pendng_verifications" in proc.stderr and "'Pending verifications'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_an_overlapping_layout_fails_the_render(tmp_path):
    root = _copy_sources(tmp_path)
    path = root / "templates_src/dashboards/escrow-module.yaml.j2"
    path.write_text(path.read_text().replace('w=8) >>', 'w=25) >>', 1))
    proc = run_generator(root, "render")
    assert proc.returncode == 1 and "25 wide; the grid has 24 columns" in proc.stderr


def test_a_dashboard_over_the_size_budget_fails_the_render_with_the_figure(tmp_path):
    root = _copy_sources(tmp_path)
    budgets = root / "values/_budgets.yaml"
    data = yaml.safe_load(budgets.read_text()) if budgets.exists() else {}
    data["dashboard"] = {"maxBytes": 20000}
    budgets.write_text(yaml.safe_dump(data))
    proc = run_generator(root, "render")
    assert proc.returncode == 1
    assert "over the budget of 20,000" in proc.stderr and "dashboard.maxBytes" in proc.stderr


def test_a_critical_metric_on_no_dashboard_fails_the_render(tmp_path):
    root = _copy_sources(tmp_path)
    path = root / "templates_src/dashboards/k8s-storage.yaml.j2"
    path.write_text("\n".join(line for line in path.read_text().splitlines() if "Read-only filesystems" not in line
                              and "Fullest volume" not in line and "Soonest full" not in line
                              and "Volume usage" not in line and "Volume time to full" not in line) + "\n")
    proc = run_generator(root, "render")
    assert proc.returncode == 1 and "kubelet_volume_stats_available_bytes" in proc.stderr
