"""Dashboard previews (`python -m generator preview`) on the simulator's data.

One simulator + real Prometheus for the module (generator.preview.stack);
the shipped dashboards are previewed once through the command line, and
planted faults are previewed in memory to show each check catches its fault.
"""
from __future__ import annotations

import copy
import json
import re
import shutil
import struct
import subprocess
import sys
import urllib.parse
import urllib.request
from html import unescape
from pathlib import Path

import pytest

from conftest import ROOT, run_generator

from generator.preview import Options, page, preview, source
from generator.preview.queries import Prometheus, Window, resolve, variable_values
from generator.preview.stack import local_stack
from generator.preview.units import fmt

try:
    SHIPPED = sorted(source.dashboards(ROOT, "prod"))
except Exception as e:  # a broken render fails the tests below instead of their collection
    SHIPPED = [f"(render failed: {e})"]
WARMUP = 30
RANGE = "30s"
MODES, THEMES = tuple(page.MODES), page.THEMES


@pytest.fixture(scope="module")
def prometheus_url():
    with local_stack(ROOT, warmup=WARMUP) as url:
        yield url


@pytest.fixture(scope="module")
def shipped():
    return source.dashboards(ROOT, "prod")


@pytest.fixture(scope="module")
def previewed(prometheus_url, tmp_path_factory):
    out = tmp_path_factory.mktemp("preview")
    proc = run_generator(ROOT, "preview", "--env", "prod", "--prometheus", prometheus_url, "--range", RANGE,
                         "--out", str(out))
    return proc, out


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])


def page_size(html: str) -> tuple[int, int]:
    m = re.search(r'<body style="width:(\d+)px;height:(\d+)px"', html)
    return int(m.group(1)), int(m.group(2))


def test_the_command_exits_0_only_without_findings_and_lists_them_in_findings_json(previewed):
    proc, out = previewed
    findings = json.loads((out / "findings.json").read_text())
    assert proc.returncode == (1 if findings else 0), proc.stderr
    assert proc.stdout.count("finding: ") == len(findings)


@pytest.mark.parametrize("uid", SHIPPED)
def test_a_shipped_dashboard_previews_without_findings_on_the_simulators_data(previewed, uid):
    _, out = previewed
    findings = [f for f in json.loads((out / "findings.json").read_text()) if f["dashboard"] == uid]
    assert (out / uid / "desktop-dark.html").is_file()
    assert not findings, "\n".join(f"{f['panel']}: {f['check']}: {f['message']}" for f in findings)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("theme", THEMES)
def test_every_dashboard_has_a_picture_of_the_pages_size_in_each_layout_and_theme(previewed, shipped, mode, theme):
    _, out = previewed
    for uid in shipped:
        html = out / uid / f"{mode}-{theme}.html"
        width, height = page_size(html.read_text())
        assert width == page.MODES[mode]
        assert png_size(html.with_suffix(".png")) == (width, height)


def test_dark_and_light_pictures_differ(previewed, shipped):
    _, out = previewed
    for uid in shipped:
        for mode in MODES:
            assert (out / uid / f"{mode}-dark.png").read_bytes() != (out / uid / f"{mode}-light.png").read_bytes()


def test_the_index_links_every_dashboard_page_and_picture(previewed, shipped):
    _, out = previewed
    index = (out / "index.html").read_text()
    for uid in shipped:
        for mode in MODES:
            for theme in THEMES:
                assert f'href="{uid}/{mode}-{theme}.html"' in index
                assert f'src="{uid}/{mode}-{theme}.png"' in index


