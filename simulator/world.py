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
import zlib
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
    # the ABCI methods a running CometBFT v0.38 node calls (proxy/app_conn.go: consensus, mempool and query
    # connections; init_chain, the snapshot methods and vote extensions only at genesis, state sync or when
    # enabled, so absent on a running node)
    (r"cometbft_abci_connection_method_timing_seconds", "method"): (
        "check_tx", "flush", "prepare_proposal", "process_proposal", "finalize_block", "commit", "info", "query"),
    (r"cometbft_abci_connection_method_timing_seconds", "type"): ("sync", "async"),
}
# label value combinations a metric exports (name pattern -> predicate on the labels of a series): the others
# are never observed, so never exported
METRIC_LABEL_COMBINATIONS = {
    # every method is timed as `sync` but the mempool's CheckTxAsync, timed as check_tx `async`
    # (proxy/app_conn.go, CometBFT v0.38)
    r"cometbft_abci_connection_method_timing_seconds":
        lambda labels: labels.get("type") == ("async" if labels.get("method") == "check_tx" else "sync"),
}

# relative weight of a label value in counts and rates (case-insensitive); values not listed weigh 1
GOOD, BAD = 1.0, 0.01
VALUE_WEIGHTS = {
    "success": 0.99, "ok": 0.99, "true": 1.0, "active": 1.0, "running": 0.85,
    "failure": BAD, "failed": BAD, "error": BAD, "timeout": 0.005, "rejected": BAD, "unavailable": BAD,
    "pending": 0.1, "deploying": 0.1, "closed": 0.05, "inactive": 0.0, "jailed": 0.0, "approved": 0.9,
    "insufficient_funds": 0.3, "invalid_request": 0.3, "5": BAD, "11": BAD,
    "idle": 3.0, "user": 0.6, "system": 0.3, "iowait": 0.05,
    # how orders leave the open state: nearly all matched within the SLA
    "matched_within_sla": 0.97, "matched_late": 0.01, "expired": 0.01, "cancelled": 0.01,
}
BAD_VALUES = frozenset({"failure", "failed", "error", "timeout", "rejected", "unavailable", "5", "11",
                        "insufficient_funds", "invalid_request", "matched_late", "expired"})


def _hex(seed: str, n: int = 40) -> str:
    return hashlib.sha256(seed.encode()).hexdigest()[:n].upper()


@dataclass
class Validator:
    address: str
    power: int
    moniker: str


ONE_THIRD = 1 / 3
ROLES = ("validator", "sentry", "full")
# peers a node keeps by role (normal level, lowest, highest): a validator behind sentries keeps a few by design
PEERS = {"validator": (3, 2, 4), "sentry": (30, 10, 50), "full": (25, 10, 50)}


def pick_missing(validators: list[Validator], total: int, share: float, *, below_third: bool = False) -> list:
    """Validators offline for ``share`` of the power, taken from the end of the set. ``below_third``: skip
    those that would bring the missing power to 1/3 of the total (what a committed block's LastCommit can
    show; with 1/3 or more missing no block is committed)."""
    if share <= 0:
        return []
    missing, power = [], 0
    for v in reversed(validators):
        if power >= total * share:
            break
        if below_third and 3 * (power + v.power) >= total:
            continue   # this one would make it a third: the next one instead
        missing.append(v)
        power += v.power
    if below_third and power < total * share and len(validators) <= 16:
        # the greedy pick fell short: the smallest set reaching the share under 1/3 (or the largest under 1/3)
        best, best_power = missing, power
        for mask in range(1, 2 ** len(validators)):
            chosen = [v for i, v in enumerate(reversed(validators)) if mask >> i & 1]
            p = sum(v.power for v in chosen)
            if 3 * p >= total:
                continue
            if (best_power < total * share and p > best_power) or (total * share <= p < best_power):
                best, best_power = chosen, p
        missing = best
    return missing


