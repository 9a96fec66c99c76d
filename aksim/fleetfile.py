"""The fleet file: what aksim simulates, as plain data (format documented in aksim/README.md).

A fleet file is JSON: subscriptions, and clusters with their node pools. Nodes are recipes
(how many services kube-proxy programs, which user-installed rule kinds sit on which node, a
seed), never rendered dumps: aksim renders a node's iptables on request (aksim/iptables/).
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

FORMAT = "aksim-fleet/1"

# Kinds of user-installed iptables rules the generator can put on a node. Each kind renders
# to a fixed set of rules (aksim/iptables/user_rules.py); the generator's choice is the truth.
USER_RULE_KINDS = (
    "calico",
    "docker",
    "istio",
    "fail2ban",
    "handwritten",
    "security-agent",
    "azure-npm",
)

# Kinds the generator never draws, put on a node only by a fleet file or an admin change, for
# the edge cases a scan must get right: a user rule whose comment holds a byte that is not UTF-8
# and a control character (iptables-save prints comment bytes as they are), and a block list of
# 10,000 DROP rules (about 750 kB of dump).
EDGE_RULE_KINDS = ("odd-comment", "blocklist")
RULE_KINDS = USER_RULE_KINDS + EDGE_RULE_KINDS

# Kubernetes warning events a node reports after BpfVeth is on, when the file says so.
WARNING_REASONS = ("BlockedIPTablesRule", "UnexpectedIPTablesRules")


@dataclass
class Subscription:
    id: str
    name: str


@dataclass
class Pool:
    name: str
    mode: str  # System | User
    os_type: str  # Linux | Windows
    os_sku: str  # Ubuntu | Ubuntu2204 | Ubuntu2404 | AzureLinux | AzureLinux3 | Windows2022
    count: int
    vm_size: str
    node_image_version: str
    orchestrator_version: str
    vmss_id: str  # the 8 digits in node names: aks-<pool>-<vmss_id>-vmss<index>


@dataclass
class Cluster:
    key: str  # aksim's own id, URL-safe; the Kubernetes API is under /k8s/<key>/
    subscription_id: str
    resource_group: str
    name: str
    location: str
    kubernetes_version: str
    network_plugin: str  # azure | kubenet
    network_plugin_mode: str | None  # overlay | None
    network_dataplane: str | None  # cilium | azure | None
    network_policy: str | None
    acns: bool
    acceleration_mode: str  # None | BpfVeth
    tags: dict[str, str]
    entra: bool  # Entra ID integrated: kubeconfig uses kubelogin
    private: bool  # private API server: unreachable from Wavegate
    maintenance: dict[str, dict[str, Any]]  # maintenance configuration name -> properties
    node_disruption_policy: str  # Allow | Block | AllowDuringMaintenanceWindow
    services: int  # services kube-proxy programs on every node
    seed: int
    pools: list[Pool]
    # node name -> user-installed rule kinds on it (the generator's truth)
    user_rules: dict[str, list[str]] = field(default_factory=dict)
    # node name -> warning reasons it reports once BpfVeth is on
    warnings: dict[str, list[str]] = field(default_factory=dict)
    power_state: str = "Running"
    provisioning_state: str = "Succeeded"

    @property
    def arm_id(self) -> str:
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.ContainerService/managedClusters/{self.name}"
        )

    def nodes(self) -> list[Node]:
        return [
            Node(name=node_name(pool, index), pool=pool, index=index)
            for pool in self.pools
            for index in range(pool.count)
        ]


@dataclass(frozen=True)
class Node:
    name: str
    pool: Pool
    index: int

    @property
    def linux(self) -> bool:
        return self.pool.os_type == "Linux"


def node_name(pool: Pool, index: int) -> str:
    if pool.os_type == "Windows":
        return f"{pool.name}{index:06d}"  # Windows computer names: pool prefix + index
    return f"aks-{pool.name}-{pool.vmss_id}-vmss{index:06d}"


def node_ip(position: int) -> str:
    """The address of the cluster's node at `position` (in `Cluster.nodes()` order)."""
    return str(ipaddress.IPv4Address("10.224.0.4") + position)


@dataclass
class Fleet:
    seed: int
    profile: str
    tenant_id: str  # the Entra ID tenant every subscription belongs to
    subscriptions: list[Subscription]
    clusters: list[Cluster]

    def to_json(self) -> str:
        body = {
            "format": FORMAT,
            "seed": self.seed,
            "profile": self.profile,
            "tenantId": self.tenant_id,
            "subscriptions": [asdict(s) for s in self.subscriptions],
            "clusters": [asdict(c) for c in self.clusters],
        }
        return json.dumps(body, sort_keys=True, separators=(",", ":")) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Fleet:
        body = json.loads(text)
        if body.get("format") != FORMAT:
            raise ValueError(
                f"not an aksim fleet file (format {body.get('format')!r}, want {FORMAT!r})"
            )
        clusters = []
        for raw in body["clusters"]:
            raw = dict(raw)
            raw["pools"] = [Pool(**p) for p in raw["pools"]]
            clusters.append(Cluster(**raw))
        return cls(
            seed=body["seed"],
            profile=body["profile"],
            tenant_id=body["tenantId"],
            subscriptions=[Subscription(**s) for s in body["subscriptions"]],
            clusters=clusters,
        )

    @classmethod
    def load(cls, path: str | Path) -> Fleet:
        return cls.from_json(Path(path).read_text())
