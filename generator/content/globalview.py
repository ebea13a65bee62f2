"""Rule files for a global view: one engine evaluates the chart's rule groups for every cluster.

Each cluster's Prometheus (external label ``cluster``) sends its series by
``remote_write`` to a central store, and one ruler evaluates the same rule
groups the chart ships, per environment, with the environment's overrides
(``rules.groups``, ``rules.alerts``, ``rules.ruleLabels``,
``rules.escrowMinimumBalance``) applied as ``templates/prometheus/rules.yaml``
applies them (``tests/e2e/test_global_view.py`` compares the two):

- ``integrations/vmalert/<env>.yaml``: vmalert (VictoriaMetrics 1.79) rule
  file, ``vmalert -rule=...``; vmalert 1.79 refuses ``keep_firing_for``, so it
  is left out and named in the file's header;
- ``integrations/mimir/<env>/<group>.yaml``: a Mimir / Cortex ruler namespace
  file per group (``mimirtool rules load`` / ``cortextool rules load``);
- ``integrations/thanos-ruler/<env>.yaml``: a ``ThanosRuler`` and the
  PrometheusRules it selects by the label ``GLOBAL_LABEL`` (and no
  ``release`` label, so the clusters' own Prometheus do not evaluate them too).
"""
from __future__ import annotations

import json
import marshal

import yaml

from .rules import ENVIRONMENT, GRAFANA_URL, RUNBOOK_URL, final_rule, param_text

FOLDERS = {"vmalert": "integrations/vmalert", "mimir": "integrations/mimir", "thanos": "integrations/thanos-ruler"}
VMALERT_VERSION = "1.79.5"
MIMIR_NAMESPACE = "virtengine"
# the label a ThanosRuler's ruleSelector picks; the clusters' Prometheus select release=<stack> and skip these
GLOBAL_LABEL = {"virtengine.io/rules": "global"}
ESCROW_GROUP = "virtengine.escrow.minimums"
ESCROW_RECORD = "denom:virtengine_escrow_balance_minimum:minor_units"


def _merge(*layers: dict) -> dict:
    """Sprig's ``merge``: the first layer that has a key wins."""
    out: dict = {}
    for layer in reversed(layers):
        out.update(layer or {})
    return out


def _urls(text: str, values: dict) -> str:
    g = values["global"]
    return (text.replace(RUNBOOK_URL, g["runbookUrl"]).replace(GRAFANA_URL, g["grafanaUrl"])
            .replace(ENVIRONMENT, g.get("environment") or ""))


def _substitute(text: str, params: dict) -> str:
    for key, value in params.items():
        text = text.replace("${%s}" % key, param_text(value))
    return text


def env_groups(values: dict, groups: dict) -> list[dict]:
    """The rule groups an environment ships, as the chart renders them (templates/prometheus/rules.yaml)."""
    v = values["rules"]
    if not v.get("enabled", True):
        return []
    out = []
    rule_labels = v.get("ruleLabels") or {}
    for gname in sorted(groups):
        group = groups[gname]
        gcfg = (v.get("groups") or {}).get(gname) or {}
        if not gcfg.get("enabled", True):
            continue
        glabels = _merge(gcfg.get("labels") or {}, rule_labels)
        rules = []
        for rule in group["rules"]:
            final = json.loads(_urls(json.dumps(final_rule(rule)), values))
            if "record" in rule:
                final["labels"] = _merge(final["labels"], glabels)
                rules.append(final)
                continue
            acfg = (v.get("alerts") or {}).get(rule["alert"]) or {}
            if not acfg.get("enabled", True):
                continue
            hold = acfg.get("for") or rule["for"]
            out_rule = {"alert": rule["alert"], "expr": final["expr"], "for": hold}
            annotations = dict(final["annotations"])
            if acfg.get("thresholds") or "for" in acfg:
                params = _merge(acfg.get("thresholds") or {}, rule["params"])
                out_rule["expr"] = _substitute(rule["expr"], params)
                annotations["description"] = _substitute(rule["description"], params).replace("${for}", hold)
            out_rule["labels"] = _merge({"severity": acfg.get("severity") or rule["severity"]},
                                        acfg.get("labels") or {}, final["labels"], glabels)
            out_rule["annotations"] = _merge(acfg.get("annotations") or {}, annotations)
            keep = acfg.get("keepFiringFor") or rule["keep_firing_for"]
            if keep:
                out_rule["keep_firing_for"] = keep
            rules.append(out_rule)
        if rules:
            spec = {"name": gname, "rules": rules}
            interval = gcfg.get("interval") or group["interval"]
            if interval:
                spec["interval"] = interval
            out.append(spec)
    minimums = [{"record": ESCROW_RECORD, "expr": f"vector({param_text(m)})", "labels": _merge({"denom": d}, rule_labels)}
                for d, m in sorted((v.get("escrowMinimumBalance") or {}).items()) if m is not None]
    if minimums:
        out.append({"name": ESCROW_GROUP, "rules": minimums})
    return sorted(out, key=lambda g: g["name"])


