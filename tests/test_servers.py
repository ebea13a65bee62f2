"""The shared launcher (generator/servers.py) starts every real server the tests use, and stops them.

Each server is started from its Debian/pinned binary on 127.0.0.1, answers its
health URL, does its job once (a Prometheus scrapes, an Alertmanager cluster
sees its peers, VictoriaMetrics takes a remote write and answers PromQL, vmalert
evaluates a rule, the registry serves the OCI API), and is gone after the group
closes: its port refuses connections and its process has exited.
"""
from __future__ import annotations

import json
import socket

import pytest

from generator.servers import Servers, ServerError, http, wait_until


def refused(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def test_prometheus_scrapes_itself_and_restarts_with_its_data(tmp_path):
    with Servers(tmp_path) as group:
        prom = group.prometheus({"global": {"scrape_interval": "1s"}, "scrape_configs": []})
        prom_target = f"127.0.0.1:{prom.port}"
        (prom.folder / "prometheus.yml").write_text(json.dumps({"global": {"scrape_interval": "1s"}, "scrape_configs": [
            {"job_name": "self", "static_configs": [{"targets": [prom_target]}]}]}))
        prom.reload()
        wait_until(lambda: prom.query('up{job="self"} == 1'), 60, "the self-scrape never came up")
        first = prom.proc.pid
        prom.restart()
        assert prom.proc.pid != first and prom.running
        # the TSDB folder is kept: samples from before the restart are still there
        assert prom.query('count_over_time(up{job="self"}[10m]) > 0')
        port = prom.port
    assert not prom.running and refused(port)


def test_alertmanager_cluster_peers_see_each_other(tmp_path):
    config = {"route": {"receiver": "null"}, "receivers": [{"name": "null"}]}
    with Servers(tmp_path) as group:
        first = group.alertmanager(config, cluster=True)
        others = [group.alertmanager(config, peers=[first.cluster_address]) for _ in range(2)]
        members = [first, *others]
        wait_until(lambda: all(len(m.peers()) == 3 for m in members), 60,
                   lambda: f"peers: {[m.peers() for m in members]}")
        first.post_alerts([{"labels": {"alertname": "Probe"}}])
        assert first.alerts(alertname="Probe")
        ports = [m.port for m in members]
    assert all(refused(p) for p in ports)


def test_a_single_alertmanager_runs_without_gossip(tmp_path):
    with Servers(tmp_path) as group:
        am = group.alertmanager({"route": {"receiver": "null"}, "receivers": [{"name": "null"}]})
        assert am.cluster_address is None
        assert "--cluster.listen-address=" in am.cmd
        assert am.peers() == []


def test_victoria_metrics_takes_a_write_and_vmalert_evaluates_a_rule(tmp_path):
    rules = tmp_path / "rules.yml"
    rules.write_text("groups:\n- name: probe\n  interval: 1s\n  rules:\n"
                     "  - record: probe:value:max\n    expr: max(probe_value)\n")
    with Servers(tmp_path) as group:
        vm = group.victoria_metrics()
        status, body = http(vm.url + "/api/v1/import/prometheus", "POST", 'probe_value{cluster="a"} 7\n')
        assert status == 204, body
        vmalert = group.vmalert([rules], datasource=vm.url, remote_write=vm.url)
        # VictoriaMetrics makes new samples searchable after its cache flush; poll for them
        wait_until(lambda: vm.query("probe:value:max"), 120, lambda: f"no recorded series; vmalert:\n{vmalert.log()}")
        assert vm.query("probe:value:max")[0]["value"][1] == "7"


def test_registry_serves_the_oci_api(tmp_path):
    with Servers(tmp_path) as group:
        reg = group.registry()
        status, _ = http(reg.url + "/v2/")
        assert status == 200


def test_a_server_that_cannot_start_names_itself_and_shows_its_log(tmp_path):
    with Servers(tmp_path) as group:
        with pytest.raises(ServerError, match=r"prometheus exited \(\d+\)[\s\S]*(error|err=)"):
            group.prometheus("global: [this is not a mapping\n")
        assert not any(s.running for s in group.servers)
