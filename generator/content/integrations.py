"""``integrations/kube-prometheus-stack/<env>.yaml``: the values a user passes to kube-prometheus-stack.

Installed beside this chart (``-f values/<env>.yaml``), the stack installed
with this file picks up our PrometheusRules, ServiceMonitors and PodMonitors,
labels every target it scrapes with the environment's ``cluster``, loads our
Alertmanager configuration and mounts the Secrets it reads, puts our dashboards
into their folders, provisions the one default Prometheus datasource (with the
exemplar link to our Jaeger) and switches off the stack's alerts that ours
replace. Everything comes from the environment's validated values; every key
is one of the stack's own (``tests/test_kube_prometheus_stack.py`` walks the
file against the stack's ``values.yaml``, which has no schema to catch a typo).
"""
from __future__ import annotations

import yaml

from ..errors import ValidationError
from .datasources import DASHBOARD_DEFAULT_UID

FOLDER = "integrations/kube-prometheus-stack"
STACK_VERSION = "88.5.3"
# the release name of this chart in the README's install command; the Alertmanager Secret's name follows it
RELEASE = "vemon"
CHART = "virtengine-observability"
STACK_PROMETHEUS_NAME = "Prometheus"

# The stack's alerts (kubernetes-mixin, node-mixin, prometheus and alertmanager mixins, general.rules) that an
# alert of ours replaces: one owner per signal. Ours carry VirtEngine's team, routing, runbook and dashboard
# link and are cluster-wide (not tied to the stack's job names). A stack alert is switched off only in an
# environment where the alert that replaces it is enabled.
REPLACES: dict[str, tuple[str, ...]] = {
    "Watchdog": ("Watchdog",),                                    # same name: ours is routed to the heartbeat
    "TargetDown": ("TargetDown",),                                # same name and expression shape
    "KubeNodeNotReady": ("KubeNodeNotReady",),                    # same name
    "KubePodCrashLooping": ("KubePodCrashLooping",),              # same name
    # the stack's KubePersistentVolumeFillingUp is two rules: < 3% free (critical) and filling within 4 days
    "KubePersistentVolumeFillingUp": ("KubePersistentVolumeFillingUp",),
    "KubePersistentVolumeAlmostFull": ("KubePersistentVolumeFillingUp",),
    "NodeMemoryHighUtilization": ("NodeMemoryHighUtilization",),  # same name
    "NodeCPUHighUtilization": ("NodeCPUHighUsage",),              # same signal (non-idle CPU above 90%)
    "NodeFilesystemFillingUp": ("NodeFilesystemSpaceFillingUp",), # same signal (predicted to fill within a day)
    # same signal (little space left, growing or not); ours mutes NodeFilesystemFillingUp of the same mount
    "VirtEngineNodeFilesystemAlmostFull": ("NodeFilesystemAlmostOutOfSpace",),
    "PrometheusRuleFailures": ("PrometheusRuleFailures",),        # same name
    "PrometheusNotConnectedToAlertmanagers": ("PrometheusNotConnectedToAlertmanagers",),
    "PrometheusNotificationQueueRunningFull": ("PrometheusNotificationQueueRunningFull",),
    "PrometheusConfigReloadFailed": ("PrometheusBadConfig",),     # same signal (last reload failed)
    "PrometheusAlertSendFailures": ("PrometheusErrorSendingAlertsToAnyAlertmanager",),
    "AlertmanagerConfigReloadFailed": ("AlertmanagerFailedReload",),
    # ours judges the failure ratio of an integration across the HA replicas: one replica failing is no outage
    "AlertmanagerNotificationsFailing": ("AlertmanagerClusterFailedToSendAlerts", "AlertmanagerFailedToSendAlerts"),
}


def enabled_alerts(values: dict, alerts: dict) -> set[str]:
    """The alerts an environment ships (as templates/prometheus/rules.yaml decides)."""
    rules = values.get("rules", {})
    if not rules.get("enabled", True):
        return set()
    groups, overrides = rules.get("groups") or {}, rules.get("alerts") or {}
    return {name for name, a in alerts.items()
            if (groups.get(a["group"]) or {}).get("enabled", True) and (overrides.get(name) or {}).get("enabled", True)}


