"""Generate a realistic fleet file from a seed: the same arguments give byte-identical files.

Profiles: `demo` has more of everything worth showing (blocked clusters, warnings, rings);
`scale` keeps production-like proportions for the 10,000-cluster benchmarks.
"""

from __future__ import annotations

import itertools
import random
import uuid
from dataclasses import dataclass

from aksim.fleetfile import USER_RULE_KINDS, Cluster, Fleet, Pool, Subscription, node_name

REGIONS = (
    ("westeurope", "weu"),
    ("northeurope", "neu"),
    ("swedencentral", "sec"),
    ("uksouth", "uks"),
    ("eastus", "eus"),
    ("eastus2", "eus2"),
    ("centralus", "cus"),
    ("westus3", "wus3"),
    ("southeastasia", "sea"),
    ("australiaeast", "aue"),
)
# Kubernetes minor -> patch releases seen on AKS, and how common each minor is in a fleet.
VERSIONS = {
    "1.30": ("1.30.12", "1.30.14"),
    "1.31": ("1.31.9", "1.31.11"),
    "1.32": ("1.32.6", "1.32.7"),
    "1.33": ("1.33.2", "1.33.3"),
    "1.34": ("1.34.1", "1.34.2"),
    "1.35": ("1.35.0",),
}
VERSION_WEIGHTS = {"1.30": 6, "1.31": 10, "1.32": 20, "1.33": 30, "1.34": 26, "1.35": 8}
TEAMS = (
    "payments",
    "search",
    "checkout",
    "identity",
    "data",
    "ml",
    "web",
    "platform",
    "edge",
    "billing",
    "media",
    "ads",
)
ENVS = (("prod", 5), ("staging", 3), ("dev", 2))
RINGS = (("canary", 5), ("early", 20), ("broad", 75))
VM_SIZES = (
    "Standard_D4s_v5",
    "Standard_D8s_v5",
    "Standard_D4ds_v5",
    "Standard_E8s_v5",
    "Standard_D16s_v5",
    "Standard_F8s_v2",
)
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


@dataclass(frozen=True)
class Profile:
    user_rule_share: float  # clusters with user-installed rules on some nodes
    warning_share: float  # clusters whose nodes report warnings once BpfVeth is on
    bpfveth_share: float  # eligible clusters already at BpfVeth
    max_user_pools: int
    max_user_nodes: int
    services: tuple[int, int]


PROFILES = {
    "demo": Profile(0.18, 0.08, 0.06, 3, 12, (20, 300)),
    "scale": Profile(0.10, 0.03, 0.03, 2, 8, (10, 150)),
}


def _pick(rng: random.Random, weighted: tuple[tuple[str, int], ...] | dict[str, int]) -> str:
    items = list(weighted.items()) if isinstance(weighted, dict) else list(weighted)
    return rng.choices([k for k, _ in items], weights=[w for _, w in items])[0]


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _network(rng: random.Random) -> tuple[str, str | None, str | None, str | None]:
    """(plugin, plugin mode, dataplane, policy): mostly Azure CNI powered by Cilium."""
    roll = rng.random()
    if roll < 0.70:
        return "azure", "overlay" if rng.random() < 0.85 else None, "cilium", "cilium"
    if roll < 0.87:
        return (
            "azure",
            "overlay" if rng.random() < 0.5 else None,
            "azure",
            rng.choice(["azure", "calico", None]),
        )
    return "kubenet", None, "azure", rng.choice(["calico", None])


def _linux_sku(rng: random.Random, cilium: bool) -> str:
    if cilium:
        return _pick(
            rng,
            {"AzureLinux": 30, "AzureLinux3": 10, "Ubuntu2404": 30, "Ubuntu2204": 20, "Ubuntu": 10},
        )
    return _pick(rng, {"Ubuntu2204": 45, "Ubuntu": 25, "AzureLinux": 20, "Ubuntu2404": 10})


