"""What the fault and notification-injection tests add to ``tests/e2e/stack.py``.

* ``chart_alertmanager_config``: prod's Alertmanager configuration exactly as
  the chart renders it (``helm template``), pointed at the local vendor
  receivers, with its key files written where the config reads them and the
  routes' timers shortened.
* ``chart_rules``: the chart's own alert rules (``helm template`` of prod),
  with ``for``/thresholds overridden per test, as a Prometheus rule file.
* ``Exporter``: a /metrics endpoint whose text a test sets (the failing
  validators and pods).
* ``FlakyPagerDuty`` / ``FlakyOpsgenie``: the vendor stand-ins of stack.py
  that answer 500, or hang past Alertmanager's timeout, while an outage is on.
* ``restart``: stop a server (SIGTERM, or SIGKILL for a crash) and start it
  again on the same port with the same data folder (``generator.servers``).
"""
from __future__ import annotations

import secrets
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

TESTS = Path(__file__).resolve().parent
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

from conftest import ROOT, helm_template, manifests  # noqa: E402
from generator import tools  # noqa: E402
from e2e.stack import (HOST, Alertmanager, OpsgenieReceiver, PagerDutyReceiver,  # noqa: E402,F401
                       Prometheus, Request, Stack, WebhookReceiver, free_port, http_json, wait_until)

CLUSTER = "virtengine-prod"
CHAIN = "virtengine-1"
KEY_SECRET = "virtengine-alerting"


