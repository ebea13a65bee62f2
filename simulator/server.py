"""The simulator: targets served over HTTP, and a control API to switch scenarios.

``Simulator`` is both the library and what ``python -m simulator`` runs. Each
target is its own HTTP server on 127.0.0.1 (a stopped target refuses
connections, as a dead exporter does); the control server answers:

  GET  /                    this help
  GET  /scenarios           available scenarios and the active ones (JSON)
  POST /scenario/<name>     make <name> the only active scenario (?chain=<id, index or *>, ?add=1 to keep others)
  DELETE /scenario/<name>   end one scenario; POST /scenario/none ends all
  GET  /targets             targets with job, instance, port, up (JSON)
  GET  /sd                  the targets in Prometheus http_sd format
"""
from __future__ import annotations

import dataclasses
import json
import math
import random
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from decimal import Decimal
from urllib.parse import parse_qs, urlparse

from prometheus_client.core import (CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily,
                                    InfoMetricFamily, Metric, SummaryMetricFamily)
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import CollectorRegistry

from . import scenarios as scenario_defs
from .catalog import DEFAULT_CATALOG, MetricDef, load_catalog
from .model import CHAIN_STATE_SOURCES, SYNTHETIC, MetricOnTarget, Modifiers
from .world import JOBS, Chain, Target, World, pick_missing


ALL = "*"   # a scenario on every chain
LE_STYLES = ("prom2", "prom3")


def go_float(x: float) -> str:
    """A float the way Go prints it with strconv.FormatFloat(x, 'g', -1, 64), as client_golang writes ``le``:
    the shortest digits that read back the same, exponent form when the exponent is below -4 or 6 and above
    (10 -> "10", 0.005 -> "0.005", 1e6 -> "1e+06", 67108864 -> "6.7108864e+07")."""
    if x != x:
        return "NaN"
    if x in (math.inf, -math.inf):
        return "+Inf" if x > 0 else "-Inf"
    if x == 0:
        return "0"
    sign, digits, exponent = Decimal(repr(abs(x))).normalize().as_tuple()
    text = "".join(map(str, digits))
    point = len(text) + exponent       # digits before the decimal point
    exp = point - 1
    minus = "-" if x < 0 else ""
    if exp < -4 or exp >= 6:
        mantissa = text[0] + ("." + text[1:] if len(text) > 1 else "")
        return f"{minus}{mantissa}e{'+' if exp >= 0 else '-'}{abs(exp):02d}"
    if point <= 0:
        return f"{minus}0.{'0' * -point}{text}"
    if point >= len(text):
        return minus + text + "0" * (point - len(text))
    return f"{minus}{text[:point]}.{text[point:]}"


def prom3_float(x: float) -> str:
    """What Prometheus 3 stores for an ``le``/``quantile`` value on ingestion (formatOpenMetricsFloat): Go's
    shortest form, with ".0" added when it has neither a point nor an exponent (10 -> "10.0", 0.005 kept)."""
    text = go_float(x)
    if text in ("+Inf", "-Inf", "NaN") or "." in text or "e" in text:
        return text
    return text + ".0"


def _le(x: float, style: str = "prom2") -> str:
    """A bucket bound as the series is stored: Prometheus 2 keeps the exporter's text (Go: 10 -> "10",
    0.005 -> "0.005"); Prometheus 3 normalises it ("10.0")."""
    return prom3_float(x) if style == "prom3" else go_float(x)


