"""The dashboards in a real Grafana: upload, read back, run every panel's queries.

Needs a Grafana with a Prometheus data source that scrapes VirtEngine (or
the simulator), e.g. the compose bundle's: set ``GRAFANA_URL`` and
``GRAFANA_TOKEN`` (a service-account token with Editor rights; optionally
``GRAFANA_DATASOURCE_UID``). Dashboards are uploaded as ``vetest-...``
copies and deleted afterwards, so an installed set is never touched.
"""
from __future__ import annotations

import os

import pytest

from conftest import ROOT

from generator.preview import source
from generator.preview.grafana import Grafana, panels_with_queries

URL, TOKEN = os.environ.get("GRAFANA_URL", ""), os.environ.get("GRAFANA_TOKEN", "")
pytestmark = pytest.mark.skipif(
    not (URL and TOKEN),
    reason="needs a real Grafana: set GRAFANA_URL (e.g. http://127.0.0.1:3000) and GRAFANA_TOKEN "
           "(service-account token, Editor), optionally GRAFANA_DATASOURCE_UID")
DASHBOARDS = source.dashboards(ROOT, os.environ.get("GRAFANA_ENV", "prod")) if URL and TOKEN else {}


@pytest.fixture(scope="module")
def grafana():
    return Grafana(URL, TOKEN)


@pytest.fixture(scope="module")
def uploaded(grafana):
    uids = {uid: grafana.upload(d) for uid, d in DASHBOARDS.items()}
    yield uids
    for test_uid in uids.values():
        grafana.delete(test_uid)


@pytest.mark.parametrize("uid", sorted(DASHBOARDS) or ["(no Grafana)"])
def test_every_dashboard_uploads_and_reads_back_with_its_panels_and_queries(uid, grafana, uploaded):
    back = grafana.read(uploaded[uid])
    sent = DASHBOARDS[uid]

    def shape(d):
        return [(p.get("title"), p.get("type"), p.get("gridPos"), [t.get("expr") for t in p.get("targets", [])])
                for p in d["panels"]]
    assert shape(back) == shape(sent)
    assert [v["name"] for v in back["templating"]["list"]] == [v["name"] for v in sent["templating"]["list"]]


@pytest.mark.parametrize("uid", sorted(DASHBOARDS) or ["(no Grafana)"])
def test_every_panel_query_returns_data_through_grafanas_query_api(uid, grafana, uploaded):
    ds = grafana.prometheus_uid(os.environ.get("GRAFANA_DATASOURCE_UID", ""))
    dashboard = grafana.read(uploaded[uid])
    empty = []
    for panel in panels_with_queries(dashboard):
        for ref, has_data in grafana.query(dashboard, panel, ds).items():
            if not has_data:
                empty.append(f"{panel.get('title')!r} query {ref}")
    assert not empty, f"{uid}: no data through Grafana for " + ", ".join(empty)