def vmalert_groups(groups: list[dict]) -> tuple[list[dict], list[str]]:
    """The groups without ``keep_firing_for`` (vmalert 1.79 refuses it) and the alerts that lose it."""
    dropped, out = [], []
    for group in groups:
        rules = []
        for rule in group["rules"]:
            if "keep_firing_for" in rule:
                dropped.append(f"{rule['alert']} (keep_firing_for {rule['keep_firing_for']})")
                rule = {k: val for k, val in rule.items() if k != "keep_firing_for"}
            rules.append(rule)
        out.append({**group, "rules": rules})
    return out, dropped


class _Dumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):
    """Multi-line strings (expressions) as literal blocks, as people write rule files."""


def _str(dumper, text: str):
    lines = text.split("\n")
    style = "|" if len(lines) > 1 and all(line == line.rstrip() for line in lines) else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_Dumper.add_representer(str, _str)


_MEMO: list = []   # while build() runs: its cache of _yaml's results (toolcache.Memo)


def _yaml(data) -> str:
    """``data`` as YAML. A pure function of the data: while ``build`` runs, a result is kept in the cache
    under the data's exact bytes (``marshal`` version 2: its types and values, subclasses refused) and the
    generator's code; data marshal cannot write is dumped every time."""
    def dump() -> str:
        return yaml.dump(data, Dumper=_Dumper, sort_keys=True, default_flow_style=False, width=4096,
                         allow_unicode=False)
    try:
        exact = marshal.dumps(data, 2) if _MEMO else None
    except ValueError:
        exact = None
    if exact is None:
        return dump()
    return _MEMO[-1].compute((exact,), dump, str.encode, bytes.decode)


def _head(env: str, lines: list[str]) -> str:
    return "".join(f"# {line}\n".replace("# \n", "#\n") for line in [
        f"Generated by `python -m generator render` from templates_src/rules, values/defaults.yaml and values/{env}.yaml.",
        "Do not edit: change the sources and render again. README.md, section \"Many clusters\".", "", *lines])


def vmalert_file(env: str, groups: list[dict]) -> str:
    vm_groups, dropped = vmalert_groups(groups)
    lines = [f"vmalert (VictoriaMetrics {VMALERT_VERSION}) evaluating the {env} rule groups once for every cluster",
             "whose Prometheus remote-writes (external label cluster) into VictoriaMetrics:",
             f"  vmalert -rule=integrations/vmalert/{env}.yaml -datasource.url=http://<victoria-metrics>:8428 \\",
             "    -remoteWrite.url=http://<victoria-metrics>:8428 -remoteRead.url=http://<victoria-metrics>:8428 \\",
             "    -notifier.url=http://<alertmanager>:9093",
             "(-remoteWrite.url stores the recording rules, which later groups read; -remoteRead.url restores alert",
             "state after a restart.) Checked by `vmalert -dryRun -rule=...`."]
    lines.append("vmalert 1.79 has no keep_firing_for; left out here: " + (", ".join(dropped) if dropped else "none")
                 + " (the alert resolves as soon as its condition clears).")
    return _head(env, lines) + "groups:\n" + "".join(_yaml([g]) for g in vm_groups)


