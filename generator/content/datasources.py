"""Grafana datasources: checked per environment.

The datasources themselves are rendered by the chart from values
(``templates/grafana/datasources.yaml``) so URLs can differ between
environments. Here each environment's values are checked for what the
provisioning format and the dashboards need: unique uids, exactly one
default, and the Prometheus uid that the dashboards' ``datasource``
variable defaults to.
"""
from __future__ import annotations

from ..errors import ValidationError

DASHBOARD_DEFAULT_UID = "prometheus"


def check(env: str, file: str, values: dict) -> None:
    ds = values.get("datasources", {})
    if not ds.get("enabled", True):
        return
    items = {k: v for k, v in ds.get("items", {}).items() if v.get("enabled", True)}
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
    if DASHBOARD_DEFAULT_UID not in uids or items[uids[DASHBOARD_DEFAULT_UID]].get("type") != "prometheus":
        raise ValidationError(f"the dashboards read a Prometheus datasource with uid {DASHBOARD_DEFAULT_UID!r}; "
                              "keep it enabled", file=file, key="datasources.items")


def build(src, out) -> None:
    for name, values in sorted(out.merged_values.items()):
        check(name, src.envs[name].file, values)
