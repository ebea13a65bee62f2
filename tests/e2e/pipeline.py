"""The chart's prod alerting, running: rules and routing from ``helm template``, on real servers.

``Pipeline`` renders the chart for an environment with a values file that
only shortens time (rule group intervals 1s, each alert's ``for`` and the
route waits divided by ``factor``) and points the vendor URLs and Secret
mounts at local stand-ins, then starts (``stack.Stack``) two simulated
clusters, Prometheus with the rendered rules and Alertmanager with the
rendered configuration. Range windows in the rule expressions (``[5m]``) are
divided by the same ``factor`` (values cannot reach them), so the whole
policy runs ``factor`` times faster and otherwise unchanged.

``EXPECTATIONS`` says, per fault scenario, which alerts must reach which
receiver. Cluster A holds the chain-level faults (one chain each), cluster
B the module-level ones (every chain), so the scenarios run at the same
time without muting each other. Used by the end-to-end tests, the alert
latency benchmark and ``make demo``.
"""
from __future__ import annotations

import json
import re
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import yaml

from stack import ROOT, Request, Stack, wait_until  # noqa: F401  (re-exported for users)

from generator import tools

CLUSTERS = {"a": "virtengine-prod", "b": "virtengine-prod-b"}
PD_DEFAULT_KEY = "a" * 16 + "0123456789abcdef"
PD_CHAIN_KEY = "c" * 16 + "0123456789abcdef"
OG_KEY = str(uuid.UUID(int=0x5EED))
UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


@dataclass(frozen=True)
class Page:
    alert: str
    kind: str      # pagerduty | opsgenie
    team: str


@dataclass(frozen=True)
class Expectation:
    scenario: str
    cluster: str   # key of CLUSTERS
    chain: str     # chain id, or "*" for every chain
    pages: tuple[Page, ...]


EXPECTATIONS = (
    Expectation("consensus_stall", "a", "virtengine-1", (Page("ConsensusStalled", "pagerduty", "chain"),)),
    Expectation("voting_power_missing", "a", "virtengine-2", (Page("ValidatorDown", "pagerduty", "chain"),)),
    Expectation("exporter_down", "a", "virtengine-3", (Page("VirtEngineNodeDown", "opsgenie", "chain"),)),
    Expectation("escrow_low", "b", "*", (Page("EscrowBalanceLow", "opsgenie", "escrow"),)),  # a warning: low balance alone pages nobody
    Expectation("veid_backlog", "b", "*", (Page("VEIDVerificationQueue", "opsgenie", "veid"),)),
    Expectation("provider_failures", "b", "*", (Page("ProviderHighFailureRate", "opsgenie", "provider"),)),
    Expectation("ml_timeouts", "b", "*", (Page("MLInferenceTimeout", "opsgenie", "ml"),)),
    Expectation("tx_latency_spike", "b", "*", (Page("HighTransactionLatency", "opsgenie", "chain"),)),
    Expectation("slo_burn", "b", "*", (Page("SLOVEIDResponseTime", "pagerduty", "veid"),
                                       Page("SLOOrderMatchingSuccess", "pagerduty", "market"))),
)


def seconds(duration: str) -> float:
    return sum(float(n) * UNITS[u] for n, u in re.findall(r"(\d+)(ms|s|m|h|d|w|y)", duration))


def compressed(duration: str, factor: float, minimum: float = 2) -> str:
    s = seconds(duration)
    return "0s" if s == 0 else f"{max(minimum, round(s / factor))}s"


def compress_windows(text: str, factor: float) -> str:
    """``[5m]`` -> ``[10s]`` (factor 30) in PromQL range selectors, at least 3 scrapes; a subquery's range and
    step alike (``[1h:5m]`` -> ``[120s:10s]``), so it holds as many steps as it would uncompressed."""
    def one(m: re.Match) -> str:
        window = compressed(m.group(1), factor, 3)
        if ":" not in m.group(0):
            return f"[{window}]"
        return f"[{window}:{compressed(m.group(2), factor, 1) if m.group(2) else ''}]"
    return re.sub(r"\[(\d+(?:ms|s|m|h|d|w|y))(?::(\d+(?:ms|s|m|h|d|w|y))?)?\]", one, text)


def rule_catalog() -> dict:
    """Rule groups and alerts as the chart ships them: {group: [alert dict, ...]}."""
    out = {}
    for path in sorted((ROOT / "chart" / "files" / "rules").glob("*.json")):
        group = json.loads(path.read_text())
        out[group["name"]] = [r for r in group["rules"] if "alert" in r]
    return out