def mimir_file(env: str, group: dict, text: str) -> str:
    """``text``: the group dumped as a one-item YAML list."""
    lines = [f"Mimir / Cortex ruler namespace file of the {env} rule group {group['name']}, evaluated once for every",
             "cluster whose Prometheus remote-writes (external label cluster) into Mimir / Cortex:",
             f"  mimirtool rules load --address=http://<mimir> --id=<tenant> {FOLDERS['mimir']}/{env}/*.yaml",
             f"  (cortextool rules load ... the same files). Without the namespace key it is a Prometheus rule file",
             "  (promtool check rules)."]
    return _head(env, lines) + "groups:\n" + text + _yaml({"namespace": MIMIR_NAMESPACE})


def _dns(name: str) -> str:
    return name.replace(".", "-").replace("_", "-").lower()


def thanos_file(env: str, groups: list[dict], texts: dict[str, str]) -> str:
    labels = {"app.kubernetes.io/name": "virtengine-observability", "app.kubernetes.io/part-of": "virtengine-observability",
              **GLOBAL_LABEL}
    docs = [{
        "apiVersion": "monitoring.coreos.com/v1", "kind": "ThanosRuler",
        "metadata": {"name": f"virtengine-{env}", "namespace": "monitoring", "labels": labels},
        "spec": {
            "ruleSelector": {"matchLabels": dict(GLOBAL_LABEL)},
            "ruleNamespaceSelector": {},
            "queryEndpoints": ["dnssrv+_http._tcp.thanos-query.monitoring.svc.cluster.local"],
            "alertmanagersUrl": ["dnssrv+http://_http-web._tcp.alertmanager-operated.monitoring.svc.cluster.local"],
            "evaluationInterval": "30s",
        }}]
    rules = []
    for group in groups:
        head = _yaml({"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule",
                      "metadata": {"name": f"virtengine-global-{_dns(group['name'])}", "namespace": "monitoring",
                                   "labels": labels}})
        body = "".join("    " + line if line else line for line in texts[group["name"]].splitlines(True))
        rules.append(head + "spec:\n  groups:\n" + body)
    lines = [f"A ThanosRuler and the {env} rule groups as PrometheusRules it selects (label "
             f"{next(iter(GLOBAL_LABEL))}={next(iter(GLOBAL_LABEL.values()))}),",
             "evaluated once for every cluster behind the Thanos Query it reads (each cluster's Prometheus with",
             "external label cluster). These carry no release label: the clusters' own Prometheus do not select them.",
             f"  kubectl apply -f {FOLDERS['thanos']}/{env}.yaml   (queryEndpoints, alertmanagersUrl: your services)",
             "Install this chart in the clusters with rules.enabled: false, or the clusters evaluate the rules too."]
    return _head(env, lines) + "".join("---\n" + text for text in [_yaml(docs[0]), *rules])


def build(src, out) -> None:
    from .. import toolcache
    _MEMO.append(toolcache.Memo("global-yaml"))
    try:
        _build(src, out)
    finally:
        _MEMO.pop()


def _build(src, out) -> None:
    groups = out.shared.get("rule_groups") or {}
    for env, values in sorted(out.merged_values.items()):
        shipped = env_groups(values, groups)
        if not shipped:   # rules.enabled: false, or every group off: nothing to evaluate centrally either
            continue
        # each group dumped once, as a one-item list; the files are put together from these texts
        texts = {g["name"]: _yaml([g]) for g in shipped}
        out.add(f"{FOLDERS['vmalert']}/{env}.yaml", vmalert_file(env, shipped))
        for group in shipped:
            out.add(f"{FOLDERS['mimir']}/{env}/{group['name']}.yaml", mimir_file(env, group, texts[group["name"]]))
        out.add(f"{FOLDERS['thanos']}/{env}.yaml", thanos_file(env, shipped, texts))
