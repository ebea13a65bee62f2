"""Scrape targets: the ``scrape:`` values as plain Prometheus ``scrape_configs``.

The chart's ServiceMonitors and PodMonitors (``templates/scrape/``) are
rendered by Helm from ``scrape.components``; this module turns the same
values into the jobs a Prometheus without the operator needs, so both have
the same job names, paths, params, intervals, timeouts and relabelling
(``job`` and ``cluster`` set on every series, the pod labels of
``podLabels`` copied to target labels, e.g. ``role``, ``chain_id`` added where a
series lacks it). Two forms:

- ``static``: ``static_configs`` with each component's ``localTargets`` (or
  targets given by the caller); the local bundle's ``prometheus.yml``.
- ``kubernetes``: ``kubernetes_sd_configs`` (role ``endpoints`` for a
  ServiceMonitor, ``pod`` for a PodMonitor) keeping the selector's labels and
  the named port, for an in-cluster Prometheus without the operator.

The stage also checks each environment: a timeout longer than its interval
fails with the environment file and key.
"""
from __future__ import annotations

import json
import re

from ..errors import ValidationError

_DURATION = re.compile(r"^(\d+)(ms|s|m|h)$")
_FACTOR = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}


def seconds(text: str) -> float:
    m = _DURATION.match(text)
    if not m:
        raise ValueError(text)
    return int(m.group(1)) * _FACTOR[m.group(2)]


def components(values: dict) -> list[tuple[str, dict]]:
    """The enabled components, sorted by key, with interval and timeout resolved."""
    scrape = values["scrape"]
    if not scrape.get("enabled"):
        return []
    out = []
    for key, c in sorted(scrape["components"].items()):
        if not c.get("enabled"):
            continue
        c = dict(c)
        c["interval"] = c.get("interval") or scrape["interval"]
        c["scrapeTimeout"] = c.get("scrapeTimeout") or scrape["scrapeTimeout"]
        out.append((key, c))
    return out


def _relabel(values: dict, job: str) -> list[dict]:
    return [{"target_label": "job", "replacement": job, "action": "replace"},
            {"target_label": "cluster", "replacement": values["global"]["cluster"], "action": "replace"}]


def _pod_labels(c: dict) -> list[dict]:
    """Target labels copied from pod labels (``podLabels``: role <- app.kubernetes.io/component); a pod
    without the label gets none (the static form has no pods, so its targets carry no such label)."""
    return [{"source_labels": ["__meta_kubernetes_pod_label_" + re.sub(r"[^A-Za-z0-9_]", "_", pod_label)],
             "regex": "(.+)", "target_label": target, "replacement": "$1", "action": "replace"}
            for target, pod_label in sorted((c.get("podLabels") or {}).items())]


def _metric_relabel(values: dict) -> list[dict]:
    chain = values["global"].get("chainId")
    if not chain:
        return []
    return [{"source_labels": ["chain_id"], "regex": "^$", "target_label": "chain_id",
             "replacement": chain, "action": "replace"}]


def _kubernetes_keep(values: dict, c: dict, namespace: str) -> tuple[dict, list[dict]]:
    role = "endpoints" if c["kind"] == "ServiceMonitor" else "pod"
    prefix = "__meta_kubernetes_service_label_" if role == "endpoints" else "__meta_kubernetes_pod_label_"
    port = "__meta_kubernetes_endpoint_port_name" if role == "endpoints" else "__meta_kubernetes_pod_container_port_name"
    keep = [{"source_labels": [prefix + re.sub(r"[^A-Za-z0-9_]", "_", k)], "regex": re.escape(v), "action": "keep"}
            for k, v in sorted(c["selector"].items())]
    keep.append({"source_labels": [port], "regex": re.escape(c["port"]), "action": "keep"})
    names = values["scrape"].get("namespaces") or [namespace]
    return {"role": role, "namespaces": {"names": list(names)}}, keep


