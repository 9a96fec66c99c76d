"""Fleet tasks: the inventory sync (beat and "Sync now") and the preflight scans."""

from __future__ import annotations

import contextlib
from typing import Any

from celery import shared_task
from django.conf import settings
from django.contrib.auth import get_user_model

from fleet.choices import SyncTrigger
from fleet.preflight import expire_abandoned, next_queued, run_scan
from fleet.sync import SyncAlreadyRunning, run_sync


@shared_task(name="fleet.sync_inventory", ignore_result=True, soft_time_limit=1800, time_limit=1900)
def sync_inventory(trigger: str = SyncTrigger.SCHEDULE, requested_by_id: int | None = None) -> Any:
    user = get_user_model().objects.filter(pk=requested_by_id).first() if requested_by_id else None
    # A sync already running will have the same result: nothing to do twice.
    with contextlib.suppress(SyncAlreadyRunning):
        run_sync(trigger, requested_by=user)


# A scan waits up to its deadline for the pods, plus a few API calls: give the task room.
_SCAN_LIMIT = int(
    settings.WAVEGATE_SCAN_DEADLINE_SECONDS + 6 * settings.WAVEGATE_SCAN_REQUEST_TIMEOUT_SECONDS
)


@shared_task(
    name="fleet.scan_cluster",
    ignore_result=True,
    soft_time_limit=_SCAN_LIMIT,
    time_limit=_SCAN_LIMIT + 60,
)
def scan_cluster(scan_id: int) -> None:
    """Run one queued preflight scan ("Scan now" on a cluster's page)."""
    run_scan(scan_id)


@shared_task(
    name="fleet.scan_next",
    ignore_result=True,
    soft_time_limit=_SCAN_LIMIT,
    time_limit=_SCAN_LIMIT + 60,
)
def scan_next() -> None:
    """Run the oldest queued scan, then queue itself again while scans wait: "scan all" starts
    WAVEGATE_SCAN_CONCURRENCY of these chains, so that many clusters are scanned at once."""
    scan_id = next_queued()
    if scan_id is None:
        return
    run_scan(scan_id)
    if next_queued() is not None:
        scan_next.delay()


@shared_task(name="fleet.expire_abandoned_scans", ignore_result=True)
def expire_abandoned_scans() -> int:
    return expire_abandoned()
