"""Each node of a cluster as the API shows it right now: ready or not, labels, taints, IPs."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from aksim.fleetfile import Cluster, Node, node_ip
from aksim.kube.metadata import stable_hex, stable_uid
from aksim.state import AGENT_NOT_READY_TAINT, ClusterState, Simulator


@dataclass(frozen=True)
class NodeView:
    """A node as the API shows it right now."""

    node: Node
    position: int  # index in the cluster's node list: picks its IPs
    uid: str
    labels: dict[str, str]
    ready: bool
    taints: list[dict[str, str]]
    ebpf: bool
    agent_blocked: bool = False  # the iptables monitor keeps its Cilium agent from starting
    reimaged_at: float | None = None  # when it came back from its last reimage

    @property
    def name(self) -> str:
        return self.node.name

    @property
    def ip(self) -> str:
        return node_ip(self.position)

    @property
    def pod_cidr(self) -> str:
        return str(ipaddress.IPv4Network(f"10.244.{self.position % 256}.0/24"))

    def pod_ip(self, salt: str) -> str:
        return f"10.244.{self.position % 256}.{10 + int(stable_hex(4, salt), 16) % 240}"


def node_uid(spec: Cluster, name: str) -> str:
    return stable_uid(spec.key, "node", name)


def node_views(sim: Simulator, state: ClusterState) -> list[NodeView]:
    spec = state.spec
    has_user_pool = any(p.mode == "User" for p in spec.pools)
    sim.monitor(state)
    views = []
    for position, node in enumerate(spec.nodes()):
        ready = sim.node_ready(state, node)
        blocked = sim.agent_blocked(state, node)
        taints = _taints(node, ready, has_user_pool)
        if blocked:  # Cilium's operator keeps pods off a node whose agent is not ready
            taints.append({"key": AGENT_NOT_READY_TAINT, "value": "true", "effect": "NoSchedule"})
        views.append(
            NodeView(
                node=node,
                position=position,
                uid=node_uid(spec, node.name),
                labels=sim.node_labels(state, node),
                ready=ready,
                taints=taints,
                ebpf=sim.node_has_ebpf(state, node),
                agent_blocked=blocked,
                reimaged_at=sim.node_reimaged_at(state, node),
            )
        )
    return views


def _taints(node: Node, ready: bool, has_user_pool: bool) -> list[dict[str, str]]:
    taints = []
    # Many AKS clusters keep workloads off their system pool this way; the scan must tolerate it.
    if node.pool.mode == "System" and has_user_pool and node.linux:
        taints.append({"key": "CriticalAddonsOnly", "value": "true", "effect": "NoSchedule"})
    if not ready:
        for effect in ("NoSchedule", "NoExecute"):
            taints.append({"key": "node.kubernetes.io/not-ready", "effect": effect})
    return taints