@dataclass
class Chain:
    chain_id: str
    block_time: float          # seconds per block: one value per chain (environment)
    validators: list[Validator]
    height: float
    total_txs: float
    # scenario state
    stalled: bool | str = False  # halted for a reason other than missing power (True; "upgrade": x/upgrade halt)
    missing_share: float = 0.0 # share of the voting power offline now (the live round's absentees)
    slowdown: float = 1.0      # block interval factor (extra rounds while validators are missing)
    rounds: float = 0.0        # cometbft_consensus_rounds: the round the current height needed
    missed: float = 0.0
    committed_missing: list = field(default_factory=list)   # absentees of the last committed block's LastCommit
    nodes: list = field(default_factory=list)               # our nodes of this chain (``Node``)
    seed: int = 0
    live_time: float = 0.0     # seconds the chain has been committing blocks (the clock of chain-state events)

    def __post_init__(self) -> None:
        self.rng = random.Random(f"{self.seed}-{self.chain_id}")
        self._picks: dict[float, list] = {}   # missing share -> the validators offline for it

    @property
    def total_power(self) -> int:
        return sum(v.power for v in self.validators)

    def live_missing(self) -> list:
        """Validators not voting now: the scenario's offline share, plus our own validators whose node is
        block-syncing (a syncing node does not take part in consensus)."""
        # a share under 1/3 stays under 1/3 (the scenario is "blocks still come"); 1/3 or more halts
        key = self.missing_share
        if key not in self._picks:
            self._picks[key] = pick_missing(self.validators, self.total_power, self.missing_share,
                                            below_third=self.missing_share < ONE_THIRD)
        missing = list(self._picks[key])
        for node in self.nodes:
            if node.validator is not None and (node.state != "consensus" or not node.signing) \
                    and node.validator not in missing:
                missing.append(node.validator)
        return missing

    @property
    def halted(self) -> bool:
        """No block can be committed: stalled, or 1/3 or more of the power is not voting (a commit needs
        more than 2/3 of the power precommitting)."""
        return self.stalled or 3 * sum(v.power for v in self.live_missing()) >= self.total_power

    def online_share(self) -> float:
        return 1 - sum(v.power for v in self.live_missing()) / self.total_power

    def advance(self, dt: float) -> None:
        if self.halted:
            # every consensus gauge set at commit freezes; the online validators keep timing out rounds
            # (not at a planned upgrade halt: every node stopped at the upgrade height, nobody runs rounds)
            if self.stalled != "upgrade":
                self.rounds += dt / max(self.block_time, 0.1)
            for node in self.nodes:
                node.advance(dt, self)
            return
        before = int(self.height)
        self.live_time += dt
        blocks = dt / (self.block_time * self.slowdown)
        self.height += blocks
        self.total_txs += blocks * 20
        missing = self.live_missing()
        if int(self.height) != before:
            self.committed_missing = missing
            for node in self.nodes:
                if node.validator is None or node.state != "consensus":
                    continue
                if node.validator in missing:
                    node.missed += int(self.height) - before
                else:
                    node.last_signed = int(self.height) - 1
            # an offline proposer costs a round: the height needs round 1 as often as the missing share
            share = sum(v.power for v in missing) / self.total_power
            self.rounds = 1.0 if share and self.rng.random() < share * 2 else 0.0
        if missing:
            self.missed += blocks
        for node in self.nodes:
            node.advance(dt, self)


@dataclass
class Node:
    """One of our CometBFT nodes (a pod): its role, its own validator key, and its sync state."""
    name: str
    role: str                        # validator | sentry | full
    validator: Validator | None      # the key this node signs with (validator role only)
    state: str = "consensus"         # consensus | syncing (block sync after a restart)
    start_height: int = 0            # cometbft_consensus_height set at start-up (held while block-syncing)
    sync_height: float = 0.0         # cometbft_blocksync_latest_block_height
    started_at_height: float = 0.0   # chain height when the process started (gauges counted since start)
    behind: int = 0                  # blocks this node's consensus trails the head by (scrape timing)
    fresh: bool = False              # restarted and not yet committed a block in consensus: unset gauges absent
    sync_speed: float = 4.0          # blocks applied per chain block while block-syncing
    signing: bool = True             # the validator key signs (False: remote signer down, node still runs)
    last_signed: float = 0.0         # cometbft_consensus_validator_last_signed_height
    missed: float = 1.0              # cometbft_consensus_validator_missed_blocks (since the process started)

    def restart(self, chain: Chain, lag_blocks: int) -> None:
        """The process restarts after being away for ``lag_blocks``: block sync from its stored height."""
        self.start_height = max(1, int(chain.height) - lag_blocks)
        self.sync_height = float(self.start_height)
        self.started_at_height = float(self.start_height)
        self.state, self.fresh = "syncing", True
        self.missed, self.last_signed = 0.0, 0.0

    def advance(self, dt: float, chain: Chain) -> None:
        if self.state != "syncing":
            return
        self.sync_height += self.sync_speed * dt / (chain.block_time * chain.slowdown)
        if self.sync_height >= int(chain.height):
            # caught up: the reactor switches to consensus (SwitchToConsensus), syncing goes 0
            self.sync_height = float(int(chain.height))
            self.state = "consensus"

    def applied_height(self, chain: Chain) -> int:
        """The last block this node's state machine applied."""
        if self.state == "syncing":
            return int(self.sync_height)
        return max(int(chain.height) - self.behind, self.start_height)


