"""The overview's preflight part: the fleet's latest verdicts (blockers.fleet_preflight), how
many of them are stale, and the origins of blocking rules as a chart with its table."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from django.conf import settings
from django.utils import timezone

from fleet import charts
from fleet.inventory import present_clusters
from preflight import blockers


@dataclass(frozen=True)
class PreflightOverview:
    counts: list[blockers.PreflightTally]
    stale: int  # live clusters whose latest result is older than a rollout would reuse
    stale_minutes: int
    origins: list[blockers.OriginTally]
    chart: charts.BarChart
    progress: blockers.ScanProgress | None

    @property
    def scanned(self) -> int:
        return sum(t.live for t in self.counts if t.status)

    @property
    def never_scanned(self) -> int:
        return sum(t.live for t in self.counts if not t.status)


def read(now: datetime.datetime | None = None) -> PreflightOverview:
    now = now or timezone.now()
    minutes = settings.WAVEGATE_PREFLIGHT_MAX_AGE_MINUTES
    results = blockers.fleet_preflight()
    stale = (
        present_clusters()
        .filter(latest_scan__finished_at__lt=now - datetime.timedelta(minutes=minutes))
        .count()
    )
    return PreflightOverview(
        counts=results.counts,
        stale=stale,
        stale_minutes=minutes,
        origins=results.origins,
        chart=charts.bars([(o.origin, o.clusters) for o in results.origins]),
        progress=blockers.scan_progress(),
    )
