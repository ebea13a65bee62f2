"""Label values are data in notifications: template syntax in them never executes.

A stalled chain and a validator without peers are exported with label
values full of Go/Alertmanager template code. They go through the real
Prometheus (the chart's rules expand ``{{ $labels.chain_id }}`` in their
annotations) and the real Alertmanager (prod's configuration and
``virtengine.tmpl`` as the chart renders them) to the PagerDuty and Opsgenie
stand-ins, which must receive the hostile strings literally.
"""
from __future__ import annotations

import json

from faults_stack import CLUSTER, env_factory, wait_until  # noqa: F401

HOSTILE_CHAIN = '{{ template "virtengine.title" . }}'
HOSTILE_POD = '{{ .ExternalURL }}{{ range .Alerts }}x{{ end }}'


def escape(value: str) -> str:
    """A label value in the Prometheus text format."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def test_template_code_in_label_values_reaches_pagerduty_and_opsgenie_literally(env_factory):
    env = env_factory({"ConsensusStalled": {"for": "2s", "thresholds.windowMinutes": 1},
                       "NodeLowPeers": {"for": "2s"}})
    env.exporter.text = (
        f'cometbft_consensus_height{{chain_id="{escape(HOSTILE_CHAIN)}",namespace="virtengine",pod="v-0"}} 7\n'
        f'cometbft_p2p_peers{{chain_id="virtengine-1",namespace="virtengine",pod="{escape(HOSTILE_POD)}"}} 0\n')
    page = wait_until(lambda: env.pages("ConsensusStalled"), 60, lambda: env.am.log())[0]
    created = wait_until(lambda: env.og.created("NodeLowPeers"), 60, lambda: env.am.log())[0]
    details = page["payload"]["custom_details"]
    # the label itself, the title that prints it, and the annotation Prometheus expanded around it: all literal
    assert details["chain_id"] == HOSTILE_CHAIN
    assert page["payload"]["summary"].startswith(f"[FIRING:1] ConsensusStalled ({CLUSTER} {HOSTILE_CHAIN}): ")
    assert f"Chain {HOSTILE_CHAIN} in cluster {CLUSTER}" in details["description"]
    assert details["firing"].strip() == f"chain_id={HOSTILE_CHAIN} environment=prod"
    assert created["details"]["pod"] == HOSTILE_POD
    assert f"Node virtengine/{HOSTILE_POD} (role: none) in cluster {CLUSTER}" in created["description"]
    assert created["message"] == f"[FIRING:1] NodeLowPeers ({CLUSTER} virtengine-1): " + created["message"].split("): ", 1)[1]
    # had either value executed, its output (a title, the external URL, an x per alert) would appear instead
    assert "[FIRING" not in details["chain_id"] and "http" not in created["details"]["pod"]
    assert env.pd.invalid() == [] and env.og.invalid() == []
