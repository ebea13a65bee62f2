"""Dashboard variable references: a query using `$namespace` in a dashboard without that variable fails the render.

The issue: a panel built from the shared chain selector (`lib/queries.j2` CHAIN) references `$namespace`
and `$chain_id`; in a dashboard that lacks them Grafana sends the query with the literal text and shows
no data. Render and lint must name the dashboard file, the panel and the variable.
"""
from __future__ import annotations

import copy
import shutil

import pytest

from conftest import ROOT, run_generator, tree_bytes
from generator import dashlint

TEMPLATE = ROOT / "templates_src" / "dashboards" / "k8s-nodes.yaml.j2"
PANEL = ('  - << stat("Chain height", "max(cometbft_consensus_height{" ~ CHAIN ~ "})", '
         '"Height of the selected chain.", unit="none", w=6) >>\n')


@pytest.fixture
def project(tmp_path):
    for name in ("templates_src", "values", "chart", "docs", "integrations"):
        if (ROOT / name).exists():
            shutil.copytree(ROOT / name, tmp_path / name)
    return tmp_path


def test_a_panel_using_a_variable_its_dashboard_lacks_fails_the_render_naming_dashboard_panel_and_variable(project):
    path = project / "templates_src" / "dashboards" / "k8s-nodes.yaml.j2"
    text = path.read_text()
    assert "namespace" not in text.split("variables:", 1)[1].split("\n", 1)[0], "k8s-nodes has a namespace variable"
    text = text.replace('<% from "lib/queries.j2" import KNODE %>', '<% from "lib/queries.j2" import KNODE, CHAIN %>')
    path.write_text(text.rstrip("\n") + "\n" + PANEL)
    before = tree_bytes(project / "chart")
    proc = run_generator(project, "render")
    assert proc.returncode == 1, proc.stdout
    err = proc.stderr
    assert "templates_src/dashboards/k8s-nodes.yaml.j2" in err and "'Chain height'" in err, err
    assert "uses $namespace, which is not a variable of this dashboard" in err
    assert "uses $chain_id" in err and "variables: cluster, datasource, node" in err
    assert "Traceback" not in err
    assert tree_bytes(project / "chart") == before, "a failed render changed chart/"


@pytest.mark.parametrize("text,name", [
    ('sum(up{namespace=~"$namespace"})', "namespace"),
    ('sum(up{namespace=~"${namespace}"})', "namespace"),
    ('sum(up{namespace=~"${namespace:regex}"})', "namespace"),
    ('sum(up{pod=~"[[pod]]"})', "pod"),
])
def test_every_grafana_variable_syntax_is_checked(text, name):
    dashboard = {"uid": "x", "templating": {"list": [{"name": "datasource"}, {"name": "cluster"}]},
                 "panels": [{"id": 1, "title": "T", "type": "stat", "targets": [{"refId": "A", "expr": text}]}]}
    problems = dashlint.variable_reference_problems(dashboard)
    assert len(problems) == 1 and f"uses ${name}," in problems[0] and "panel 1 'T'" in problems[0], problems


def test_grafana_builtins_label_replace_groups_and_defined_variables_are_not_findings():
    expr = ('label_replace(sum(rate(up{cluster=~"$cluster"}[$__rate_interval])), "x", "$1", "y", "(.*)")'
            ' and on() vector($__range_s) > ${cluster:raw}')
    dashboard = {"uid": "x", "templating": {"list": [{"name": "datasource"}, {"name": "cluster"}]},
                 "links": [{"url": "/d/y?${__url_time_range}&$__all_variables"}],
                 "panels": [{"id": 1, "title": "T", "type": "stat", "targets": [{"refId": "A", "expr": expr}],
                             "fieldConfig": {"defaults": {"links": [{"url": "/d/z?var-pod=${__field.labels.pod}"}]}}}]}
    assert dashlint.variable_reference_problems(dashboard) == []


def test_a_variable_whose_query_uses_a_missing_variable_is_named():
    dashboard = {"uid": "x", "templating": {"list": [
        {"name": "datasource"}, {"name": "chain_id", "query": {"query": 'label_values(up{namespace=~"$namespace"}, chain_id)'}}]},
        "panels": []}
    problems = dashlint.variable_reference_problems(dashboard)
    assert problems and problems[0].startswith("variable 'chain_id': ") and "$namespace" in problems[0]


def test_the_shipped_dashboards_reference_only_their_own_variables():
    dashboards = dashlint.load_chart_dashboards(ROOT / "chart")
    assert len(dashboards) >= 15
    problems = {uid: dashlint.variable_reference_problems(copy.deepcopy(d)) for uid, d in dashboards.items()}
    assert {uid: p for uid, p in problems.items() if p} == {}
