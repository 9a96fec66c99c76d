"""Clusters by acceleration mode over time, for the overview's chart: one row an hour
(`ModeSnapshot`), rewritten with the current counts whenever they may have changed (a sync
ended, the engine enabled or rolled back a cluster). One aggregate query per write."""

from __future__ import annotations

import datetime
import logging
from dataclasses import dataclass

from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from fleet.choices import AccelerationMode
from fleet.models import Cluster, ModeSnapshot

DAYS_SHOWN = 14

log = logging.getLogger(__name__)


def record(now: datetime.datetime | None = None) -> ModeSnapshot:
    """Store the present clusters' counts by mode as this hour's snapshot."""
    now = now or timezone.now()
    hour = now.replace(minute=0, second=0, microsecond=0)
    with transaction.atomic():
        # The hour's row is locked before counting: of two writers at once, the later one
        # counts after the other has committed, so the row never ends with the older count.
        snapshot, _ = ModeSnapshot.objects.get_or_create(
            hour=hour, defaults={"total": 0, "by_mode": {}, "taken_at": now}
        )
        snapshot = ModeSnapshot.objects.select_for_update().get(pk=snapshot.pk)
        rows = (
            Cluster.objects.filter(removed_at__isnull=True)
            .values_list("acceleration_mode")
            .annotate(n=Count("pk"))
            .order_by()
        )
        by_mode = {mode or AccelerationMode.NONE.value: n for mode, n in rows}
        snapshot.total, snapshot.by_mode = sum(by_mode.values()), by_mode
        snapshot.taken_at = max(now, timezone.now())
        snapshot.save(update_fields=["total", "by_mode", "taken_at"])
    return snapshot


def record_after_change() -> None:
    """`record` for a caller whose own work is done (a rollout step has committed): the chart
    missing a point must not fail it, so a failure is logged, not raised."""
    try:
        record()
    except Exception:
        log.exception("Could not store the clusters' counts by mode for the overview's chart")


@dataclass(frozen=True)
class Point:
    at: datetime.datetime
    bpfveth: int
    total: int


def bpfveth_series(now: datetime.datetime | None = None, days: int = DAYS_SHOWN) -> list[Point]:
    """The snapshots of the last `days` days, oldest first, and the last one before them (so
    the line starts where the fleet stood)."""
    now = now or timezone.now()
    since = now - datetime.timedelta(days=days)
    before = ModeSnapshot.objects.filter(hour__lt=since).order_by("-hour").first()
    rows = list(ModeSnapshot.objects.filter(hour__gte=since).order_by("hour"))
    if before is not None:
        rows.insert(0, before)
    return [
        Point(row.hour, int(row.by_mode.get(AccelerationMode.BPFVETH.value, 0)), row.total)
        for row in rows
    ]
