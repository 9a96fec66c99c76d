"""Preflight tasks: one cluster's scan ("Scan now"), the chains that work through "Scan all
eligible clusters", beat's end of scans whose worker died, and beat's reaper of the scan
namespaces such a worker left on the cluster.

The tasks keep the names they had when they lived in fleet ("fleet.scan_cluster", ...): the
scan queue's routes and beat's schedule in config/settings.py name them, and so may messages
still waiting in Redis.
"""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from preflight.reaper import reap
from preflight.scans import expire_abandoned, fail_never_started, next_queued, run_scan

# A scan is warned at its time limit and killed a minute later (the time to record its end).
_SOFT_LIMIT = settings.WAVEGATE_SCAN_TIME_LIMIT_SECONDS
_HARD_LIMIT = settings.WAVEGATE_SCAN_TIME_LIMIT_SECONDS + 60


@shared_task(
    name="fleet.scan_cluster",
    ignore_result=True,
    soft_time_limit=_SOFT_LIMIT,
    time_limit=_HARD_LIMIT,
)
def scan_cluster(scan_id: int) -> None:
    """Run one queued preflight scan ("Scan now" on a cluster's page)."""
    run_scan(scan_id)


@shared_task(
    name="fleet.scan_next",
    ignore_result=True,
    soft_time_limit=_SOFT_LIMIT,
    time_limit=_HARD_LIMIT,
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
    """Scans whose worker died, and queued scans no worker ever took, end as error."""
    return expire_abandoned() + fail_never_started()


# A run stops starting clusters at its budget; the one under way may take its API calls' time.
_REAP_SOFT_LIMIT = settings.WAVEGATE_SCAN_REAP_BUDGET_SECONDS + (
    4 * settings.WAVEGATE_SCAN_REQUEST_TIMEOUT_SECONDS
)


@shared_task(
    name="preflight.reap_leftovers",
    ignore_result=True,
    soft_time_limit=_REAP_SOFT_LIMIT,
    time_limit=_REAP_SOFT_LIMIT + 60,
)
def reap_leftovers() -> int:
    """Beat's: delete the scan namespaces a dead worker left on recently scanned clusters."""
    return len(reap().removed)