def test_desktop_places_panels_on_the_24_column_grid_and_phone_stacks_them_full_width(previewed, shipped):
    _, out = previewed
    for uid, dashboard in shipped.items():
        for mode in MODES:
            html = (out / uid / f"{mode}-dark.html").read_text()
            boxes = [tuple(float(v) for v in m) for m in re.findall(
                r'class="panel"[^>]*style="left:([\d.]+)px;top:([\d.]+)px;width:([\d.]+)px;height:([\d.]+)px', html)]
            shown = [p for p in dashboard["panels"] if p.get("type") != "row"]
            assert len(boxes) == len(shown)
            if mode == "phone":
                assert {b[2] for b in boxes} == {page.MODES["phone"] - 2 * page.PAD["phone"]}
                tops = [b[1] for b in boxes]
                assert tops == sorted(tops) and len(set(tops)) == len(tops)
            else:
                col = (page.MODES["desktop"] - 2 * page.PAD["desktop"] - 23 * page.MARGIN) / 24
                for (left, top, width, height), p in zip(boxes, shown):
                    g = p["gridPos"]
                    assert left == pytest.approx(page.PAD["desktop"] + g["x"] * (col + page.MARGIN), abs=0.1)
                    assert width == pytest.approx(g["w"] * col + (g["w"] - 1) * page.MARGIN, abs=0.1)
                    assert height == page.panel_height(g["h"])


def test_each_panel_shows_its_title_unit_and_threshold_steps(previewed, shipped):
    _, out = previewed
    for uid, dashboard in shipped.items():
        html = (out / uid / "desktop-dark.html").read_text()
        panels = re.findall(r'<div class="panel" data-title="([^"]*)".*?<div class="foot">(.*?)</div></div>', html)
        shown = [p for p in dashboard["panels"] if p.get("type") != "row"]
        assert [unescape(t) for t, _ in panels] == [p.get("title", "") for p in shown]
        for (_, foot), p in zip(panels, shown):
            if p.get("type") == "text":
                continue
            d = p.get("fieldConfig", {}).get("defaults", {})
            assert (f"unit {d['unit']}" if d.get("unit") else "no unit") in foot
            if p["type"] in ("stat", "gauge", "bargauge"):
                assert foot.count("<i ") == len(d["thresholds"]["steps"])


def test_a_stat_shows_the_value_prometheus_returns_for_its_query_with_variables_resolved(previewed, shipped,
                                                                                        prometheus_url):
    _, out = previewed
    checked = 0
    for uid, dashboard in shipped.items():
        html = (out / uid / "desktop-dark.html").read_text()
        end = float(re.search(r'data-end="([\d.]+)"', html).group(1))
        values = variable_values(dashboard)
        blocks = html.split('<div class="panel" ')[1:]
        for p, block in zip([p for p in dashboard["panels"] if p.get("type") != "row"], blocks):
            if p.get("type") != "stat" or len(p.get("targets", [])) != 1:
                continue
            query = resolve(p["targets"][0]["expr"], values, Window(end=end, seconds=30, scrape_interval=2))
            url = f"{prometheus_url}/api/v1/query?" + urllib.parse.urlencode({"query": query, "time": f"{end:.3f}"})
            rows = json.load(urllib.request.urlopen(url))["data"]["result"]
            if not rows:
                continue  # a query without data is a finding of its own test
            d = p["fieldConfig"]["defaults"]
            want = {fmt(float(r["value"][1]), d.get("unit"), d.get("decimals")) for r in rows}
            shown = set(unescape(v) for v in re.findall(r'data-fit="value"[^>]*>([^<]*)<', block))
            assert shown == want, (p["title"], query)
            checked += 1
    assert checked, "no single-query stat panel in the shipped dashboards"


@pytest.mark.parametrize("expr, expected", [
    ('up{cluster=~"$cluster"}', 'up{cluster=~".*"}'),
    ('up{chain_id=~"${chain_id}"}', 'up{chain_id=~".*"}'),
    ('up{chain_id=~"[[chain_id]]"}', 'up{chain_id=~".*"}'),
    ("rate(x_total[$__rate_interval])", "rate(x_total[8s])"),
    ("increase(x_total[$__range])", "increase(x_total[5m])"),
    ("avg_over_time(x[$__interval])", "avg_over_time(x[2s])"),
])
def test_variables_resolve_as_grafana_resolves_them(expr, expected):
    dashboard = {"templating": {"list": [
        {"name": "datasource", "type": "datasource"},
        {"name": "cluster", "type": "query", "includeAll": True, "multi": True, "current": {"value": "$__all"}},
        {"name": "chain_id", "type": "query", "includeAll": True, "allValue": ".*", "current": {"value": ["$__all"]}}]}}
    # 5 minutes at 150 points: a 2s step; rate interval = max(4 x 2s scrape, 2s step + 2s scrape) = 8s
    window = Window(end=1_000_000, seconds=300, scrape_interval=2, points=150)
    assert resolve(expr, variable_values(dashboard), window) == expected


