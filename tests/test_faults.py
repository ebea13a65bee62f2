"""Faults survived, on the real Prometheus and Alertmanager with the chart's own rules and routing.

Each test starts its own stack (tests/e2e/stack.py): Prometheus with the
chart's alert rules (prod, ``for`` shortened), Alertmanager with prod's
configuration as the chart renders it (route timers shortened), the local
PagerDuty/Opsgenie stand-ins, and a /metrics endpoint whose series the test
sets. Figures are printed with ``[figures]`` (run with ``-s`` to see them).
"""
from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

import pytest

from faults_stack import (CHAIN, CLUSTER, am_counter, env_factory, metric, prom_counter, restart,  # noqa: F401
                          settle, wait_until)

STALL = {"ConsensusStalled": {"for": "2s", "thresholds.windowMinutes": 1}}
# how long to poll for a page before failing: a timeout for a condition, not a measured bound (the delays are
# printed as figures; the repeat interval of the routes is 1h, so a page that waited for it fails here)
PAGE_TIMEOUT = 120


def stalled_chain(chain: str = CHAIN, height: int = 1200) -> str:
    return "".join(metric("cometbft_consensus_height", height, chain_id=chain, namespace="virtengine",
                          pod=f"validator-{i}") for i in range(3))


def outage_then_recovery(receiver, attempts: int, hang: float = 0.0) -> float:
    """Fails every request from now until Alertmanager has tried the vendor ``attempts`` times, then recovers
    (an outage measured in Alertmanager's retries, not in seconds of a machine that may be busy).

    Returns the monotonic time of the recovery."""
    receiver.fail_for(3600, hang=hang)
    wait_until(lambda: len(receiver.outage_failures()) >= attempts, 60 + attempts * (hang + 10),
               f"Alertmanager did not try the vendor {attempts} times during the outage")
    receiver.recover()
    return time.monotonic()


@pytest.mark.parametrize("failure,outage,hang", [("answers 500", 4, 0), ("times out", 2, 11)],
                         ids=["PagerDuty answers 500 to 4 attempts", "PagerDuty hangs past the timeout twice"])
def test_a_vendor_outage_delays_the_page_until_recovery_without_duplicate_incidents(env_factory, failure, outage,
                                                                                    hang):
    env = env_factory(STALL)
    env.exporter.text = stalled_chain()
    recovered = outage_then_recovery(env.pd, outage, hang)
    page = wait_until(lambda: env.pages("ConsensusStalled"), PAGE_TIMEOUT,
                      lambda: f"no page after the outage; AM log:\n{env.am.log()}")[0]
    delivered_after = time.monotonic() - recovered
    settle(env.am, "ConsensusStalled")   # two more passes of the group: any retry in flight has arrived
    pages = env.pages("ConsensusStalled")
    dedup_keys = {p["dedup_key"] for p in pages}
    print(f"\n[figures] PagerDuty {failure} ({outage}+ attempts): {len(env.pd.outage_failures())} failed attempt(s), page "
          f"delivered {delivered_after:.1f}s after recovery, {len(pages)} accepted trigger(s), "
          f"{len(dedup_keys)} incident(s)")
    assert page["payload"]["severity"] == "critical" and page["routing_key"] in env.pd.routing_keys
    assert len(dedup_keys) == 1, "retries opened more than one incident"
    assert len(pages) <= 2, f"{len(pages)} pages for one alert"
    assert env.pd.invalid() == env.pd.outage_failures(), "a request PagerDuty would reject"
    # the signal the meta alert AlertmanagerNotificationsFailing reads moved with the outage
    assert am_counter(env.am, "alertmanager_notification_requests_failed_total") >= 1
    logs = env.am.log() + env.prom.log()
    assert not any(key in logs for key in env.pd.routing_keys | env.og.api_keys), "a vendor key reached a log"


