"""aksim's live state: the fleet file's clusters plus what happened since (operations, ETags,
faults, events, Kubernetes objects Wavegate created). One `Simulator` per server process.

Time-driven changes (an operation finishing, nodes rolling) are computed lazily from the clock
whenever a cluster is read (`Simulator.settle`), so there are no background threads.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from aksim.fleetfile import Cluster, Fleet, Node
from aksim.throttle import Buckets

# How long AKS takes to roll one node when the acceleration mode changes, before --time-scale.
SECONDS_PER_NODE = 90.0
# A PUT that changes nothing still runs a short reconcile operation.
RECONCILE_SECONDS = 20.0
# A warning event repeats (count + 1, same uid) this often while its cause persists.
WARNING_REPEAT_SECONDS = 60.0

EBPF_LABEL = "kubernetes.azure.com/ebpf-host-routing"
USER_RULES_LABEL = "kubernetes.azure.com/user-iptables-rules"


@dataclass
class Faults:
    """Faults applied at run time; set from the faults file or PUT /_aksim/faults."""

    error_rate: float = 0.0  # share of ARM requests answered 500/503
    latency_ms: int = 0  # added to every ARM and Kubernetes answer
    lro_failure_rate: float = 0.0  # share of accepted operations that end Failed
    stuck_operations: bool = False  # operations stay InProgress until cleared
    throttling: bool = True  # ARM and Resource Graph token buckets
    kube_timeout_seconds: float = 30.0  # how long a down Kubernetes API hangs before 504

    def to_dict(self) -> dict[str, Any]:
        return {
            "errorRate": self.error_rate,
            "latencyMs": self.latency_ms,
            "lroFailureRate": self.lro_failure_rate,
            "stuckOperations": self.stuck_operations,
            "throttling": self.throttling,
            "kubeTimeoutSeconds": self.kube_timeout_seconds,
        }

    def update(self, body: dict[str, Any]) -> None:
        names = {
            "errorRate": ("error_rate", float),
            "latencyMs": ("latency_ms", int),
            "lroFailureRate": ("lro_failure_rate", float),
            "stuckOperations": ("stuck_operations", bool),
            "throttling": ("throttling", bool),
            "kubeTimeoutSeconds": ("kube_timeout_seconds", float),
        }
        unknown = set(body) - set(names) - {"clusters"}
        if unknown:
            raise ValueError(f"unknown fault(s): {', '.join(sorted(unknown))}")
        for key, (attr, kind) in names.items():
            if key in body:
                setattr(self, attr, kind(body[key]))


@dataclass
class Operation:
    """A long-running operation that changes a cluster's acceleration mode."""

    id: str
    cluster_key: str
    mode: str
    started: float
    duration: float
    fails: bool
    request_id: str
    rolls: bool = True  # a mode change reimages every node; a no-op PUT only reconciles
    finished: bool = False

    def status(self, now: float, stuck: bool) -> str:
        if self.finished or (now >= self.started + self.duration and not stuck):
            return "Failed" if self.fails else "Succeeded"
        return "InProgress"

    def progress(self, now: float) -> float:
        if self.duration <= 0:
            return 1.0
        return min(1.0, max(0.0, (now - self.started) / self.duration))


@dataclass
class KubeEvent:
    uid: str
    name: str
    namespace: str
    reason: str
    message: str
    type: str
    node: str
    component: str
    first: float
    count: int
    last: float


@dataclass
class ClusterState:
    spec: Cluster
    etag: str
    token: str  # the bearer token this cluster's Kubernetes API accepts
    operation: Operation | None = None
    deleted: bool = False
    enabled_at: float | None = None  # when BpfVeth last took effect
    api_down: bool = False  # fault: the Kubernetes API times out
    not_ready: set[str] = field(default_factory=set)  # fault: nodes NotReady
    unschedulable: set[str] = field(default_factory=set)  # fault: pods never schedule here
    # fault: an admission policy (Azure Policy / Gatekeeper) denies privileged pods
    deny_privileged: bool = False
    # fault: Wavegate's role on the cluster was removed: ARM answers 403 AuthorizationFailed
    deny_access: bool = False
    events: list[KubeEvent] = field(default_factory=list)
    # Kubernetes objects created through the API, keyed by (kind, namespace, name).
    objects: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    resource_version: int = 1000

    def next_resource_version(self) -> str:
        self.resource_version += 1
        return str(self.resource_version)


@dataclass(frozen=True)
class PutRecord:
    cluster_id: str
    request_id: str
    at: float
    mode: str | None
    operation_id: str | None
    status: int
    error_code: str | None = None


