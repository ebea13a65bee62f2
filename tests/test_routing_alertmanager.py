"""Alert routing on a real Alertmanager: prod's configuration as the chart renders it.

Each test starts the real ``alertmanager`` (0.25) on 127.0.0.1 with the
configuration Secret of ``helm template -f values/prod.yaml``, pointed at the
local PagerDuty / Opsgenie / heartbeat stand-ins of ``tests/e2e/stack.py``
(which check every request the way the vendors do), with its key files where
the configuration reads them and the route timers shortened. Alerts are
posted to its API as Prometheus would post them, with the labels the chart's
rules give them; the tests then poll the stand-ins and Alertmanager's API.
"""
from __future__ import annotations

import json
import re
import secrets
import urllib.request
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from conftest import helm_template, manifests
from e2e.stack import Stack, http_json, wait_until

CLUSTER = "virtengine-prod"
CHAIN = "virtengine-1"
SHARED = "virtengine-alerting"
FAST = {"groupWait": "1s", "groupInterval": "1s", "repeatInterval": "1h"}
ROUTES = ("watchdog", "vendorFailingPagerduty", "vendorFailingOpsgenie", "sloPage", "sloTicket", "critical",
          "business", "warning")


def _now(offset: float = 0) -> str:
    return (datetime.now(timezone.utc) + timedelta(seconds=offset)).isoformat().replace("+00:00", "Z")


def alert(name: str, severity: str, team: str, *, ends_in: float | None = None, **labels: str) -> dict:
    """An alert as Prometheus posts it: labels from the rule, annotations with https links."""
    labels = {"alertname": name, "severity": severity, "team": team, "cluster": CLUSTER, **labels}
    body = {"labels": labels, "startsAt": _now(-60), "generatorURL": "http://prometheus.test/graph",
            "annotations": {"summary": f"{name} summary", "description": f"{name} {json.dumps(labels)}",
                            "runbook_url": f"https://runbooks.test/{name}.md",
                            "dashboard_url": f"https://grafana.test/d/x?var-cluster={CLUSTER}"}}
    if ends_in is not None:
        body["endsAt"] = _now(ends_in)
    return body


class Routing:
    """Alertmanager with prod's rendered configuration and the vendor stand-ins."""

    def __init__(self, tmp: Path, extra_keys: dict[str, dict[str, str]] | None = None,
                 sets: dict[str, str] | None = None) -> None:
        self.stack = Stack(tmp)
        try:
            keys = {SHARED: {"pagerduty-routing-key": secrets.token_hex(16), "opsgenie-api-key": str(uuid.uuid4())}}
            for secret, more in (extra_keys or {}).items():
                keys.setdefault(secret, {}).update(more)
            self.keys = keys
            for secret, items in keys.items():
                (tmp / "secrets" / secret).mkdir(parents=True, exist_ok=True)
                for name, value in items.items():
                    (tmp / "secrets" / secret / name).write_text(value)
            self.pd = self.stack.pagerduty(routing_keys={v for s in keys.values() for k, v in s.items()
                                                         if k.startswith("pagerduty")})
            self.og = self.stack.opsgenie(api_keys={keys[SHARED]["opsgenie-api-key"]})
            self.hook = self.stack.webhook()
            values = {"alertmanager.pagerduty.url": self.pd.enqueue_url, "alertmanager.opsgenie.apiUrl": self.og.url,
                      "alertmanager.heartbeat.url": self.hook.url + "heartbeat",
                      "alertmanager.secretsMountPath": str(tmp / "secrets"),
                      "alertmanager.templatesPath": str(tmp / "am-config")}
            for route in ROUTES:
                for key, value in FAST.items():
                    values[f"alertmanager.routes.{route}.{key}"] = value
            values["alertmanager.routes.watchdog.groupWait"] = "0s"
            values.update(sets or {})
            extra = ["--show-only", "templates/alertmanager/config-secret.yaml"]
            for key, value in values.items():
                extra += ["--set", f"{key}={value}"]
            (secret,) = manifests(helm_template("prod", 3, extra=extra).stdout)
            (tmp / "am-config").mkdir(parents=True, exist_ok=True)
            for name, text in secret["stringData"].items():
                (tmp / "am-config" / name).write_text(text)
            self.am = self.stack.alertmanager(secret["stringData"]["alertmanager.yaml"])
        except BaseException:
            self.stack.close()
            raise

    def post(self, *alerts: dict) -> None:
        self.am.post_alerts(list(alerts))

    def groups(self) -> list[dict]:
        return http_json(f"{self.am.url}/api/v2/alerts/groups")

    def receivers_of(self, **labels: str) -> set[str]:
        """Receivers of the alert groups that hold an alert with these labels."""
        return {g["receiver"]["name"] for g in self.groups()
                if any(all(a["labels"].get(k) == v for k, v in labels.items()) for a in g["alerts"])}

    def metric(self, name: str, **labels: str) -> float:
        with urllib.request.urlopen(f"{self.am.url}/metrics", timeout=5) as resp:
            text = resp.read().decode()
        total = 0.0
        for line in text.splitlines():
            m = re.fullmatch(rf"{name}(\{{(.*)\}})? (\S+)", line)
            if m and all(f'{k}="{v}"' in (m.group(2) or "") for k, v in labels.items()):
                total += float(m.group(3))
        return total

    def log(self) -> str:
        return self.am.log()

    def close(self) -> None:
        self.stack.close()