class Exporter:
    """Serves ``text`` at /metrics on 127.0.0.1 (a stand-in for the exporters of failing pods)."""

    def __init__(self, text: str = "") -> None:
        self.text = text
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                data = exporter.text.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer((HOST, 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
        self.thread.start()

    def scrape_config(self, job: str = "faults") -> dict:
        return {"job_name": job, "honor_labels": True,
                "static_configs": [{"targets": [f"{HOST}:{self.port}"], "labels": {"cluster": CLUSTER}}]}

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


class _Outage:
    """Mixin: while ``outage_until`` is in the future, every request fails (500, or hangs ``hang`` s first)."""
    outage_until = 0.0
    hang = 0.0

    def fail_for(self, seconds: float, hang: float = 0.0) -> None:
        self.hang = hang
        self.outage_until = time.monotonic() + seconds

    def recover(self) -> None:
        self.outage_until = 0.0

    def outage_failures(self) -> list[Request]:
        with self.lock:
            return [r for r in self.requests if "simulated outage" in r.errors]

    def handle(self, req: Request) -> tuple[int, object]:
        if time.monotonic() < self.outage_until:
            req.errors.append("simulated outage")
            if self.hang:
                time.sleep(self.hang)
            return 500, {"status": "error", "message": "internal server error"}
        return super().handle(req)


class FlakyPagerDuty(_Outage, PagerDutyReceiver):
    pass


class FlakyOpsgenie(_Outage, OpsgenieReceiver):
    pass


def restart(server, *, crash: bool = False) -> float:
    """Stops ``server`` (an Alertmanager or Prometheus of the stack) and starts it again, same port and data.

    ``crash``: SIGKILL instead of SIGTERM (no shutdown work). Returns the seconds it was down.
    """
    start = time.monotonic()
    server.restart(kill=crash)
    return time.monotonic() - start


def write_key_files(folder: Path) -> dict[str, str]:
    """Random vendor keys in the files the chart's config reads (never in values, never committed)."""
    keys = {"pagerduty-routing-key": secrets.token_hex(16), "opsgenie-api-key": str(__import__("uuid").uuid4())}
    (folder / KEY_SECRET).mkdir(parents=True, exist_ok=True)
    for name, value in keys.items():
        (folder / KEY_SECRET / name).write_text(value)
    return keys


def chart_alertmanager_config(folder: Path, *, pagerduty: PagerDutyReceiver, opsgenie: OpsgenieReceiver,
                              heartbeat: WebhookReceiver, secrets_dir: Path, timers: dict | None = None) -> str:
    """prod's alertmanager.yaml from ``helm template``, pointed at the local receivers; templates in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    sets = {
        "alertmanager.pagerduty.url": pagerduty.enqueue_url,
        "alertmanager.opsgenie.apiUrl": opsgenie.url,
        "alertmanager.heartbeat.url": heartbeat.url + "heartbeat",
        "alertmanager.secretsMountPath": str(secrets_dir),
        "alertmanager.templatesPath": str(folder),
    }
    for route, values in (timers or {}).items():
        for key, value in values.items():
            sets[f"alertmanager.routes.{route}.{key}"] = value
    extra = ["--show-only", "templates/alertmanager/config-secret.yaml"]
    for key, value in sets.items():
        extra += ["--set", f"{key}={value}"]
    (secret,) = manifests(helm_template("prod", 3, extra=extra).stdout)
    for key, text in secret["stringData"].items():
        (folder / key).write_text(text)
    return secret["stringData"]["alertmanager.yaml"]


def chart_rules(path: Path, alerts: dict[str, dict]) -> Path:
    """The chart's rules for ``alerts`` (name -> {"for": .., "thresholds.x": ..}) from prod, as a rule file."""
    extra = ["--show-only", "templates/prometheus/rules.yaml"]
    for name, overrides in alerts.items():
        for key, value in overrides.items():
            extra += ["--set", f"rules.alerts.{name}.{key}={value}"]
    groups = []
    for doc in manifests(helm_template("prod", 3, extra=extra).stdout):
        for group in doc["spec"]["groups"]:
            rules = [r for r in group["rules"] if r.get("alert") in alerts]
            if rules:
                groups.append({"name": group["name"], "rules": rules})
    missing = set(alerts) - {r["alert"] for g in groups for r in g["rules"]}
    assert not missing, f"the chart has no alert {sorted(missing)}"
    path.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
    check = subprocess.run([tools.find("promtool"), "check", "rules", str(path)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    return path


def metric(name: str, value: float, **labels: str) -> str:
    inner = ",".join(f'{k}="{v}"' for k, v in labels.items())
    return f"{name}{{{inner}}} {value}\n"


def am_counter(am: Alertmanager, name: str) -> float:
    """Sum of an Alertmanager metric (from its own /metrics)."""
    import urllib.request
    with urllib.request.urlopen(f"{am.url}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            total += float(line.rsplit(" ", 1)[1])
    return total


def flushes(am, alertname: str) -> int:
    """How many times Alertmanager flushed a group holding ``alertname``, from its own (debug) log.

    A flush is one pass of the notification pipeline (dedup, retries, send); the passes of a group run one
    after the other, so once a group has flushed again, everything the earlier pass was going to send is sent."""
    text = am.log_path.read_text(errors="replace")
    return sum(1 for line in text.splitlines() if "msg=flushing" in line and f"{alertname}[" in line)


def settle(am, alertname: str, passes: int = 2, timeout: float = 120) -> None:
    """Waits until Alertmanager has flushed the groups of ``alertname`` ``passes`` more times (its own log), instead
    of sleeping a guessed number of seconds before counting what arrived: any retry in flight and any duplicate a
    later pass would send has arrived by then."""
    start = flushes(am, alertname)
    wait_until(lambda: flushes(am, alertname) >= start + passes, timeout,
               lambda: f"Alertmanager flushed {alertname} {flushes(am, alertname) - start} of {passes} more times:\n"
                       f"{am.log()}")


def prom_counter(prom, name: str) -> float:
    """Sum of a Prometheus metric (from its own /metrics)."""
    import urllib.request
    total = 0.0
    with urllib.request.urlopen(f"{prom.url}/metrics", timeout=5) as resp:
        for line in resp.read().decode().splitlines():
            if line.startswith(name) and not line.startswith("#") and line[len(name)] in "{ ":
                total += float(line.rsplit(" ", 1)[1])
    return total


# short timers for the routes the tests use; repeat far beyond the test so any repeat is a duplicate
TIMERS = {"critical": {"groupWait": "1s", "groupInterval": "2s", "repeatInterval": "1h"},
          "warning": {"groupWait": "1s", "groupInterval": "2s", "repeatInterval": "1h"}}


class Env:
    """One running stack: exporter -> Prometheus (chart rules) -> Alertmanager (chart config) -> vendors."""

    def __init__(self, tmp: Path, alerts: dict[str, dict], prometheus_args: list[str] | None = None) -> None:
        self.stack = Stack(tmp)
        try:
            self._start(tmp, alerts, prometheus_args)
        except BaseException:
            self.stack.close()   # nothing is left running when a start fails
            raise

    def _start(self, tmp: Path, alerts: dict[str, dict], prometheus_args: list[str] | None) -> None:
        self.pd = self.stack._own(FlakyPagerDuty())
        self.og = self.stack._own(FlakyOpsgenie())
        self.heartbeat = self.stack.webhook()
        keys = write_key_files(tmp / "secrets")
        self.pd.routing_keys = {keys["pagerduty-routing-key"]}
        self.og.api_keys = {keys["opsgenie-api-key"]}
        config = chart_alertmanager_config(tmp / "am-config", pagerduty=self.pd, opsgenie=self.og,
                                           heartbeat=self.heartbeat, secrets_dir=tmp / "secrets", timers=TIMERS)
        self.am = self.stack.alertmanager(config, log_level="debug")   # debug: it logs each group flush
        self.exporter = self.stack._own(Exporter())
        rules = chart_rules(tmp / "rules.yaml", alerts)
        self.prom = self.stack.prometheus(rule_files=[rules], scrape_configs=[self.exporter.scrape_config()],
                                          alertmanager=self.am, target_labels={"cluster": CLUSTER},
                                          extra_args=prometheus_args)

    def pages(self, alertname: str) -> list[dict]:
        return self.pd.events(alertname, action="trigger")

    def close(self) -> None:
        self.stack.close()


@pytest.fixture
def env_factory(tmp_path):
    made: list[Env] = []

    def make(alerts: dict[str, dict], **kwargs) -> Env:
        env = Env(tmp_path, alerts, **kwargs)
        made.append(env)
        return env
    yield make
    for env in made:
        env.close()
