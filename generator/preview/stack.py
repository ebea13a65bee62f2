"""A local data source for previews: the metrics simulator and a real Prometheus.

``local_stack(root)`` starts the simulator (``simulator/``, every metric of
the catalog from the targets a cluster has) in this process, a Prometheus
(``generator.servers``) on a free 127.0.0.1 port that scrapes it
every ``scrape`` and evaluates the chart's recording and alerting rules
(dashboards read recorded series and ``ALERTS``), waits ``warmup`` seconds for data, yields the Prometheus
URL and stops both on exit. Nothing is left running; the TSDB lives in a
temporary folder.
"""
from __future__ import annotations

import contextlib
import json
import re
import sys
import tempfile
import time
from pathlib import Path

from ..errors import GeneratorError, ToolError
from .queries import Prometheus, parse_duration, wait_for_data


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


@contextlib.contextmanager
def prometheus(scrape_configs: list[dict], *, scrape: str = "2s", rules: dict | None = None,
               extra_args: tuple[str, ...] = ()):
    """A real Prometheus (``generator.servers``) scraping ``scrape_configs``; yields its URL."""
    from ..servers import Servers, ServerError
    with tempfile.TemporaryDirectory(prefix="vemon-preview-prom-") as tmp:
        folder = Path(tmp)
        config = {"global": {"scrape_interval": scrape, "evaluation_interval": scrape},
                  "scrape_configs": scrape_configs}
        if rules and rules.get("groups"):
            (folder / "rules.yml").write_text(json.dumps(rules))
            config["rule_files"] = [str(folder / "rules.yml")]
        with Servers(folder) as group:
            try:
                prom = group.prometheus(config, retention="1d", args=list(extra_args))
            except ServerError as e:
                raise ToolError(f"prometheus did not start: {str(e)[-800:]}") from None
            yield prom.url


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
