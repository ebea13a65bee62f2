"""Grafana datasources: checked per environment.

The datasources themselves are rendered by the chart from values
(``templates/grafana/datasources.yaml``) so URLs can differ between
environments. Here each environment's values are checked for what the
provisioning format and the dashboards need: unique uids, exactly one
default, and the Prometheus uid that the dashboards' ``datasource``
variable defaults to. With ``reuseStackPrometheus`` the Prometheus datasource
is kube-prometheus-stack's (uid ``prometheus``, set by the integration
values): ours then ship no default and take none of the stack's uids or names.
"""
from __future__ import annotations

import json

from ..errors import ValidationError

DASHBOARD_DEFAULT_UID = "prometheus"


# what kube-prometheus-stack provisions itself (grafana.sidecar.datasources): with reuseStackPrometheus
# the integration values pin these uids and names, so ours must not take them
STACK_DATASOURCES = {"prometheus": "Prometheus", "alertmanager": "Alertmanager"}


def check(env: str, file: str, values: dict) -> None:
    ds = values.get("datasources", {})
    if not ds.get("enabled", True):
        return
    items = {k: v for k, v in ds.get("items", {}).items() if v.get("enabled", True)}
    if ds.get("reuseStackPrometheus"):
        # kube-prometheus-stack ships the default Prometheus datasource with uid prometheus
        items = {k: v for k, v in items.items() if v.get("type") != "prometheus"}
        defaults = sorted(k for k, v in items.items() if v.get("isDefault"))
        if defaults:
            raise ValidationError(f"with reuseStackPrometheus the stack's Prometheus datasource is the default; "
                                  f"{', '.join(defaults)} must not be", file=file,
                                  key=f"datasources.items.{defaults[0]}.isDefault")
        for key, item in sorted(items.items()):
            if item.get("uid") in STACK_DATASOURCES or item.get("name") in STACK_DATASOURCES.values():
                raise ValidationError(f"uid {item.get('uid')!r} / name {item.get('name')!r} is kube-prometheus-stack's "
                                      f"(it provisions {', '.join(f'{n} ({u})' for u, n in STACK_DATASOURCES.items())})",
                                      file=file, key=f"datasources.items.{key}")
    else:
        defaults = sorted(k for k, v in items.items() if v.get("isDefault"))
        if len(defaults) != 1:
            raise ValidationError(f"exactly one enabled datasource must be the default, found "
                                  f"{len(defaults)} ({', '.join(defaults) or 'none'})", file=file,
                                  key="datasources.items.*.isDefault")
    uids: dict[str, str] = {}
    for key, item in sorted(items.items()):
        uid = item.get("uid", "")
        if uid in uids:
            raise ValidationError(f"uid {uid!r} is used by {uids[uid]} and {key}", file=file,
                                  key=f"datasources.items.{key}.uid")
        uids[uid] = key
    if ds.get("reuseStackPrometheus"):
        return
    if DASHBOARD_DEFAULT_UID not in uids or items[uids[DASHBOARD_DEFAULT_UID]].get("type") != "prometheus":
        raise ValidationError(f"the dashboards read a Prometheus datasource with uid {DASHBOARD_DEFAULT_UID!r}; "
                              "keep it enabled", file=file, key="datasources.items")


def build(src, out) -> None:
    # the same checks at install (templates/validate.yaml) read these
    out.add("chart/files/checks/datasources.json", json.dumps(
        {"stack": STACK_DATASOURCES, "dashboardDefaultUid": DASHBOARD_DEFAULT_UID}, sort_keys=True) + "\n")
    for name, values in sorted(out.merged_values.items()):
        check(name, src.envs[name].file, values)