class Simulator:
    def __init__(self, fleet: Fleet, time_scale: float = 1.0, clock: Any = time.time) -> None:
        self.fleet = fleet
        self.time_scale = time_scale
        self.clock = clock
        self.faults = Faults()
        # Items per page of ARM lists (they page via nextLink); small in tests to make them page.
        self.page_size = int(os.environ.get("AKSIM_PAGE_SIZE", "100"))
        self.lock = threading.RLock()
        self.puts: list[PutRecord] = []
        self.clusters: dict[str, ClusterState] = {}
        self.by_arm_id: dict[str, ClusterState] = {}
        self.operations: dict[str, Operation] = {}
        self.buckets = Buckets()
        # ARM requests answered, by kind (reads, writes, graph, throttled), for tests and benches.
        self.requests: Counter[str] = Counter()
        self._pristine = fleet.to_json()
        self.reset()

    # --- set-up --------------------------------------------------------------------------
    def reset(self) -> None:
        """Back to the fleet file as loaded (the admin API's POST /_aksim/reset)."""
        with self.lock:
            fleet = Fleet.from_json(self._pristine)
            self.fleet = fleet
            self.faults = Faults()
            self.failure_debt = 0.0  # see _next_operation_fails
            self.buckets.clear()
            self.requests.clear()
            self.puts = []
            self.operations = {}
            self.clusters = {}
            self.by_arm_id = {}
            self.by_subscription: dict[str, list[ClusterState]] = {}
            self.subscriptions = {s.id: s for s in fleet.subscriptions}
            for cluster in fleet.clusters:
                state = ClusterState(
                    spec=cluster,
                    etag=str(uuid.UUID(int=(cluster.seed << 64) | 1)),
                    token=f"aksim-{cluster.key}-{uuid.UUID(int=cluster.seed).hex[:16]}",
                )
                self.clusters[cluster.key] = state
                self.by_arm_id[cluster.arm_id.lower()] = state
                self.by_subscription.setdefault(cluster.subscription_id, []).append(state)
                if cluster.acceleration_mode == "BpfVeth":
                    # Clusters already at BpfVeth report their warnings from the start.
                    state.enabled_at = self.now()
                    self._raise_warnings(state, state.enabled_at)

    def now(self) -> float:
        return float(self.clock())

    # --- lookups -------------------------------------------------------------------------
    def cluster(self, subscription: str, resource_group: str, name: str) -> ClusterState | None:
        arm_id = (
            f"/subscriptions/{subscription}/resourceGroups/{resource_group}"
            f"/providers/Microsoft.ContainerService/managedClusters/{name}"
        ).lower()
        state = self.by_arm_id.get(arm_id)
        if state is None or state.deleted:
            return None
        self.settle(state)
        return state

    def by_key(self, key: str) -> ClusterState | None:
        state = self.clusters.get(key)
        if state is None or state.deleted:
            return None
        self.settle(state)
        return state

    def live_clusters(self, subscriptions: Iterable[str] | None = None) -> list[ClusterState]:
        if subscriptions is None:
            candidates: Iterable[ClusterState] = self.clusters.values()
        else:
            candidates = (s for sub in subscriptions for s in self.by_subscription.get(sub, ()))
        states = [s for s in candidates if not s.deleted]
        for state in states:
            self.settle(state)
        return states

    # --- time-driven change --------------------------------------------------------------
    def settle(self, state: ClusterState) -> None:
        """Apply what the clock says has happened: a finished operation takes effect."""
        op = state.operation
        if op is None or op.finished:
            return
        now = self.now()
        status = op.status(now, self.faults.stuck_operations)
        if status == "InProgress":
            return
        with self.lock:
            if op.finished:
                return
            op.finished = True
            spec = state.spec
            if status == "Succeeded":
                spec.provisioning_state = "Succeeded"
                if op.rolls:
                    spec.acceleration_mode = op.mode
                    done = op.started + op.duration
                    state.enabled_at = done if op.mode == "BpfVeth" else None
                    if op.mode == "BpfVeth":
                        self._raise_warnings(state, done)
            else:
                spec.provisioning_state = "Failed"
            state.etag = str(uuid.uuid4())

    def _next_operation_fails(self) -> bool:
        """Exactly `lroFailureRate` of accepted operations fail, spread evenly (at 0.2, every
        fifth), so a test or a demo knows how many to expect."""
        rate = min(1.0, max(0.0, self.faults.lro_failure_rate))
        self.failure_debt += rate
        if self.failure_debt >= 1.0 - 1e-9:
            self.failure_debt -= 1.0
            return True
        return False

    def start_operation(
        self, state: ClusterState, mode: str, request_id: str, *, changes_mode: bool = True
    ) -> Operation:
        nodes = sum(p.count for p in state.spec.pools)
        seconds = SECONDS_PER_NODE * max(1, nodes) if changes_mode else RECONCILE_SECONDS
        duration = seconds / self.time_scale
        op = Operation(
            id=str(uuid.uuid4()),
            cluster_key=state.spec.key,
            mode=mode,
            started=self.now(),
            duration=duration,
            fails=self._next_operation_fails(),
            request_id=request_id,
            rolls=changes_mode,
        )
        state.operation = op
        state.spec.provisioning_state = "Updating"
        state.etag = str(uuid.uuid4())
        self.operations[op.id] = op
        return op

    def operation_in_progress(self, state: ClusterState) -> bool:
        op = state.operation
        return (
            op is not None and op.status(self.now(), self.faults.stuck_operations) == "InProgress"
        )

    # --- nodes ---------------------------------------------------------------------------
    def node_ready(self, state: ClusterState, node: Node) -> bool:
        if node.name in state.not_ready:
            return False
        op = state.operation
        if op is None or op.finished or op.fails or not op.rolls:
            return True
        # Nodes roll one after another: each is NotReady during its slot of the operation.
        nodes = state.spec.nodes()
        slot = nodes.index(node) / max(1, len(nodes))
        width = 1 / max(1, len(nodes))
        progress = op.progress(self.now())
        return not (slot <= progress < slot + width)

    def node_labels(self, state: ClusterState, node: Node) -> dict[str, str]:
        spec = state.spec
        labels = {
            "kubernetes.io/hostname": node.name,
            "kubernetes.io/os": node.pool.os_type.lower(),
            "kubernetes.io/arch": "amd64",
            "node.kubernetes.io/instance-type": node.pool.vm_size,
            "topology.kubernetes.io/region": spec.location,
            "kubernetes.azure.com/agentpool": node.pool.name,
            "kubernetes.azure.com/mode": node.pool.mode.lower(),
            "kubernetes.azure.com/os-sku": node.pool.os_sku,
            "kubernetes.azure.com/node-image-version": node.pool.node_image_version,
            "kubernetes.azure.com/cluster": f"MC_{spec.resource_group}_{spec.name}_{spec.location}",
            "agentpool": node.pool.name,
        }
        if self.node_has_ebpf(state, node):
            labels[EBPF_LABEL] = "true"
        return labels

    def node_has_ebpf(self, state: ClusterState, node: Node) -> bool:
        if not node.linux:
            return False
        op = state.operation
        if op is not None and not op.finished and not op.fails and op.rolls:
            # While rolling, a node takes the new mode once its slot has passed.
            nodes = state.spec.nodes()
            done = (nodes.index(node) + 1) / max(1, len(nodes)) <= op.progress(self.now())
            return op.mode == "BpfVeth" if done else state.spec.acceleration_mode == "BpfVeth"
        return state.spec.acceleration_mode == "BpfVeth"

    def nodes_with_user_rules(self, state: ClusterState) -> list[str]:
        return sorted(name for name, kinds in state.spec.user_rules.items() if kinds)

    # --- events --------------------------------------------------------------------------
    def _raise_warnings(self, state: ClusterState, at: float) -> None:
        for node_name, reasons in sorted(state.spec.warnings.items()):
            for reason in reasons:
                self.emit_warning(state, node_name, reason, at)

    def emit_warning(
        self, state: ClusterState, node_name: str, reason: str, at: float
    ) -> KubeEvent:
        """Record a warning; a repeat of the same reason on the same node raises its count."""
        messages = {
            "UnexpectedIPTablesRules": "Node has unexpected iptables rules",
            "BlockedIPTablesRule": (
                "A process attempted to add iptables rules to the node but was blocked since "
                "last check. iptables rules blocked because EBPF Host Routing is enabled: "
                "aka.ms/acnsperformance"
            ),
        }
        for event in state.events:
            if event.node == node_name and event.reason == reason:
                event.count += 1
                event.last = at
                return event
        event = KubeEvent(
            uid=str(uuid.uuid4()),
            name=f"{node_name}.{uuid.uuid4().hex[:16]}",
            namespace="default",
            reason=reason,
            message=messages[reason],
            type="Warning",
            node=node_name,
            component="azure-iptables-monitor",
            first=at,
            count=1,
            last=at,
        )
        state.events.append(event)
        return event

    def refresh_warnings(self, state: ClusterState) -> None:
        """Warnings repeat while BpfVeth stays on: bring counts up to the clock."""
        if state.enabled_at is None:
            return
        now = self.now()
        for event in state.events:
            if event.component != "azure-iptables-monitor":
                continue
            repeats = int((now - event.first) * self.time_scale // WARNING_REPEAT_SECONDS)
            if repeats + 1 > event.count:
                event.count = repeats + 1
                event.last = event.first + repeats * WARNING_REPEAT_SECONDS / self.time_scale
