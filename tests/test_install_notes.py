"""What `helm install` prints after the install (NOTES.txt), with Helm 3 and Helm 4.

Helm 4 prints the notes of `helm install --dry-run=client` without a cluster. Helm 3 contacts the cluster
even for a client dry run, so for Helm 3 the same NOTES.txt text is rendered by Helm 3's own engine inside
a copy of the chart (the notes pasted into a template of a ConfigMap), with the same release, namespace and
values. The expectations come from what the chart renders (the Alertmanager configuration Secret and the
credential files it reads), not from a copy of the notes.
"""
from __future__ import annotations

import re
import shutil

import pytest
import yaml

from conftest import HELM_MAJORS, ROOT, helm_template, manifests
from generator import tools

CHART = ROOT / "chart"


def notes(major: int, tmp_path, env: str = "prod", *extra: str) -> str:
    values = ["-f", str(ROOT / "values" / f"{env}.yaml"), *extra]
    if major == 4:
        proc = tools.run([tools.helm(4), "install", "--dry-run=client", "vemon", str(CHART), "-n", "monitoring",
                          *values], timeout=120)
        return proc.stdout.split("NOTES:", 1)[1]
    chart = tmp_path / "chart"
    if not chart.exists():
        shutil.copytree(CHART, chart)
        text = (chart / "templates" / "NOTES.txt").read_text()
        (chart / "templates" / "NOTES.txt").unlink()
        (chart / "templates" / "_notes_probe.tpl").write_text('{{- define "probe.notes" }}' + text + "{{ end }}")
        (chart / "templates" / "notes-probe.yaml").write_text(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes-probe\n"
            'data:\n  notes: {{ include "probe.notes" . | toJson }}\n')
    proc = tools.run([tools.helm(3), "template", "vemon", str(chart), "-n", "monitoring", "--show-only",
                      "templates/notes-probe.yaml", *values], timeout=120)
    return yaml.safe_load(proc.stdout)["data"]["notes"]


def credentials(env: str, *extra: str) -> tuple[str, dict[str, set[str]]]:
    """The configuration Secret's name and {Secret: {key}} of every credential file its configuration reads."""
    docs = manifests(helm_template(env, extra=list(extra)).stdout)
    secret = next(d for d in docs if d["kind"] == "Secret" and "alertmanager.yaml" in (d.get("stringData") or {}))
    config = secret["stringData"]["alertmanager.yaml"]
    found: dict[str, set[str]] = {}
    for name, key in re.findall(r"/etc/alertmanager/secrets/([^/\s'\"]+)/([^/\s'\"]+)", config):
        found.setdefault(name, set()).add(key)
    return secret["metadata"]["name"], found


@pytest.mark.parametrize("major", HELM_MAJORS)
def test_notes_warn_when_rules_labels_is_empty_like_scrape_labels(major, tmp_path):
    assert "WARNING: rules.labels is empty" not in notes(major, tmp_path)
    warned = notes(major, tmp_path, "prod", "--set", "rules.labels=null")
    assert "WARNING: rules.labels is empty" in warned and "ruleSelector" in warned
    assert "WARNING: scrape.labels is empty" not in warned


@pytest.mark.parametrize("major", HELM_MAJORS)
@pytest.mark.parametrize("extra", [[], ["--set", "alertmanager.secretName=vemon-am-config"]], ids=["default", "named"])
def test_notes_repeat_the_secret_and_config_secret_steps_with_the_rendered_names(major, tmp_path, extra):
    text = notes(major, tmp_path, "prod", *extra)
    config_secret, needed = credentials("prod", *extra)
    assert needed, "prod reads no credential file"
    for name, keys in needed.items():
        expected = (f"kubectl -n monitoring create secret generic {name} "
                    + " ".join(f"--from-literal={k}=..." for k in sorted(keys)))
        assert expected in text, f"{expected!r} not in notes:\n{text}"
    assert f"alertmanager.alertmanagerSpec.configSecret: {config_secret}" in text
    assert f"alertmanager.alertmanagerSpec.secrets: [{', '.join(sorted(needed))}]" in text
    assert "integrations/kube-prometheus-stack/" in text


@pytest.mark.parametrize("major", HELM_MAJORS)
def test_notes_of_helm_3_and_helm_4_agree(major, tmp_path):
    other = 4 if major == 3 else 3
    assert notes(major, tmp_path).strip() == notes(other, tmp_path / "other").strip()
