"""The install, upgrade, override and bundle commands of the README, run as written where this machine allows.

No Kubernetes API server can run here, so each `helm upgrade --install` /
`helm install` / `helm upgrade` line is run as the `helm template` of the same
release, chart and flags (cluster-only flags dropped; an oci:// chart
reference is served by the local chart, its publishing being tested in
test_publish.py). `python -m generator diff|bundle` lines run as written.
Commands come from README.md's code blocks plus the documented set below,
so a README edit that breaks a command fails here.
"""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from conftest import HELM_MAJORS, ROOT, manifests, run_generator
from generator import tools

DOCUMENTED = [
    "helm upgrade --install vemon ./chart --namespace monitoring --create-namespace -f values/prod.yaml",
    "helm upgrade --install vemon oci://ghcr.io/virtengine/charts/virtengine-observability --version 0.2.0 "
    "--namespace monitoring --create-namespace -f values/prod.yaml",
    "helm upgrade vemon ./chart --namespace monitoring -f values/staging.yaml --atomic --timeout 5m",
    "helm upgrade --install vemon ./chart -n monitoring -f values/prod.yaml --set scrape.components.mlInference.enabled=false",
    "helm upgrade --install vemon ./chart -n monitoring -f values/dev.yaml --set global.cluster=virtengine-dev-2",
    "python -m generator diff staging prod",
    "python -m generator bundle --env prod --out deploy/observability",
]
# the kube-prometheus-stack install of "Install with kube-prometheus-stack", served by the packaged chart
STACK = "prometheus-community/kube-prometheus-stack"
KPS = Path(__import__("os").environ.get("VEMON_KPS_CHART",
                                        ROOT.parent / "shared" / "peers" / "kube-prometheus-stack-88.5.3.tgz"))
CLUSTER_ONLY = {"--create-namespace", "--atomic", "--rollback-on-failure", "--wait", "--install", "--cleanup-on-fail", "--force"}
WITH_VALUE = {"--timeout"}


def readme_commands() -> list[str]:
    readme = ROOT / "README.md"
    if not readme.is_file():
        return []
    text = readme.read_text(encoding="utf-8")
    out = []
    for block in re.findall(r"```(?:sh|bash|shell|console)?\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.strip().removeprefix("$ ")
            if re.match(r"(helm (upgrade|install)\b|(\.venv/bin/)?python -m generator (diff|bundle)\b)", line):
                out.append(line.split(" #")[0].split(" && ")[0].strip())
    return out


COMMANDS = sorted(set(DOCUMENTED) | set(readme_commands()))


def as_template(argv: list[str], chart: str) -> list[str]:
    """`helm upgrade --install R C flags` -> `helm template R C flags`, cluster-only flags dropped."""
    args = argv[2:]
    out, skip = [], False
    for a in args:
        if skip:
            skip = False
            continue
        if a in WITH_VALUE:
            skip = True
            continue
        if a in CLUSTER_ONLY or a.split("=")[0] in WITH_VALUE:
            continue
        if a.startswith("virtengine-observability/"):   # a file of the package pulled with --untar
            a = chart + a.removeprefix("virtengine-observability")
        out.append(chart if a.startswith("oci://") or a in ("./chart", "chart") else str(KPS) if a == STACK else a)
    if any(a.startswith("oci://") or a == STACK for a in args):
        out = [a for i, a in enumerate(out) if a != "--version" and (i == 0 or out[i - 1] != "--version")]
    return ["template", *out]


@pytest.mark.parametrize("command", [c for c in COMMANDS if c.startswith("helm ")])
@pytest.mark.parametrize("major", HELM_MAJORS)
def test_readme_helm_command_renders_valid_manifests(snapshot, command, major):
    argv = shlex.split(command)
    if STACK in argv and not KPS.is_file():
        pytest.skip(f"kube-prometheus-stack chart not found at {KPS}")
    proc = tools.run([tools.helm(major), *as_template(argv, str(snapshot / "chart"))], cwd=ROOT, check=False)
    assert proc.returncode == 0, f"{command}\n{proc.stderr}"
    docs = manifests(proc.stdout)
    if STACK in argv:   # the stack with this chart's integration values: its Prometheus selects ours
        prometheus = next(d for d in docs if d["kind"] == "Prometheus")
        assert prometheus["spec"]["ruleSelector"] == {"matchLabels": {"release": "kube-prometheus-stack"}}
        assert any(d["kind"] == "Alertmanager" and d["spec"].get("configSecret") for d in docs)
        return
    assert {"PrometheusRule", "ServiceMonitor", "Secret"} <= {d["kind"] for d in docs}
    for flag in re.findall(r"--set (\S+)", command):
        key, value = flag.split("=", 1)
        if key == "global.cluster":
            assert f'"{value}"' in proc.stdout
        if key.endswith(".enabled") and value == "false":
            name = key.split(".")[-2].lower()
            assert not any(d["metadata"]["name"].endswith(name) for d in docs)


@pytest.mark.parametrize("command", [c for c in COMMANDS if " -m generator " in c])
def test_readme_generator_command_runs_as_written(snapshot, tmp_path, command):
    argv = shlex.split(command)
    args = argv[argv.index("generator") + 1:]
    if "--out" in args:
        i = args.index("--out") + 1
        args[i] = str(tmp_path / args[i])
    proc = run_generator(snapshot, *args)
    assert proc.returncode == 0, f"{command}\n{proc.stderr}"
    if args[0] == "diff" and "--base" not in args:
        a, b = args[1:3]
        summary = re.search(rf"^{a} -> {b}: (\d+) changed, (\d+) added, (\d+) removed", proc.stdout, re.M)
        assert summary and int(summary.group(1)) > 0, f"{command}: no per-object summary of a real difference"
    elif args[0] == "bundle":
        out = Path(args[args.index("--out") + 1])
        env = args[args.index("--env") + 1]
        configs = ["prometheus-0.yml", "prometheus-1.yml"] if "--ha" in args else ["prometheus.yml"]
        assert (out / "docker-compose.yaml").is_file()
        for name in configs:
            assert f"virtengine-{env}" in (out / "prometheus" / name).read_text()
    else:
        assert proc.stdout.strip()


def test_documented_commands_cover_install_upgrade_override_diff_and_bundle():
    joined = "\n".join(COMMANDS)
    for needle in ("upgrade --install", "oci://", "--set ", "generator diff", "generator bundle", "helm upgrade vemon"):
        assert needle in joined, needle
