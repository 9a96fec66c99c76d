"""The heartbeat task, scheduled by beat and run by any worker."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from health.models import WorkerHeartbeat


@shared_task(name="health.record_heartbeat", bind=True, ignore_result=True)
def record_heartbeat(self: Any) -> None:
    WorkerHeartbeat.beat(self.request.hostname or "unknown")
