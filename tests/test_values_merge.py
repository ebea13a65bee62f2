"""The merge rules of layered values, as a table: Helm's own rules."""
import subprocess

import pytest
import yaml

from generator import tools
from generator.values import merge, strip_hidden

CASES = [
    # (name, base, overlay, expected)
    ("maps merge deeply", {"a": {"b": 1, "c": 2}}, {"a": {"c": 3}}, {"a": {"b": 1, "c": 3}}),
    ("new keys are added", {"a": 1}, {"b": 2}, {"a": 1, "b": 2}),
    ("lists replace, never append", {"a": [1, 2, 3]}, {"a": [9]}, {"a": [9]}),
    ("null deletes a key", {"a": 1, "b": 2}, {"a": None}, {"b": 2}),
    ("null deletes a nested map", {"a": {"b": {"c": 1}, "d": 2}}, {"a": {"b": None}}, {"a": {"d": 2}}),
    ("a scalar replaces a map", {"a": {"b": 1}}, {"a": "x"}, {"a": "x"}),
    ("a map replaces a scalar", {"a": "x"}, {"a": {"b": 1}}, {"a": {"b": 1}}),
    ("false is a value, not a deletion", {"a": True}, {"a": False}, {"a": False}),
    ("an empty map keeps the defaults", {"a": {"b": 1}}, {"a": {}}, {"a": {"b": 1}}),
    ("an empty list replaces", {"a": [1]}, {"a": []}, {"a": []}),
]


@pytest.mark.parametrize("name,base,overlay,expected", CASES, ids=[c[0] for c in CASES])
def test_merge_rule(name, base, overlay, expected):
    assert merge(base, overlay) == expected


def test_merge_does_not_change_its_inputs():
    base, overlay = {"a": {"b": [1]}}, {"a": {"c": 2}}
    merge(base, overlay)
    assert base == {"a": {"b": [1]}} and overlay == {"a": {"c": 2}}


@pytest.mark.parametrize("name,base,overlay,expected", CASES, ids=[c[0] for c in CASES])
def test_helm_merges_values_the_same_way(tmp_path, name, base, overlay, expected):
    """The table holds for Helm itself: a chart that prints .Values.t."""
    chart = tmp_path / "c"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: c\nversion: 0.1.0\n")
    (chart / "values.yaml").write_text(yaml.safe_dump({"t": base}))
    (chart / "templates" / "out.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata:\n  t: {{ .Values.t | toJson | quote }}\n")
    (tmp_path / "o.yaml").write_text(yaml.safe_dump({"t": overlay}))
    out = subprocess.run([tools.helm(3), "template", str(chart), "-f", str(tmp_path / "o.yaml")],
                         capture_output=True, text=True, check=True).stdout
    assert yaml.safe_load(yaml.safe_load(out)["data"]["t"]) == expected


def test_hidden_keys_are_dropped_at_every_depth():
    assert strip_hidden({"_a": 1, "b": {"_c": 2, "d": [{"_e": 3, "f": 4}]}}) == {"b": {"d": [{"f": 4}]}}