class Pipeline:
    def __init__(self, workdir: Path, *, env: str = "prod", factor: float = 30, block_time: float = 1.0) -> None:
        self.workdir, self.env, self.factor, self.block_time = Path(workdir), env, factor, block_time
        self.stack = Stack(self.workdir)
        self.fault_at: dict[str, float] = {}
        self.cleared_at: dict[str, float] = {}
        self.alerts = {a["alert"]: a for rules in rule_catalog().values() for a in rules}

    # -- configuration
    def values(self) -> dict:
        routes = {k: {"groupWait": "1s", "groupInterval": "2s", "repeatInterval": "1h"}
                  for k in ("sloPage", "sloTicket", "critical", "business", "warning", "info")}
        routes["watchdog"] = {"groupWait": "0s", "groupInterval": "2s", "repeatInterval": "3s"}
        return {
            "rules": {
                "format": "ConfigMap",
                "groups": {g: {"interval": "1s"} for g in rule_catalog()},
                "alerts": self.alert_timing(),
            },
            "alertmanager": {
                "templatesPath": str(self.config_dir),
                "secretsMountPath": str(self.secrets_dir),
                "pagerduty": {"url": self.pd.enqueue_url},
                "opsgenie": {"apiUrl": self.og.url},
                "heartbeat": {"url": self.hook.url},
                "teams": {"chain": {"opsgenieTeam": "virtengine-chain",
                                    "pagerdutyRoutingKeySecret": {"name": "chain-pagerduty", "key": "routing-key"}}},
                "routes": routes,
                "fallback": {"groupWait": "1s", "groupInterval": "2s"},
            },
        }

    def env_alerts(self) -> dict:
        """The environment's own per-alert settings (values/<env>.yaml rules.alerts)."""
        data = yaml.safe_load((ROOT / "values" / f"{self.env}.yaml").read_text()) or {}
        return ((data.get("rules") or {}).get("alerts")) or {}

    def effective_for(self, alert: str) -> str:
        return (self.env_alerts().get(alert) or {}).get("for") or self.alerts[alert]["for"]

    def alert_timing(self) -> dict:
        """Each alert's for (and the environment's keepFiringFor), divided by the factor."""
        out = {}
        for name in self.alerts:
            timing = {}
            if seconds(self.effective_for(name)):
                timing["for"] = compressed(self.effective_for(name), self.factor)
            keep = (self.env_alerts().get(name) or {}).get("keepFiringFor") or self.alerts[name].get("keep_firing_for")
            if keep:
                timing["keepFiringFor"] = compressed(keep, self.factor)
            if timing:
                out[name] = timing
        return out

    def render(self) -> tuple[list[Path], str]:
        """``helm template`` of the chart: the rule files and alertmanager.yaml."""
        values_file = self.workdir / "e2e-values.yaml"
        values_file.write_text(yaml.safe_dump(self.values()))
        proc = subprocess.run([tools.helm(3), "template", "vemon", str(ROOT / "chart"), "--namespace", "monitoring",
                               "-f", str(ROOT / "values" / f"{self.env}.yaml"), "-f", str(values_file)],
                              capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            raise RuntimeError(f"helm template failed:\n{proc.stderr}")
        rule_files, config = [], None
        rules_dir = self.workdir / "rules"
        rules_dir.mkdir(exist_ok=True)
        for doc in yaml.safe_load_all(proc.stdout):
            if not doc:
                continue
            if doc["kind"] == "ConfigMap" and "-rules-" in doc["metadata"]["name"]:
                for key, text in doc["data"].items():
                    path = rules_dir / key
                    path.write_text(compress_windows(text, self.factor))
                    rule_files.append(path)
            if doc["kind"] == "Secret" and doc["metadata"]["name"].endswith("alertmanager-config"):
                for key, text in doc["stringData"].items():
                    (self.config_dir / key).write_text(text)
                config = doc["stringData"]["alertmanager.yaml"]
        if not rule_files or config is None:
            raise RuntimeError("helm template rendered no rule files or no Alertmanager configuration")
        return rule_files, config

    def prepare_receivers(self) -> None:
        """What ``values()`` points the routing at, before ``render()``: the folder the Alertmanager templates
        are written to, the Secret files it reads (the default PagerDuty routing key and Opsgenie API key,
        the chain team's own PagerDuty key) and the running vendor stand-ins (PagerDuty, Opsgenie, the
        heartbeat webhook) that accept exactly those keys."""
        self.config_dir = self.workdir / "alertmanager-config"
        self.secrets_dir = self.workdir / "secrets"
        self.config_dir.mkdir(parents=True, exist_ok=True)
        for name, key, value in (("virtengine-alerting", "pagerduty-routing-key", PD_DEFAULT_KEY),
                                 ("virtengine-alerting", "opsgenie-api-key", OG_KEY),
                                 ("chain-pagerduty", "routing-key", PD_CHAIN_KEY)):
            (self.secrets_dir / name).mkdir(parents=True, exist_ok=True)
            (self.secrets_dir / name / key).write_text(value)
        self.pd = self.stack.pagerduty({PD_DEFAULT_KEY, PD_CHAIN_KEY})
        self.og = self.stack.opsgenie({OG_KEY})
        self.hook = self.stack.webhook()

    # -- lifecycle
    def start(self) -> "Pipeline":
        self.prepare_receivers()
        self.rule_files, self.am_config = self.render()
        self.am = self.stack.alertmanager(self.am_config)
        self.sims = {k: self.stack.simulator(block_time=self.block_time, seed=i + 1,
                                             exclude_sources=("prometheus", "alertmanager"))
                     for i, k in enumerate(CLUSTERS)}
        jobs: dict[str, dict] = {}
        for key, sim in self.sims.items():
            for job in sim.scrape_configs(interval="1s", labels={"cluster": CLUSTERS[key]}):
                jobs.setdefault(job["job_name"], {**job, "static_configs": []})["static_configs"] += job["static_configs"]
        self.prom = self.stack.prometheus(rule_files=self.rule_files, scrape_configs=list(jobs.values()),
                                          alertmanager=self.am, external_labels={"cluster": CLUSTERS["a"]},
                                          target_labels={"cluster": CLUSTERS["a"], "namespace": "monitoring"})
        return self

    def stop(self) -> None:
        self.stack.close()

    def __enter__(self) -> "Pipeline":
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- faults
    def inject(self, exp: Expectation) -> None:
        self.sims[exp.cluster].activate(exp.scenario, exp.chain)
        self.fault_at[exp.scenario] = time.monotonic()

    def clear(self, exp: Expectation) -> None:
        self.sims[exp.cluster].deactivate(exp.scenario)
        self.cleared_at[exp.scenario] = time.monotonic()

    # -- what the vendors received
    def page(self, exp: Expectation, page: Page) -> Request | None:
        """The first notification of the page's alert from the fault's cluster at its vendor."""
        cluster = CLUSTERS[exp.cluster]
        after = self.fault_at.get(exp.scenario, 0)
        receiver = self.pd if page.kind == "pagerduty" else self.og
        for req in receiver.valid():
            body = req.body
            if req.at < after:
                continue
            if page.kind == "pagerduty" and body["event_action"] == "trigger" \
                    and body["payload"].get("class") == page.alert and body["payload"].get("source") == cluster:
                return req
            if page.kind == "opsgenie" and req.path == "/v2/alerts" \
                    and body.get("details", {}).get("alertname") == page.alert and body.get("source") == cluster:
                return req
        return None

    def resolve(self, exp: Expectation, page: Page) -> Request | None:
        """The resolve (PagerDuty) or close (Opsgenie) of that page after the fault was cleared."""
        first = self.page(exp, page)
        after = self.cleared_at.get(exp.scenario)
        if first is None or after is None:
            return None
        receiver = self.pd if page.kind == "pagerduty" else self.og
        for req in receiver.valid():
            if req.at < after:
                continue
            if page.kind == "pagerduty" and req.body["event_action"] == "resolve" \
                    and req.body["dedup_key"] == first.body["dedup_key"]:
                return req
            if page.kind == "opsgenie" and req.path == f"/v2/alerts/{first.body['alias']}/close":
                return req
        return None

    def bound(self, alert: str) -> float:
        """for + scrape interval + evaluation interval + group_wait, in seconds, as configured."""
        hold = seconds(compressed(self.effective_for(alert), self.factor))
        return hold + 1 + 1 + 1

    def notified(self) -> str:
        """What arrived so far, for failure messages."""
        pd = sorted({(r.body["event_action"], r.body.get("payload", {}).get("class", "?"),
                      r.body.get("payload", {}).get("source", "?")) for r in self.pd.valid()})
        og = sorted({(r.method, r.path.split("/")[-1], r.body.get("details", {}).get("alertname", "?"))
                     for r in self.og.valid() if isinstance(r.body, dict)})
        firing = sorted({(a["labels"]["alertname"], a["labels"].get("cluster", ""), a["state"])
                         for a in self.prom.alerts()})
        return f"PagerDuty: {pd}\nOpsgenie: {og}\nPrometheus alerts: {firing}"
