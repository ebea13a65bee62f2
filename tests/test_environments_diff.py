"""`python -m generator diff`: what an environment change does, as a readable diff of rendered manifests."""
from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from conftest import ROOT, run_generator


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory):
    root = tmp_path_factory.mktemp("project")
    for name in ("templates_src", "values"):
        shutil.copytree(ROOT / name, root / name)
    return root


def test_diff_between_two_environments_names_each_changed_object_and_line(snapshot):
    proc = run_generator(snapshot, "diff", "staging", "prod")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "~ changed ServiceMonitor/monitoring/vemon-virtengine-observability-cometbft" in out
    assert "-      replacement: virtengine-staging" in out and "+      replacement: virtengine-prod" in out
    assert "-  - interval: 30s" in out and "+  - interval: 15s" in out
    assert out.rstrip().splitlines()[-1].startswith("staging -> prod: ")


def test_diff_shows_a_component_switched_on_as_an_added_object(snapshot):
    out = run_generator(snapshot, "diff", "dev", "prod").stdout
    assert "+ added PodMonitor/monitoring/vemon-virtengine-observability-mlinference" in out
    added = [line for line in out.splitlines() if line.startswith("+ added ")]
    assert f"{len(added)} added, 0 removed" in out.splitlines()[-1]


def test_diff_of_an_environment_with_itself_is_empty_but_counts_objects(snapshot):
    out = run_generator(snapshot, "diff", "prod", "prod").stdout
    last = out.rstrip().splitlines()
    assert len(last) == 1 and "0 changed, 0 added, 0 removed" in last[0]


def test_dashboard_json_is_diffed_line_by_line_not_as_one_blob():
    from generator.diffenv import diff_objects, objects
    doc = ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: d, namespace: m}\n"
           "data:\n  d.json: '{\"title\": \"T\", \"panels\": [{\"id\": 1, \"title\": \"%s\"}]}'\n")
    out = diff_objects(objects(doc % "Block height"), objects(doc % "Block time"), "a", "b")
    changed = [line for line in out.splitlines() if line.startswith(("  -", "  +")) and "title" in line]
    assert changed == ["  -      title: Block height", "  +      title: Block time"]


def git(repo, *args):
    return subprocess.run(["git", "-C", str(repo), "-c", "user.email=t@example.com", "-c", "user.name=t", *args],
                          capture_output=True, text=True, check=True)


def test_diff_against_main_renders_mains_chart_in_a_temporary_worktree(snapshot, tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree(snapshot, repo)
    shutil.copytree(ROOT / "generator", repo / "generator", ignore=shutil.ignore_patterns("__pycache__"))
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "main")
    prod = repo / "values" / "prod.yaml"
    prod.write_text(prod.read_text().replace("  interval: 30s", "  interval: 45s"))
    proc = run_generator(repo, "diff", "prod", "--base", "main")
    assert proc.returncode == 0, proc.stderr
    assert "-  - interval: 30s" in proc.stdout and "+  - interval: 45s" in proc.stdout
    assert "main:prod -> working-tree:prod: 3 changed" in proc.stdout
    assert len(git(repo, "worktree", "list").stdout.splitlines()) == 1


@pytest.mark.parametrize("args,message", [
    (["prod"], "give two environments"),
    (["dev", "prod", "--base", "main"], "with --base give one environment"),
    (["dev", "qa"], "qa"),
])
def test_diff_misuse_fails_with_a_message(snapshot, args, message):
    proc = run_generator(snapshot, "diff", *args)
    assert proc.returncode == 1 and message in proc.stderr and "Traceback" not in proc.stderr


# ---- repeated changes grouped ------------------------------------------------------------------------------------

def _labelled_objects(env: str) -> int:
    """Objects the chart renders for ``env`` that carry the environment label (from Helm, not from the diff)."""
    from conftest import helm_template, manifests
    docs = manifests(helm_template(env).stdout)
    return sum(1 for d in docs if "virtengine.io/environment" in ((d.get("metadata") or {}).get("labels") or {}))


def test_a_change_repeated_on_every_object_is_listed_once_with_its_count(snapshot):
    grouped = run_generator(snapshot, "diff", "staging", "prod")
    full = run_generator(snapshot, "diff", "staging", "prod", "--no-group")
    assert grouped.returncode == 0 and full.returncode == 0, grouped.stderr + full.stderr
    labelled = _labelled_objects("prod")
    assert labelled == _labelled_objects("staging") and labelled > 10
    # without grouping the label change is in every object; grouped, once, with the count of places
    assert full.stdout.count("-    virtengine.io/environment: staging") == labelled
    assert grouped.stdout.count("virtengine.io/environment: staging") == 1
    header = re.search(r"^= (\d+) places in (\d+) objects \(.*\):\n  -    virtengine\.io/environment: staging\n"
                       r"  \+    virtengine\.io/environment: prod$", grouped.stdout, re.M)
    assert header and int(header.group(1)) == int(header.group(2)) == labelled, grouped.stdout[:2000]
    assert len(grouped.stdout.splitlines()) < 0.7 * len(full.stdout.splitlines())
    # the object counts are the same either way; the summary says what was grouped
    last = grouped.stdout.rstrip().splitlines()[-1]
    assert last.startswith(full.stdout.rstrip().splitlines()[-1]) and "repeated changes shown once" in last


def test_a_change_seen_in_fewer_places_stays_in_its_object():
    from generator.diffenv import diff_objects, objects
    doc = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: %s, namespace: m, labels: {env: %s}}\ndata: {a: '%s'}\n"
    old = objects("---\n".join(doc % (n, "staging", "1") for n in ("a", "b", "c")))
    new = objects("---\n".join(doc % (n, "prod", "2" if n == "a" else "1") for n in ("a", "b", "c")))
    out = diff_objects(old, new, "staging", "prod")
    assert "= 3 places in 3 objects" in out and out.count("env: staging") == 1
    own = out.split("~ changed ConfigMap/m/a\n", 1)[1]
    assert "  -  a: '1'" in own and "  +  a: '2'" in own     # one place only: shown in its object
    assert "~ changed ConfigMap/m/b (only repeated changes, listed above)" in out
