"""Real Prometheus and Alertmanager processes for the bundle and scrape tests.

Each runs on 127.0.0.1 on a free port with a temporary data folder and is
stopped by the context manager; nothing is left running.
"""
from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from pathlib import Path

import requests

from generator import tools


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, proc: subprocess.Popen, log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{url} exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
        with contextlib.suppress(requests.RequestException):
            if requests.get(url, timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise AssertionError(f"{url} not ready after {timeout}s:\n{log.read_text()[-3000:]}")


@contextlib.contextmanager
def process(cmd: list[str], ready_url: str, workdir: Path, name: str):
    log = workdir / f"{name}.log"
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=workdir)
    try:
        wait_http(ready_url, proc, log)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def prometheus(config: Path, workdir: Path):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [tools.find("prometheus"), f"--config.file={config}", f"--web.listen-address=127.0.0.1:{port}",
           f"--storage.tsdb.path={workdir / 'prom-data'}"]
    with process(cmd, url + "/-/ready", workdir, "prometheus"):
        yield url


@contextlib.contextmanager
def alertmanager(config: Path, workdir: Path):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [tools.find("alertmanager"), f"--config.file={config}", f"--web.listen-address=127.0.0.1:{port}",
           f"--storage.path={workdir / 'am-data'}", "--cluster.listen-address="]
    with process(cmd, url + "/-/ready", workdir, "alertmanager"):
        yield url
