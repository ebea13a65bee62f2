"""Dashboards for the Grafana Operator (grafanaOperator.enabled): GrafanaDashboard
resources instead of the sidecar ConfigMaps, gzip-compressed (spec.gzipJson,
precompressed at render) when an environment file enables the operator, plain
(spec.json) otherwise, so the copies cost no release that does not use them."""
from __future__ import annotations

import base64
import gzip
import json
import shutil
from pathlib import Path

import pytest

import yaml

from conftest import ROOT, helm_template, manifests, run_generator
from generator.content.dashboards import fill_placeholders

# the chart-wide dashboard settings (refresh, time range, timezone) the compressed form carries
DEFAULTS = yaml.safe_load((ROOT / "values" / "defaults.yaml").read_text())["dashboards"]

ON = ["--set", "grafanaOperator.enabled=true"]
DEFAULTS_ONLY = ["--set", "global.cluster=test", "--set", "global.environment=test"]   # no environment file: the chart's defaults


def render_copy(root: Path, operator_env: str | None) -> Path:
    for name in ("templates_src", "values", "docs"):
        if (ROOT / name).exists():
            shutil.copytree(ROOT / name, root / name)
    if operator_env:
        with (root / "values" / f"{operator_env}.yaml").open("a") as f:
            f.write("\ngrafanaOperator:\n  enabled: true\n")
    proc = run_generator(root, "render")
    assert proc.returncode == 0, proc.stderr
    return root / "chart"


@pytest.fixture(scope="module")
def chart(tmp_path_factory) -> Path:
    """Rendered with an environment that uses the operator: compressed copies carried."""
    return render_copy(tmp_path_factory.mktemp("gzip"), "prod")


@pytest.fixture(scope="module")
def plain_chart(tmp_path_factory) -> Path:
    """Rendered with no environment using the operator: no compressed copies."""
    return render_copy(tmp_path_factory.mktemp("plain"), None)


def board_of(obj: dict) -> dict:
    spec = obj["spec"]
    if "gzipJson" in spec:
        return json.loads(gzip.decompress(base64.b64decode(spec["gzipJson"])))
    return json.loads(spec["json"])


def dashboards_of(objects: list[dict], kind: str) -> dict[str, dict]:
    out = {}
    for obj in objects:
        if obj["kind"] == "GrafanaDashboard" == kind:
            out[board_of(obj)["uid"]] = obj
        elif obj["kind"] == "ConfigMap" == kind:
            for key, text in (obj.get("data") or {}).items():
                if key.endswith(".json") and json.loads(text).get("panels") is not None:
                    out[key[:-5]] = obj
    return out


def sidecar_json(chart: Path, env: str | None, major: int) -> dict[str, dict]:
    """Each dashboard's JSON as the sidecar ConfigMaps ship it with these values."""
    objects = manifests(helm_template(env, major, chart=chart, extra=[] if env else DEFAULTS_ONLY).stdout)
    return {uid: json.loads(obj["data"][f"{uid}.json"]) for uid, obj in dashboards_of(objects, "ConfigMap").items()}


@pytest.mark.parametrize("major", [3, 4])
def test_each_dashboard_ships_gzip_compressed_and_decompresses_to_the_same_json(chart, major):
    # the compressed form carries the chart-wide settings of the defaults: compare without env values
    objects = manifests(helm_template(None, major, chart=chart, extra=ON + DEFAULTS_ONLY).stdout)
    compressed = dashboards_of(objects, "GrafanaDashboard")
    expected = sidecar_json(chart, None, major)
    assert compressed and set(compressed) == set(expected)
    for uid, obj in compressed.items():
        assert "json" not in obj["spec"]
        assert json.loads(gzip.decompress(base64.b64decode(obj["spec"]["gzipJson"]))) == expected[uid]
        assert obj["spec"]["instanceSelector"] == {"matchLabels": {"dashboards": "grafana"}}
        assert obj["apiVersion"] == "grafana.integreatly.org/v1beta1"
    assert not dashboards_of(objects, "ConfigMap"), "the sidecar ConfigMaps must not ship as well"


@pytest.mark.parametrize("major", [3, 4])
def test_the_default_ships_configmaps_and_no_grafana_operator_resources(plain_chart, major):
    objects = manifests(helm_template("prod", major, chart=plain_chart).stdout)
    assert not [o for o in objects if o["kind"] == "GrafanaDashboard"]
    assert dashboards_of(objects, "ConfigMap")


def test_a_disabled_dashboard_and_a_folder_apply_to_the_compressed_form_too(chart):
    uid = sorted(p.stem for p in (chart / "files" / "dashboards").glob("*.json"))[0]
    objects = manifests(helm_template("prod", 4, chart=chart, extra=ON + [
        "--set", f"dashboards.items.{uid}.folder=Elsewhere"]).stdout)
    assert dashboards_of(objects, "GrafanaDashboard")[uid]["spec"]["folder"] == "Elsewhere"
    objects = manifests(helm_template("prod", 4, chart=chart, extra=ON + [
        "--set", f"dashboards.items.{uid}.enabled=false"]).stdout)
    assert uid not in dashboards_of(objects, "GrafanaDashboard")


@pytest.mark.parametrize("major", [3, 4])
def test_without_an_environment_using_the_operator_the_chart_carries_no_compressed_copies(plain_chart, major):
    assert not (plain_chart / "files" / "dashboards-gzip").exists()
    objects = manifests(helm_template("prod", major, chart=plain_chart, extra=ON).stdout)
    boards = dashboards_of(objects, "GrafanaDashboard")
    expected = sidecar_json(plain_chart, "prod", major)
    assert boards and set(boards) == set(expected)
    for uid, obj in boards.items():
        assert "gzipJson" not in obj["spec"] and json.loads(obj["spec"]["json"]) == expected[uid]


def test_the_compressed_file_is_byte_stable_and_smaller_than_the_json(chart):
    assert list((chart / "files" / "dashboards-gzip").glob("*.gz.b64"))
    for path in (chart / "files" / "dashboards").glob("*.json"):
        packed = (chart / "files" / "dashboards-gzip" / f"{path.name}.gz.b64").read_bytes()
        filled = fill_placeholders(path.read_bytes(), DEFAULTS)
        assert packed == base64.b64encode(gzip.compress(filled, compresslevel=9, mtime=0))
        assert len(packed) < len(path.read_bytes()) / 2
