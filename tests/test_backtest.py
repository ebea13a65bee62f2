"""The alert backtest (issue 13): a day of prod's history evaluated by a real Prometheus, and the scorer itself.

The day covers every critical alert with an injected incident (``simulator.history.CRITICAL_SUBSET``) on top of
the normal-operations catalogue; the test fails on any false page or any missed critical incident. The scorer is
checked on the same evaluated day with a planted false page and a planted miss, and the ``for`` /
``keep_firing_for`` state machine against Prometheus's own rules engine.
"""
from __future__ import annotations

import copy
import dataclasses

import pytest
import yaml

from bench import backtest
from bench.backtest import EVAL, Episode, alert_episodes, rendered_groups, run_env, score
from simulator.history import CRITICAL_SUBSET, ENVS, T0, History, Incident, catalogue, schedule


@pytest.fixture(scope="module")
def day(tmp_path_factory):
    incidents = schedule(catalogue(ENVS["prod"]), 1, only=CRITICAL_SUBSET)
    result = run_env("prod", 1, 7, tmp_path_factory.mktemp("backtest"), incidents=incidents,
                    severities={"critical"}, log=lambda m: None)
    return result, score(result)


def test_the_short_history_covers_every_critical_alert_of_prod():
    criticals = {r["alert"] for g in rendered_groups("prod") for r in g["rules"]
                 if "alert" in r and r.get("labels", {}).get("severity") == "critical"}
    injected = {i.expect for i in schedule(catalogue(ENVS["prod"]), 1, only=CRITICAL_SUBSET)}
    assert criticals <= injected, f"critical alerts without an incident in the day: {sorted(criticals - injected)}"


def test_a_day_of_prod_pages_every_critical_incident_and_nothing_else(day):
    result, sc = day
    report = backtest.markdown([(result, sc)], "tests/test_backtest.py")
    assert not sc["critical_misses"], report
    assert not sc["false_pages"], report
    paged = {e.alert for e in result.episodes if e.notify == "page" and e.verdict == "true"}
    expected = {i.expect for i in result.incidents
                if i.expect in result.alerts and result.alerts[i.expect]["severity"] == "critical"}
    assert expected <= paged, report
    late = {n: a["ttd_worst"] for n, a in sc["per_alert"].items()
            if a["severity"] == "critical" and a["ttd_worst"] is not None and a["ttd_worst"] > 5 * 60}
    # recorded, not hidden: critical alerts paged later than five minutes after the incident started
    print("critical alerts over the 5-minute budget:", late)


def test_the_scorer_reports_a_planted_false_page(day):
    result, _ = day
    planted = copy.copy(result)
    # the every-node-down incident is taken out of the ground truth and put in the noise catalogue: its page is now
    # a false page from normal operations
    down = next(i for i in result.incidents if i.expect == "VirtEngineNodesDown")
    # (incidents overlapping it leave the ground truth too: a false positive is blamed on them first)
    planted.incidents = [i for i in result.incidents
                         if not (i.start <= down.end + down.settle and down.start <= i.end + i.settle)]
    planted.noise = result.noise + [dataclasses.replace(down, expect=None, noise=True)]
    planted.episodes = [copy.copy(e) for e in result.episodes]
    sc = score(planted)
    assert any(e.alert == "VirtEngineNodesDown" for e in sc["noise_pages"]), [
        (e.alert, e.reason) for e in sc["false_pages"]]


def test_the_scorer_reports_a_planted_miss(day):
    result, _ = day
    planted = copy.copy(result)
    # an incident expecting a critical alert at a time when nothing happened in the history
    quiet = Incident("planted: nothing happened", "none", 600, {}, "PrometheusAlertSendFailures",
                     cls="monitoring", settle=600, start=60)
    planted.incidents = result.incidents + [quiet]
    planted.episodes = [copy.copy(e) for e in result.episodes]
    sc = score(planted)
    assert any(i is quiet for i, _ in sc["critical_misses"]), sc["misses"]
    assert sc["per_alert"]["PrometheusAlertSendFailures"]["missed"] == 1


@pytest.mark.parametrize("hold,keep", [(300, 0), (300, 600), (120, 300)])
def test_the_for_and_keep_firing_for_state_machine_matches_prometheus(tmp_path, hold, keep):
    """Episodes computed from a range query (a real Prometheus on backfilled blocks) fire and resolve at the same
    evaluations as Prometheus's own alerting rules engine (``promtool test rules``) on the same samples."""
    from generator import tools
    from generator.servers import Servers
    # present 0-10m, absent 10-12m (bridged by the 5m lookback), present 12-20m, absent 20-27m, present 27-29m
    present = [t < 600 or 720 <= t < 1200 or 1620 <= t < 1740 for t in range(0, 3600, 30)]
    lines = [f'probe{{job="x"}} 1 {T0 + i * 30}' for i, p in enumerate(present) if p]
    (tmp_path / "h.om").write_text("\n".join(lines) + "\n# EOF\n")
    data = tmp_path / "servers" / "prometheus" / "data"
    data.mkdir(parents=True)
    tools.run([tools.find("promtool"), "tsdb", "create-blocks-from", "openmetrics", str(tmp_path / "h.om"), str(data)])
    with Servers(tmp_path / "servers") as group:
        prom = group.prometheus({"global": {}}, name="prometheus", retention="3650d")
        series = backtest.query_range_all(prom, "probe == 1", T0, T0 + 3600)
    eps = alert_episodes("Probe", series, T0, T0 + 3600, hold, keep, "warning")
    assert eps and all(e.fired for e in eps[:1])

    def firing(t: int) -> bool:
        return any(e.fired is not None and e.fired <= T0 + t < e.end for e in eps)

    rule = {"alert": "Probe", "expr": "probe == 1", "for": f"{hold}s"}
    if keep:
        rule["keep_firing_for"] = f"{keep}s"
    (tmp_path / "rules.yml").write_text(yaml.safe_dump({"groups": [{"name": "g", "rules": [rule]}]}))
    values = " ".join("1" if p else "_" for p in present)
    checks = [{"eval_time": f"{t}s", "alertname": "Probe",
               "exp_alerts": [{"exp_labels": {"job": "x"}}] if firing(t) else []} for t in range(0, 3600 - 30, 30)]
    (tmp_path / "test.yml").write_text(yaml.safe_dump({
        "rule_files": ["rules.yml"], "evaluation_interval": "30s",
        "tests": [{"interval": "30s", "input_series": [{"series": 'probe{job="x"}', "values": values}],
                   "alert_rule_test": checks}]}))
    proc = tools.run([tools.find("promtool"), "test", "rules", str(tmp_path / "test.yml")], cwd=tmp_path,
                     check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