def test_an_opsgenie_outage_creates_one_alert_once_it_recovers(env_factory):
    env = env_factory({"NodeLowPeers": {"for": "2s"}})
    env.exporter.text = metric("cometbft_p2p_peers", 0, chain_id=CHAIN, namespace="virtengine", pod="validator-0")
    recovered = outage_then_recovery(env.og, 4)
    wait_until(lambda: env.og.created("NodeLowPeers"), PAGE_TIMEOUT, lambda: env.am.log())
    delivered_after = time.monotonic() - recovered
    settle(env.am, "NodeLowPeers")
    created = env.og.created("NodeLowPeers")
    aliases = {c.get("alias") for c in created}
    print(f"\n[figures] Opsgenie answers 500 (4+ attempts): {len(env.og.outage_failures())} failed attempt(s), alert created "
          f"{delivered_after:.1f}s after recovery, {len(created)} create(s), {len(aliases)} Opsgenie alert(s)")
    assert len(aliases) == 1 and len(created) <= 2
    assert env.og.invalid() == env.og.outage_failures()


def test_alertmanager_restarted_or_crashed_while_an_alert_fires_does_not_flood(env_factory):
    env = env_factory(STALL)
    env.exporter.text = stalled_chain()
    wait_until(lambda: env.pages("ConsensusStalled"), 40, lambda: env.am.log())
    extra = {}
    for crash in (False, True):
        before = len(env.pages("ConsensusStalled"))
        down = restart(env.am, crash=crash)
        # Prometheus re-sends the firing alert (resend delay 2s); the restarted Alertmanager holds it again
        wait_until(lambda: env.am.alerts(alertname="ConsensusStalled"), 30, "the alert did not come back")
        settle(env.am, "ConsensusStalled")   # the restarted Alertmanager passed the group twice: a page would be out
        extra["crash" if crash else "restart"] = len(env.pages("ConsensusStalled")) - before
        print(f"\n[figures] Alertmanager {'crashed (SIGKILL)' if crash else 'restarted (SIGTERM)'} ({down:.1f}s down) "
              f"while paging: {extra['crash' if crash else 'restart']} extra page(s)")
    pages = env.pages("ConsensusStalled")
    assert len({p["dedup_key"] for p in pages}) == 1, "a restart opened a second incident"
    assert extra["restart"] == 0, "the notification log did not survive a graceful restart"
    assert extra["crash"] <= 1, "a crash may re-send once (same dedup key, same incident), never flood"


def test_an_alert_that_starts_while_alertmanager_is_down_is_delivered_when_it_returns(env_factory):
    env = env_factory(STALL)
    env.am.stop()
    start = time.monotonic()
    env.exporter.text = stalled_chain()
    wait_until(lambda: env.prom.alerts("firing", alertname="ConsensusStalled"), 30, "the alert never fired")
    # Prometheus tried to send it (its own counter of failed sends), and nothing reached PagerDuty
    wait_until(lambda: prom_counter(env.prom, "prometheus_notifications_errors_total") >= 1, 30,
               "Prometheus never tried to send the firing alert")
    assert env.pages("ConsensusStalled") == []
    back = time.monotonic()
    env.am.start()
    wait_until(lambda: env.pages("ConsensusStalled"), 30, lambda: env.am.log())
    print(f"\n[figures] alert fired while Alertmanager was down ({back - start:.0f}s): paged "
          f"{time.monotonic() - back:.1f}s after it came back")
    assert len(env.pages("ConsensusStalled")) == 1


FOR = 16
GRACE = 3