@pytest.fixture
def routing(tmp_path):
    made: list[Routing] = []

    def make(**kwargs) -> Routing:
        made.append(Routing(tmp_path / f"am{len(made)}", **kwargs))
        return made[-1]
    yield make
    for r in made:
        r.close()


def test_a_failing_vendor_pages_through_the_other_vendor(routing):
    """AlertmanagerNotificationsFailing for PagerDuty reaches Opsgenie at P1; for Opsgenie it pages PagerDuty."""
    r = routing()
    r.post(alert("AlertmanagerNotificationsFailing", "critical", "sre", integration="pagerduty"),
           alert("AlertmanagerNotificationsFailing", "critical", "sre", integration="opsgenie"))
    created = wait_until(lambda: r.og.created("AlertmanagerNotificationsFailing"), 30, r.log)
    pages = wait_until(lambda: r.pd.events("AlertmanagerNotificationsFailing", action="trigger"), 30, r.log)
    assert [c["priority"] for c in created] == ["P1"]
    assert '"integration": "pagerduty"' in created[0]["description"]
    assert created[0]["responders"] == [{"type": "team", "name": "virtengine-sre"}]
    assert all("integration=opsgenie" in p["payload"]["custom_details"]["firing"] for p in pages), pages
    # where Alertmanager put each alert: never on the failing vendor's own receiver
    assert r.receivers_of(integration="pagerduty") == {"opsgenie-sre-p1"}
    assert r.receivers_of(integration="opsgenie") == {"pagerduty-sre"}
    assert not r.pd.invalid() and not r.og.invalid()


def test_each_team_pages_with_its_own_routing_key_and_the_others_with_the_shared_one(routing):
    r = routing(extra_keys={SHARED: {"pagerduty-routing-key-chain": secrets.token_hex(16)},
                            "escrow-alerting": {"pagerduty-routing-key": secrets.token_hex(16)}},
                sets={"alertmanager.teams.chain.pagerdutyRoutingKeySecret.key": "pagerduty-routing-key-chain",
                      "alertmanager.teams.escrow.pagerdutyRoutingKeySecret.name": "escrow-alerting"})
    r.post(alert("ConsensusStalled", "critical", "chain", chain_id=CHAIN),
           alert("EscrowSettlementsFailing", "critical", "escrow"),
           alert("PrometheusRuleFailures", "critical", "sre"))
    for name in ("ConsensusStalled", "EscrowSettlementsFailing", "PrometheusRuleFailures"):
        wait_until(lambda: r.pd.events(name, action="trigger"), 30, r.log)
    key = {name: {e["routing_key"] for e in r.pd.events(name, action="trigger")}
           for name in ("ConsensusStalled", "EscrowSettlementsFailing", "PrometheusRuleFailures")}
    assert key == {"ConsensusStalled": {r.keys[SHARED]["pagerduty-routing-key-chain"]},
                   "EscrowSettlementsFailing": {r.keys["escrow-alerting"]["pagerduty-routing-key"]},
                   "PrometheusRuleFailures": {r.keys[SHARED]["pagerduty-routing-key"]}}


