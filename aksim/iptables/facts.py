"""What the node is: its addresses and the cluster's platform features, drawn once from the
seeds, and the named random streams every part of a node's rules draws from."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from aksim.fleetfile import Cluster, Node, node_ip

OVERLAY_POD_CIDR = "10.244.0.0/16"  # overlay and kubenet pod CIDR
POD_SUBNET = "10.225.0.0/16"  # pod subnet of Azure CNI without overlay


def random_stream(*parts: object) -> random.Random:
    """A private random stream named by its parts: a simulation's variation, not a secret."""
    return random.Random(":".join(str(p) for p in parts))


@dataclass(frozen=True)
class NodeFacts:
    """The node's addresses and the cluster's platform features, drawn once from the seeds."""

    cilium: bool  # Cilium replaces kube-proxy
    l7_proxy: bool  # Cilium's DNS/L7 proxy (ACNS FQDN policies): TPROXY and NOTRACK rules
    dns_proxy_port: int
    swift: str | None  # "SWIFT" (older CNS) | "SWIFT-POSTROUTING" (newer CNS) | None
    localdns: bool
    imds_table: str | None  # where AgentBaker's IMDS restriction rule sits, if enabled
    node_ip: str
    pod_cidr: str
    api_server_ip: str
    stamp: str


def node_facts(cluster: Cluster, node: Node) -> NodeFacts:
    # Cluster-wide choices come from the cluster's seed alone, so every node of a cluster agrees.
    crng = random_stream(cluster.seed, "cluster")
    localdns = crng.random() < 0.6
    imds_table = crng.choice(["mangle", "filter", None, None])
    swift_chain = crng.choice(["SWIFT", "SWIFT-POSTROUTING"])
    api_server_ip = (
        f"20.{crng.randrange(30, 240)}.{crng.randrange(0, 256)}.{crng.randrange(1, 255)}"
    )
    rng = random_stream(cluster.seed, node.name)
    cilium = cluster.network_dataplane == "cilium"
    overlay = cluster.network_plugin == "kubenet" or cluster.network_plugin_mode == "overlay"
    swift = cluster.network_plugin == "azure" and cluster.network_plugin_mode != "overlay"
    stamp = datetime(2026, 11, 2, 6, 0, 0) + timedelta(seconds=rng.randrange(0, 28 * 86400))
    return NodeFacts(
        cilium=cilium,
        l7_proxy=cilium and cluster.acns,
        dns_proxy_port=rng.randrange(32768, 61000),
        swift=swift_chain if swift else None,
        localdns=localdns,
        imds_table=imds_table,
        node_ip=node_ip([n.name for n in cluster.nodes()].index(node.name)),
        pod_cidr=OVERLAY_POD_CIDR if overlay else POD_SUBNET,
        api_server_ip=api_server_ip,
        stamp=stamp.ctime(),  # iptables-save prints ctime(3): "Mon Nov  2 06:00:00 2026"
    )
