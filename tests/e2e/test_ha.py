"""High availability on the real servers: a Prometheus HA pair and a three-peer Alertmanager cluster page once.

``HAPipeline`` is the e2e pipeline (prod rules and routing from ``helm
template``, time compressed 30x) in the layout operators run in production:
two Prometheus replicas scrape the same simulated cluster, each with its
replica external label ``prometheus_replica`` (kube-prometheus-stack's
``replicaExternalLabelName``), each evaluates the chart's rules and sends
to ALL three Alertmanager peers, which gossip on 127.0.0.1 ports. The
replica label is dropped before Alertmanager by ``alert_relabel_configs``
(``labeldrop``), as the bundle's ``--ha`` layout and the Prometheus
Operator do, so both replicas' copies of an alert are one alert.

The scenario: a consensus stall (PagerDuty) and an exporter down (Opsgenie)
fire in both replicas; each reaches its vendor exactly once; the peer that
sent the pages and one Prometheus replica are killed (SIGKILL) while the
incident is open; the faults are cleared; each incident resolves exactly
once. The control run keeps the replica label: then Alertmanager holds one
copy of each alert per replica, the duplication the relabelling removes.
"""
from __future__ import annotations

import re
import urllib.parse
import urllib.request

import pytest

from pipeline import CLUSTERS, EXPECTATIONS, Pipeline, seconds, wait_until

REPLICA_LABEL = "prometheus_replica"       # kube-prometheus-stack's prometheusSpec.replicaExternalLabelName
DROP_REPLICA = [{"action": "labeldrop", "regex": REPLICA_LABEL}]
PEER_TIMEOUT = "2s"                        # --cluster.peer-timeout: how long peer n waits (n x this) for peer 0
SCENARIOS = {e.scenario: e for e in EXPECTATIONS}
STALL, DOWN = SCENARIOS["consensus_stall"], SCENARIOS["exporter_down"]
TIMEOUT = 300                              # safety nets only: every wait polls for its condition


class HAPipeline(Pipeline):
    """The pipeline with two Prometheus replicas and three clustered Alertmanagers, one simulated cluster."""

    def __init__(self, workdir, *, drop_replica: bool = True, **kw) -> None:
        super().__init__(workdir, **kw)
        self.drop_replica = drop_replica

    def start(self) -> "HAPipeline":
        self.prepare_receivers()
        self.rule_files, self.am_config = self.render()
        # peer timeout shorter than the 15 s default, as every other timer here is compressed
        args = [f"--cluster.peer-timeout={PEER_TIMEOUT}"]
        first = self.stack.alertmanager(self.am_config, cluster=True, name="alertmanager-0", args=args)
        self.ams = [first] + [self.stack.alertmanager(self.am_config, peers=[first.cluster_address], args=args,
                                                      name=f"alertmanager-{i}") for i in (1, 2)]
        wait_until(lambda: all(len(am.peers()) == 3 for am in self.ams), 60,
                   lambda: f"the Alertmanager cluster did not form: {[am.peers() for am in self.ams]}")
        self.am = first
        sim = self.stack.simulator(block_time=self.block_time, seed=1, exclude_sources=("prometheus", "alertmanager"))
        self.sims = {"a": sim}
        jobs = sim.scrape_configs(interval="1s", labels={"cluster": CLUSTERS["a"]})
        self.proms = [self.stack.prometheus(
            rule_files=self.rule_files, scrape_configs=jobs, alertmanagers=self.ams, name=f"prometheus-{i}",
            external_labels={"cluster": CLUSTERS["a"], REPLICA_LABEL: f"prometheus-{i}"},
            alert_relabel_configs=DROP_REPLICA if self.drop_replica else None, pod=f"prometheus-{i}",
            target_labels={"cluster": CLUSTERS["a"], "namespace": "monitoring"}) for i in (0, 1)]
        self.prom = self.proms[1]   # the replica that survives (failure messages read it)
        return self

    # -- what happened
    def triggers(self, alert: str) -> list:
        return [r for r in self.pd.valid() if r.body["event_action"] == "trigger"
                and r.body["payload"].get("class") == alert and r.body["payload"].get("source") == CLUSTERS["a"]]

    def resolves(self, alert: str) -> list:
        keys = {r.body["dedup_key"] for r in self.triggers(alert)}
        return [r for r in self.pd.valid() if r.body["event_action"] == "resolve" and r.body["dedup_key"] in keys]

    def created(self, alert: str) -> list:
        return [r for r in self.og.valid() if r.method == "POST" and r.path == "/v2/alerts"
                and r.body.get("details", {}).get("alertname") == alert and r.body.get("source") == CLUSTERS["a"]]

    def closed(self, alert: str) -> list:
        aliases = {r.body["alias"] for r in self.created(alert)}
        return [r for r in self.og.valid() if r.method == "POST"
                and (m := re.fullmatch(r"/v2/alerts/([^/]+)/close", r.path))
                and urllib.parse.unquote(m.group(1)) in aliases]

    def sent(self, am, integration: str) -> float:
        """Notifications this peer sent to ``integration`` (its own ``alertmanager_notifications_total``)."""
        with urllib.request.urlopen(f"{am.url}/metrics", timeout=5) as resp:
            text = resp.read().decode()
        pattern = rf'alertmanager_notifications_total\{{[^}}]*integration="{integration}"[^}}]*\}} (\S+)'
        return sum(float(v) for v in re.findall(pattern, text))

    def updates_received(self, am) -> float:
        """Gossip updates (notification-log entries and silences) this peer received from the others
        (its own ``alertmanager_cluster_messages_received_total{msg_type="update"}``)."""
        with urllib.request.urlopen(f"{am.url}/metrics", timeout=5) as resp:
            text = resp.read().decode()
        found = re.findall(r'alertmanager_cluster_messages_received_total\{[^}]*msg_type="update"[^}]*\} (\S+)', text)
        return sum(float(v) for v in found)

    def quiet_for(self, after: float) -> bool:
        """A heartbeat arrived after ``after`` + the longest a later peer waits (2 x peer timeout) + group_interval:
        by then every peer's dedup stage has run for the last flush, so a duplicate would have arrived."""
        window = 2 * seconds(PEER_TIMEOUT) + 2 + 1
        return any(r.at > after + window for r in self.hook.valid())