def _image_version(rng: random.Random, sku: str) -> str:
    build = f"2025{rng.choice(['09', '10', '11'])}{rng.randint(1, 28):02d}.0"
    return {
        "AzureLinux": f"AKSAzureLinux-V3gen2-{build}",
        "AzureLinux3": f"AKSAzureLinux-V3gen2-{build}",
        "Ubuntu2404": f"AKSUbuntu-2404gen2containerd-{build}",
        "Ubuntu2204": f"AKSUbuntu-2204gen2containerd-{build}",
        "Ubuntu": f"AKSUbuntu-2204gen2containerd-{build}",
        "Windows2022": f"AKSWindows-2022-containerd-20348.{rng.randint(3000, 4000)}.{build[:6]}",
    }[sku]


def _pools(rng: random.Random, profile: Profile, version: str, cilium: bool) -> list[Pool]:
    # Clusters are usually built on one Linux SKU; some carry an odd pool.
    base_sku = _linux_sku(rng, cilium)
    pools = [
        Pool(
            name="system" if rng.random() < 0.7 else "nodepool1",
            mode="System",
            os_type="Linux",
            os_sku=base_sku,
            count=rng.randint(2, 5),
            vm_size=rng.choice(VM_SIZES[:3]),
            node_image_version=_image_version(rng, base_sku),
            orchestrator_version=version,
            vmss_id=f"{rng.randrange(10**7, 10**8)}",
        )
    ]
    for n in range(rng.randint(0, profile.max_user_pools)):
        sku = base_sku if rng.random() < 0.8 else _linux_sku(rng, cilium)
        pools.append(
            Pool(
                name=f"user{n + 1}"
                if rng.random() < 0.6
                else rng.choice(["apps", "batch", "gpu", "mem"]) + str(n + 1),
                mode="User",
                os_type="Linux",
                os_sku=sku,
                count=rng.randint(1, profile.max_user_nodes),
                vm_size=rng.choice(VM_SIZES),
                node_image_version=_image_version(rng, sku),
                orchestrator_version=version,
                vmss_id=f"{rng.randrange(10**7, 10**8)}",
            )
        )
    # Cilium does not run Windows nodes; Windows pools live on the other dataplanes.
    if not cilium and rng.random() < 0.15:
        pools.append(
            Pool(
                name="win" + str(rng.randint(1, 9)),
                mode="User",
                os_type="Windows",
                os_sku="Windows2022",
                count=rng.randint(1, 4),
                vm_size="Standard_D4s_v5",
                node_image_version=_image_version(rng, "Windows2022"),
                orchestrator_version=version,
                vmss_id="0",
            )
        )
    return pools


def _maintenance(rng: random.Random) -> dict[str, dict]:
    configs: dict[str, dict] = {}
    if rng.random() < 0.6:
        configs["aksManagedNodeOSUpgradeSchedule"] = {
            "maintenanceWindow": {
                "schedule": {"weekly": {"intervalWeeks": 1, "dayOfWeek": rng.choice(DAYS)}},
                "durationHours": rng.choice([4, 6, 8]),
                "utcOffset": rng.choice(["+00:00", "+01:00", "-05:00", "+08:00"]),
                "startDate": "2025-06-01",
                "startTime": f"{rng.choice([0, 1, 2, 3, 22, 23]):02d}:00",
            }
        }
    if rng.random() < 0.3:
        configs["aksManagedAutoUpgradeSchedule"] = {
            "maintenanceWindow": {
                "schedule": {"weekly": {"intervalWeeks": 2, "dayOfWeek": rng.choice(DAYS)}},
                "durationHours": 8,
                "utcOffset": "+00:00",
                "startDate": "2025-06-01",
                "startTime": "01:00",
            }
        }
    if rng.random() < 0.15:
        configs["default"] = {
            "timeInWeek": [{"day": rng.choice(DAYS), "hourSlots": [1, 2, 3, 4]}],
            "notAllowedTime": [],
        }
    return configs


