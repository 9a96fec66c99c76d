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
# azure-iptables-monitor checks each node this often (its default), before --time-scale.
MONITOR_SECONDS = 300.0
# How long an operation AKS starts by itself (a node image upgrade) runs, before --time-scale.
BACKGROUND_SECONDS = 180.0
# Kubernetes keeps events for an hour, before --time-scale.
EVENT_TTL_SECONDS = 3600.0
# client-go's event recorder folds a repeat of the same event within this long into the one kept
# (count and last time); not scaled: events repeated by the admin API are a test's own steps.
AGGREGATE_SECONDS = 600.0
# At most this many monitor checks are replayed when a cluster is read after a long quiet.
MONITOR_REPLAY = 5
AGENT_NOT_READY_TAINT = "node.cilium.io/agent-not-ready"

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
    # share of PUTs that find an operation AKS started itself running (answered 409)
    background_operation_rate: float = 0.1
    graph_lag_seconds: float = 30.0  # Resource Graph behind ARM, before --time-scale
    retry_after: bool = False  # send Retry-After on operations (AKS sends none)

    def to_dict(self) -> dict[str, Any]:
        return {
            "errorRate": self.error_rate,
            "latencyMs": self.latency_ms,
            "lroFailureRate": self.lro_failure_rate,
            "stuckOperations": self.stuck_operations,
            "throttling": self.throttling,
            "kubeTimeoutSeconds": self.kube_timeout_seconds,
            "backgroundOperationRate": self.background_operation_rate,
            "graphLagSeconds": self.graph_lag_seconds,
            "retryAfter": self.retry_after,
        }

    def update(self, body: dict[str, Any]) -> None:
        names = {
            "errorRate": ("error_rate", float),
            "latencyMs": ("latency_ms", int),
            "lroFailureRate": ("lro_failure_rate", float),
            "stuckOperations": ("stuck_operations", bool),
            "throttling": ("throttling", bool),
            "kubeTimeoutSeconds": ("kube_timeout_seconds", float),
            "backgroundOperationRate": ("background_operation_rate", float),
            "graphLagSeconds": ("graph_lag_seconds", float),
            "retryAfter": ("retry_after", bool),
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
    background: bool = False  # started by AKS itself (a node image upgrade), not by a PUT
    canceled: bool = False  # aborted (POST …/abort): ends Canceled, and so does the cluster

    def status(self, now: float, stuck: bool) -> str:
        if self.canceled:
            return "Canceled"
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
    # The mode the last accepted PUT asked for: ARM shows it from the PUT on, also while the
    # operation runs and after it failed (the nodes keep `spec.acceleration_mode`).
    desired_mode: str = "None"
    etag_changed_at: float = 0.0  # when the ETag last changed (Resource Graph lags it)
    operation: Operation | None = None
    last_roll: Operation | None = None  # the last operation that reimaged the nodes
    # azure-iptables-monitor's view: the nodes it saw user rules on at its last check.
    monitor_seen: frozenset[str] = frozenset()
    monitor_at: float = 0.0
    ebpf_label: bool = True  # nodes carry kubernetes.azure.com/ebpf-host-routing=true
    fail_operations: int = 0  # fault: this many of its next operations end Failed
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
            self.background_debt = 0.0  # see background_operation_due
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
                state.desired_mode = cluster.acceleration_mode
                state.monitor_seen = frozenset(self.nodes_with_user_rules(state))
                state.monitor_at = self.now()
                self.clusters[cluster.key] = state
                self.by_arm_id[cluster.arm_id.lower()] = state
                self.by_subscription.setdefault(cluster.subscription_id, []).append(state)
                if cluster.acceleration_mode == "BpfVeth":
                    state.enabled_at = self.now()
                    self._check(state, state.enabled_at)  # its monitor reports from the start

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
    def touch(self, state: ClusterState) -> None:
        """The cluster changed as ARM sees it: a new ETag, from now."""
        state.etag = str(uuid.uuid4())
        state.etag_changed_at = self.now()

    def settle(self, state: ClusterState) -> None:
        """Apply what the clock says has happened: a finished operation takes effect, and the
        iptables monitor's checks since the last read."""
        self.monitor(state)
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
                    # The monitor starts on each reimaged node and checks at once.
                    self._check(state, done)
            else:
                spec.provisioning_state = status  # Failed or Canceled
            self.touch(state)
            # It changed when the operation ended, not when someone looked.
            state.etag_changed_at = min(state.etag_changed_at, op.started + op.duration)

    def _next_operation_fails(self) -> bool:
        """Exactly `lroFailureRate` of accepted operations fail, spread evenly (at 0.2, every
        fifth), so a test or a demo knows how many to expect."""
        rate = min(1.0, max(0.0, self.faults.lro_failure_rate))
        self.failure_debt += rate
        if self.failure_debt >= 1.0 - 1e-9:
            self.failure_debt -= 1.0
            return True
        return False

    def background_operation_due(self) -> bool:
        """Whether this PUT finds AKS running an operation of its own (auto-upgrade, node image
        upgrade): exactly `backgroundOperationRate` of PUTs, spread evenly like failures."""
        rate = min(1.0, max(0.0, self.faults.background_operation_rate))
        self.background_debt += rate
        if self.background_debt >= 1.0 - 1e-9:
            self.background_debt -= 1.0
            return True
        return False

    def start_background(self, state: ClusterState) -> Operation:
        """An operation AKS starts by itself: the cluster reads `Upgrading` until it ends, and
        a PUT meanwhile is refused with 409 OperationNotAllowed."""
        op = Operation(
            id=str(uuid.uuid4()),
            cluster_key=state.spec.key,
            mode=state.spec.acceleration_mode,
            started=self.now(),
            duration=BACKGROUND_SECONDS / self.time_scale,
            fails=False,
            request_id="",
            rolls=False,
            background=True,
        )
        state.operation = op
        state.spec.provisioning_state = "Upgrading"
        self.touch(state)
        self.operations[op.id] = op
        return op

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
            fails=self._next_operation_fails() or state.fail_operations > 0,
            request_id=request_id,
            rolls=changes_mode,
        )
        state.fail_operations = max(0, state.fail_operations - 1)
        state.operation = op
        state.desired_mode = mode
        if changes_mode:
            state.last_roll = op
        state.spec.provisioning_state = "Updating"
        self.touch(state)
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

    def node_reimaged_at(self, state: ClusterState, node: Node) -> float | None:
        """When the node came back from its last reimage (the end of its slot of the last
        operation that rolled the nodes), or None if it has not been reimaged."""
        op = state.last_roll
        if op is None or op.fails:
            return None
        nodes = state.spec.nodes()
        end = op.started + op.duration * (nodes.index(node) + 1) / max(1, len(nodes))
        return end if end <= self.now() else None

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
        if state.ebpf_label and self.node_has_ebpf(state, node):
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

    def agent_blocked(self, state: ClusterState, node: Node) -> bool:
        """With eBPF host routing on, the iptables monitor's init container keeps the Cilium
        agent from starting on a node where it sees user rules (and Cilium's operator taints
        the node)."""
        return node.name in state.monitor_seen and self.node_has_ebpf(state, node)

    def nodes_with_user_rules(self, state: ClusterState) -> list[str]:
        """The truth: the nodes that hold user-installed rules now."""
        return sorted(name for name, kinds in state.spec.user_rules.items() if kinds)

    # --- azure-iptables-monitor ------------------------------------------------------------
    def monitor(self, state: ClusterState) -> frozenset[str]:
        """The monitor's view (nodes with user rules as of its last check), brought up to the
        clock: it checks every MONITOR_SECONDS, so AKS goes on refusing for a while after the
        rules were removed, and accepts a PUT for a while after they were added."""
        period = MONITOR_SECONDS / self.time_scale
        now = self.now()
        if now - state.monitor_at < period:
            return state.monitor_seen
        with self.lock:
            checks = int((now - state.monitor_at) // period)
            first = max(1, checks - MONITOR_REPLAY + 1)
            for k in range(first, checks + 1):
                self._check(state, state.monitor_at + k * period)
            state.monitor_at += checks * period
        return state.monitor_seen

    def _check(self, state: ClusterState, at: float) -> None:
        """One check of every node: label what it sees and, where eBPF host routing is on, a
        new Warning event per finding (as the monitor creates them: count 1, never repeated)."""
        seen = frozenset(self.nodes_with_user_rules(state))
        if seen != state.monitor_seen:
            state.monitor_seen = seen
            state.resource_version += 1
        ttl = EVENT_TTL_SECONDS / self.time_scale
        state.events = [e for e in state.events if e.last >= at - ttl]
        for node in state.spec.nodes():
            if not self.node_has_ebpf(state, node):
                continue
            reasons = list(state.spec.warnings.get(node.name, ()))
            if node.name in seen and "UnexpectedIPTablesRules" not in reasons:
                reasons.append("UnexpectedIPTablesRules")
            for reason in reasons:
                self.emit_warning(state, node.name, reason, at)

    def emit_warning(
        self, state: ClusterState, node_name: str, reason: str, at: float
    ) -> KubeEvent:
        """Record a new warning event, as azure-iptables-monitor creates one per check."""
        messages = {
            "UnexpectedIPTablesRules": "Node has unexpected iptables rules",
            "BlockedIPTablesRule": (
                "A process attempted to add iptables rules to the node but was blocked since "
                "last check. iptables rules blocked because EBPF Host Routing is enabled: "
                "aka.ms/acnsperformance"
            ),
        }
        name = f"{node_name}.{int(at)}"
        if any(e.name == name for e in state.events):
            name = f"{name}.{reason.lower()}"
        event = KubeEvent(
            uid=str(uuid.uuid4()),
            name=name,
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

    def record_event(
        self,
        state: ClusterState,
        node_name: str,
        reason: str,
        message: str,
        *,
        kind: str,
        component: str,
        at: float,
    ) -> KubeEvent:
        """Record an event on a node as client-go's event recorder does for most components
        (kubelet, node controllers): the same event again within AGGREGATE_SECONDS updates the
        one kept, same uid, its count grown and its last time moved. (azure-iptables-monitor
        creates a new event at each check instead: `emit_warning`.)"""
        same = (node_name, reason, message, kind, component)
        for event in state.events:
            kept = (event.node, event.reason, event.message, event.type, event.component)
            if kept == same and at - event.last <= AGGREGATE_SECONDS:
                event.count += 1
                event.last = at
                return event
        event = KubeEvent(
            uid=str(uuid.uuid4()),
            name=f"{node_name}.{uuid.uuid4().hex[:16]}",
            namespace="default",
            reason=reason,
            message=message,
            type=kind,
            node=node_name,
            component=component,
            first=at,
            count=1,
            last=at,
        )
        state.events.append(event)
        return event
