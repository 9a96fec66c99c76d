"""Fleet tasks: the inventory sync (beat and "Sync now")."""

from __future__ import annotations

import contextlib
from typing import Any

from celery import shared_task
from django.contrib.auth import get_user_model

from fleet import outbox
from fleet.choices import SyncTrigger
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
