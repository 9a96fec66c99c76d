"""The clusters whose nodes' iptables dumps the tests render: one shape per dataplane and
network plugin, and the named cases (shape plus user rule kinds) that real iptables must accept
and the analyser must read."""

from __future__ import annotations

from aksim.fleetfile import USER_RULE_KINDS, Cluster, Node, Pool
from aksim.iptables import NodeDump, render_node


def make_cluster(
    *,
    dataplane: str | None = "cilium",
    plugin: str = "azure",
    mode: str | None = "overlay",
    services: int = 10,
    acns: bool = True,
    seed: int = 101,
    os_sku: str = "AzureLinux",
    os_type: str = "Linux",
) -> Cluster:
    pool = Pool(
        name="nodepool1",
        mode="System",
        os_type=os_type,
        os_sku=os_sku,
        count=5,
        vm_size="Standard_D4s_v5",
        node_image_version="AKSAzureLinux-V3gen2-202511.04.0",
        orchestrator_version="1.33.2",
        vmss_id="31415926",
    )
    return Cluster(
        key=f"c{seed}",
        subscription_id="00000000-0000-0000-0000-000000000001",
        resource_group="rg-test",
        name=f"aks-{seed}",
        location="westeurope",
        kubernetes_version="1.33.2",
        network_plugin=plugin,
        network_plugin_mode=mode,
        network_dataplane=dataplane,
        network_policy="cilium" if dataplane == "cilium" else None,
        acns=acns,
        acceleration_mode="None",
        tags={},
        entra=False,
        private=False,
        maintenance={},
        node_disruption_policy="Allow",
        services=services,
        seed=seed,
        pools=[pool],
    )


def first_node(cluster: Cluster) -> Node:
    return cluster.nodes()[0]


def cilium() -> Cluster:
    return make_cluster()


def cilium_pod_subnet() -> Cluster:
    return make_cluster(mode=None, acns=False, os_sku="Ubuntu2404", seed=102)


def kube_proxy_200() -> Cluster:
    return make_cluster(dataplane="azure", mode=None, services=200, acns=False, seed=103)


def kubenet() -> Cluster:
    return make_cluster(
        dataplane="azure", plugin="kubenet", mode=None, services=40, acns=False, seed=104
    )


def kube_proxy_overlay() -> Cluster:
    return make_cluster(dataplane="azure", services=50, acns=False, os_sku="Ubuntu2204", seed=105)


# (case id, cluster factory, user kinds) for the restore tests.
CASES = [
    ("cilium-clean", cilium, []),
    ("cilium-pod-subnet-clean", cilium_pod_subnet, []),
    ("kube-proxy-200-services", kube_proxy_200, []),
    ("kubenet-clean", kubenet, []),
    *[(f"kind-{kind}", cilium, [kind]) for kind in USER_RULE_KINDS],
    ("all-kinds-cilium", cilium, list(USER_RULE_KINDS)),
    ("all-kinds-kube-proxy", kube_proxy_overlay, list(USER_RULE_KINDS)),
]
CLEAN_SHAPES = [cilium, cilium_pod_subnet, kube_proxy_200, kubenet, kube_proxy_overlay]


def render_case(case_id: str) -> NodeDump:
    _, factory, kinds = next(case for case in CASES if case[0] == case_id)
    cluster = factory()
    return render_node(cluster, first_node(cluster), kinds)


def family_text(dump: NodeDump, family: str) -> str:
    return dump.ipv4 if family == "ipv4" else dump.ipv6