def scrape_configs(values: dict, *, mode: str = "static", targets: dict[str, list[str]] | None = None,
                   namespace: str = "monitoring") -> list[dict]:
    """Prometheus ``scrape_configs`` for the enabled components of ``values``."""
    jobs = []
    for key, c in components(values):
        job = {"job_name": c["job"], "metrics_path": c["path"], "scrape_interval": c["interval"],
               "scrape_timeout": c["scrapeTimeout"]}
        if c.get("params"):
            job["params"] = {k: list(v) for k, v in sorted(c["params"].items())}
        relabel = _relabel(values, c["job"])
        if mode == "static":
            hosts = (targets or {}).get(key, c.get("localTargets") or [])
            if not hosts:
                raise ValidationError(f"scrape component {key!r} has no localTargets for a static scrape config",
                                      key=f"scrape.components.{key}.localTargets")
            job["static_configs"] = [{"targets": list(hosts)}]
        elif mode == "kubernetes":
            sd, keep = _kubernetes_keep(values, c, namespace)
            job["kubernetes_sd_configs"] = [sd]
            relabel = keep + relabel + _pod_labels(c)
        else:
            raise ValueError(mode)
        job["relabel_configs"] = relabel
        if _metric_relabel(values):
            job["metric_relabel_configs"] = _metric_relabel(values)
        jobs.append(job)
    return jobs


def check(values: dict, file: str) -> None:
    for key, c in components(values):
        if seconds(c["scrapeTimeout"]) > seconds(c["interval"]):
            own = values["scrape"]["components"][key]
            where = f"scrape.components.{key}.scrapeTimeout" if own.get("scrapeTimeout") else "scrape.scrapeTimeout"
            interval = f"scrape.components.{key}.interval" if own.get("interval") else "scrape.interval"
            raise ValidationError(f"scrape timeout {c['scrapeTimeout']} is longer than the interval {c['interval']} "
                                  f"({interval}) of component {key}; set it at most the interval",
                                  file=file, key=where)
    jobs = [c["job"] for _, c in components(values)]
    dupes = sorted({j for j in jobs if jobs.count(j) > 1})
    if dupes:
        raise ValidationError(f"two scrape components share the job name {dupes[0]!r}", file=file,
                              key="scrape.components")


_JOB_SELECTOR = re.compile(r'\bjob\s*(=~|=)\s*"([^"]*)"')


def check_rule_jobs(values: dict, file: str, alerts: dict, default_jobs: dict[str, str]) -> None:
    """An alert selecting ``job="x"`` can never fire when no scrape component is called x."""
    jobs = {c["job"] for c in values["scrape"]["components"].values()}
    blind: dict[str, list[str]] = {}
    for alert, spec in sorted(alerts.items()):
        for _, selected in _JOB_SELECTOR.findall(spec["expr"]):
            for job in selected.split("|"):
                if job not in jobs and alert not in blind.setdefault(job, []):
                    blind[job].append(alert)
    for job, names in sorted(blind.items()):
        key = next((k for k, j in sorted(default_jobs.items()) if j == job), None)
        raise ValidationError(
            f"alerts {', '.join(names)} select job=\"{job}\" but no scrape component has that job name "
            f"(jobs: {', '.join(sorted(jobs))}); they could never fire. Keep the job name or change the rules "
            f"in templates_src/rules/", file=file, key=f"scrape.components.{key}.job" if key else "scrape.components")


def rule_jobs(alerts: dict) -> dict[str, list[str]]:
    """job -> the alerts that select it (``job="x"``), for the same check at install (files/checks/)."""
    found: dict[str, list[str]] = {}
    for alert, spec in sorted(alerts.items()):
        for _, selected in _JOB_SELECTOR.findall(spec["expr"]):
            for job in selected.split("|"):
                if alert not in found.setdefault(job, []):
                    found[job].append(alert)
    return found


def build(src, out) -> None:
    out.add("chart/files/checks/rule-jobs.json", json.dumps(rule_jobs(out.shared.get("alerts", {})),
                                                             sort_keys=True, separators=(",", ":")) + "\n")
    out.shared["scrape"] = {}
    default_jobs = {k: c["job"] for k, c in src.defaults.data["scrape"]["components"].items()}
    for name, values in sorted(out.merged_values.items()):
        check(values, src.envs[name].file)
        check_rule_jobs(values, src.envs[name].file, out.shared.get("alerts", {}), default_jobs)
        out.shared["scrape"][name] = components(values)
