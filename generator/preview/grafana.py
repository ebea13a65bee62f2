"""A real Grafana, for those who have one: upload, read back, run panel queries.

Used by ``tests/test_preview_grafana.py`` when ``GRAFANA_URL`` and
``GRAFANA_TOKEN`` (a service-account token with Editor rights) are set, e.g.
against the compose bundle's Grafana. Dashboards are uploaded as copies
under a test uid (``vetest-...``) and title, so a real install's dashboards
are never overwritten; ``delete`` removes them. Queries go through
``/api/ds/query`` with the dashboard's variables resolved as in the preview
(Grafana's own ``$__interval`` / ``$__rate_interval`` are left to Grafana).
"""
from __future__ import annotations

import copy
import hashlib
import json
import urllib.error
import urllib.request

from ..errors import GeneratorError
from .queries import all_panels, variable_values, VAR


class GrafanaError(GeneratorError):
    pass


def test_uid(uid: str) -> str:
    return f"vetest-{hashlib.sha256(uid.encode()).hexdigest()[:10]}-{uid}"[:40]


class Grafana:
    def __init__(self, url: str, token: str, timeout: float = 30):
        self.url, self.token, self.timeout = url.rstrip("/"), token, timeout

    def call(self, method: str, path: str, body=None):
        req = urllib.request.Request(f"{self.url}{path}", method=method,
                                     data=None if body is None else json.dumps(body).encode(),
                                     headers={"Authorization": f"Bearer {self.token}",
                                              "Content-Type": "application/json", "Accept": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return json.load(resp)
        except urllib.error.HTTPError as e:
            raise GrafanaError(f"{method} {path}: HTTP {e.code}: {e.read()[:300].decode(errors='replace')}") from None
        except (urllib.error.URLError, OSError) as e:
            raise GrafanaError(f"cannot reach Grafana at {self.url}: {e}") from None

    def prometheus_uid(self, wanted: str = "") -> str:
        sources = [d for d in self.call("GET", "/api/datasources") if d.get("type") == "prometheus"]
        if wanted:
            sources = [d for d in sources if d.get("uid") == wanted]
        if not sources:
            raise GrafanaError(f"Grafana at {self.url} has no Prometheus data source{f' with uid {wanted}' if wanted else ''}")
        return next((d for d in sources if d.get("isDefault")), sources[0])["uid"]

    def upload(self, dashboard: dict) -> str:
        copy_ = copy.deepcopy(dashboard)
        copy_.pop("id", None)
        copy_["uid"] = test_uid(dashboard["uid"])
        copy_["title"] = f"{dashboard.get('title', dashboard['uid'])} (vemon test)"
        self.call("POST", "/api/dashboards/db", {"dashboard": copy_, "overwrite": True,
                                                  "message": "virtengine-observability preview test"})
        return copy_["uid"]

    def read(self, uid: str) -> dict:
        return self.call("GET", f"/api/dashboards/uid/{uid}")["dashboard"]

    def delete(self, uid: str) -> None:
        try:
            self.call("DELETE", f"/api/dashboards/uid/{uid}")
        except GrafanaError:
            pass

    def query(self, dashboard: dict, panel: dict, datasource_uid: str, range_from: str = "now-1h") -> dict[str, bool]:
        """refId -> whether Grafana's query API returned data for that target of ``panel``."""
        values = variable_values(dashboard)
        queries = []
        for t in panel.get("targets", []):
            if t.get("hide") or not t.get("expr"):
                continue
            expr = VAR.sub(lambda m: values.get(m.group(1) or m.group(2) or m.group(3), m.group(0)), t["expr"])
            queries.append({"refId": t.get("refId", "A"), "expr": expr,
                            "datasource": {"type": "prometheus", "uid": datasource_uid},
                            "instant": bool(t.get("instant")), "range": not t.get("instant") or bool(t.get("range")),
                            "intervalMs": 15000, "maxDataPoints": 300})
        if not queries:
            return {}
        body = self.call("POST", "/api/ds/query", {"from": range_from, "to": "now", "queries": queries})
        out = {}
        for ref, res in (body.get("results") or {}).items():
            frames = res.get("frames") or []
            out[ref] = not res.get("error") and any(
                any(len(col) for col in (f.get("data") or {}).get("values", [])[1:]) for f in frames)
        return out


def panels_with_queries(dashboard: dict) -> list[dict]:
    return [p for p in all_panels(dashboard) if p.get("targets")]
