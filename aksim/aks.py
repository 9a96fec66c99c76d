"""AKS's rules for changing `accelerationMode`: when the resource provider refuses, and with what.

The error codes are aksim's best guess (the public material gives messages, not codes); the
user-installed-iptables message is the one in shared/reference/aks-ebpf-host-routing.md.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

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


def _opens_on(schedule: dict[str, Any], day: datetime.date, anchor: datetime.date) -> bool:
    """Whether the schedule opens a window on this local day (intervals count from the
    configuration's startDate)."""
    if "weekly" in schedule:
        weekly = schedule["weekly"]
        weeks = (day - anchor).days // 7
        return (
            day.strftime("%A") == weekly["dayOfWeek"]
            and weeks % int(weekly.get("intervalWeeks") or 1) == 0
        )
    if "daily" in schedule:
        return (day - anchor).days % int(schedule["daily"].get("intervalDays") or 1) == 0
    if "absoluteMonthly" in schedule:
        monthly = schedule["absoluteMonthly"]
        months = (day.year - anchor.year) * 12 + day.month - anchor.month
        return (
            day.day == int(monthly["dayOfMonth"])
            and months % int(monthly.get("intervalMonths") or 1) == 0
        )
    return False  # a schedule aksim does not model never opens


def _in_maintenance_window(window: dict[str, Any], now: datetime.datetime) -> bool:
    """Whether `now` falls in the maintenance window (ARM's maintenanceWindow object)."""
    offset = window.get("utcOffset") or "+00:00"
    sign = 1 if offset[0] == "+" else -1
    hours, minutes = (int(x) for x in offset[1:].split(":"))
    local = (now + sign * datetime.timedelta(hours=hours, minutes=minutes)).replace(tzinfo=None)
    start_hour, start_minute = (int(x) for x in window["startTime"].split(":")[:2])
    duration = datetime.timedelta(hours=float(window["durationHours"]))
    anchor = datetime.date.fromisoformat(str(window.get("startDate") or "2000-01-03")[:10])
    for days_back in range(int(duration / datetime.timedelta(days=1)) + 2):
        day = (local - datetime.timedelta(days=days_back)).date()
        if day < anchor or not _opens_on(window["schedule"], day, anchor):
            continue
        start = datetime.datetime.combine(day, datetime.time(start_hour, start_minute))
        if start <= local < start + duration:
            return not any(
                str(span["start"])[:10] <= local.date().isoformat() <= str(span["end"])[:10]
                for span in window.get("notAllowedDates") or []
            )
    return False


def disruption_refusal(cluster: Cluster, now: datetime.datetime) -> Refusal | None:
    """The node disruption policy's answer to a change that reimages every node: `Block`
    refuses; `AllowDuringMaintenanceWindow` refuses outside the aksManagedNodeOSUpgradeSchedule
    window, and allows any time when that configuration does not exist."""
    policy = cluster.node_disruption_policy
    if policy == "Block":
        return Refusal(
            400,
            "OperationBlockedByNodeDisruptionPolicy",
            f"Changing the acceleration mode reimages every node, and the node disruption "
            f"policy of managed cluster {cluster.name} is 'Block'. Set "
            "nodeDisruptionProfile.nodeDisruptionPolicy to 'Allow' to permit it.",
        )
    config = cluster.maintenance.get("aksManagedNodeOSUpgradeSchedule")
    if policy != "AllowDuringMaintenanceWindow" or not config:
        return None
    if _in_maintenance_window(config["maintenanceWindow"], now):
        return None
    return Refusal(
        400,
        "OperationOutsideNodeDisruptionWindow",
        f"Changing the acceleration mode reimages every node, and the node disruption policy of "
        f"managed cluster {cluster.name} is 'AllowDuringMaintenanceWindow': retry inside the "
        "aksManagedNodeOSUpgradeSchedule maintenance window.",
    )


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
    disrupted = disruption_refusal(cluster, now or datetime.datetime.now(datetime.UTC))
    if disrupted is not None:
        return disrupted
    if nodes_with_user_rules:
        return Refusal(
            400,
            "UserInstalledIPTablesRulesFound",
            IPTABLES_REFUSAL.format(count=nodes_with_user_rules),
        )
    return None