def test_prometheus_restarted_during_for_restores_the_pending_state(env_factory):
    """With for >= --rules.alert.for-grace-period the pending time survives a restart (ALERTS_FOR_STATE)."""
    env = env_factory({"ConsensusStalled": {"for": f"{FOR}s", "thresholds.windowMinutes": 1}},
                      prometheus_args=[f"--rules.alert.for-grace-period={GRACE}s"])
    env.exporter.text = stalled_chain()
    pending = wait_until(lambda: env.prom.alerts("pending", alertname="ConsensusStalled"), 30, "never pending")
    pending_at = time.monotonic()
    time.sleep(FOR / 2)
    restarted_at = time.time()
    down = restart(env.prom)

    def active_since() -> float | None:
        found = env.prom.alerts(alertname="ConsensusStalled")
        if not found:
            return None
        stamp = found[0]["activeAt"].rstrip("Z")
        stamp = stamp[:26] if "." in stamp else stamp   # Python reads at most microseconds
        return datetime.fromisoformat(stamp + "+00:00").timestamp()

    # restore happens after the second evaluation: until then the alert looks active from the restart on.
    # Restored, it is active since before the restart (shifted by the downtime); not restored, from the restart on.
    wait_until(lambda: (active_since() or restarted_at) < restarted_at - FOR / 4, 15,
               "the pending state was not restored (the alert is active only since the restart)")
    wait_until(lambda: env.prom.alerts("firing", alertname="ConsensusStalled"), FOR + 30,
               lambda: f"never fired after the restart:\n{env.prom.log()}")
    fired_after = time.monotonic() - pending_at
    wait_until(lambda: env.pages("ConsensusStalled"), 20, "fired but not paged")

    # Prometheus's own timestamps (its ALERTS series, kept across the restart), not this machine's wall clock
    def samples(state: str) -> list[float]:
        found = env.prom.api("query", query=f'ALERTS{{alertname="ConsensusStalled",alertstate="{state}"}}[10m]')
        return sorted(float(ts) for series in found["result"] for ts, _ in series["values"])
    pend, fire = samples("pending"), samples("firing")
    gaps = [(b - a, b) for a, b in zip(pend, pend[1:])]
    back = max(gaps)[1]                      # the first evaluation after the restart
    print(f"\n[figures] Prometheus restarted {FOR / 2:.0f}s into a {FOR}s `for` ({down:.1f}s down): fired "
          f"{fired_after:.1f}s after it went pending; in Prometheus's time {fire[0] - pend[0]:.0f}s after pending, "
          f"{fire[0] - back:.0f}s after the restart (without restore: {FOR}s after the restart)")
    assert fire[0] - pend[0] >= FOR - 1, "fired before its `for` elapsed"
    assert fire[0] - back < FOR, "fired a whole `for` after the restart: the pending state was not restored"
    assert pending[0]["labels"]["chain_id"] == CHAIN


STORM_PODS = 300
STORM_VALIDATORS = 300


def test_an_alert_storm_yields_a_bounded_number_of_notifications(env_factory):
    env = env_factory({"KubePodCrashLooping": {"for": "2s"}, "NodeLowPeers": {"for": "2s"}})
    text = "".join(metric("kube_pod_container_status_waiting_reason", 1, namespace="virtengine",
                          pod=f"provider-{i}", container="provider", reason="CrashLoopBackOff")
                   for i in range(STORM_PODS))
    text += "".join(metric("cometbft_p2p_peers", 0, chain_id=CHAIN, namespace="virtengine", pod=f"validator-{i}")
                    for i in range(STORM_VALIDATORS))
    env.exporter.text = text
    storm = STORM_PODS + STORM_VALIDATORS
    wait_until(lambda: len(env.am.alerts()) >= storm, 60,
               lambda: f"Alertmanager holds {len(env.am.alerts())} of {storm} alerts")
    for alertname in ("KubePodCrashLooping", "NodeLowPeers"):   # each group passed twice after the last alert came
        settle(env.am, alertname)
    requests = env.og.valid() + env.pd.valid()
    created = env.og.created()
    aliases = {c["alias"] for c in created}
    sent = am_counter(env.am, "alertmanager_notifications_total")
    print(f"\n[figures] alert storm: {storm} alerts ({STORM_PODS} pods crash-looping, {STORM_VALIDATORS} validators "
          f"without peers) -> {sent:.0f} Alertmanager notifications, {len(aliases)} Opsgenie alerts, "
          f"{len(requests)} vendor requests in all")
    assert not env.og.invalid(), [r.errors for r in env.og.invalid()][:3]
    assert {c["details"]["alertname"] for c in created} == {"KubePodCrashLooping", "NodeLowPeers"}
    assert len(aliases) == 2, "grouping by alertname/cluster/chain_id gives one Opsgenie alert per kind"
    assert sent <= 8 and len(requests) <= 3 * sent
    assert env.pd.valid() == [], "warnings must not page"
    assert am_counter(env.am, "alertmanager_notifications_failed_total") == 0
