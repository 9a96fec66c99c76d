"""Can a cluster take BpfVeth at all? A pure function of the cluster and its node pools.

The rules are AKS's requirements for eBPF host routing (shared/reference/): Kubernetes 1.33 or
later, Azure CNI powered by Cilium, ACNS enabled, every node pool on Azure Linux 3.0 or Ubuntu
24.04, no Windows pool — plus a cluster that is running and not mid-operation or failed, and
whose node disruption policy is not Block (AKS refuses any change that reimages nodes then).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

MINIMUM_VERSION = (1, 33)
SUPPORTED_SKUS = {
    "AzureLinux": "Azure Linux",
    "AzureLinux3": "Azure Linux 3.0",
    "Ubuntu2404": "Ubuntu 24.04",
}
# The node disruption policy that makes AKS refuse any change that reimages nodes (the rest of
# what the policy means is fleet/disruption.py's).
BLOCK = "Block"
BLOCK_REASON = (
    "Node disruption policy Block: AKS refuses any change that reimages nodes, as changing the "
    "acceleration mode does (OperationBlockedByNodeDisruptionPolicy). An administrator must set "
    "the cluster's node disruption policy to Allow first."
)


class ClusterFacts(Protocol):
    @property
    def kubernetes_version(self) -> str: ...
    @property
    def network_plugin(self) -> str: ...
    @property
    def network_dataplane(self) -> str: ...
    @property
    def acns_enabled(self) -> bool: ...
    @property
    def provisioning_state(self) -> str: ...
    @property
    def power_state(self) -> str: ...


class PoolFacts(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def os_type(self) -> str: ...
    @property
    def os_sku(self) -> str: ...


@dataclass(frozen=True)
class Blocker:
    field: str
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "reason": self.reason}


def _version(text: str) -> tuple[int, int] | None:
    match = re.match(r"^\s*v?(\d+)\.(\d+)", text or "")
    return (int(match.group(1)), int(match.group(2))) if match else None


def blockers(
    cluster: ClusterFacts, pools: Iterable[PoolFacts], *, node_disruption_policy: str = ""
) -> list[Blocker]:
    """Every reason the cluster cannot take BpfVeth now, in the order an operator fixes them.
    `node_disruption_policy` is read apart from the rest ("" when unknown)."""
    found: list[Blocker] = []
    version = _version(cluster.kubernetes_version)
    if version is None:
        found.append(
            Blocker(
                "kubernetes_version",
                f"Kubernetes version '{cluster.kubernetes_version}' is not one Wavegate "
                "understands; eBPF host routing needs 1.33 or later.",
            )
        )
    elif version < MINIMUM_VERSION:
        found.append(
            Blocker(
                "kubernetes_version",
                f"Runs Kubernetes {cluster.kubernetes_version}; eBPF host routing needs 1.33 "
                "or later. Upgrade the cluster first.",
            )
        )
    if cluster.network_plugin != "azure" or cluster.network_dataplane != "cilium":
        plugin = cluster.network_plugin or "unknown"
        dataplane = cluster.network_dataplane or "none"
        found.append(
            Blocker(
                "network_dataplane",
                f"Uses network plugin '{plugin}' with dataplane '{dataplane}'; eBPF host routing "
                "needs Azure CNI powered by Cilium (plugin 'azure', dataplane 'cilium').",
            )
        )
    if not cluster.acns_enabled:
        found.append(
            Blocker(
                "acns_enabled",
                "Advanced Container Networking Services is off; eBPF host routing is one of its "
                "features, so it must be enabled (it is switched on with the same update).",
            )
        )
    for pool in sorted(pools, key=lambda p: p.name):
        if pool.os_type == "Windows":
            found.append(
                Blocker(
                    "node_pools",
                    f"Node pool '{pool.name}' runs Windows; eBPF host routing supports Linux pools "
                    "only. Move its workloads and remove the pool.",
                )
            )
        elif pool.os_sku not in SUPPORTED_SKUS:
            hint = (
                " (the generic 'Ubuntu' SKU does not say 24.04)" if pool.os_sku == "Ubuntu" else ""
            )
            found.append(
                Blocker(
                    "node_pools",
                    f"Node pool '{pool.name}' runs OS SKU '{pool.os_sku or 'unknown'}'{hint}; "
                    "every pool must run Azure Linux 3.0 or Ubuntu 24.04 (AzureLinux, "
                    "AzureLinux3 or Ubuntu2404).",
                )
            )
    if cluster.power_state and cluster.power_state != "Running":
        found.append(
            Blocker(
                "power_state",
                f"The cluster is {cluster.power_state.lower()}; start it before changing it.",
            )
        )
    if cluster.provisioning_state and cluster.provisioning_state != "Succeeded":
        found.append(
            Blocker(
                "provisioning_state",
                f"The last operation left the cluster '{cluster.provisioning_state}'; wait for it "
                "to finish or fix it until it shows Succeeded.",
            )
        )
    if node_disruption_policy == BLOCK:
        found.append(Blocker("node_disruption_policy", BLOCK_REASON))
    return found
