"""Secrets never reach the chart, the logs or the error messages.

A key-shaped string (PagerDuty routing key, Opsgenie API key, bearer token,
Authorization value, a token under a key/token/secret/password key) planted
anywhere in ``values/`` or in what becomes ``chart/`` fails ``render`` and
``lint`` naming the file, line and key, and the secret itself is printed
nowhere. The fake secrets are made at test time (random), so none is
committed to this repository.
"""
from __future__ import annotations

import re
import secrets as pysecrets
import uuid
from pathlib import Path

import pytest
import yaml

from conftest import ENVIRONMENTS, helm_template, run_generator, tree_bytes
from generator import secrets

RNG = pysecrets.SystemRandom()


def pagerduty_key() -> str:
    # PagerDuty integration keys: 32 lowercase letters and digits
    while True:
        key = "".join(RNG.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(32))
        if re.search(r"[0-9]", key) and re.search(r"[a-z]", key):
            return key


def opsgenie_key() -> str:
    return str(uuid.uuid4())


def bearer_token() -> str:
    return pysecrets.token_urlsafe(30)


def password() -> str:
    return pysecrets.token_urlsafe(12) + "Z9"


# (case, key path in values/prod.yaml, value with {secret}, the secret maker, kind reported)
VALUES_CASES = [
    ("a PagerDuty routing key in a hidden setting", "_pagerduty", "{secret}", pagerduty_key,
     "PagerDuty routing key"),
    ("a PagerDuty routing key as a label value", "global.labels.pd", "{secret}", pagerduty_key,
     "PagerDuty routing key"),
    ("an Opsgenie API key in a nested setting", "_receivers.opsgenie.apiKey", "{secret}", opsgenie_key,
     "Opsgenie API key (UUID)"),
    ("a bearer token in a label", "global.labels.note", "Bearer {secret}", bearer_token, "bearer token"),
    ("an Authorization header value", "_headers.Authorization", "GenieKey {secret}", bearer_token,
     "Authorization header value"),
    ("a password in a hidden setting", "_smtp.password", "{secret}", password, "a literal value under 'password'"),
    ("a high-entropy token under a key named token", "_grafana.serviceToken", "{secret}", bearer_token,
     "high-entropy value under 'serviceToken'"),
    ("a routing key pasted into the cluster setting", "global.cluster", "{secret}", pagerduty_key,
     "PagerDuty routing key"),
]


def plant_in_env(root: Path, env: str, key: str, value: str) -> int:
    """Sets ``key`` (dotted) in values/<env>.yaml to ``value``; returns the line it is on."""
    path = root / "values" / f"{env}.yaml"
    data = yaml.safe_load(path.read_text()) or {}
    node = data
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    text = yaml.safe_dump(data, sort_keys=False, width=1000)
    path.write_text(text)
    return next(n for n, line in enumerate(text.splitlines(), start=1) if value in line)


@pytest.mark.parametrize("case,key,value,make,kind", VALUES_CASES, ids=[c[0] for c in VALUES_CASES])
def test_a_secret_in_values_fails_render_by_file_line_and_key_without_printing_it(project, case, key, value, make,
                                                                                   kind):
    secret = make()
    line = plant_in_env(project, "prod", key, value.replace("{secret}", secret))
    before = tree_bytes(project / "chart")
    proc = run_generator(project, "render")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "key-shaped strings in values/" in proc.stderr
    assert f"values/prod.yaml:{line}: {key}: {kind} (" in proc.stderr, proc.stderr
    assert "value masked" in proc.stderr
    output = proc.stdout + proc.stderr
    assert secret not in output and secret[:12] not in output, "the secret was printed"
    assert tree_bytes(project / "chart") == before


def test_a_secret_in_the_defaults_fails_render(project):
    secret = pagerduty_key()
    path = project / "values/defaults.yaml"
    path.write_text(path.read_text() + f"\n# _pd -- a pasted key\n_pd: {secret}\n")
    proc = run_generator(project, "render")
    assert proc.returncode == 1
    assert re.search(r"values/defaults\.yaml:\d+: _pd: PagerDuty routing key \(32 characters, value masked\)",
                     proc.stderr), proc.stderr
    assert secret not in proc.stderr + proc.stdout


@pytest.mark.parametrize("where", ["templates_src/chart/templates/zz-leak.yaml",
                                   "templates_src/alertmanager/zz-leak.tmpl"])
