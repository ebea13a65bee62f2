"""Real servers on 127.0.0.1 for tests, previews and benchmarks: one way to start, check and stop them.

Every server the project runs locally (Prometheus, Alertmanager and its
cluster peers, VictoriaMetrics, vmagent, vmalert, the OCI registry) is a
``Server``: a child process on a free 127.0.0.1 port with its own folder
(configuration, data, log), ready when its health URL answers 200, stopped
(SIGTERM, then SIGKILL) by ``stop()`` or by leaving a ``Servers`` group.
Children get SIGTERM when the Python process that started them dies, so an
interrupted test run leaves nothing listening::

    with Servers(tmp_path) as group:
        am = group.alertmanager(config_text)
        prom = group.prometheus({"scrape_configs": [...]}, rule_files=[...])
        wait_until(lambda: prom.get_json("/api/v1/alerts")["data"]["alerts"], 60, "no alert")

Only the standard library is used, and nothing here is imported by
``render``; the binaries come from ``generator.tools.find``.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Callable

from . import tools

HOST = "127.0.0.1"


def free_port() -> int:
    """A TCP port on 127.0.0.1 nothing listens on right now."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def wait_until(predicate: Callable[[], Any], timeout: float, message: str | Callable[[], str] = "condition",
               interval: float = 0.2) -> Any:
    """Poll ``predicate`` until it returns something truthy and return that; ``AssertionError`` after ``timeout`` s.

    ``timeout`` is a safety net against a hung run, not a measurement: callers poll for the condition.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            text = message() if callable(message) else message
            raise AssertionError(f"after {timeout:.0f}s: {text}")
        time.sleep(interval)


def http(url: str, method: str = "GET", body: bytes | str | None = None, *, timeout: float = 30,
         headers: dict | None = None) -> tuple[int, bytes]:
    """``(status, body)`` of one request; HTTP errors are returned, not raised."""
    data = body.encode() if isinstance(body, str) else body
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def _die_with_parent() -> None:
    """In the child: SIGTERM when the parent dies, even by a signal (Linux PR_SET_PDEATHSIG)."""
    try:
        import ctypes
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, int(signal.SIGTERM))
    except (OSError, AttributeError):
        pass


class ServerError(RuntimeError):
    """A server exited or did not become healthy; the message carries the tail of its log."""


class Server:
    """One server process. ``url`` is its base URL; ``log()`` the tail of its output."""

    def __init__(self, name: str, cmd: list[str], folder: Path, port: int, *, health: str = "/-/ready",
                 timeout: float = 120) -> None:
        self.name, self.cmd, self.folder, self.port = name, cmd, folder, port
        self.url = f"http://{HOST}:{port}"
        self.health = health
        self.timeout = timeout
        self.log_path = folder / f"{name}.log"
        self.proc: subprocess.Popen | None = None
        self.start()

    # -- life cycle -------------------------------------------------------------------------------------------
    def start(self) -> "Server":
        """Start (or start again, same port, same data) and wait until healthy."""
        if self.running:
            return self
        log = self.log_path.open("a")
        try:
            self.proc = subprocess.Popen(self.cmd, stdout=log, stderr=subprocess.STDOUT, cwd=self.folder,
                                         preexec_fn=_die_with_parent)
        finally:
            log.close()
        try:
            self.wait_healthy(self.timeout)
        except ServerError:
            self.stop()
            raise
        return self

    def wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.proc is None or self.proc.poll() is not None:
                code = None if self.proc is None else self.proc.returncode
                raise ServerError(f"{self.name} exited ({code}): {' '.join(self.cmd)}\n{self.log()}")
            try:
                if http(self.url + self.health, timeout=2)[0] == 200:
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise ServerError(f"{self.name} not healthy at {self.url}{self.health} after {timeout:.0f}s\n{self.log()}")
            time.sleep(0.1)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, *, kill: bool = False) -> None:
        """SIGTERM (or SIGKILL with ``kill``, a crash), then SIGKILL if it is still there after 15 s."""
        if not self.running:
            return
        assert self.proc is not None
        (self.proc.kill if kill else self.proc.terminate)()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=15)

    def restart(self, *, kill: bool = False) -> "Server":
        self.stop(kill=kill)
        return self.start()

    def log(self, tail: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-tail:]
        except OSError:
            return ""

    # -- HTTP -----------------------------------------------------------------------------------------------
    def get_json(self, path: str, **params: Any) -> Any:
        query = ("?" + urllib.parse.urlencode(params, doseq=True)) if params else ""
        status, body = http(f"{self.url}{path}{query}")
        if status != 200:
            raise ServerError(f"{self.name} GET {path}: {status} {body[:500]!r}")
        return json.loads(body) if body.strip() else None

    def post_json(self, path: str, payload: Any) -> Any:
        status, body = http(f"{self.url}{path}", "POST", json.dumps(payload),
                            headers={"Content-Type": "application/json"})
        if status not in (200, 201, 202, 204):
            raise ServerError(f"{self.name} POST {path}: {status} {body[:500]!r}")
        return json.loads(body) if body.strip() else None

    def __enter__(self) -> "Server":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<{self.name} {self.url}{'' if self.running else ' stopped'}>"


class Prometheus(Server):
    """The Prometheus API helpers every user of a local Prometheus needs."""

    def api(self, path: str, **params: Any) -> Any:
        body = self.get_json(f"/api/v1/{path}", **params)
        if body.get("status") != "success":
            raise ServerError(f"{self.name} {path}: {body}")
        return body["data"]

    def query(self, expr: str, at: float | None = None) -> list[dict]:
        params = {"query": expr} if at is None else {"query": expr, "time": at}
        return self.api("query", **params)["result"]

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[dict]:
        return self.api("query_range", query=expr, start=start, end=end, step=step)["result"]

    def alerts(self, state: str | None = None, **labels: str) -> list[dict]:
        found = self.api("alerts")["alerts"]
        return [a for a in found if (state is None or a["state"] == state)
                and all(a["labels"].get(k) == v for k, v in labels.items())]

    def targets(self) -> list[dict]:
        """The active scrape targets (``/api/v1/targets``)."""
        return self.api("targets", state="active")["activeTargets"]

    def rule_health(self) -> list[str]:
        """Rules whose last evaluation failed, as ``group/rule: error``."""
        return [f"{g['name']}/{r['name']}: {r.get('lastError')}"
                for g in self.api("rules")["groups"] for r in g["rules"]
                if r.get("health") not in ("ok", "unknown")]

    def reload(self) -> None:
        """Re-read the configuration (needs ``--web.enable-lifecycle``, which ``Servers.prometheus`` sets)."""
        status, body = http(self.url + "/-/reload", "POST")
        if status != 200:
            raise ServerError(f"{self.name} reload: {status} {body[:500]!r}\n{self.log()}")


class Alertmanager(Server):
    def alerts(self, **labels: str) -> list[dict]:
        found = self.get_json("/api/v2/alerts")
        return [a for a in found if all(a["labels"].get(k) == v for k, v in labels.items())]

    def post_alerts(self, alerts: list[dict]) -> None:
        self.post_json("/api/v2/alerts", alerts)

    def peers(self) -> list[str]:
        """Cluster peer addresses this Alertmanager sees (``/api/v2/status``)."""
        status = self.get_json("/api/v2/status")
        return sorted(p["address"] for p in (status.get("cluster") or {}).get("peers") or [])


def _dump(folder: Path, name: str, config: dict | str | Path) -> Path:
    """Writes a configuration given as a mapping (JSON is YAML) or text; a path is used as it is."""
    if isinstance(config, Path):
        return config
    path = folder / name
    path.write_text(config if isinstance(config, str) else json.dumps(config, indent=1))
    return path


class Servers:
    """A group of servers in one folder, stopped together (last started first) on ``close()``."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.servers: list[Server] = []
        self._names: dict[str, int] = {}

    def _dir(self, kind: str, name: str | None) -> tuple[str, Path]:
        n = self._names.get(kind, 0)
        self._names[kind] = n + 1
        name = name or (kind if n == 0 else f"{kind}-{n}")
        folder = self.folder / name
        folder.mkdir(parents=True, exist_ok=True)
        return name, folder

    def add(self, server: Server) -> Server:
        self.servers.append(server)
        return server

    def prometheus(self, config: dict | str | Path, *, rule_files: list[Path] | None = None, name: str | None = None,
                   args: list[str] | None = None, port: int | None = None, retention: str = "30d") -> Prometheus:
        """A Prometheus (``--web.enable-lifecycle``). ``rule_files`` are added to a mapping ``config``."""
        name, folder = self._dir("prometheus", name)
        if isinstance(config, dict) and rule_files:
            config = {**config, "rule_files": [*config.get("rule_files", []), *map(str, rule_files)]}
        path = _dump(folder, "prometheus.yml", config)
        port = port or free_port()
        cmd = [tools.find("prometheus"), f"--config.file={path}", f"--storage.tsdb.path={folder / 'data'}",
               f"--web.listen-address={HOST}:{port}", f"--storage.tsdb.retention.time={retention}",
               "--web.enable-lifecycle", *(args or [])]
        return self.add(Prometheus(name, cmd, folder, port))  # type: ignore[return-value]

    def alertmanager(self, config: dict | str | Path, *, peers: list[str] | None = None, cluster: bool = False,
                     name: str | None = None, args: list[str] | None = None, port: int | None = None) -> Alertmanager:
        """An Alertmanager; with ``cluster`` (or ``peers``) it gossips on its own 127.0.0.1 port
        (``.cluster_address``), joining ``peers`` (other members' cluster addresses)."""
        name, folder = self._dir("alertmanager", name)
        path = _dump(folder, "alertmanager.yml", config)
        port = port or free_port()
        cmd = [tools.find("alertmanager"), f"--config.file={path}", f"--storage.path={folder / 'data'}",
               f"--web.listen-address={HOST}:{port}"]
        cluster_address = None
        if cluster or peers:
            cluster_address = f"{HOST}:{free_port()}"
            cmd += [f"--cluster.listen-address={cluster_address}", f"--cluster.advertise-address={cluster_address}",
                    "--cluster.settle-timeout=2s", "--cluster.pushpull-interval=2s", "--cluster.gossip-interval=100ms"]
            cmd += [f"--cluster.peer={p}" for p in peers or []]
        else:
            cmd.append("--cluster.listen-address=")
        cmd += args or []
        am = Alertmanager(name, cmd, folder, port)
        am.cluster_address = cluster_address  # type: ignore[attr-defined]
        return self.add(am)  # type: ignore[return-value]

    def victoria_metrics(self, *, name: str | None = None, args: list[str] | None = None,
                         retention: str = "100y") -> Server:
        """A single-node VictoriaMetrics (Debian ``victoria-metrics``); Prometheus API under ``url``,
        remote write at ``url + "/api/v1/write"``. Samples are visible to queries at once
        (``-search.latencyOffset=0s``, default 30 s) and responses are not cached, as tests poll."""
        name, folder = self._dir("victoria-metrics", name)
        port = free_port()
        cmd = [tools.find("victoria-metrics"), f"-httpListenAddr={HOST}:{port}", f"-storageDataPath={folder / 'data'}",
               f"-retentionPeriod={retention}", "-search.latencyOffset=0s", "-search.disableCache", *(args or [])]
        return self.add(Prometheus(name, cmd, folder, port, health="/health"))

    def vmalert(self, rule_files: list[Path], *, datasource: str, remote_write: str | None = None,
                notifier: str | None = None, name: str | None = None, args: list[str] | None = None) -> Server:
        """vmalert evaluating ``rule_files`` against ``datasource`` (a Prometheus-API URL)."""
        name, folder = self._dir("vmalert", name)
        port = free_port()
        cmd = [tools.find("vmalert"), f"-httpListenAddr={HOST}:{port}", f"-datasource.url={datasource}",
               *[f"-rule={p}" for p in rule_files]]
        if remote_write:
            cmd.append(f"-remoteWrite.url={remote_write}")
        if notifier:  # vmalert 1.79 has no -notifier.blackhole: without a notifier it takes recording rules only
            cmd.append(f"-notifier.url={notifier}")
        return self.add(Server(name, cmd + list(args or []), folder, port, health="/health"))

    def vmagent(self, scrape_config: dict | str | Path, *, remote_write: str, name: str | None = None,
                args: list[str] | None = None) -> Server:
        name, folder = self._dir("vmagent", name)
        path = _dump(folder, "scrape.yml", scrape_config)
        port = free_port()
        cmd = [tools.find("vmagent"), f"-httpListenAddr={HOST}:{port}", f"-promscrape.config={path}",
               f"-remoteWrite.url={remote_write}", f"-remoteWrite.tmpDataPath={folder / 'queue'}", *(args or [])]
        return self.add(Server(name, cmd, folder, port, health="/health"))

    def registry(self, *, name: str | None = None) -> Server:
        """An OCI registry (Debian's docker-registry, distribution 2.8), plain HTTP on 127.0.0.1."""
        name, folder = self._dir("registry", name)
        port = free_port()
        config = (f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {folder / 'data'}\n"
                  f"http:\n  addr: {HOST}:{port}\nlog:\n  level: warn\n")
        path = _dump(folder, "config.yml", config)
        binary = "/usr/bin/docker-registry" if os.access("/usr/bin/docker-registry", os.X_OK) \
            else tools.find("docker-registry")
        return self.add(Server(name, [binary, "serve", str(path)], folder, port, health="/v2/"))

    def close(self) -> None:
        errors = []
        for server in reversed(self.servers):
            try:
                server.stop()
            except Exception as e:  # noqa: BLE001 - stop the others, then report
                errors.append(f"{server.name}: {e}")
        self.servers.clear()
        if errors:
            raise ServerError("; ".join(errors))

    def __enter__(self) -> "Servers":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
