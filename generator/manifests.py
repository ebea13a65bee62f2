"""Validates rendered manifests against the schemas a cluster would apply.

Kubernetes kinds: the API schemas for a Kubernetes version from PyPI's
``kubernetes-validate`` in strict mode (unknown fields fail). Custom
resources (``monitoring.coreos.com``: PrometheusRule, ServiceMonitor,
PodMonitor, AlertmanagerConfig): the CRD schemas compiled in npm's
``@kubernetes-models/prometheus-operator`` (installed by ``scripts/bootstrap``
into ``.tools/node``), run by ``crdcheck.mjs``. A kind with no schema is an
error, never a warning.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from . import tools
from .errors import ToolError, ValidationError

CRD_SCRIPT = Path(__file__).parent / "crdcheck.mjs"
CRD_GROUPS = ("monitoring.coreos.com",)


def node_modules() -> Path:
    return tools.ROOT / ".tools" / "node" / "node_modules"


def kube_version(chart_yaml: Path) -> str:
    """The lowest Kubernetes version the chart's ``kubeVersion`` admits, e.g. ``1.27.0``."""
    import yaml
    constraint = str((yaml.safe_load(chart_yaml.read_text()) or {}).get("kubeVersion", ""))
    m = re.search(r">=?\s*v?(\d+)\.(\d+)", constraint)
    if not m:
        raise ValidationError(f"kubeVersion {constraint!r} names no lower bound like >=1.27.0-0",
                              file=str(chart_yaml), key="kubeVersion")
    return f"{m.group(1)}.{m.group(2)}.0"


def _name(doc: dict) -> str:
    return f"{doc.get('kind')}/{(doc.get('metadata') or {}).get('name')}"


def validate_core(docs: list[dict], version: str) -> list[str]:
    import kubernetes_validate
    from kubernetes_validate.utils import SchemaNotFoundError
    problems = []
    for doc in docs:
        if str(doc.get("apiVersion", "")).split("/")[0] in CRD_GROUPS:
            continue
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except SchemaNotFoundError:
            problems.append(f"{_name(doc)} ({doc.get('apiVersion')}): no schema for Kubernetes {version}")
        except kubernetes_validate.ValidationError as e:
            where = "/".join(str(p) for p in e.path)
            problems.append(f"{_name(doc)}: {where or '/'}: {e.message}")
    return problems


def validate_custom(docs: list[dict]) -> list[str]:
    custom = [d for d in docs if str(d.get("apiVersion", "")).split("/")[0] in CRD_GROUPS]
    if not custom:
        return []
    modules = node_modules()
    if not (modules / "@kubernetes-models" / "prometheus-operator").is_dir():
        raise ToolError(f"CRD schemas not found in {modules}; run `scripts/bootstrap`")
    proc = tools.run(["node", str(CRD_SCRIPT), str(modules)], input_text=json.dumps(custom), timeout=120)
    problems = []
    for result in json.loads(proc.stdout):
        doc = custom[result["index"]]
        if result.get("missing"):
            problems.append(f"{_name(doc)} ({doc.get('apiVersion')}): no CRD schema")
        problems += [f"{_name(doc)}: {e}" for e in result["errors"]]
    return problems


def validate(docs: list[dict], version: str) -> list[str]:
    """Every problem of ``docs`` as ``Kind/name: where: what``; empty when all are valid."""
    return validate_core(docs, version) + validate_custom(docs)