def test_watchdog_pings_the_heartbeat_but_sends_no_resolved_notification(routing):
    r = routing()
    r.post(alert("Watchdog", "info", "sre", ends_in=3))
    wait_until(lambda: r.hook.notifications("Watchdog", status="firing"), 30, r.log)
    # the group is flushed again once the alert has resolved: the notify stage ran for it ...
    wait_until(lambda: r.metric("alertmanager_notifications_total", integration="webhook") >= 2, 30,
               lambda: f"no second flush of the Watchdog group\n{r.log()}")
    # ... and sent nothing: a resolved ping would tell the heartbeat service that all is well
    assert r.hook.notifications("Watchdog", status="resolved") == []
    assert r.metric("alertmanager_notification_requests_total", integration="webhook") == 1


def test_vendor_incidents_close_when_the_alert_resolves(routing):
    r = routing()
    r.post(alert("ConsensusStalled", "critical", "chain", chain_id=CHAIN),
           alert("NodeLowPeers", "warning", "chain", chain_id=CHAIN, pod="sentry-0"))
    trigger = wait_until(lambda: r.pd.events("ConsensusStalled", action="trigger"), 30, r.log)[0]
    created = wait_until(lambda: r.og.created("NodeLowPeers"), 30, r.log)[0]
    r.post(alert("ConsensusStalled", "critical", "chain", chain_id=CHAIN, ends_in=0),
           alert("NodeLowPeers", "warning", "chain", chain_id=CHAIN, pod="sentry-0", ends_in=0))
    resolve = wait_until(lambda: r.pd.events("ConsensusStalled", action="resolve"), 30, r.log)[0]
    assert resolve["dedup_key"] == trigger["dedup_key"]
    assert wait_until(lambda: r.og.closed("NodeLowPeers"), 30, r.log) == [created["alias"]]


# (severity label, PagerDuty payload.severity): SLO page alerts go to PagerDuty whatever their severity label
SEVERITIES = [("critical", "critical"), ("warning", "warning"), ("info", "info"), ("critcal", "error")]


def test_pagerduty_events_carry_the_severity_mapped_from_the_label(routing):
    r = routing()
    r.post(*[alert(f"SLOTest{i}", label, "veid", slo="veid_response_time", burn="fast")
             for i, (label, _) in enumerate(SEVERITIES)])
    for i, (label, expected) in enumerate(SEVERITIES):
        (event,) = wait_until(lambda: r.pd.events(f"SLOTest{i}", action="trigger"), 30, r.log)
        assert event["payload"]["severity"] == expected, label


def test_one_page_per_alert_name_cluster_and_chain(routing):
    """Two nodes of one chain: one incident; another chain or cluster: an incident of its own."""
    r = routing()
    r.post(alert("NodeSyncLag", "critical", "chain", chain_id=CHAIN, pod="node-0"),
           alert("NodeSyncLag", "critical", "chain", chain_id=CHAIN, pod="node-1"),
           alert("NodeSyncLag", "critical", "chain", chain_id="virtengine-testnet-2", pod="node-0"),
           alert("NodeSyncLag", "critical", "chain", chain_id=CHAIN, pod="node-0", cluster="virtengine-dr"))
    wait_until(lambda: len({e["dedup_key"] for e in r.pd.events("NodeSyncLag", action="trigger")}) >= 3, 30, r.log)
    groups = {(g["labels"].get("cluster"), g["labels"].get("chain_id")): len(g["alerts"]) for g in r.groups()}
    assert groups == {(CLUSTER, CHAIN): 2, (CLUSTER, "virtengine-testnet-2"): 1, ("virtengine-dr", CHAIN): 1}
    events = r.pd.events("NodeSyncLag", action="trigger")
    assert len({e["dedup_key"] for e in events}) == 3

    # the incident of the chain holds both of its nodes: its latest trigger says 2 firing (on a loaded machine
    # the group's first flush can come before Alertmanager's dispatcher took the second node's alert; the next
    # flush, group_interval later, updates the same incident, never a new one)
    def firing_per_incident() -> list[int]:
        latest = {}
        for e in r.pd.events("NodeSyncLag", action="trigger"):
            latest[e["dedup_key"]] = int(e["payload"]["custom_details"]["num_firing"])
        return sorted(latest.values())
    wait_until(lambda: firing_per_incident() == [1, 1, 2], 30, lambda: f"{firing_per_incident()}\n{r.log()}")
    assert len({e["dedup_key"] for e in r.pd.events("NodeSyncLag", action="trigger")}) == 3


