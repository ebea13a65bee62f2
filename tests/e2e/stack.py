"""A real alerting stack on 127.0.0.1 for tests: Prometheus, Alertmanager, vendor stand-ins.

``Stack`` starts the real ``prometheus`` and ``alertmanager`` binaries through
the shared launcher (``generator.servers``) on free ports with storage in a
temporary folder, and local HTTP receivers that accept requests the way PagerDuty's Events API
v2 and Opsgenie's Alert API do and reject (and record) anything those
services would reject. Everything stops on ``close()`` / leaving the ``with``
block, in reverse order, so a test leaves nothing running::

    with Stack(tmp_path) as stack:
        pd = stack.pagerduty(routing_keys={"0123..."})
        og = stack.opsgenie(api_keys={"abcd-..."})
        am = stack.alertmanager(config_text)
        prom = stack.prometheus(rule_files=[...], scrape_configs=[...], alertmanager=am)
        wait_until(lambda: pd.events_for("ConsensusStalled"), 60, "no page")

Used by the end-to-end tests (tests/e2e/) and the fault tests.
"""
from __future__ import annotations

import json
import re
import sys
import threading
import time
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from generator.servers import (HOST, Alertmanager, Prometheus, Servers, free_port,  # noqa: E402,F401
                               wait_until)


def http_json(url: str, method: str = "GET", body: Any = None, timeout: float = 10) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        text = resp.read().decode()
    return json.loads(text) if text.strip() else None


def prometheus_config(port: int, *, rule_files: list[Path], scrape_configs: list[dict],
                      alertmanagers: list[Alertmanager] = (), evaluation_interval: str = "1s",
                      scrape_interval: str = "1s", external_labels: dict | None = None, self_scrape: bool = True,
                      target_labels: dict | None = None, alert_relabel_configs: list[dict] | None = None,
                      pod: str = "prometheus-0") -> dict:
    """The test Prometheus's configuration: ``scrape_configs``, rules, every Alertmanager of ``alertmanagers``.

    ``target_labels`` go on the self-scrape targets (Prometheus, Alertmanager), e.g. the cluster.
    """
    config: dict = {
        "global": {"scrape_interval": scrape_interval, "evaluation_interval": evaluation_interval,
                   "scrape_timeout": scrape_interval, "external_labels": external_labels or {}},
        "rule_files": [str(p) for p in rule_files],
        "scrape_configs": list(scrape_configs),
    }
    if self_scrape:
        config["scrape_configs"].append({"job_name": "prometheus", "static_configs": [
            {"targets": [f"{HOST}:{port}"], "labels": {"pod": pod, **(target_labels or {})}}]})
    if alertmanagers:
        targets = [f"{HOST}:{am.port}" for am in alertmanagers]
        config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": targets}]}]}
        if alert_relabel_configs:
            config["alerting"]["alert_relabel_configs"] = alert_relabel_configs
        if self_scrape:
            config["scrape_configs"].append({"job_name": "alertmanager", "static_configs": [
                {"targets": [t], "labels": {"pod": f"alertmanager-{i}", **(target_labels or {})}}
                for i, t in enumerate(targets)]})
    return config


# -- vendor stand-ins -------------------------------------------------------------------------------------------

@dataclass
class Request:
    method: str
    path: str
    query: dict
    headers: dict
    body: Any
    errors: list[str] = field(default_factory=list)
    at: float = field(default_factory=time.monotonic)