@pytest.mark.parametrize("value, unit, shown", [
    (0.25, "percentunit", "25%"), (99.5, "percent", "99.5%"), (0.0042, "s", "4.2 ms"), (90, "s", "1.5 min"),
    (1536, "bytes", "1.5 KiB"), (2_500_000, "decbytes", "2.5 MB"), (12.5, "reqps", "12.5 req/s"),
    (4_308_165, "none", "4308165"), (4_308_165, "short", "4.31 M"), (None, "s", "No data"),
])
def test_values_are_formatted_with_their_grafana_unit(value, unit, shown):
    assert fmt(value, unit) == shown


def _overview(shipped) -> dict:
    uid = "virtengine-overview" if "virtengine-overview" in shipped else sorted(shipped)[0]
    return copy.deepcopy(shipped[uid])


def _first(dashboard, kind):
    return next(p for p in dashboard["panels"] if p.get("type") == kind)


def _plant(fault: str, d: dict) -> None:
    stat, series = _first(d, "stat"), _first(d, "timeseries")
    if fault == "past column 24":
        stat["gridPos"]["x"] = 26 - stat["gridPos"]["w"]
    elif fault == "overlap":
        series["gridPos"].update(x=stat["gridPos"]["x"] + 1, y=stat["gridPos"]["y"])
    elif fault == "stat without unit":
        del stat["fieldConfig"]["defaults"]["unit"]
    elif fault == "misspelt metric":
        series["targets"][0]["expr"] = re.sub(r"\b(cometbft|virtengine)_(\w+)", r"\1_\2_typo",
                                              series["targets"][0]["expr"], count=1)
    elif fault == "misspelt label":
        stat["targets"][0]["expr"] = re.sub(r"\{", '{chian_id="virtengine-1", ', stat["targets"][0]["expr"], count=1)
    elif fault == "title too long for a phone":
        series["title"] = "Block height of every node of every chain in every cluster we run, per validator"


@pytest.mark.parametrize("fault, check, says", [
    ("past column 24", "layout", "the grid has 24 columns"),
    ("overlap", "layout", "overlaps panel"),
    ("stat without unit", "unit", "without fieldConfig.defaults.unit"),
    ("misspelt metric", "no-data", "returns no data"),
    ("misspelt label", "no-data", "returns no data"),
    ("title too long for a phone", "fit", "at phone width"),
])
def test_a_planted_fault_is_a_finding_of_its_check(fault, check, says, shipped, prometheus_url, tmp_path):
    d = _overview(shipped)
    clean = preview(ROOT, Options(prometheus=prometheus_url, out=tmp_path / "clean", range=RANGE, modes=("phone",),
                                  themes=("dark",), screenshots=False), boards={d["uid"]: copy.deepcopy(d)})
    _plant(fault, d)
    report = preview(ROOT, Options(prometheus=prometheus_url, out=tmp_path / "bad", range=RANGE, modes=("phone",),
                                   themes=("dark",), screenshots=False), boards={d["uid"]: d})
    new = [f for f in report.findings if f not in clean.findings]
    assert [f.check for f in new] and {f.check for f in new} == {check}, new
    assert any(says in f.message for f in new), new


