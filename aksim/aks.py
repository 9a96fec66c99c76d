"""AKS's rules for changing `accelerationMode`: when the resource provider refuses, and with what.

The error codes are aksim's best guess (the public material gives messages, not codes); the
user-installed-iptables message is the one in shared/reference/aks-ebpf-host-routing.md.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from aksim.fleetfile import Cluster

SUPPORTED_SKUS = ("AzureLinux", "AzureLinux3", "Ubuntu2404")

IPTABLES_REFUSAL = (
    "User-installed iptables rules found. Number of affected nodes is {count}. Please remove "
    "the iptables rules before enabling advanced networking performance "
    "(advancedNetworking.performance.accelerationMode = BpfVeth). If there are no "
    "user-installed iptables rules, please try again after some time."
)


@dataclass(frozen=True)
class Refusal:
    status: int
    code: str
    message: str


def _minor(version: str) -> tuple[int, int]:
    major, minor = version.split(".")[:2]
    return int(major), int(minor)


def _in_maintenance_window(cluster: Cluster, now: datetime.datetime) -> bool:
    config = cluster.maintenance.get("aksManagedNodeOSUpgradeSchedule")
    if not config:
        return False
    window = config["maintenanceWindow"]
    sign = 1 if window["utcOffset"][0] == "+" else -1
    hours, minutes = (int(x) for x in window["utcOffset"][1:].split(":"))
    local = now + sign * datetime.timedelta(hours=hours, minutes=minutes)
    weekly = window["schedule"].get("weekly")
    if not weekly:
        return False
    start_hour, start_minute = (int(x) for x in window["startTime"].split(":"))
    for days_back in (0, 1):  # a window may run past midnight
        day = local - datetime.timedelta(days=days_back)
        if day.strftime("%A") != weekly["dayOfWeek"]:
            continue
        start = day.replace(hour=start_hour, minute=start_minute, second=0, microsecond=0)
        if start <= local < start + datetime.timedelta(hours=window["durationHours"]):
            return True
    return False


def mode_change_refusal(
    cluster: Cluster,
    mode: str,
    *,
    acns_enabled: bool,
    nodes_with_user_rules: int,
    now: datetime.datetime | None = None,
) -> Refusal | None:
    """Why AKS would refuse setting `mode` now, or None when it accepts.

    `acns_enabled` is ACNS as the request asks for it (the CLI's --enable-acns may switch it on
    in the same PUT).
    """
    if cluster.power_state == "Stopped":
        return Refusal(
            409,
            "OperationNotAllowed",
            f"Managed cluster {cluster.name} is in stopped state. Start the cluster before "
            "updating it.",
        )
    if mode == cluster.acceleration_mode or mode == "None":
        return None  # turning it off (or changing nothing) has no prerequisites
    if mode != "BpfVeth":
        return Refusal(
            400,
            "InvalidParameter",
            f"The value '{mode}' of advancedNetworking.performance.accelerationMode is invalid. "
            "Allowed values are 'BpfVeth' and 'None'.",
        )
    if _minor(cluster.kubernetes_version) < (1, 33):
        return Refusal(
            400,
            "K8sVersionNotSupported",
            "advancedNetworking.performance.accelerationMode = BpfVeth requires Kubernetes "
            f"version 1.33 or later; managed cluster {cluster.name} runs "
            f"{cluster.kubernetes_version}. Upgrade the cluster first.",
        )
    if cluster.network_plugin != "azure" or cluster.network_dataplane != "cilium":
        return Refusal(
            400,
            "InvalidParameter",
            "advancedNetworking.performance.accelerationMode = BpfVeth is only supported with "
            "Azure CNI powered by Cilium (networkPlugin 'azure', networkDataplane 'cilium'); "
            f"this cluster uses networkPlugin '{cluster.network_plugin}' with networkDataplane "
            f"'{cluster.network_dataplane}'.",
        )
    for pool in cluster.pools:
        if pool.os_type == "Windows":
            return Refusal(
                400,
                "InvalidParameter",
                "advancedNetworking.performance.accelerationMode = BpfVeth is not supported "
                f"with Windows node pools; agent pool '{pool.name}' runs {pool.os_sku}.",
            )
        if pool.os_sku not in SUPPORTED_SKUS:
            return Refusal(
                400,
                "InvalidParameter",
                "advancedNetworking.performance.accelerationMode = BpfVeth requires every node "
                "pool to run Azure Linux 3.0 or Ubuntu 24.04 (osSKU AzureLinux, AzureLinux3 or "
                f"Ubuntu2404); agent pool '{pool.name}' has osSKU '{pool.os_sku}'.",
            )
    if not acns_enabled:
        return Refusal(
            400,
            "InvalidParameter",
            "advancedNetworking.performance.accelerationMode = BpfVeth requires Advanced "
            "Container Networking Services (advancedNetworking.enabled = true).",
        )
    policy = cluster.node_disruption_policy
    moment = now or datetime.datetime.now(datetime.UTC)
    if policy == "Block" or (
        policy == "AllowDuringMaintenanceWindow" and not _in_maintenance_window(cluster, moment)
    ):
        return Refusal(
            409,
            "OperationNotAllowed",
            f"Changing the acceleration mode reimages every node, and the node disruption "
            f"policy of managed cluster {cluster.name} is '{policy}'"
            + (" outside its maintenance window" if policy != "Block" else "")
            + ". Retry inside the maintenance window or change the policy.",
        )
    if nodes_with_user_rules:
        return Refusal(
            400,
            "UserInstalledIPTablesRulesFound",
            IPTABLES_REFUSAL.format(count=nodes_with_user_rules),
        )
    return None