def _eligible(cluster: Cluster) -> bool:
    minor = tuple(int(p) for p in cluster.kubernetes_version.split(".")[:2])
    return (
        minor >= (1, 33)
        and cluster.network_plugin == "azure"
        and cluster.network_dataplane == "cilium"
        and cluster.acns
        and all(p.os_sku in {"AzureLinux", "AzureLinux3", "Ubuntu2404"} for p in cluster.pools)
    )


def _cluster(rng: random.Random, profile: Profile, index: int, subscription: str) -> Cluster:
    region, short = REGIONS[rng.randrange(len(REGIONS))]
    team = rng.choice(TEAMS)
    env = _pick(rng, ENVS)
    minor = _pick(rng, VERSION_WEIGHTS)
    version = rng.choice(VERSIONS[minor])
    plugin, mode, dataplane, policy = _network(rng)
    cilium = dataplane == "cilium"
    cluster = Cluster(
        key=f"c{index:05d}",
        subscription_id=subscription,
        resource_group=f"rg-{team}-{env}-{short}",
        name=f"aks-{team}-{env}-{short}-{index:05d}",
        location=region,
        kubernetes_version=version,
        network_plugin=plugin,
        network_plugin_mode=mode,
        network_dataplane=dataplane,
        network_policy=policy,
        acns=rng.random() < (0.65 if cilium else 0.1),
        acceleration_mode="None",
        tags={
            "env": env,
            "ring": _pick(rng, RINGS),
            "team": team,
            "costCenter": f"cc-{rng.randint(1000, 9999)}",
        },
        entra=rng.random() < 0.4,
        private=rng.random() < 0.03,
        maintenance=_maintenance(rng),
        node_disruption_policy=_pick(
            rng, {"Allow": 85, "AllowDuringMaintenanceWindow": 10, "Block": 5}
        ),
        services=rng.randint(*profile.services),
        seed=rng.getrandbits(63),
        pools=_pools(rng, profile, version, cilium),
    )
    if rng.random() < 0.02:
        cluster.power_state = "Stopped"
    linux_nodes = [n for n in cluster.nodes() if n.linux]
    if rng.random() < profile.user_rule_share:
        for node in rng.sample(linux_nodes, k=min(len(linux_nodes), rng.choice([1, 1, 2, 3]))):
            cluster.user_rules[node.name] = sorted(
                rng.sample(USER_RULE_KINDS, k=rng.choice([1, 1, 2]))
            )
    if _eligible(cluster) and not cluster.user_rules and rng.random() < profile.bpfveth_share * 3:
        cluster.acceleration_mode = "BpfVeth"
    if rng.random() < profile.warning_share or (
        cluster.acceleration_mode == "BpfVeth" and rng.random() < 0.3
    ):
        node = rng.choice(linux_nodes)
        cluster.warnings[node.name] = ["BlockedIPTablesRule"]
    return cluster


def generate_fleet(clusters: int, subscriptions: int, seed: int, profile: str = "demo") -> Fleet:
    rng = random.Random(seed)
    chosen = PROFILES[profile]
    tenant = _uuid(rng)
    subs = [
        Subscription(id=_uuid(rng), name=f"sub-{rng.choice(TEAMS)}-{n + 1:03d}")
        for n in range(subscriptions)
    ]
    # Every subscription gets a cluster; the rest spread unevenly, as in real estates where a
    # few platform subscriptions hold many clusters (Zipf-like weights).
    weights = [1 / (n + 1) ** 0.7 for n in range(subscriptions)]
    cumulative = list(itertools.accumulate(weights))
    fleet_clusters = []
    for index in range(clusters):
        sub = subs[index] if index < subscriptions else rng.choices(subs, cum_weights=cumulative)[0]
        fleet_clusters.append(_cluster(rng, chosen, index + 1, sub.id))
    return Fleet(
        seed=seed, profile=profile, tenant_id=tenant, subscriptions=subs, clusters=fleet_clusters
    )


__all__ = ["PROFILES", "generate_fleet", "node_name"]