@dataclass
class Target:
    """One scrape target: an HTTP endpoint serving some metric sources."""
    name: str          # the instance label
    job: str
    sources: tuple[str, ...]
    chain: Chain
    node: str = ""
    validator: Validator | None = None
    node_obj: "Node | None" = None   # the CometBFT node (pod) this target belongs to
    role: str = ""                   # validator | sentry | full, for CometBFT node targets
    provider: str = ""
    models: tuple[str, ...] = MODELS
    port: int = 0
    up: bool = True
    infra: bool = False   # an infrastructure exporter (its node/pod labels describe Kubernetes objects)
    extra_labels: dict = field(default_factory=dict)


class World:
    def __init__(self, sources: set[str], *, seed: int = 1, chains: int = 3, nodes_per_chain: int = 3,
                 block_time: float = 6.0, namespace: str = "virtengine", sync_speed: float = 4.0) -> None:
        self.rng = random.Random(seed)
        self.namespace = namespace
        self.chains: list[Chain] = []
        for i in range(chains):
            chain_id = CHAIN_IDS[i] if i < len(CHAIN_IDS) else f"virtengine-{i + 1}"
            validators = [Validator(address=_hex(f"{seed}-{chain_id}-{v}"), moniker=f"{chain_id}-val-{v}",
                                    power=self.rng.randrange(1_000, 50_000)) for v in range(max(10, nodes_per_chain))]
            self.chains.append(Chain(chain_id=chain_id, block_time=block_time, validators=validators,
                                     height=float(self.rng.randrange(1_000_000, 5_000_000)),
                                     total_txs=float(self.rng.randrange(10_000_000, 90_000_000)), seed=seed))
        self.targets: list[Target] = []
        node_sources = "cometbft" in sources or any(x in sources for x in ("cosmos-sdk", "application"))
        for chain in self.chains:
            for n in range(nodes_per_chain if node_sources else 0):
                role = ROLES[min(n, 2)]
                node = Node(name=f"{chain.chain_id}-node-{n}", role=role,
                            validator=chain.validators[0] if role == "validator" else None,
                            behind=1 if n % 2 else 0, sync_speed=sync_speed)
                uptime_blocks = (2e4 + 1.8e5 * (zlib.crc32(node.name.encode()) / 2 ** 32)) / chain.block_time
                node.start_height = node.started_at_height = int(chain.height - uptime_blocks)
                node.sync_height = float(node.start_height)
                node.last_signed = chain.height - 1
                node.missed = 1 + int(uptime_blocks * 0.001)   # a few misses since start, as on any validator
                chain.nodes.append(node)
                if "cometbft" in sources:
                    self.targets.append(Target(name=f"{node.name}:26660", job=JOBS["cometbft"], sources=("cometbft",),
                                               chain=chain, node=node.name, validator=node.validator, node_obj=node,
                                               role=role))
            # every full node serves the application's telemetry (chain state) with its API server
            app = tuple(x for x in ("cosmos-sdk", "application") if x in sources)
            if app:
                for node in chain.nodes:
                    self.targets.append(Target(name=f"{node.name}:1317", job=JOBS["application"], sources=app,
                                               chain=chain, node=node.name, node_obj=node))
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
