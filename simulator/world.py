"""The simulated fleet: chains, their nodes and validators, providers, models.

One ``World`` is a deterministic function of its seed. Each metric source of
the catalog is served by the targets Prometheus would scrape in a real
cluster: a CometBFT endpoint per node (:26660), an application/API endpoint
per chain (:1317), one endpoint per provider daemon and per ML inference
server, and one for each infrastructure exporter. Labels that identify the
target (``chain_id``, ``validator_address``, ``provider``, ``node``) take the
target's own values; the others come from ``LABEL_VALUES``.
"""
from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass, field

CHAIN_IDS = ("virtengine-1", "virtengine-2", "virtengine-3")
PROVIDERS = ("provider-eu-west-1", "provider-us-east-1", "provider-ap-south-1", "provider-us-west-2")
MODELS = ("face-match-v3", "liveness-v2", "doc-ocr-v5", "fraud-score-v1")
TIERS = ("basic", "standard", "premium")
K8S_NODES = ("ip-10-0-1-12", "ip-10-0-2-31", "ip-10-0-3-7")
# infrastructure exporters that run once per Kubernetes node (the others once per cluster)
PER_K8S_NODE = {"node-exporter": 9100, "kubelet": 10250, "cadvisor": 4194}

# job name of each metric source (the scrape jobs of the chart)
JOBS = {
    "cometbft": "cometbft",
    "cosmos-sdk": "virtengine-app",
    "application": "virtengine-app",
    "provider-daemon": "provider-daemon",
    "ml-inference": "ml-inference",
}

# values of labels that are not bound to a target; the first value is the common case
LABEL_VALUES: dict[str, tuple[str, ...]] = {
    "status": ("success", "failure"),
    "result": ("success", "failure"),
    "outcome": ("success", "failure"),
    "state": ("running", "pending", "failed", "closed"),
    "phase": ("running", "pending", "failed"),
    "operation": ("deploy", "update", "close"),
    "method": ("check_tx", "finalize_block", "commit", "query"),
    "type": ("send", "create_order", "create_bid", "submit_identity"),
    "msg_type": ("send", "create_order", "create_bid", "submit_identity"),
    "message_type": ("send", "create_order", "create_bid", "submit_identity"),
    "denom": ("uve",),
    "module": ("veid", "market", "escrow", "provider"),
    "reason": ("timeout", "insufficient_funds", "invalid_request"),
    "step": ("Propose", "Prevote", "Precommit", "Commit"),
    "tier": TIERS,
    "model": MODELS,
    "resource": ("cpu", "memory", "gpu", "storage"),
    "region": ("eu-west", "us-east", "ap-south"),
    "code": ("0", "5", "11"),
    "error": ("timeout", "unavailable"),
    "error_type": ("timeout", "unavailable"),
    "service": ("veid", "market", "escrow"),
    "slo": ("veid_response_time", "order_matching"),
    "integration": ("pagerduty", "opsgenie", "webhook"),
    "alertmanager": ("http://alertmanager-0:9093/api/v2/alerts",),
    "rule_group": ("virtengine.critical", "virtengine.warning", "virtengine.slo"),
    "cpu": ("0", "1", "2", "3"),
    "mode": ("idle", "user", "system", "iowait"),
    "device": ("/dev/nvme0n1p1", "/dev/nvme1n1"),
    "fstype": ("ext4",),
    "mountpoint": ("/", "/var/lib/cometbft"),
    "persistentvolumeclaim": ("data-node-0", "data-node-1", "prometheus-db-0"),
    "condition": ("Ready", "MemoryPressure", "DiskPressure"),
    "version": ("v1.4.2",),
    "vote_type": ("prevote", "precommit"),
    "interface": ("eth0",),
    "deployment": ("virtengine-api", "virtengine-ml-inference"),
    "statefulset": ("virtengine-node",),
    "kernel_version": ("6.1.0-18-cloud-amd64",),
    "kubelet_version": ("v1.29.4",),
    "os_image": ("Debian GNU/Linux 12 (bookworm)",),
    "unit": ("core", "byte"),
    "storageclass": ("gp3",),
    "volumename": ("pvc-0a1b2c3d",),
    "window": ("1d", "7d", "30d"),
    "le": (),
}
# labels of a metric whose values depend on the metric (name pattern, label) -> values
METRIC_LABEL_VALUES: dict[tuple[str, str], tuple[str, ...]] = {
    (r"kube_node_status_condition", "status"): ("true", "false", "unknown"),
    (r".*waiting_reason", "reason"): ("CrashLoopBackOff", "ImagePullBackOff", "ContainerCreating"),
}