class _Quiet(BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:  # no access log on stderr
        pass

    def _send(self, code: int, body: bytes, ctype: str = "application/json") -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _TargetCollector:
    def __init__(self, sim: "Simulator", target: Target, advance: bool = True) -> None:
        self.sim, self.target, self.advance = sim, target, advance

    def collect(self):
        return self.sim.families(self.target, advance=self.advance)


class Simulator:
    """A fleet of simulated exporters built from the metrics catalog."""

    def __init__(self, catalog: Path | str | list[MetricDef] = DEFAULT_CATALOG, *, seed: int = 1, chains: int = 3,
                 nodes_per_chain: int = 3, block_time: float = 6.0, host: str = "127.0.0.1",
                 exclude_sources: tuple[str, ...] = (), le_style: str = "prom2", provider_only: bool = False,
                 restart_lag_blocks: int = 300, sync_speed: float = 4.0) -> None:
        """``exclude_sources``: catalog sources not to simulate (e.g. ("prometheus", "alertmanager")
        when the real servers are scraped instead). ``le_style``: "prom2" serves bucket bounds as Go exporters
        print them (``le="10"``, what Prometheus 2 stores), "prom3" as Prometheus 3 stores them after its
        ingestion normalisation (``le="10.0"``), so a Prometheus 2 scraping the simulator holds 3.x series.
        ``provider_only``: a cluster with provider daemons and exporters but no chain node (no CometBFT, no
        application endpoint). ``restart_lag_blocks``: how far behind a restarted node starts its block sync;
        ``sync_speed``: blocks it applies per chain block while syncing."""
        if le_style not in LE_STYLES:
            raise ValueError(f"le_style {le_style!r}: allowed values are {', '.join(LE_STYLES)}")
        metrics = catalog if isinstance(catalog, list) else load_catalog(catalog)
        if provider_only:
            exclude_sources = (*exclude_sources, "cometbft", *CHAIN_STATE_SOURCES)
        self.metrics = [m for m in metrics if m.source not in exclude_sources]
        self.host, self.le_style, self.restart_lag_blocks = host, le_style, restart_lag_blocks
        self.rng = random.Random(seed)
        self.world = World({m.source for m in self.metrics}, seed=seed, chains=chains,
                           nodes_per_chain=nodes_per_chain, block_time=block_time, sync_speed=sync_speed)
        self.lock = threading.RLock()
        self.on_target: dict[str, list[MetricOnTarget]] = {}
        shared: dict[tuple[str, str], MetricOnTarget] = {}   # chain state: one model per (chain, metric)
        for t in self.world.targets:
            mots = []
            for m in self.metrics:
                if m.source not in t.sources or SYNTHETIC.fullmatch(m.name):
                    continue
                if m.source in CHAIN_STATE_SOURCES:
                    key = (t.chain.chain_id, m.name)
                    if key not in shared:
                        shared[key] = MetricOnTarget(m, t, self.world, self.rng)
                    mots.append(shared[key])
                else:
                    mots.append(MetricOnTarget(m, t, self.world, self.rng))
            # a counter that follows another one with a lag is advanced after its leader
            for mot in mots:
                if mot.spec.leader and mot.spec.lag_blocks and mot.leader is None:
                    leader = next((x for x in mots if x.metric.name == mot.spec.leader), None)
                    if leader is not None:
                        mot.link(leader)
            self.on_target[t.name] = sorted(mots, key=lambda x: x.leader is not None)
        self.active: dict[str, str] = {}     # scenario name -> chain_id
        self._mods: dict[tuple, Modifiers] = {}
        self._last = time.monotonic()
        self._servers: dict[str, ThreadingHTTPServer] = {}
        self._threads: list[threading.Thread] = []
        self.control: ThreadingHTTPServer | None = None
        self.advance_all(0.0)

    # -- state
    def modifiers(self, mot: MetricOnTarget) -> Modifiers:
        key = (mot.target.name, mot.metric.name)
        mods = self._mods.get(key)
        if mods is None:
            mods = Modifiers()
            for name, chain_id in self.active.items():
                if chain_id not in (mot.target.chain.chain_id, ALL):
                    continue
                for effect in scenario_defs.get(name).effects:
                    if effect.matches(mot.metric.name):
                        for attr in ("level", "rate", "median", "bad_weight"):
                            factor = getattr(effect, attr)
                            if factor is not None:
                                setattr(mods, attr, getattr(mods, attr) * factor)
            self._mods[key] = mods
        return mods

    def advance_all(self, dt: float) -> None:
        now = time.monotonic()
        for t in self.world.targets:
            for mot in self.on_target[t.name]:
                if mot.last != now:
                    mot.advance(dt, self.modifiers(mot), self.rng)
                    mot.last = now

    def _advance_mots(self, mots, now: float) -> None:
        """Each metric model moves by the time since it last moved (a chain-state model is shared by every
        node's target of its chain and moves once)."""
        for mot in mots:
            last = now if mot.last is None else mot.last
            mot.last = now
            if now > last:
                mot.advance(now - last, self.modifiers(mot), self.rng)

    def _advance(self, target: Target) -> None:
        now = time.monotonic()
        dt_chain, self._last = now - self._last, now
        for chain in self.world.chains:
            chain.advance(dt_chain)
        self._advance_mots(self.on_target[target.name], now)

    def families(self, target: Target, *, advance: bool = True) -> list:
        with self.lock:
            if advance:
                self._advance(target)
            out = []
            for mot in self.on_target[target.name]:
                out.append(self._family(mot, target))
            return out

    def _family(self, mot: MetricOnTarget, target: Target | None = None):
        m, labels = mot.metric, list(mot.series[0].labels) if mot.series else []
        mods = self.modifiers(mot)
        # a chain-state metric on a node behind the chain head (block-syncing) shows the state of its height
        node = target.node_obj if target is not None else None
        behind = 0.0
        if node is not None and node.state == "syncing" and m.source in CHAIN_STATE_SOURCES:
            behind = max(0.0, int(target.chain.height) - node.sync_height)
        if m.type == "counter":
            # a counter named without _total (CometBFT's go-kit counters, e.g. cometbft_mempool_failed_txs) is
            # exposed under its own name, as its exporter does; the client library would add _total
            bare = not m.name.endswith("_total")
            fam = Metric(m.name, m.help, "counter") if bare else CounterMetricFamily(m.name, m.help, labels=labels)
            for s in mot.series:
                raw = mot.rewound(s, behind)[0]
                value = float(int(raw)) if not m.name.endswith(("_seconds_total", "_bytes_total")) else round(raw, 3)
                if bare:
                    fam.add_sample(m.name, dict(s.labels), value)
                else:
                    fam.add_metric(list(s.labels.values()), value)
        elif m.type == "histogram":
            fam = HistogramMetricFamily(m.name, m.help, labels=labels)
            for s in mot.series:
                _, sbuckets, scount, stotal = mot.rewound(s, behind)
                count, running, buckets = round(scount, 3), 0.0, []
                for le, c in zip(mot.spec.buckets, sbuckets):
                    running = min(max(running, round(c, 3)), count)   # cumulative, never above the count
                    buckets.append((_le(le, self.le_style), running))
                buckets.append(("+Inf", count))
                fam.add_metric(list(s.labels.values()), buckets, round(stotal, 6))
        elif m.type == "summary":
            fam = SummaryMetricFamily(m.name, m.help, labels=labels)
            for s in mot.series:
                fam.add_metric(list(s.labels.values()), count_value=round(s.count, 3), sum_value=round(s.total, 6))
        elif m.type == "info":
            fam = InfoMetricFamily(m.name[:-5] if m.name.endswith("_info") else m.name, m.help, labels=[])
            for s in mot.series:
                fam.add_metric([], {k: v for k, v in s.labels.items()})
        else:
            fam = GaugeMetricFamily(m.name, m.help, labels=labels)
            for s in mot.series:
                value = mot.gauge_value(s, mods)
                if value is not None:   # None: the exporter has not set this gauge (no series)
                    fam.add_metric(list(s.labels.values()), value)
        return fam

    def snapshot(self, names: list[str] | None = None) -> dict[str, bytes]:
        """What a scrape of every answering target (or of those ``names``) returns at one instant
        ({instance: text}): the fleet moves to now once, then each target is read without moving it again."""
        with self.lock:
            self._apply_pending_time()
            return {t.name: self.exposition(t, advance=False) for t in self.world.targets
                    if t.up and (names is None or t.name in names)}

    def exposition(self, target: Target | str, *, advance: bool = True) -> bytes:
        """The text a scrape of this target returns."""
        target = self.target(target) if isinstance(target, str) else target
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_TargetCollector(self, target, advance))
        text = generate_latest(registry)
        for m in self.metrics:   # the client library names every counter family <name>_total in HELP/TYPE
            if m.type == "counter" and not m.name.endswith("_total") and m.source in target.sources:
                for kind in (b"HELP", b"TYPE"):
                    text = text.replace(b"# %s %s_total " % (kind, m.name.encode()), b"# %s %s " % (kind, m.name.encode()))
        return text

    # -- scenarios
    def scenarios(self) -> dict:
        return {"available": {n: s.description for n, s in scenario_defs.SCENARIOS.items()},
                "active": dict(self.active), "chains": [c.chain_id for c in self.world.chains]}

    def activate(self, name: str, chain: str | int | None = None, *, exclusive: bool = False) -> str:
        """Start a scenario on a chain (default: the first; "*": every chain); returns the chain_id or "*"."""
        scenario = scenario_defs.get(name)
        chains = self.world.chains if chain == ALL else [self.world.chain(chain)]
        with self.lock:
            if exclusive:
                for other in list(self.active):
                    self._deactivate(other)
            if name in self.active:
                self._deactivate(name)
            self._apply_pending_time()
            self.active[name] = ALL if chain == ALL else chains[0].chain_id
            for chain_obj in chains:
                for attr, value in scenario.chain.items():
                    setattr(chain_obj, attr, value)
                if chain_obj.halted and chain_obj.missing_share:
                    # validators dropped out one by one: the last block committed had the most missing power
                    # a commit allows (under 1/3); the gauges freeze there
                    chain_obj.committed_missing = pick_missing(chain_obj.validators, chain_obj.total_power,
                                                               chain_obj.missing_share, below_third=True)
                if scenario.stop:
                    self._stop_target(self._stop_target_of(scenario, chain_obj))
                if scenario.restart:
                    nodes = chain_obj.nodes if scenario.restart == "all" else chain_obj.nodes[-1:]
                    for node in nodes:
                        self._restart_node(chain_obj, node)
                if scenario.signer_down:
                    for node in chain_obj.nodes:
                        if node.validator is not None:
                            node.signing = False
            self._mods.clear()
            self.advance_all(0.0)
        return self.active[name]

    def deactivate(self, name: str | None = None) -> None:
        """End one scenario, or all of them (None)."""
        with self.lock:
            self._apply_pending_time()
            for other in ([name] if name else list(self.active)):
                if other in self.active:
                    self._deactivate(other)
            self._mods.clear()

    def _deactivate(self, name: str) -> None:
        scenario = scenario_defs.get(name)
        ref = self.active.pop(name)
        defaults = {f.name: f.default for f in dataclasses.fields(Chain)}
        for chain in self.world.chains if ref == ALL else [self.world.chain(ref)]:
            for attr in scenario.chain:
                setattr(chain, attr, defaults[attr])
            if scenario.stop:
                self._start_target(self._stop_target_of(scenario, chain))
            for node in chain.nodes:
                if scenario.restart and node.state == "syncing":   # the sync completes
                    node.sync_height, node.state = float(int(chain.height)), "consensus"
                if scenario.signer_down:
                    node.signing = True

    def _restart_node(self, chain, node) -> None:
        """The node's process restarts: its counters and histograms start from zero, it block-syncs."""
        node.restart(chain, self.restart_lag_blocks)
        for t in self.world.targets:
            if t.node_obj is node:
                for mot in self.on_target[t.name]:
                    if mot.metric.source not in CHAIN_STATE_SOURCES:
                        mot.reset()

    def _apply_pending_time(self) -> None:
        """Bring every target up to now under the old scenario set before changing it."""
        now = time.monotonic()
        dt, self._last = now - self._last, now
        for chain in self.world.chains:
            chain.advance(dt)
        for t in self.world.targets:
            self._advance_mots(self.on_target[t.name], now)

    def _stop_target_of(self, scenario, chain) -> Target:
        for t in self.world.targets:
            if t.job == scenario.stop and t.chain is chain:
                return t
        raise KeyError(f"scenario {scenario.name}: no {scenario.stop} target on {chain.chain_id}")

    # -- targets
    def target(self, name: str) -> Target:
        for t in self.world.targets:
            if t.name == name:
                return t
        raise KeyError(name)

    @property
    def targets(self) -> list[Target]:
        return self.world.targets

    def scrape_configs(self, *, interval: str = "15s", timeout: str | None = None,
                       labels: dict | None = None) -> list[dict]:
        """Prometheus scrape_configs for every target, one job per source kind.

        The ``instance`` label is the target's in-cluster name (``node:26660``);
        ``labels`` (e.g. ``{"cluster": "virtengine-prod"}``) go on every target.
        """
        jobs: dict[str, list] = {}
        for t in self.world.targets:
            jobs.setdefault(t.job, []).append({"targets": [f"{self.host}:{t.port}"],
                                               "labels": self._target_labels(t, labels)})
        return [{"job_name": job, "scrape_interval": interval, "scrape_timeout": timeout or interval,
                 "static_configs": static} for job, static in sorted(jobs.items())]

    def http_sd(self, labels: dict | None = None) -> list[dict]:
        return [{"targets": [f"{self.host}:{t.port}"], "labels": {"job": t.job, **self._target_labels(t, labels)}}
                for t in self.world.targets]

    def _target_labels(self, t: Target, labels: dict | None) -> dict:
        """What service discovery adds: instance, and for VirtEngine pods their namespace and pod."""
        out = {"instance": t.name}
        if t.job in JOBS.values():
            out.update(namespace=self.world.namespace, pod=t.name.split(":")[0])
        if t.role:   # the chart copies the pod label app.kubernetes.io/component to a CometBFT target's role
            out["role"] = t.role
        return {**out, **(labels or {})}

    def _serve(self, handler, port: int) -> ThreadingHTTPServer:
        server = ThreadingHTTPServer((self.host, port), handler)
        server.daemon_threads = True
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
        thread.start()
        self._threads.append(thread)
        return server

    def _start_target(self, target: Target) -> None:
        sim = self

        class Handler(_Quiet):
            def do_GET(self):
                if urlparse(self.path).path != "/metrics":
                    return self._send(404, b"only /metrics here\n", "text/plain")
                self._send(200, sim.exposition(target), CONTENT_TYPE_LATEST)

        for attempt in range(50):
            try:
                self._servers[target.name] = self._serve(Handler, target.port)
                break
            except OSError:
                if not target.port or attempt == 49:
                    raise
                time.sleep(0.1)
        target.port = self._servers[target.name].server_address[1]
        target.up = True

    def _stop_target(self, target: Target) -> None:
        with self.lock:
            server = self._servers.pop(target.name, None)
        if server is not None:
            server.shutdown()
            server.server_close()
        target.up = False

    def start(self, port: int = 0, *, target_base_port: int | None = None) -> "Simulator":
        """Serve the control API on ``port`` and each target on its own port (consecutive
        from ``target_base_port`` if given, else free ports)."""
        for i, t in enumerate(self.world.targets):
            t.port = target_base_port + i if target_base_port else 0
            self._start_target(t)
        self.control = self._serve(_control_handler(self), port)
        return self

    @property
    def port(self) -> int:
        return self.control.server_address[1] if self.control else 0

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stop(self) -> None:
        stoppers = [threading.Thread(target=self._stop_target, args=(t,)) for t in self.world.targets]
        for thread in stoppers:
            thread.start()
        for thread in stoppers:
            thread.join(timeout=10)
        if self.control is not None:
            self.control.shutdown()
            self.control.server_close()
            self.control = None
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads.clear()

    def __enter__(self) -> "Simulator":
        if self.control is None:
            self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def _control_handler(sim: Simulator):
    class Handler(_Quiet):
        def _json(self, code: int, data) -> None:
            self._send(code, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())

        def do_GET(self):
            path = urlparse(self.path).path.rstrip("/")
            if path == "":
                return self._send(200, (__doc__ or "").encode(), "text/plain")
            if path == "/scenarios":
                return self._json(200, sim.scenarios())
            if path == "/targets":
                return self._json(200, [{"job": t.job, "instance": t.name, "port": t.port, "up": t.up,
                                         "chain_id": t.chain.chain_id, "role": t.role or None}
                                        for t in sim.targets])
            if path == "/sd":
                query = parse_qs(urlparse(self.path).query)
                return self._json(200, sim.http_sd({k: v[0] for k, v in query.items()}))
            self._json(404, {"error": f"no {path}; see GET /"})

        def do_POST(self):
            url = urlparse(self.path)
            parts = url.path.strip("/").split("/")
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            if len(parts) != 2 or parts[0] != "scenario":
                return self._json(404, {"error": "POST /scenario/<name>"})
            if parts[1] in ("none", "clear"):
                sim.deactivate()
                return self._json(200, sim.scenarios())
            try:
                sim.activate(parts[1], query.get("chain"), exclusive=query.get("add") not in ("1", "true"))
            except (KeyError, IndexError) as exc:
                return self._json(400, {"error": str(exc).strip("'\"")})
            self._json(200, sim.scenarios())

        def do_DELETE(self):
            parts = urlparse(self.path).path.strip("/").split("/")
            if len(parts) != 2 or parts[0] != "scenario":
                return self._json(404, {"error": "DELETE /scenario/<name>"})
            sim.deactivate(parts[1])
            self._json(200, sim.scenarios())

    return Handler
