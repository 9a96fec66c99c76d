"""Rollout tasks: the beat tick that reconciles every active plan, and one engine step."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from rollout import engine, reconcile

# A step may run a fresh preflight scan inline, which waits up to its deadline.
_STEP_LIMIT = int(
    settings.WAVEGATE_SCAN_DEADLINE_SECONDS + 6 * settings.WAVEGATE_SCAN_REQUEST_TIMEOUT_SECONDS
)


@shared_task(name="rollout.tick", ignore_result=True)
def tick() -> int:
    def send(target_id: int) -> None:
        advance_target.delay(target_id)

    return reconcile.tick(send)


@shared_task(
    name="rollout.advance_target",
    ignore_result=True,
    soft_time_limit=_STEP_LIMIT,
    time_limit=_STEP_LIMIT + 60,
)
def advance_target(target_id: int) -> str:
    return engine.advance(target_id)
