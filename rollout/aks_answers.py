"""What AKS answers and how the engine takes it (shared/reference/aks-ebpf-host-routing.md,
"Checked against public sources"): refusals that pass with time and are retried within the
target's deadline (another operation running, a stale ETag, the node disruption window, AKS's
iptables monitor not yet re-checked), and operations that end without success (a Failed one is
sent once more when the cluster reads the goal in provisioning state Failed; a Canceled one is
a failure with its reason). Used by rollout/engine.py."""

from __future__ import annotations

import datetime
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from fleet import inventory, snapshots
from fleet.azure import Azure, AzureError, Conflict, OperationStatus, PreconditionFailed
from fleet.models import Cluster, PreflightScan
from rollout.choices import TargetStatus
from rollout.models import RolloutTarget
from rollout.transitions import move_target

T = TargetStatus

# Azure's refusals that pass with time (`retry_later`).
IPTABLES_REFUSED = "UserInstalledIPTablesRulesFound"
OUTSIDE_DISRUPTION_WINDOW = "OperationOutsideNodeDisruptionWindow"


def retry_later(target: RolloutTarget, exc: AzureError) -> float | None:
    """ENABLING → READY when Azure refused the PUT for a reason that passes: the cluster
    changed since it was read (412), AKS runs an operation of its own (409
    OperationNotAllowed), its iptables monitor has not re-checked
    nodes whose rules were removed (for WAVEGATE_IPTABLES_REFUSAL_RETRY_MINUTES), or the node
    disruption window is closed. Returns the seconds to wait, or None: fail it."""
    now = timezone.now()
    since = target.retrying_since or now
    busy = settings.WAVEGATE_BUSY_RETRY_SECONDS
    if isinstance(exc, PreconditionFailed):
        said = (
            "The cluster changed between Wavegate's read and its PUT (its ETag moved, as when "
            "an operation of AKS's own ends): Wavegate reads it again and sends the change."
        )
        wait = 0.0
    elif isinstance(exc, Conflict):
        said = (
            "AKS is running another operation on the cluster (one of its own, such as an "
            "auto-upgrade or a node image upgrade): Wavegate sends the change again once it "
            "has ended, until the cluster's deadline."
        )
        wait = busy
    elif exc.code == IPTABLES_REFUSED:
        patience = _monitor_patience(target)
        if patience is None:
            return None
        since, until, wait = patience
        said = (
            "AKS still reports user-installed iptables rules. Its iptables monitor re-checks "
            "the nodes every few minutes, so a refusal can outlast the rules' removal: Wavegate "
            f"retries, backing off, until {until:%H:%M} UTC (WAVEGATE_IPTABLES_REFUSAL_RETRY_"
            f"MINUTES = {settings.WAVEGATE_IPTABLES_REFUSAL_RETRY_MINUTES:g}), then fails the "
            "cluster."
        )
    elif exc.code == OUTSIDE_DISRUPTION_WINDOW and target.plan.respect_maintenance_windows:
        said = (
            "Outside the cluster's node disruption window (policy AllowDuringMaintenanceWindow): "
            "Wavegate sends the change again later, until the cluster's deadline."
        )
        wait = busy
    else:
        return None
    moved = move_target(
        target, T.ENABLING, T.READY, error_code=exc.code, error_message=f"{said} Azure said: {exc}",
        status_since=target.status_since, retrying_since=since,
    )  # fmt: skip
    return wait if moved else None


def refusal_message(target: RolloutTarget, exc: AzureError) -> str:
    if exc.code == OUTSIDE_DISRUPTION_WINDOW:
        return (
            f"{exc} This plan does not wait for maintenance windows: put the cluster in a plan "
            "that does, or have its node disruption policy changed, then retry."
        )
    if exc.code == IPTABLES_REFUSED:
        minutes = settings.WAVEGATE_IPTABLES_REFUSAL_RETRY_MINUTES
        return (
            f"{exc} Wavegate retried for {minutes:g} minutes (WAVEGATE_IPTABLES_REFUSAL_RETRY_"
            "MINUTES) and AKS still refuses: scan the cluster again, remove the rules it finds "
            "(or what adds them), then retry."
        )
    return str(exc)


