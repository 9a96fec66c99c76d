"""Fleet tasks: the inventory sync (beat and "Sync now"), and the pulls of clusters' Kubernetes
events (beat)."""

from __future__ import annotations

import contextlib
import datetime
from typing import Any

from celery import shared_task
from django.conf import settings
from django.contrib.auth import get_user_model

from fleet import events, outbox
from fleet.choices import SyncTrigger
from fleet.inventory import present_clusters
from fleet.sync import SyncAlreadyRunning, run_sync


@shared_task(name="fleet.sync_inventory", ignore_result=True, soft_time_limit=1800, time_limit=1900)
def sync_inventory(trigger: str = SyncTrigger.SCHEDULE, requested_by_id: int | None = None) -> Any:
    user = get_user_model().objects.filter(pk=requested_by_id).first() if requested_by_id else None
    # A sync already running will have the same result: nothing to do twice.
    with contextlib.suppress(SyncAlreadyRunning):
        run_sync(trigger, requested_by=user)


@shared_task(name="fleet.resend_outbox", ignore_result=True)
def resend_outbox() -> tuple[int, int]:
    """Send again what the broker refused after its commit; give up what waited too long."""
    return outbox.resend()


@shared_task(name="fleet.pull_events", ignore_result=True)
def pull_events() -> int:
    """Beat: queue a pull of every present cluster's Kubernetes events, but of those pulled
    within half the period (a cluster a rollout is changing is pulled more often)."""
    period = datetime.timedelta(minutes=settings.WAVEGATE_CLUSTER_EVENTS_MINUTES)
    return events.queue_pulls(present_clusters().values_list("pk", flat=True), period / 2)


@shared_task(name=events.PULL_TASK, ignore_result=True)
def pull_cluster_events(cluster_id: int) -> str:
    """Read one cluster's events and keep each once (fleet/events.py)."""
    pulled = events.pull(cluster_id)
    if pulled is None:
        return "gone"
    return pulled.error or "read"
