"""The render's fast paths against the libraries they stand in for, on seeded random inputs.

Render decides the valid case of the values without jsonschema (generator/schema.py ``_surely_valid``), reads
YAML from libyaml's nodes (generator/yamlio.py ``_construct_fast``) and writes indented JSON by its own walk
(``dump_json``). Each must never disagree with the library: a fast "valid" for values jsonschema refuses would
let a bad environment through; a different byte would change the chart."""
from __future__ import annotations

import copy
import json
import math
import random
from pathlib import Path

import jsonschema
import pytest
import yaml

from generator import build, yamlio
from generator import schema as values_schema

ROOT = Path(__file__).resolve().parent.parent
SEED = 16
WEIRD = [None, True, False, 0, -1, -0.5, 1, 1.5, 2, 101, 1e9, "", "x", "5m", "-5m", "0", "1.0", "10s", [], [1],
         ["a"], {}, {"a": 1}, {"enabled": "yes"}]


@pytest.fixture(scope="module")
def schema_and_values():
    out = build.build(ROOT)
    return out.shared["values_schema"], out.merged_values


def _leaves(data, path=()):
    if isinstance(data, dict):
        yield path, data
        for k, v in data.items():
            yield from _leaves(v, (*path, k))
    elif isinstance(data, list):
        yield path, data
        for i, v in enumerate(data):
            yield from _leaves(v, (*path, i))
    else:
        yield path, data


def _mutate(values: dict, rng: random.Random) -> dict:
    out = copy.deepcopy(values)
    paths = [p for p, _ in _leaves(out) if p]
    for _ in range(rng.choice((1, 1, 2, 3))):
        path = rng.choice(paths)
        parent = out
        for part in path[:-1]:
            parent = parent[part]
        how = rng.random()
        if how < 0.7:
            parent[path[-1]] = copy.deepcopy(rng.choice(WEIRD))
        elif how < 0.85 and isinstance(parent, dict):
            parent.pop(path[-1], None)
        elif isinstance(parent, dict):
            parent["unknownKey" + str(rng.randrange(3))] = copy.deepcopy(rng.choice(WEIRD))
        paths = [p for p, _ in _leaves(out) if p]
    return out


def test_the_values_fast_path_never_calls_valid_what_jsonschema_refuses(schema_and_values):
    schema, merged = schema_and_values
    validator = jsonschema.Draft7Validator(values_schema.for_helm(schema))
    rng = random.Random(SEED)
    fast_valid = refused = 0
    for name, values in sorted(merged.items()):
        assert values_schema._surely_valid(schema, values), f"{name}: the shipped values take the slow path"
        assert validator.is_valid(values)
        for _ in range(400):
            m = _mutate(values, rng)
            if values_schema._surely_valid(schema, m):
                fast_valid += 1
                assert validator.is_valid(m), (name, [e.message for e in validator.iter_errors(m)][:3])
            else:
                refused += 1
    # both outcomes occur, or the comparison proved nothing
    assert fast_valid > 50 and refused > 50, (fast_valid, refused)


def _yaml_files():
    skip = {".git", ".venv", ".tools", "node_modules", ".cache", "bad_inputs"}   # bad_inputs: refused on purpose
    return sorted(p for p in ROOT.rglob("*.yaml") if not skip & set(p.relative_to(ROOT).parts)
                  and "templates" not in p.relative_to(ROOT).parts)


def test_yaml_read_by_the_fast_path_equals_pyyaml_on_every_yaml_file_of_the_project():
    files = _yaml_files()
    assert len(files) > 50
    for path in files:
        text = path.read_text()
        try:
            expected = list(yaml.safe_load_all(text))
        except yaml.YAMLError:
            continue
        if len(expected) != 1:
            continue
        got = yamlio.plain(yamlio.loads_yaml(text, str(path)))
        assert got == expected[0], path.relative_to(ROOT)


def _random_json(rng: random.Random, depth: int = 0):
    kind = rng.random()
    if depth > 3 or kind < 0.4:
        return rng.choice([None, True, False, 0, -3, 7, 0.1, 1e21, -2.5e-7, 1.0, "", "a\"b", "ünï", "\u2028x",
                           "tab\there", "\x01", "<b>&", "'single'", math.pi])
    if kind < 0.7:
        return [_random_json(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {rng.choice(["a", "b", "é", "Z", "k k", "1", "$x"]) + str(i): _random_json(rng, depth + 1)
            for i in range(rng.randrange(5))}


def test_indented_json_equals_json_dumps_on_random_documents_and_every_dashboard():
    rng = random.Random(SEED)
    docs = [_random_json(rng) for _ in range(3000)]
    docs += [json.loads(p.read_text()) for p in sorted((ROOT / "chart" / "files" / "dashboards").glob("*.json"))]
    for doc in docs:
        assert yamlio.dump_json(doc) == json.dumps(doc, sort_keys=True, indent=2, ensure_ascii=False) + "\n", doc