def test_a_secret_in_a_chart_source_fails_render_naming_the_chart_file(project, where):
    secret = opsgenie_key()
    text = ('{{ define "zz.leak" }}' if where.endswith(".tmpl") else "") + f"# api key {secret}\n"
    if where.endswith(".tmpl"):
        text += "{{ end }}\n"
    (project / where).write_text(text)
    proc = run_generator(project, "render")
    assert proc.returncode == 1
    generated = "chart/" + where.split("/chart/", 1)[-1] if "/chart/" in where else \
        "chart/files/alertmanager/zz-leak.tmpl"
    assert f"{generated}:" in proc.stderr and "Opsgenie API key (UUID) (36 characters, value masked)" in proc.stderr
    assert secret not in proc.stderr + proc.stdout


def test_lint_finds_a_secret_hand_edited_into_chart_without_printing_it(project):
    assert run_generator(project, "render").returncode == 0
    assert run_generator(project, "lint", "--only", "secrets").returncode == 0
    secret = pagerduty_key()
    values = project / "chart/values.yaml"
    values.write_text(values.read_text() + f"_routing_key: {secret}\n")
    line = values.read_text().count("\n")
    proc = run_generator(project, "lint", "--only", "secrets")
    assert proc.returncode == 1
    assert f"chart/values.yaml:{line}: _routing_key: PagerDuty routing key (32 characters, value masked)" in proc.stderr
    assert secret not in proc.stderr + proc.stdout


def test_lint_finds_a_secret_in_values_on_disk(project):
    secret = bearer_token()
    (project / "values/prod.yaml").write_text((project / "values/prod.yaml").read_text()
                                              + f"_auth: \"Bearer {secret}\"\n")
    proc = run_generator(project, "lint", "--only", "secrets")
    assert proc.returncode == 1 and "values/prod.yaml:" in proc.stderr and "_auth: bearer token" in proc.stderr
    assert secret not in proc.stderr + proc.stdout


def test_the_project_itself_has_no_secret_in_values_chart_or_rendered_manifests():
    from conftest import ROOT
    assert secrets.scan_tree(ROOT, ("values", "chart", "templates_src")) == []
    for env in ENVIRONMENTS:
        text = helm_template(env, 3).stdout
        assert secrets.scan_text(text, f"helm template -f values/{env}.yaml") == []


# near misses that must stay allowed (or the lint would be switched off in anger), and hits that must not
SCAN_TABLE = [
    ("a file name under secretKey", "secretKey: alertmanager.yaml", None),
    ("a Secret name", "secretName: vemon-alertmanager-config", None),
    ("a key file path", "routing_key_file: /etc/alertmanager/secrets/pagerduty/routing-key", None),
    ("a Helm reference", "api_key: {{ .Values.alertmanager.opsgenie.apiKey | quote }}", None),
    ("an empty token", 'token: ""', None),
    ("a PromQL legend", '"legendFormat": "{{instance}} {{chain_id}}"', None),
    ("a Grafana uid", 'uid: virtengine-overview', None),
    ("a credentials file", "credentials_file: /etc/alertmanager/secrets/opsgenie/api-key", None),
    ("an authorization block", "authorization: {credentials_file: /etc/secrets/token}", None),
    ("an allowed documentation example", "routing_key: 0123456789abcdef0123456789abcdef # not-a-secret", None),
    ("a routing key", "routing_key: {pd}", "PagerDuty routing key"),
    ("an Opsgenie key", "api_key: {og}", "Opsgenie API key (UUID)"),
    ("a bearer header", "Authorization: Bearer {tok}", "bearer token"),
    ("a JSON Authorization header", '{"headers": {"Authorization": "Basic {tok}"}}', "Authorization header value"),
    ("a password with spaces", "password: correct horse battery staple", "a literal value under 'password'"),
    ("a private key", "key: -----BEGIN RSA PRIVATE KEY-----", "private key"),
]


@pytest.mark.parametrize("case,line,kind", SCAN_TABLE, ids=[c[0] for c in SCAN_TABLE])
def test_secret_scanner_table(case, line, kind):
    line = line.replace("{pd}", pagerduty_key()).replace("{og}", opsgenie_key()).replace("{tok}", bearer_token())
    found = secrets.scan_text(line + "\n", "x.yaml")
    assert [f.kind for f in found] == ([kind] if kind else [])
    for f in found:
        assert f.line == 1 and "masked" in str(f)