def test_a_stalled_chain_mutes_its_mempool_backlog_but_not_another_chains(routing):
    """ConsensusStalled{cluster, chain_id} mutes MempoolBacklog of the same chain (inhibition equal: cluster,
    chain_id), with MempoolBacklog labelled as a chain-level alert: cluster and chain_id."""
    r = routing()
    r.post(alert("ConsensusStalled", "critical", "chain", chain_id=CHAIN),
           alert("MempoolBacklog", "warning", "chain", chain_id=CHAIN),
           alert("MempoolBacklog", "warning", "chain", chain_id="virtengine-testnet-2"))
    # the other chain's backlog is delivered: the pipeline ran
    wait_until(lambda: [c for c in r.og.created("MempoolBacklog") if "virtengine-testnet-2" in c["message"]], 30,
               r.log)

    def state(chain: str) -> dict:
        (a,) = r.am.alerts(alertname="MempoolBacklog", chain_id=chain)
        return a["status"]
    stalled = wait_until(lambda: state(CHAIN) if state(CHAIN)["state"] == "suppressed" else None, 30,
                         lambda: f"MempoolBacklog of the stalled chain is not muted: {state(CHAIN)}")
    (source,) = r.am.alerts(alertname="ConsensusStalled")
    assert stalled["inhibitedBy"] == [source["fingerprint"]]
    assert state("virtengine-testnet-2")["state"] == "active"
    assert all("virtengine-testnet-2" in c["message"] for c in r.og.created("MempoolBacklog"))


def test_a_pagerduty_outage_reaches_the_on_call_through_opsgenie_end_to_end(tmp_path):
    """The whole loop on the real tools: PagerDuty answers 500, Alertmanager's failure counters move, the chart's
    AlertmanagerNotificationsFailing rule fires in Prometheus, and the chart's routing sends it to Opsgenie at P1."""
    from faults_stack import (Exporter, FlakyOpsgenie, FlakyPagerDuty, chart_alertmanager_config, chart_rules,
                              metric, write_key_files)
    stack = Stack(tmp_path)
    try:
        pd, og, hook = stack._own(FlakyPagerDuty()), stack._own(FlakyOpsgenie()), stack.webhook()
        keys = write_key_files(tmp_path / "secrets")
        pd.routing_keys, og.api_keys = {keys["pagerduty-routing-key"]}, {keys["opsgenie-api-key"]}
        config = chart_alertmanager_config(tmp_path / "am-config", pagerduty=pd, opsgenie=og, heartbeat=hook,
                                           secrets_dir=tmp_path / "secrets",
                                           timers={"critical": FAST, "vendorFailingPagerduty": FAST})
        am = stack.alertmanager(config)
        exporter = stack._own(Exporter("".join(
            metric("cometbft_consensus_height", 1200, chain_id=CHAIN, namespace="virtengine", pod=f"validator-{i}")
            for i in range(3))))
        rules = chart_rules(tmp_path / "rules.yaml", {"ConsensusStalled": {"for": "2s", "thresholds.windowMinutes": 1},
                                                      "AlertmanagerNotificationsFailing": {"for": "2s"}})
        pd.fail_for(3600)
        prom = stack.prometheus(rule_files=[rules], scrape_configs=[exporter.scrape_config()], alertmanager=am,
                                target_labels={"cluster": CLUSTER})
        created = wait_until(lambda: og.created("AlertmanagerNotificationsFailing"), 120,
                             lambda: f"no Opsgenie alert; firing: {prom.alerts(state='firing')}\n{am.log()}")
        assert created[0]["priority"] == "P1"
        assert created[0]["responders"] == [{"type": "team", "name": "virtengine-sre"}]
        assert "notifications to pagerduty failed" in created[0]["description"]
        (firing,) = prom.alerts(state="firing", alertname="AlertmanagerNotificationsFailing")
        assert firing["labels"]["integration"] == "pagerduty"
        assert pd.valid() == [], "PagerDuty was down: nothing can have been accepted"
        assert og.invalid() == []
    finally:
        stack.close()