# relative weight of a label value in counts and rates (case-insensitive); values not listed weigh 1
GOOD, BAD = 1.0, 0.01
VALUE_WEIGHTS = {
    "success": 0.99, "ok": 0.99, "true": 1.0, "active": 1.0, "running": 0.85,
    "failure": BAD, "failed": BAD, "error": BAD, "timeout": 0.005, "rejected": BAD, "unavailable": BAD,
    "pending": 0.1, "deploying": 0.1, "closed": 0.05, "inactive": 0.0, "jailed": 0.0, "approved": 0.9,
    "insufficient_funds": 0.3, "invalid_request": 0.3, "5": BAD, "11": BAD,
    "idle": 3.0, "user": 0.6, "system": 0.3, "iowait": 0.05,
}
BAD_VALUES = frozenset({"failure", "failed", "error", "timeout", "rejected", "unavailable", "5", "11",
                        "insufficient_funds", "invalid_request"})


def _hex(seed: str, n: int = 40) -> str:
    return hashlib.sha256(seed.encode()).hexdigest()[:n].upper()


@dataclass
class Validator:
    address: str
    power: int
    moniker: str


@dataclass
class Chain:
    chain_id: str
    block_time: float
    validators: list[Validator]
    height: float
    total_txs: float
    # scenario state
    stalled: bool = False
    missing_share: float = 0.0
    slowdown: float = 1.0
    rounds: float = 0.0
    missed: float = 0.0

    @property
    def total_power(self) -> int:
        return sum(v.power for v in self.validators)

    def advance(self, dt: float) -> None:
        if self.stalled:
            self.rounds += dt / max(self.block_time, 0.1)
            return
        self.rounds = 0.0
        blocks = dt / (self.block_time * self.slowdown)
        self.height += blocks
        self.total_txs += blocks * 20
        if self.missing_share:
            self.missed += blocks


@dataclass
class Target:
    """One scrape target: an HTTP endpoint serving some metric sources."""
    name: str          # the instance label
    job: str
    sources: tuple[str, ...]
    chain: Chain
    node: str = ""
    validator: Validator | None = None
    provider: str = ""
    models: tuple[str, ...] = MODELS
    port: int = 0
    up: bool = True
    infra: bool = False   # an infrastructure exporter (its node/pod labels describe Kubernetes objects)
    extra_labels: dict = field(default_factory=dict)