def await_monitor(target: RolloutTarget, scan: PreflightScan) -> float | None:
    """A scan blocked only by AKS's own label on nodes where it finds no user rule: the rules
    may have been removed a short while ago and AKS's iptables monitor not checked again yet.
    Scan again, backing off, for WAVEGATE_IPTABLES_REFUSAL_RETRY_MINUTES; the seconds to wait,
    or None once that time is up (the cluster is blocked)."""
    patience = _monitor_patience(target)
    if patience is None:
        return None
    since, until, wait = patience
    minutes = settings.WAVEGATE_IPTABLES_REFUSAL_RETRY_MINUTES
    RolloutTarget.objects.filter(pk=target.pk, status=T.PREFLIGHT).update(
        retrying_since=since,
        rescan_after=scan.finished_at,
        error_code="AwaitingIptablesMonitor",
        error_message=f"Preflight scan #{scan.pk}: {scan.message} Wavegate scans again, backing "
        f"off, until {until:%H:%M} UTC (WAVEGATE_IPTABLES_REFUSAL_RETRY_MINUTES = {minutes:g}), "
        "then blocks the cluster if the label is still there.",
    )
    return wait


def _monitor_patience(
    target: RolloutTarget,
) -> tuple[datetime.datetime, datetime.datetime, float] | None:
    """How long the engine goes on waiting for AKS's iptables monitor to check again: (since,
    until, the wait before the next try, backing off from WAVEGATE_BUSY_RETRY_SECONDS to 5
    minutes), or None once WAVEGATE_IPTABLES_REFUSAL_RETRY_MINUTES have passed."""
    now = timezone.now()
    since = target.retrying_since or now
    until = since + datetime.timedelta(minutes=settings.WAVEGATE_IPTABLES_REFUSAL_RETRY_MINUTES)
    if now >= until:
        return None
    waited = (now - since).total_seconds()
    return since, until, min(300.0, max(settings.WAVEGATE_BUSY_RETRY_SECONDS, waited))


def operation_ended(target: RolloutTarget, azure: Azure, read: OperationStatus) -> None:
    """ENABLING, Azure's operation ended without success. Canceled (aborted) fails the
    cluster with that reason. Failed, with the cluster reading the goal mode in provisioning
    state Failed (ARM keeps the target), gets the same change sent once more, as AKS advises
    for a failed cluster; a second failure fails it with Azure's message."""
    said = f" ({read.error_code}: {read.error_message})" if read.error_code else ""
    if read.status == "Canceled":
        move_target(
            target, T.ENABLING, T.FAILED, error_code="OperationCanceled",
            error_message=f"Azure's operation was canceled{said}: someone or something aborted "
            "it (for example az aks operation-abort). Retry the cluster to send the change "
            "again, or roll it back.",
        )  # fmt: skip
        return
    state = profile(azure.get_cluster(*where(target)))
    goal = target.plan.goal
    failed_at_goal = (state["accelerationMode"], state["provisioningState"]) == (goal, "Failed")
    if target.resent < 1 and failed_at_goal:
        move_target(
            target, T.ENABLING, T.READY, error_code=read.error_code or "OperationFailed",
            error_message=f"Azure's operation ended Failed{said}; the cluster reads {goal} in "
            "provisioning state Failed. Wavegate sends the same change once more.",
            resent=F("resent") + 1, status_since=target.status_since,
        )  # fmt: skip
        return
    again = " again, after Wavegate sent the change once more" if target.resent else ""
    move_target(
        target, T.ENABLING, T.FAILED, error_code=read.error_code or f"Operation{read.status}",
        error_message=f"Azure's operation ended {read.status}{again}{said}. Look at the cluster "
        "in Azure, then retry it or roll it back.",
    )  # fmt: skip


def where(target: RolloutTarget) -> tuple[str, str, str]:
    cluster = target.cluster
    return cluster.subscription.subscription_id, cluster.resource_group, cluster.name


def profile(cluster: Any) -> dict[str, Any]:
    props = cluster.properties
    network = props.network_profile if props else None
    advanced = network.advanced_networking if network else None
    performance = advanced.performance if advanced else None
    mode = performance.acceleration_mode if performance else None
    return {
        "accelerationMode": str(getattr(mode, "value", mode) or "None"),
        "provisioningState": str(props.provisioning_state if props else ""),
        "eTag": cluster.e_tag or "",
    }


def remember_mode(target: RolloutTarget, state: dict[str, Any]) -> None:
    """The inventory takes the mode and provisioning state the engine just read from ARM
    (called in the transaction of the target's move, whose audit event carries them), so the
    cluster's page is right at once and a lagging Resource Graph row does not undo it
    (fleet/sync.py `_keep_what_the_engine_read`)."""
    Cluster.objects.filter(pk=target.cluster_id).update(
        acceleration_mode=state["accelerationMode"],
        provisioning_state=state["provisioningState"],
        mode_read_at=timezone.now(),
    )
    # The overview's counts and its chart of modes over time follow once the move commits.
    transaction.on_commit(inventory.modes_changed)
    transaction.on_commit(snapshots.record_after_change)