def firing_in(prom, alert: str, **labels: str) -> bool:
    return bool(prom.alerts("firing", alertname=alert, cluster=CLUSTERS["a"], **labels))


@pytest.fixture(scope="module")
def ha(tmp_path_factory):
    """The HA incident, start to end; yields the pipeline and what was seen on the way."""
    with HAPipeline(tmp_path_factory.mktemp("ha")) as p:
        seen: dict = {}
        wait_until(lambda: all(len(pr.targets()) and all(t["health"] == "up" for t in pr.targets())
                               for pr in p.proms), 60, "targets of the replicas not up")
        p.inject(STALL)
        p.inject(DOWN)
        # both replicas fire both alerts (the HA pair really evaluates twice)
        wait_until(lambda: all(firing_in(pr, "ConsensusStalled", chain_id=STALL.chain)
                               and firing_in(pr, "VirtEngineNodeDown") for pr in p.proms),
                   TIMEOUT, lambda: f"not firing in both replicas\n{p.notified()}")
        wait_until(lambda: p.triggers("ConsensusStalled") and p.created("VirtEngineNodeDown"), TIMEOUT,
                   lambda: f"no page\n{p.notified()}")
        # every peer holds the alerts, from both replicas (each Prometheus sends to every peer)
        wait_until(lambda: all(am.alerts(alertname="ConsensusStalled") for am in p.ams), 30,
                   lambda: f"a peer lacks the alert: {[len(am.alerts()) for am in p.ams]}")
        seen["held"] = {am.name: am.alerts(alertname="ConsensusStalled", chain_id=STALL.chain) for am in p.ams}
        seen["sent_by"] = {am.name: p.sent(am, "pagerduty") + p.sent(am, "opsgenie") for am in p.ams}
        # kill the peer that paged (the hardest one to lose) and one Prometheus replica, incident still open.
        # Alertmanager HA is at-least-once: a peer killed before its notification-log entry reached the others
        # is paged again by the next peer. The kill comes once the others received two more gossip updates
        # than when the pages were seen (the pages' entries, or later ones queued behind them: the sender also
        # flushes the Watchdog every few seconds), as in a cluster that has run a moment after paging.
        sender = max(p.ams, key=lambda am: seen["sent_by"][am.name])
        others = [am for am in p.ams if am is not sender]
        before = {am.name: p.updates_received(am) for am in others}
        wait_until(lambda: all(p.updates_received(am) >= before[am.name] + 2 for am in others), TIMEOUT,
                   lambda: f"no gossip reached the other peers: {before}")
        sender.stop(kill=True)
        p.proms[0].stop(kill=True)
        seen["killed"] = (sender.name, p.proms[0].name)
        alive = [am for am in p.ams if am is not sender]
        wait_until(lambda: all(len(am.peers()) == 2 for am in alive), TIMEOUT,
                   lambda: f"the survivors still see the dead peer: {[am.peers() for am in alive]}")
        open_since = max(r.at for r in p.triggers("ConsensusStalled") + p.created("VirtEngineNodeDown"))
        wait_until(lambda: p.quiet_for(open_since), TIMEOUT, "no heartbeat after the pages")
        seen["triggers_open"] = len(p.triggers("ConsensusStalled"))
        seen["created_open"] = len(p.created("VirtEngineNodeDown"))
        p.clear(STALL)
        p.clear(DOWN)
        wait_until(lambda: p.resolves("ConsensusStalled") and p.closed("VirtEngineNodeDown"), TIMEOUT,
                   lambda: f"not resolved\n{p.notified()}")
        resolved_at = max(r.at for r in p.resolves("ConsensusStalled") + p.closed("VirtEngineNodeDown"))
        wait_until(lambda: p.quiet_for(resolved_at), TIMEOUT, "no heartbeat after the resolves")
        print(f"\n[figures] HA: paged by {sender.name}; killed {seen['killed']}; "
              f"PagerDuty {len(p.triggers('ConsensusStalled'))} trigger / {len(p.resolves('ConsensusStalled'))} "
              f"resolve, Opsgenie {len(p.created('VirtEngineNodeDown'))} create / "
              f"{len(p.closed('VirtEngineNodeDown'))} close")
        yield p, seen