def alertmanager_secrets(am: dict) -> list[str]:
    """The Secrets the rendered Alertmanager configuration reads a credential from (as vemon.alertmanager.model)."""
    routes = [r for r in (am.get("routes") or {}).values() if r.get("enabled", True)]
    kinds = {r["notify"] for r in routes} | {am.get("fallback", {}).get("notify", "none")}
    if not am.get("heartbeat", {}).get("enabled"):
        kinds.discard("heartbeat")
    names = set()
    if "pagerduty" in kinds:
        for team in (am.get("teams") or {}).values():
            own = team.get("pagerdutyRoutingKeySecret") or {}
            names.add(own["name"] if own.get("name") else am["pagerduty"]["routingKeySecret"]["name"])
    if "opsgenie" in kinds:
        names.add(am["opsgenie"]["apiKeySecret"]["name"])
    if "heartbeat" in kinds:
        names.add((am["heartbeat"].get("authorizationSecret") or {}).get("name", ""))
    return sorted(n for n in names if n)


class Doc:
    """A YAML mapping whose every key carries a comment."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str, object]] = []

    def add(self, key: str, comment: str, value) -> "Doc":
        self.items.append((key, comment, value))
        return value if isinstance(value, Doc) else self

    def lines(self, indent: int = 0) -> list[str]:
        pad = " " * indent
        out: list[str] = []
        for key, comment, value in self.items:
            for line in comment.strip().splitlines():
                out.append(f"{pad}# {line}".rstrip())
            if isinstance(value, Doc):
                out.append(f"{pad}{key}:")
                out.extend(value.lines(indent + 2))
            elif isinstance(value, (dict, list)) and value:
                out.append(f"{pad}{key}:")
                text = yaml.safe_dump(value, default_flow_style=False, sort_keys=True, width=4096)
                out.extend(pad + "  " + line for line in text.splitlines())
            else:
                text = yaml.safe_dump(value, default_flow_style=True, width=4096).strip()
                out.append(f"{pad}{key}: {text.removesuffix(chr(10) + '...').removesuffix(' ...').strip()}")
        return out


def _selector(labels: dict) -> dict:
    return {"matchLabels": dict(sorted(labels.items()))} if labels else {}


def values_file(env: str, values: dict, alerts: dict) -> str:
    g = values["global"]
    rules, scrape, am, ds = values["rules"], values["scrape"], values["alertmanager"], values["datasources"]
    dash = values["dashboards"]
    doc = Doc()

    shipped = enabled_alerts(values, alerts)
    disabled = sorted({stack for ours in sorted(shipped) for stack in REPLACES.get(ours, ())})
    default_rules = doc.add("defaultRules", "defaultRules -- the stack's own rules (kubernetes, node, Prometheus and "
                            "Alertmanager mixins) stay on, except:", Doc())
    default_rules.add("disabled", "disabled -- the stack's alerts that an alert of this chart replaces in this "
                      "environment (one alert per signal: ours carry VirtEngine's team, routing, runbook and "
                      "dashboard link); switched off by name", {name: True for name in disabled})

    prom = doc.add("prometheus", "prometheus -- the stack's Prometheus", Doc()).add(
        "prometheusSpec", "prometheusSpec -- what the Prometheus resource selects and how it labels targets", Doc())
    rule_labels = rules.get("labels") or {}
    scrape_labels = scrape.get("labels") or {}
    prom.add("ruleSelectorNilUsesHelmValues", "ruleSelectorNilUsesHelmValues -- false: ruleSelector below is "
             "used as written", False)
    prom.add("ruleSelector", "ruleSelector -- PrometheusRules labelled as this chart labels its own "
             "(values/<env>.yaml rules.labels); the stack labels its rules release=<its release name>, so "
             "rules.labels names the stack's release", _selector(rule_labels))
    prom.add("ruleNamespaceSelector", "ruleNamespaceSelector -- {}: rules in every namespace (this chart's "
             "release namespace included)", {})
    prom.add("serviceMonitorSelectorNilUsesHelmValues", "serviceMonitorSelectorNilUsesHelmValues -- false: "
             "serviceMonitorSelector below is used as written", False)
    prom.add("serviceMonitorSelector", "serviceMonitorSelector -- ServiceMonitors labelled as this chart's "
             "(values/<env>.yaml scrape.labels), which are also the stack's own", _selector(scrape_labels))
    prom.add("serviceMonitorNamespaceSelector", "serviceMonitorNamespaceSelector -- {}: ServiceMonitors in every "
             "namespace", {})
    prom.add("podMonitorSelectorNilUsesHelmValues", "podMonitorSelectorNilUsesHelmValues -- false: "
             "podMonitorSelector below is used as written", False)
    prom.add("podMonitorSelector", "podMonitorSelector -- PodMonitors labelled as this chart's "
             "(values/<env>.yaml scrape.labels)", _selector(scrape_labels))
    prom.add("podMonitorNamespaceSelector", "podMonitorNamespaceSelector -- {}: PodMonitors in every namespace", {})
    prom.add("scrapeClasses", f"scrapeClasses -- one default scrape class: every ServiceMonitor and PodMonitor "
             f"without a class of its own (all of the stack's: kube-state-metrics, node-exporter, kubelet, cAdvisor, "
             f"the apiserver, Prometheus, Alertmanager, Grafana) gets cluster=\"{g['cluster']}\" (global.cluster) on "
             f"its targets, so the dashboards' cluster variable and the alerts' links name this cluster",
             [{"name": "virtengine-cluster", "default": True,
               "relabelings": [{"action": "replace", "targetLabel": "cluster", "replacement": g["cluster"]}]}])
    prom.add("replicaExternalLabelName", "replicaExternalLabelName -- the label each replica of an HA pair "
             "(prometheusSpec.replicas: 2, both scraping the same targets) puts on its series and alerts, its pod "
             "name; the operator drops it from alerts before Alertmanager (alert_relabel_configs labeldrop), so the "
             "replicas' copies of an alert are one alert and page once (the stack's default, empty, means this "
             "same name)", "prometheus_replica")

    alertmanager = doc.add("alertmanager", "alertmanager -- the stack's Alertmanager", Doc()).add(
        "alertmanagerSpec", "alertmanagerSpec -- the Alertmanager resource", Doc())
    if am.get("enabled", True):
        secret = am.get("secretName") or f"{RELEASE}-{CHART}-alertmanager-config"
        alertmanager.add("configSecret", f"configSecret -- the configuration Secret this chart renders (routing, "
                         f"receivers, inhibitions, notification templates), mounted at /etc/alertmanager/config: "
                         f"alertmanager.secretName, else <release>-{CHART}-alertmanager-config for this chart "
                         f"installed as release {RELEASE}", secret)
        alertmanager.add("secrets", f"secrets -- the Secrets whose keys the configuration reads (*_file under "
                         f"{am['secretsMountPath']}/<secret>/): PagerDuty routing keys, the Opsgenie API key, the "
                         f"heartbeat's credentials, as the routes of this environment use them; create them with "
                         f"kubectl create secret before installing", alertmanager_secrets(am))

    grafana = doc.add("grafana", "grafana -- the stack's Grafana (grafana chart) and its sidecars", Doc())
    sidecar = grafana.add("sidecar", "sidecar -- the containers that load dashboards and datasources from "
                          "ConfigMaps", Doc())
    dashboards = sidecar.add("dashboards", "dashboards -- the dashboard sidecar", Doc())
    dashboards.add("label", "label -- the label on this chart's dashboard ConfigMaps (dashboards.sidecarLabel)",
                   dash["sidecarLabel"])
    dashboards.add("labelValue", "labelValue -- its value (dashboards.sidecarLabelValue)",
                   str(dash["sidecarLabelValue"]))
    dashboards.add("searchNamespace", "searchNamespace -- ALL: ConfigMaps in every namespace", "ALL")
    dashboards.add("folderAnnotation", "folderAnnotation -- the annotation that names each dashboard's Grafana "
                   "folder (dashboards.folderAnnotation); the sidecar writes the dashboard into a subfolder of "
                   "that name", dash["folderAnnotation"])
    dashboards.add("provider", "provider -- the Grafana provider of the sidecar's files", Doc()).add(
        "foldersFromFilesStructure", "foldersFromFilesStructure -- true: each subfolder becomes a Grafana folder "
        "(this chart's folders); the stack's own dashboards, without the annotation, "
        "stay in General", True)
    datasources = sidecar.add("datasources", "datasources -- the datasource sidecar and the stack's Prometheus "
                              "datasource", Doc())
    datasources.add("label", "label -- the label on this chart's datasources ConfigMap (datasources.sidecarLabel)",
                    ds["sidecarLabel"])
    datasources.add("labelValue", "labelValue -- its value (datasources.sidecarLabelValue)",
                    str(ds["sidecarLabelValue"]))
    datasources.add("searchNamespace", "searchNamespace -- ALL: datasource ConfigMaps in every namespace", "ALL")
    if ds.get("reuseStackPrometheus"):
        items = {k: v for k, v in (ds.get("items") or {}).items() if v.get("enabled", True)}
        jaeger = next((v for v in items.values() if v.get("type") == "jaeger"), None)
        prometheus = (ds.get("items") or {}).get("prometheus") or {}
        datasources.add("defaultDatasourceEnabled", "defaultDatasourceEnabled -- the stack provisions the "
                        "Prometheus datasource (datasources.reuseStackPrometheus: this chart ships none)", True)
        datasources.add("isDefaultDatasource", "isDefaultDatasource -- it is Grafana's one default datasource "
                        "(this chart's Loki and Jaeger are not defaults)", True)
        datasources.add("name", "name -- its name", STACK_PROMETHEUS_NAME)
        datasources.add("uid", f"uid -- {DASHBOARD_DEFAULT_UID}: the uid the dashboards' datasource variable "
                        f"defaults to", DASHBOARD_DEFAULT_UID)
        if jaeger and prometheus.get("exemplarTraceIdLabel"):
            datasources.add("exemplarTraceIdDestinations", "exemplarTraceIdDestinations -- exemplars open their "
                            "trace in this chart's Jaeger datasource (the link the chart's own Prometheus "
                            "datasource has when standalone)",
                            {"datasourceUid": jaeger["uid"], "traceIdLabelName": prometheus["exemplarTraceIdLabel"],
                             "urlDisplayLabel": "View trace in Jaeger"})
    else:
        datasources.add("defaultDatasourceEnabled", "defaultDatasourceEnabled -- false: this chart ships the "
                        "default Prometheus datasource (datasources.reuseStackPrometheus is off)", False)

    # the stack's release: the name its own objects carry as `release`, which our labels select
    release = (rule_labels or scrape_labels).get("release", "kube-prometheus-stack")
    head = (f"# Generated by `python -m generator render` from values/defaults.yaml and values/{env}.yaml.\n"
            f"# Do not edit: change the values and render again.\n"
            f"#\n"
            f"# Values for kube-prometheus-stack {STACK_VERSION} in the {env} environment, beside this chart:\n"
            f"#   helm upgrade --install {release} prometheus-community/kube-prometheus-stack "
            f"--version {STACK_VERSION} -n monitoring -f {FOLDER}/{env}.yaml\n"
            f"#   helm upgrade --install {RELEASE} ./chart -n monitoring -f values/{env}.yaml\n"
            f"# Another release name for the stack: set rules.labels and scrape.labels (release: <name>) in\n"
            f"# values/{env}.yaml and render again. Another release name for this chart: set\n"
            f"# alertmanager.secretName in values/{env}.yaml (or configSecret here). See README.md.\n")
    return head + "\n".join(doc.lines()) + "\n"


def build(src, out) -> None:
    alerts = out.shared.get("alerts", {})
    unknown = sorted(set(REPLACES) - set(alerts))
    if unknown:
        raise ValidationError(f"generator/content/integrations.py: REPLACES names alerts this chart does not "
                              f"define: {', '.join(unknown)} (renamed or removed?)")
    for name, values in sorted(out.merged_values.items()):
        out.add(f"{FOLDER}/{name}.yaml", values_file(name, values, alerts))
