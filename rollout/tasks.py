"""Rollout tasks: the beat tick that reconciles every active plan, one engine step, and one
webhook delivery."""

from __future__ import annotations

from typing import Any

from celery import Task, shared_task
from django.conf import settings

from rollout import engine, notify, reconcile
from rollout.models import RolloutTarget

# A step may run a fresh preflight scan inline, which waits up to its deadline.
_STEP_LIMIT = int(
    settings.WAVEGATE_SCAN_DEADLINE_SECONDS + 6 * settings.WAVEGATE_SCAN_REQUEST_TIMEOUT_SECONDS
)


def _send(target_id: int) -> None:
    advance_target.delay(target_id)


def _send_later(target_id: int, seconds: float) -> None:
    advance_target.apply_async((target_id,), countdown=seconds)


@shared_task(name="rollout.tick", ignore_result=True)
def tick() -> int:
    return reconcile.tick(_send)


@shared_task(
    name="rollout.advance_target",
    ignore_result=True,
    soft_time_limit=_STEP_LIMIT,
    time_limit=_STEP_LIMIT + 60,
)
def advance_target(target_id: int) -> str:
    """One step of one target, then its next: scheduled when it waits (an operation's next read
    when Azure says), or the plan reconciled at once when it left its slot."""
    if not reconcile.due(target_id):
        return "not due"  # a duplicate or superseded message: the target's chain goes on
    outcome = engine.advance(target_id)
    if outcome.again_in is not None:
        reconcile.schedule(target_id, outcome.again_in, _send_later)
    elif outcome.freed:
        plan_id = RolloutTarget.objects.filter(pk=target_id).values_list("plan_id", flat=True)
        reconcile.reconcile_plan(plan_id[0], _send, wait=True)
    return outcome.status


@shared_task(
    name="rollout.send_webhook",
    bind=True,
    ignore_result=True,
    autoretry_for=(notify.Unavailable,),
    max_retries=settings.WAVEGATE_WEBHOOK_RETRIES,
    retry_backoff=settings.WAVEGATE_WEBHOOK_BACKOFF_SECONDS,
    retry_backoff_max=600,
    retry_jitter=True,
)
def send_webhook(self: Task, payload: dict[str, Any]) -> str:
    """POST one announcement (rollout/notify.py). The payload, not a primary key: it says what
    happened when it happened. Its delivery id stays the same on every try."""
    tries = self.request.retries + 1
    try:
        status = notify.deliver(payload)
    except notify.Refused as exc:
        notify.give_up(payload, str(exc), tries)
        return "refused"
    except notify.Unavailable as exc:
        if self.request.retries >= (self.max_retries or 0):
            notify.give_up(payload, str(exc), tries)
            return "gave up"
        raise  # autoretry_for sends it again after a backoff
    return f"delivered ({status})"