def test_both_replicas_alerts_are_one_alert_without_the_replica_label_at_every_peer(ha):
    p, seen = ha
    for name, alerts in seen["held"].items():
        assert len(alerts) == 1, f"{name} holds {len(alerts)} copies: {[a['labels'] for a in alerts]}"
        assert REPLICA_LABEL not in alerts[0]["labels"], alerts[0]["labels"]
        assert alerts[0]["labels"]["cluster"] == CLUSTERS["a"]


def test_only_one_peer_sent_the_pages(ha):
    p, seen = ha
    assert [name for name, sent in seen["sent_by"].items() if sent] == [seen["killed"][0]], seen["sent_by"]


def test_each_incident_reaches_its_vendor_exactly_once_while_open(ha):
    p, seen = ha
    assert seen["triggers_open"] == 1, p.notified()
    assert seen["created_open"] == 1, p.notified()


def test_a_peer_and_a_replica_killed_during_the_incident_resolve_it_exactly_once(ha):
    p, seen = ha
    assert len(p.triggers("ConsensusStalled")) == 1 and len(p.resolves("ConsensusStalled")) == 1, p.notified()
    assert len(p.created("VirtEngineNodeDown")) == 1 and len(p.closed("VirtEngineNodeDown")) == 1, p.notified()


def test_the_vendors_accepted_every_request(ha):
    p, seen = ha
    assert [(r.path, r.errors) for r in p.pd.invalid() + p.og.invalid()] == []


def test_without_the_labeldrop_each_replica_is_a_separate_alert(tmp_path):
    """The control: with the replica label kept, every peer holds one copy of the alert per replica."""
    with HAPipeline(tmp_path, drop_replica=False) as p:
        p.inject(STALL)
        held = wait_until(lambda: (lambda a: a if len(a) >= 2 else None)(
            p.ams[1].alerts(alertname="ConsensusStalled", chain_id=STALL.chain)), TIMEOUT,
            lambda: f"never two copies: {p.notified()}")
        assert sorted(a["labels"][REPLICA_LABEL] for a in held) == ["prometheus-0", "prometheus-1"]
