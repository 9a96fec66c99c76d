"""Operator actions on the fleet: each checks permission, records its audit event and sends
follow-up work once the transaction commits."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils import timezone

import audit
from fleet import access
from fleet.choices import SCAN_OPEN, SyncStatus, SyncTrigger
from fleet.models import Cluster, PreflightScan, SyncRun


class ActionRefused(Exception):
    """The action cannot be done now; the message says why and what to do."""


@transaction.atomic
def request_sync(*, acting_user: Any) -> None:
    """Queue an inventory sync now ("Sync now")."""
    if not access.can_sync_inventory(acting_user):
        raise PermissionDenied(access.can_sync_inventory.refusal)
    if SyncRun.objects.filter(status=SyncStatus.RUNNING).exists():
        raise ActionRefused("An inventory sync is already running; its result will show here.")
    audit.record("inventory.sync_requested", acting_user=acting_user)

    from fleet.tasks import sync_inventory

    transaction.on_commit(lambda: sync_inventory.delay(SyncTrigger.BUTTON, acting_user.pk))


@transaction.atomic
def request_scan(cluster: Cluster, *, acting_user: Any) -> PreflightScan:
    """Queue a preflight scan of one cluster ("Scan now")."""
    if not access.can_scan_clusters(acting_user):
        raise PermissionDenied(access.can_scan_clusters.refusal)
    if not cluster.present:
        raise ActionRefused(f"{cluster.name} is no longer in Azure; there is nothing to scan.")
    if PreflightScan.objects.filter(cluster=cluster, status__in=SCAN_OPEN).exists():
        raise ActionRefused(f"A scan of {cluster.name} is already queued or running.")
    scan = PreflightScan.objects.create(
        cluster=cluster, requested_by=acting_user, queued_at=timezone.now()
    )
    audit.record(
        "preflight.scan_requested", acting_user=acting_user, obj=cluster, after={"scan": scan.pk}
    )

    from fleet.tasks import scan_cluster

    transaction.on_commit(lambda: scan_cluster.delay(scan.pk))
    return scan


@transaction.atomic
def request_fleet_scan(*, acting_user: Any) -> int:
    """Queue a scan of every eligible cluster not already being scanned ("Scan all eligible
    clusters"); WAVEGATE_SCAN_CONCURRENCY of them run at once. Returns how many were queued."""
    if not access.can_scan_clusters(acting_user):
        raise PermissionDenied(access.can_scan_clusters.refusal)
    busy = PreflightScan.objects.filter(status__in=SCAN_OPEN).values("cluster_id")
    clusters = list(
        Cluster.objects.filter(eligible=True, removed_at__isnull=True)
        .exclude(pk__in=busy)
        .order_by("name", "pk")
        .values_list("pk", flat=True)
    )
    if not clusters:
        raise ActionRefused(
            "No eligible cluster is waiting for a scan: every one is already queued or running."
        )
    now = timezone.now()
    PreflightScan.objects.bulk_create(
        [PreflightScan(cluster_id=pk, requested_by=acting_user, queued_at=now) for pk in clusters],
        batch_size=1000,
    )
    audit.record(
        "preflight.fleet_scan_requested",
        acting_user=acting_user,
        object_type="fleet",
        after={"clusters": len(clusters), "concurrency": settings.WAVEGATE_SCAN_CONCURRENCY},
    )

    from fleet.tasks import scan_next

    chains = min(len(clusters), max(1, settings.WAVEGATE_SCAN_CONCURRENCY))
    transaction.on_commit(lambda: [scan_next.delay() for _ in range(chains)])
    return len(clusters)