def test_the_command_exits_1_and_names_a_query_without_data(prometheus_url, project, tmp_path):
    # a label value no target has: the metrics catalog cannot see it, only the data can
    template = project / "templates_src" / "dashboards" / "virtengine-overview.yaml.j2"
    text = template.read_text()
    planted = re.sub(r"\b((?:cometbft|virtengine)_\w+)\{", r"\1{chain_id='virtengine-typo', ", text, count=1)
    assert planted != text
    template.write_text(planted)
    proc = run_generator(project, "preview", "--prometheus", prometheus_url, "--range", RANGE, "--out",
                         str(tmp_path / "out"), "--mode", "phone", "--theme", "dark", "--no-screenshots")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert re.search(r'finding: .*no-data: query A returns no data \(query: .*virtengine-typo', proc.stdout), proc.stdout
    clean = run_generator(ROOT, "preview", "--prometheus", prometheus_url, "--range", RANGE, "--out",
                          str(tmp_path / "clean"), "--mode", "phone", "--theme", "dark", "--no-screenshots")
    assert "virtengine-typo" not in clean.stdout


@pytest.mark.parametrize("args, says", [
    (["--env", "qa"], "unknown environment 'qa'; allowed: dev, prod, staging"),
    (["--range", "five minutes"], "--range: expected a duration like 30s"),
    (["--diff", "no-such-branch"], "--diff no-such-branch: no such git commit or branch"),
    (["--prometheus", "http://127.0.0.1:9"], "cannot reach Prometheus at http://127.0.0.1:9"),
])
def test_bad_arguments_exit_1_with_a_message_naming_them(args, says, prometheus_url, tmp_path):
    full = ["preview", "--out", str(tmp_path / "o"), "--no-screenshots"]
    if "--prometheus" not in args:
        full += ["--prometheus", prometheus_url]
    proc = run_generator(ROOT, *full, *args)
    assert proc.returncode == 1 and says in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


def test_diff_mode_shows_a_changed_dashboard_before_and_after_side_by_side(prometheus_url, project, tmp_path):
    def git(*a):
        subprocess.run(["git", "-C", str(project), *a], check=True, capture_output=True)
    git("init", "-q", "-b", "main")
    git("add", "templates_src", "values")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "base")
    template = project / "templates_src" / "dashboards" / "virtengine-overview.yaml.j2"
    text = template.read_text()
    m = re.search(r'stat\("([^"]+)"', text) or re.search(r'title: "?([^"\n]+)"?', text)
    old_title = m.group(1)
    template.write_text(text.replace(f'"{old_title}"', '"Renamed in review"', 1))
    out = tmp_path / "out"
    proc = run_generator(project, "preview", "--prometheus", prometheus_url, "--range", RANGE, "--out", str(out),
                         "--mode", "phone", "--theme", "dark", "--diff", "main")
    assert proc.returncode in (0, 1), proc.stderr
    uid = "virtengine-overview"
    diff = (out / "diff" / f"{uid}.html").read_text()
    assert f"<li>{old_title}: removed</li>" in diff and "<li>Renamed in review: added</li>" in diff
    for side in ("before", "after"):
        for mode in ("desktop", "phone"):
            assert png_size(out / "diff" / uid / side / f"{mode}-dark.png")[0] == page.MODES[mode]
    assert f"diff/{uid}.html" in (out / "index.html").read_text()


def test_without_a_url_the_preview_starts_the_simulator_and_prometheus_itself(tmp_path):
    proc = run_generator(ROOT, "preview", "--warmup", "12", "--out", str(tmp_path / "o"), "--mode", "phone",
                         "--theme", "light", "--no-screenshots")
    assert f"previewed {len(SHIPPED)} dashboards of prod" in proc.stdout, proc.stdout + proc.stderr
    assert len(list((tmp_path / "o").glob("*/phone-light.html"))) == len(SHIPPED)
    # the simulator serves the catalog: nearly every query has data (the rest are findings of the tests above)
    queries = sum(len(p.get("targets", [])) for d in source.dashboards(ROOT, "prod").values() for p in d["panels"])
    empty = [f for f in json.loads((tmp_path / "o" / "findings.json").read_text()) if f["check"] == "no-data"]
    assert len(empty) < queries * 0.2, empty