class Receiver:
    """A local HTTP server that records every request; subclasses check them like the vendor."""
    kind = "webhook"

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def _handle(self) -> None:
                url = urllib.parse.urlparse(self.path)
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = raw.decode(errors="replace")
                req = Request(self.command, url.path, {k: v[0] for k, v in urllib.parse.parse_qs(url.query).items()},
                              {k.lower(): v for k, v in self.headers.items()}, body)
                code, answer = receiver.handle(req)
                with receiver.lock:
                    receiver.requests.append(req)
                data = json.dumps(answer).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_POST = do_PUT = do_PATCH = do_GET = do_DELETE = _handle

        self.server = ThreadingHTTPServer((HOST, 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/"

    def handle(self, req: Request) -> tuple[int, Any]:
        if req.method != "POST" or not isinstance(req.body, dict):
            req.errors.append("expected a POST with a JSON object")
            return 400, {"error": req.errors}
        for key in ("version", "status", "alerts", "groupKey", "receiver"):
            if key not in req.body:
                req.errors.append(f"webhook payload without {key!r}")
        return (400, {"error": req.errors}) if req.errors else (200, {})

    def valid(self) -> list[Request]:
        with self.lock:
            return [r for r in self.requests if not r.errors]

    def invalid(self) -> list[Request]:
        with self.lock:
            return [r for r in self.requests if r.errors]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


class WebhookReceiver(Receiver):
    """Alertmanager's generic webhook (heartbeat / dead man's switch)."""

    def notifications(self, alertname: str | None = None, status: str | None = None) -> list[dict]:
        return [r.body for r in self.valid() if (status is None or r.body["status"] == status)
                and (alertname is None or r.body.get("commonLabels", {}).get("alertname") == alertname)]


PD_SEVERITIES = ("critical", "error", "warning", "info")
PD_ACTIONS = ("trigger", "acknowledge", "resolve")


class PagerDutyReceiver(Receiver):
    """PagerDuty Events API v2 (``POST /v2/enqueue``), with its validation rules."""
    kind = "pagerduty"

    def __init__(self, routing_keys: set[str] | None = None) -> None:
        self.routing_keys = set(routing_keys or ())
        super().__init__()

    @property
    def enqueue_url(self) -> str:
        return f"http://{HOST}:{self.port}/v2/enqueue"

    def handle(self, req: Request) -> tuple[int, Any]:
        e, body = req.errors, req.body
        if req.method != "POST" or req.path != "/v2/enqueue":
            e.append(f"{req.method} {req.path}: Events API v2 accepts POST /v2/enqueue")
            return 404, {"status": "not found"}
        if not req.headers.get("content-type", "").startswith("application/json") or not isinstance(body, dict):
            e.append("body must be a JSON object (Content-Type: application/json)")
            return 400, {"status": "invalid event", "errors": e}
        key = body.get("routing_key")
        if not isinstance(key, str) or len(key) != 32:
            e.append("'routing_key' must be a 32 character integration key")
        elif self.routing_keys and key not in self.routing_keys:
            e.append("'routing_key' is not a known integration key")
        action = body.get("event_action")
        if action not in PD_ACTIONS:
            e.append(f"'event_action' must be one of {', '.join(PD_ACTIONS)}, got {action!r}")
        dedup = body.get("dedup_key")
        if not isinstance(dedup, str) or not dedup or len(dedup) > 255:
            e.append("'dedup_key' must be a non-empty string of at most 255 characters")
        if action == "trigger":
            payload = body.get("payload")
            if not isinstance(payload, dict):
                e.append("'payload' is required to trigger")
            else:
                if not isinstance(payload.get("summary"), str) or not payload["summary"].strip():
                    e.append("'payload.summary' is required")
                elif len(payload["summary"]) > 1024:
                    e.append("'payload.summary' longer than 1024 characters")
                if not isinstance(payload.get("source"), str) or not payload["source"].strip():
                    e.append("'payload.source' is required")
                if payload.get("severity") not in PD_SEVERITIES:
                    e.append(f"'payload.severity' must be one of {', '.join(PD_SEVERITIES)}, "
                             f"got {payload.get('severity')!r}")
            for link in body.get("links") or []:
                if not isinstance(link, dict) or not str(link.get("href", "")).startswith(("http://", "https://")):
                    e.append(f"link {link!r} has no http(s) href")
        if e:
            return 400, {"status": "invalid event", "message": "Event object is invalid", "errors": e}
        return 202, {"status": "success", "message": "Event processed", "dedup_key": dedup}

    def events(self, alertname: str | None = None, action: str | None = None) -> list[dict]:
        """Valid events, optionally for one alert name (from the summary or details) and action."""
        out = []
        for r in self.valid():
            if action and r.body["event_action"] != action:
                continue
            if alertname and alertname not in json.dumps(r.body.get("payload", {})) \
                    and alertname not in json.dumps(r.body.get("details", {})):
                if r.body["event_action"] != "resolve" or not self._dedup_is(r.body["dedup_key"], alertname):
                    continue
            out.append(r.body)
        return out

    def _dedup_is(self, dedup: str, alertname: str) -> bool:
        return any(r.body.get("dedup_key") == dedup and alertname in json.dumps(r.body.get("payload", {}))
                   for r in self.valid() if r.body["event_action"] == "trigger")


OG_PRIORITIES = ("P1", "P2", "P3", "P4", "P5")
OG_RESPONDER_TYPES = ("team", "user", "escalation", "schedule")


class OpsgenieReceiver(Receiver):
    """Opsgenie Alert API v2 (create, close, update message/description), with its checks."""
    kind = "opsgenie"

    def __init__(self, api_keys: set[str] | None = None) -> None:
        self.api_keys = set(api_keys or ())
        super().__init__()

    def handle(self, req: Request) -> tuple[int, Any]:
        e, body = req.errors, req.body
        request_id = str(uuid.uuid4())
        auth = req.headers.get("authorization", "")
        match = re.fullmatch(r"GenieKey (\S+)", auth)
        if not match:
            e.append("missing 'Authorization: GenieKey <api key>' header")
            return 401, {"message": "Could not authenticate", "took": 0.0, "requestId": request_id}
        if self.api_keys and match.group(1) not in self.api_keys:
            e.append("unknown API key")
            return 401, {"message": "Could not authenticate", "took": 0.0, "requestId": request_id}
        if not isinstance(body, dict):
            e.append("body must be a JSON object")
            return 422, {"message": "Invalid JSON", "took": 0.0, "requestId": request_id}
        path = req.path
        if req.method == "POST" and path == "/v2/alerts":
            msg = body.get("message")
            if not isinstance(msg, str) or not msg.strip():
                e.append("'message' is required")
            elif len(msg) > 130:
                e.append("'message' longer than 130 characters")
            if "alias" in body and (not isinstance(body["alias"], str) or len(body["alias"]) > 512):
                e.append("'alias' must be a string of at most 512 characters")
            if "priority" in body and body["priority"] not in OG_PRIORITIES:
                e.append(f"'priority' must be one of {', '.join(OG_PRIORITIES)}, got {body['priority']!r}")
            for r in body.get("responders") or []:
                if not isinstance(r, dict) or r.get("type") not in OG_RESPONDER_TYPES:
                    e.append(f"responder {r!r}: 'type' must be one of {', '.join(OG_RESPONDER_TYPES)}")
                elif not (r.get("id") or r.get("name") or r.get("username")):
                    e.append(f"responder {r!r} needs an id, name or username")
            tags = body.get("tags")
            if tags is not None and (not isinstance(tags, list) or not all(isinstance(t, str) for t in tags)):
                e.append("'tags' must be a list of strings")
            if isinstance(body.get("description"), str) and len(body["description"]) > 15000:
                e.append("'description' longer than 15000 characters")
        elif req.method == "POST" and re.fullmatch(r"/v2/alerts/[^/]+/close", path):
            if req.query.get("identifierType") not in ("alias", "id", "tiny"):
                e.append("close needs ?identifierType=alias|id|tiny")
        elif req.method == "PUT" and re.fullmatch(r"/v2/alerts/[^/]+/(message|description)", path):
            field_name = path.rsplit("/", 1)[1]
            if not isinstance(body.get(field_name), str):
                e.append(f"update needs a {field_name!r} string")
        else:
            e.append(f"{req.method} {path} is not an Alert API call")
            return 404, {"message": "Not found", "took": 0.0, "requestId": request_id}
        if e:
            return 422, {"message": "; ".join(e), "took": 0.0, "requestId": request_id}
        return 202, {"result": "Request will be processed", "took": 0.01, "requestId": request_id}

    def created(self, alertname: str | None = None) -> list[dict]:
        return [r.body for r in self.valid() if r.method == "POST" and r.path == "/v2/alerts"
                and (alertname is None or alertname in r.body.get("message", "")
                     or alertname == r.body.get("details", {}).get("alertname"))]

    def closed(self, alertname: str | None = None) -> list[str]:
        """Aliases closed; with ``alertname``, only those of alerts created for it."""
        aliases = {b.get("alias") for b in self.created(alertname)} if alertname else None
        out = []
        for r in self.valid():
            m = re.fullmatch(r"/v2/alerts/([^/]+)/close", r.path)
            if r.method == "POST" and m:
                alias = urllib.parse.unquote(m.group(1))
                if aliases is None or alias in aliases:
                    out.append(alias)
        return out


# -- the stack --------------------------------------------------------------------------------------------------

class Stack:
    """Owns everything it starts; ``close`` stops it all in reverse order.

    The real servers come from ``generator.servers`` (one ``Servers`` group in ``workdir``); the vendor
    stand-ins and simulators are this module's.
    """

    def __init__(self, workdir: Path) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.servers = Servers(self.workdir)
        self._owned: list[Any] = []

    def _own(self, thing):
        self._owned.append(thing)
        return thing

    def pagerduty(self, routing_keys: set[str] | None = None) -> PagerDutyReceiver:
        return self._own(PagerDutyReceiver(routing_keys))

    def opsgenie(self, api_keys: set[str] | None = None) -> OpsgenieReceiver:
        return self._own(OpsgenieReceiver(api_keys))

    def webhook(self) -> WebhookReceiver:
        return self._own(WebhookReceiver())

    def alertmanager(self, config_text: str, *, cluster: bool = False, peers: list[str] | None = None,
                     name: str | None = None, args: list[str] | None = None, log_level: str = "info") -> Alertmanager:
        """A real Alertmanager; ``cluster``/``peers``: a gossiping peer (see ``generator.servers``);
        ``log_level="debug"`` logs each group flush."""
        return self._own(self.servers.alertmanager(config_text, cluster=cluster, peers=peers, name=name,
                                                   args=[f"--log.level={log_level}", *(args or [])]))

    def prometheus(self, *, alertmanager: Alertmanager | None = None, alertmanagers: list[Alertmanager] = (),
                   extra_args: list[str] | None = None, name: str | None = None, **kwargs) -> Prometheus:
        """A real Prometheus (``prometheus_config`` for the keywords) sending to ``alertmanager``(s)."""
        port = free_port()
        ams = [alertmanager] if alertmanager is not None else list(alertmanagers)
        config = prometheus_config(port, alertmanagers=ams, **kwargs)
        return self._own(self.servers.prometheus(config, name=name, port=port, retention="2h", args=[
            "--rules.alert.resend-delay=2s", "--log.level=info", *(extra_args or [])]))

    def simulator(self, **kwargs):
        """A metrics simulator (see ``simulator``), started on free ports."""
        from simulator import Simulator
        return self._own(Simulator(**kwargs).start(0))

    def close(self) -> None:
        errors = []
        while self._owned:
            thing = self._owned.pop()
            try:
                thing.stop()
            except Exception as exc:  # keep stopping the rest
                errors.append(f"{type(thing).__name__}: {exc}")
        try:
            self.servers.close()
        except Exception as exc:  # noqa: BLE001
            errors.append(str(exc))
        if errors:
            raise RuntimeError("teardown: " + "; ".join(errors))

    def __enter__(self) -> "Stack":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
