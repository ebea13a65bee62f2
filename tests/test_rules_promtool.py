"""``promtool test rules`` on the rules the chart renders, and coverage of every alert.

The chart is rendered with ``helm template -f values/prod.yaml`` (Grafana and
runbook URLs pinned to test hosts so the expected annotations do not depend on
deployment URLs); the rule groups are extracted from the PrometheusRule
resources into ``rules.yaml`` in a temporary folder, next to copies of
``tests/rules/*.test.yaml`` whose ``rule_files`` name that file.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from conftest import ROOT
from generator import rulelint, tools

TESTS = ROOT / "tests" / "rules"
PINNED = ["--set", "global.grafanaUrl=https://grafana.test", "--set", "global.runbookUrl=https://runbooks.test"]
TEST_FILES = sorted(p.name for p in TESTS.glob("*.test.yaml"))
# fires all the time by design (a dead man's switch); healthy-day.test.yaml checks it fired at every minute
ALWAYS_FIRING = {"Watchdog"}


@pytest.fixture(scope="module")
def rule_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("rules")
    groups = rulelint.render_rules(ROOT, "prod", 3, PINNED)
    rulelint.write_rule_file(groups, folder)
    for name in TEST_FILES:
        shutil.copy(TESTS / name, folder / name)
    return folder


@pytest.fixture(scope="module")
def rendered_alerts(rule_dir) -> set[str]:
    groups = yaml.safe_load((rule_dir / "rules.yaml").read_text())["groups"]
    return {r["alert"] for g in groups for r in g["rules"] if "alert" in r}


def _cases() -> dict[str, dict[str, list[str]]]:
    """alert -> {"firing": [where], "silent": [where]} over every unit test file."""
    found: dict[str, dict[str, list[str]]] = {}
    for name in TEST_FILES:
        doc = yaml.safe_load((TESTS / name).read_text())
        for i, test in enumerate(doc["tests"]):
            for case in test.get("alert_rule_test", []):
                kind = "firing" if case.get("exp_alerts") else "silent"
                found.setdefault(case["alertname"], {"firing": [], "silent": []})[kind].append(
                    f"{name} test {i + 1} at {case['eval_time']}")
    return found


@pytest.mark.parametrize("test_file", TEST_FILES)
def test_promtool_unit_tests_pass_on_the_rules_the_chart_renders(rule_dir, test_file):
    doc = yaml.safe_load((rule_dir / test_file).read_text())
    assert doc["rule_files"] == ["rules.yaml"], "unit tests must read the rules extracted from the chart"
    proc = tools.run([tools.find("promtool"), "test", "rules", test_file], cwd=rule_dir, check=False, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_rendered_alert_has_a_firing_and_a_silent_unit_test(rendered_alerts):
    cases = _cases()
    lacking = {a: [k for k in ("firing", "silent") if not cases.get(a, {}).get(k)
                   and not (k == "silent" and a in ALWAYS_FIRING)] for a in sorted(rendered_alerts)}
    lacking = {a: kinds for a, kinds in lacking.items() if kinds}
    assert not lacking, f"alerts without a firing or a silent promtool case: {lacking}"


def test_unit_tests_name_no_alert_the_chart_does_not_render(rendered_alerts):
    unknown = sorted(set(_cases()) - rendered_alerts)
    assert not unknown, f"unit tests for alerts that do not exist: {unknown}"


def test_firing_cases_state_labels_and_all_four_annotations():
    missing = []
    for name in TEST_FILES:
        for test in yaml.safe_load((TESTS / name).read_text())["tests"]:
            for case in test.get("alert_rule_test", []):
                for alert in case.get("exp_alerts") or []:
                    keys = set(alert.get("exp_annotations") or {})
                    if not {"summary", "description", "runbook_url", "dashboard_url"} <= keys \
                            or "severity" not in (alert.get("exp_labels") or {}):
                        missing.append(f"{name}: {case['alertname']} at {case['eval_time']}")
    assert not missing, f"firing cases without severity or all annotations: {missing}"


@pytest.mark.parametrize("alert", ["ProviderHighFailureRate", "MLInferenceTimeout", "VEIDVerificationThroughputLow",
                                   "PrometheusAlertSendFailures", "PrometheusAlertSendFailuresPartial",
                                   "AlertmanagerNotificationsFailing",
                                   "SLOVEIDResponseTime", "SLOOrderMatchingSuccess", "EscrowSettlementsFailing"])
def test_ratio_alerts_have_a_zero_traffic_case(alert):
    """A ratio alert's silent cases include one named zero-traffic (denominator 0)."""
    zero = []
    for name in TEST_FILES:
        for test in yaml.safe_load((TESTS / name).read_text())["tests"]:
            if "zero traffic" not in str(test.get("name", "")).lower():
                continue
            zero += [c["alertname"] for c in test.get("alert_rule_test", []) if not c.get("exp_alerts")]
    assert alert in zero, f"{alert} has no silent zero-traffic case"
