"""Fleet-file objects for tests that need a cluster of a given shape rather than a generated
fleet, the choice of a generated cluster that enables cleanly, and the body of the PUT that
changes a cluster's acceleration mode through the real Azure SDK."""

from __future__ import annotations

from azure.mgmt.containerservice import models as cs_models

from aksim.fleetfile import Cluster, Pool
from aksim.generate import _eligible

SUBSCRIPTION = "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0"


def pool(name: str, mode: str, os_type: str, sku: str, count: int, vmss: str) -> Pool:
    return Pool(
        name=name,
        mode=mode,
        os_type=os_type,
        os_sku=sku,
        count=count,
        vm_size="Standard_D4s_v5",
        node_image_version="AKSAzureLinux-V3gen2-202507.21.0",
        orchestrator_version="1.33.2",
        vmss_id=vmss,
    )


def cluster(key: str, seed: int, **changes: object) -> Cluster:
    """A public Cilium cluster on Kubernetes 1.33 with one system node, changed by `changes`."""
    fields: dict[str, object] = {
        "key": key,
        "subscription_id": SUBSCRIPTION,
        "resource_group": "rg-test",
        "name": f"aks-{key}",
        "location": "westeurope",
        "kubernetes_version": "1.33.2",
        "network_plugin": "azure",
        "network_plugin_mode": "overlay",
        "network_dataplane": "cilium",
        "network_policy": "cilium",
        "acns": True,
        "acceleration_mode": "None",
        "tags": {},
        "entra": False,
        "private": False,
        "maintenance": {},
        "node_disruption_policy": "Allow",
        "services": 3,
        "seed": seed,
        "pools": [pool("system", "System", "Linux", "AzureLinux", 1, "44444444")],
    }
    fields.update(changes)
    return Cluster(**fields)


def eligible_clean(c: Cluster) -> bool:
    """A generated cluster that AKS lets enable BpfVeth: eligible, no user rules, running, not
    yet accelerated."""
    return (
        _eligible(c)
        and not c.user_rules
        and c.acceleration_mode == "None"
        and c.node_disruption_policy == "Allow"
        and c.power_state == "Running"
    )


def mode_update(client, cluster: Cluster, mode: str) -> tuple[cs_models.ManagedCluster, str]:
    """The cluster as ARM has it now with its acceleration mode set to `mode`, and its ETag."""
    current = client.managed_clusters.get(cluster.resource_group, cluster.name)
    network = current.properties.network_profile
    network.advanced_networking = cs_models.AdvancedNetworking(
        enabled=True, performance=cs_models.AdvancedNetworkingPerformance(acceleration_mode=mode)
    )
    return current, current.e_tag


def changeable(aksim, count: int = 1) -> list[Cluster]:
    """`count` eligible, running clusters with nothing AKS would refuse the change for first:
    no user rules, node disruption policy Allow."""
    found = aksim.clusters(
        lambda c: (
            _eligible(c)
            and c.power_state == "Running"
            and c.node_disruption_policy == "Allow"
            and not c.user_rules
        )
    )[:count]
    assert len(found) == count, "the test fleet has too few changeable clusters"
    return found
