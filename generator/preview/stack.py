"""A local data source for previews: the metrics simulator and a real Prometheus.

``local_stack(root)`` starts the simulator (``simulator/``, every metric of
the catalog from the targets a cluster has) in this process, a Prometheus
(``tools.find("prometheus")``) on a free 127.0.0.1 port that scrapes it
every ``scrape`` and evaluates the chart's recording and alerting rules
(dashboards read recorded series and ``ALERTS``), waits ``warmup`` seconds for data, yields the Prometheus
URL and stops both on exit. Nothing is left running; the TSDB lives in a
temporary folder.
"""
from __future__ import annotations

import contextlib
import json
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .. import tools
from ..errors import GeneratorError, ToolError
from .queries import Prometheus, parse_duration, wait_for_data


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def chart_rules(root: Path) -> dict:
    """The chart's recording and alerting rules as one Prometheus rule file.

    Alert thresholds (``${param}``) take their defaults, as Helm renders them
    without overrides, so dashboards that read ``ALERTS`` or recorded series
    have them.
    """
    from ..build import build
    groups = []
    for path, data in sorted(build(root).files.items()):
        if path.startswith("chart/files/rules/") and path.endswith(".json"):
            group = json.loads(data)
            rules = []
            for r in group.get("rules", []):
                params = r.get("params") or {}
                expr = re.sub(r"\$\{(\w+)\}", lambda m: str(params.get(m.group(1), m.group(0))), r.get("expr", ""))
                if "${" in expr or not (r.get("record") or r.get("alert")):
                    continue
                keep = ("record", "labels") if r.get("record") else ("alert", "for", "labels")
                rules.append({"expr": expr, **{k: r[k] for k in keep if r.get(k)}})
            if rules:
                groups.append({"name": group.get("name", path), "rules": rules})
    return {"groups": groups}


def _die_with_parent() -> None:
    """In the child: get SIGTERM when the preview process dies, even by a signal (Linux prctl)."""
    try:
        import ctypes
        import signal
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


@contextlib.contextmanager
def prometheus(scrape_configs: list[dict], *, scrape: str = "2s", rules: dict | None = None,
               extra_args: tuple[str, ...] = ()):
    """A real Prometheus scraping ``scrape_configs``; yields its URL."""
    binary = tools.find("prometheus")
    with tempfile.TemporaryDirectory(prefix="vemon-preview-prom-") as tmp:
        folder = Path(tmp)
        config = {"global": {"scrape_interval": scrape, "evaluation_interval": scrape},
                  "scrape_configs": scrape_configs}
        if rules and rules.get("groups"):
            (folder / "rules.yml").write_text(json.dumps(rules))
            config["rule_files"] = [str(folder / "rules.yml")]
        (folder / "prometheus.yml").write_text(json.dumps(config))
        port = free_port()
        log = open(folder / "prometheus.log", "w")
        proc = subprocess.Popen([binary, f"--config.file={folder / 'prometheus.yml'}",
                                 f"--storage.tsdb.path={folder / 'data'}", f"--web.listen-address=127.0.0.1:{port}",
                                 "--storage.tsdb.retention.time=1d", *extra_args],
                                stdout=log, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
        url = f"http://127.0.0.1:{port}"
        try:
            prom = Prometheus(url, timeout=5)
            deadline = time.monotonic() + 30
            while not prom.ready():
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.flush()
                    raise ToolError(f"prometheus did not start: {(folder / 'prometheus.log').read_text()[-800:]}")
                time.sleep(0.2)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            log.close()


def simulator_class(root: Path):
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    try:
        from simulator import Simulator
    except ImportError as e:
        raise GeneratorError(f"the metrics simulator (simulator/ in {root}) cannot be loaded ({e}); "
                             "pass --prometheus URL instead") from None
    return Simulator


@contextlib.contextmanager
def local_stack(root: Path, *, warmup: float = 45, scrape: str = "2s", block_time: float = 1.0):
    """The simulator and a Prometheus scraping it, with ``warmup`` seconds of data; yields the URL."""
    Simulator = simulator_class(root)
    sim = Simulator(root / "templates_src" / "metrics", block_time=block_time).start(0)
    try:
        configs = sim.scrape_configs(interval=scrape, labels={"cluster": "virtengine-local"})
        with prometheus(configs, scrape=scrape, rules=chart_rules(root)) as url:
            wait_for_data(Prometheus(url), "count(up == 1)")
            time.sleep(max(0.0, warmup - parse_duration(scrape) * 2))
            yield url
    finally:
        sim.stop()