class World:
    def __init__(self, sources: set[str], *, seed: int = 1, chains: int = 3, nodes_per_chain: int = 3,
                 block_time: float = 6.0, namespace: str = "virtengine") -> None:
        self.rng = random.Random(seed)
        self.namespace = namespace
        self.chains: list[Chain] = []
        for i in range(chains):
            chain_id = CHAIN_IDS[i] if i < len(CHAIN_IDS) else f"virtengine-{i + 1}"
            validators = [Validator(address=_hex(f"{seed}-{chain_id}-{v}"), moniker=f"{chain_id}-val-{v}",
                                    power=self.rng.randrange(1_000, 50_000)) for v in range(max(10, nodes_per_chain))]
            self.chains.append(Chain(chain_id=chain_id, block_time=block_time, validators=validators,
                                     height=float(self.rng.randrange(1_000_000, 5_000_000)),
                                     total_txs=float(self.rng.randrange(10_000_000, 90_000_000))))
        self.targets: list[Target] = []
        for chain in self.chains:
            if "cometbft" in sources:
                for n in range(nodes_per_chain):
                    node = f"{chain.chain_id}-node-{n}"
                    self.targets.append(Target(name=f"{node}:26660", job=JOBS["cometbft"], sources=("cometbft",),
                                               chain=chain, node=node, validator=chain.validators[n]))
            app = tuple(s for s in ("cosmos-sdk", "application") if s in sources)
            if app:
                self.targets.append(Target(name=f"{chain.chain_id}-api:1317", job=JOBS["application"], sources=app,
                                           chain=chain, node=f"{chain.chain_id}-node-0"))
        if "provider-daemon" in sources:
            for i, provider in enumerate(PROVIDERS):
                self.targets.append(Target(name=f"{provider}:8443", job=JOBS["provider-daemon"],
                                           sources=("provider-daemon",), chain=self.chains[i % len(self.chains)],
                                           provider=provider))
        if "ml-inference" in sources:
            for i in range(2):
                self.targets.append(Target(name=f"ml-inference-{i}:9090", job=JOBS["ml-inference"],
                                           sources=("ml-inference",), chain=self.chains[i % len(self.chains)],
                                           node=f"ml-inference-{i}"))
        for source in sorted(sources - set(JOBS)):
            if source in PER_K8S_NODE:
                for node in K8S_NODES:
                    self.targets.append(Target(name=f"{node}:{PER_K8S_NODE[source]}", job=source, sources=(source,),
                                               chain=self.chains[0], node=node, infra=True))
            else:
                self.targets.append(Target(name=f"{source}-0:8080", job=source, sources=(source,),
                                           chain=self.chains[0], infra=True))

    def chain(self, ref: str | int | None) -> Chain:
        """A chain by index or chain_id (None: the first)."""
        if ref is None:
            return self.chains[0]
        if isinstance(ref, int) or str(ref).isdigit():
            return self.chains[int(ref)]
        for chain in self.chains:
            if chain.chain_id == ref:
                return chain
        raise KeyError(f"unknown chain {ref!r}; chains: {', '.join(c.chain_id for c in self.chains)}")

    def label_values(self, label: str, target: Target, metric: str = "",
                     documented: tuple[str, ...] = ()) -> tuple[str, ...]:
        """The values a label takes on a target; ``documented``: the values the catalog lists for it."""
        for (pattern, name), values in METRIC_LABEL_VALUES.items():
            if name == label and re.fullmatch(pattern, metric):
                return values
        if documented:
            return documented
        if label == "chain_id":
            return (target.chain.chain_id,)
        if label in ("validator_address", "validator"):
            if target.validator is not None:
                return (target.validator.address,)
            return tuple(v.address for v in target.chain.validators[:4])
        if label == "moniker":
            return (target.validator.moniker,) if target.validator else (target.node or target.name,)
        if target.infra and label in ("node", "pod", "container", "namespace"):
            if label == "node":
                return (target.node,) if target.node else K8S_NODES
            return {"pod": ("virtengine-1-node-0", "virtengine-2-node-0"), "container": ("node",),
                    "namespace": (self.namespace,)}[label]
        if label in ("node", "node_id", "hostname", "host"):
            return (target.node or target.name.split(":")[0],)
        if label in ("provider", "provider_id", "provider_address"):
            return (target.provider,) if target.provider else PROVIDERS
        if label == "model":
            return target.models
        if label == "namespace":
            return (self.namespace,)
        if label in ("pod", "container"):
            return (target.node or target.name.split(":")[0],)
        if label in ("peer_id",):
            return tuple(_hex(f"{target.name}-{i}", 16).lower() for i in range(3))
        if label in LABEL_VALUES and LABEL_VALUES[label]:
            return LABEL_VALUES[label]
        return (f"{label}-a", f"{label}-b")
