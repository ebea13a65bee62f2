"""Compressed dashboards for the Grafana Operator (grafanaOperator.enabled):
GrafanaDashboard resources whose spec.gzipJson holds each dashboard gzip'd,
precompressed at render, instead of the sidecar ConfigMaps."""
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


@pytest.fixture(scope="module")
def chart(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("gzip")
    for name in ("templates_src", "values", "docs"):
        if (ROOT / name).exists():
            shutil.copytree(ROOT / name, root / name)
    proc = run_generator(root, "render")
    assert proc.returncode == 0, proc.stderr
    return root / "chart"


def dashboards_of(objects: list[dict], kind: str) -> dict[str, dict]:
    out = {}
    for obj in objects:
        if obj["kind"] == "GrafanaDashboard" == kind:
            board = json.loads(gzip.decompress(base64.b64decode(obj["spec"]["gzipJson"])))
            out[board["uid"]] = obj
        elif obj["kind"] == "ConfigMap" == kind:
            for key, text in (obj.get("data") or {}).items():
                if key.endswith(".json") and json.loads(text).get("panels") is not None:
                    out[key[:-5]] = obj
    return out


@pytest.mark.parametrize("major", [3, 4])
def test_each_dashboard_ships_gzip_compressed_and_decompresses_to_the_same_json(chart, major):
    objects = manifests(helm_template("prod", major, chart=chart, extra=ON).stdout)
    compressed = dashboards_of(objects, "GrafanaDashboard")
    files = {p.stem: json.loads(fill_placeholders(p.read_bytes(), DEFAULTS))
             for p in (chart / "files" / "dashboards").glob("*.json")}
    assert compressed and set(compressed) == set(files)
    for uid, obj in compressed.items():
        assert json.loads(gzip.decompress(base64.b64decode(obj["spec"]["gzipJson"]))) == files[uid]
        assert obj["spec"]["instanceSelector"] == {"matchLabels": {"dashboards": "grafana"}}
        assert obj["apiVersion"] == "grafana.integreatly.org/v1beta1"
    assert not dashboards_of(objects, "ConfigMap"), "the sidecar ConfigMaps must not ship as well"


@pytest.mark.parametrize("major", [3, 4])
def test_the_default_ships_configmaps_and_no_grafana_operator_resources(chart, major):
    objects = manifests(helm_template("prod", major, chart=chart).stdout)
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


def test_the_compressed_file_is_byte_stable_and_smaller_than_the_json(chart):
    for path in (chart / "files" / "dashboards").glob("*.json"):
        packed = (chart / "files" / "dashboards-gzip" / f"{path.name}.gz.b64").read_bytes()
        filled = fill_placeholders(path.read_bytes(), DEFAULTS)
        assert packed == base64.b64encode(gzip.compress(filled, compresslevel=9, mtime=0))
        assert len(packed) < len(path.read_bytes()) / 2
