"""Rollout tasks: the beat tick that reconciles every active plan, one engine step, one
webhook delivery, and the frequent pulls of the Kubernetes events of clusters being changed."""

from __future__ import annotations

import datetime
import logging
from typing import Any

from celery import Task, shared_task
from django.conf import settings
from django.db import OperationalError

from fleet import events
from rollout import engine, notify, reconcile

log = logging.getLogger(__name__)


def _send(target_id: int, turn: str) -> None:
    advance_target.delay(target_id, turn)


def _send_later(target_id: int, turn: str, seconds: float) -> None:
    if advance_target.app.conf.task_always_eager:
        return  # a task run eagerly cannot wait: the reconciler sends the turn once it is due
    advance_target.apply_async((target_id, turn), countdown=seconds)


@shared_task(name="rollout.tick", ignore_result=True)
def tick() -> int:
    return reconcile.tick(_send)


@shared_task(
    name="rollout.advance_target",
    ignore_result=True,
    soft_time_limit=settings.WAVEGATE_STEP_TIME_LIMIT_SECONDS - 60,
    time_limit=settings.WAVEGATE_STEP_TIME_LIMIT_SECONDS,
)
def advance_target(target_id: int, turn: str | None = None) -> str:
    """The target's step for this turn, then its next: scheduled when it waits (an operation's
    next read when Azure says), or the plan reconciled at once when it left its slot. A message
    without a turn (queued by an earlier version) does nothing: the reconciler sends its turn."""
    taken, lease = reconcile.take_turn(target_id, turn) if turn else (False, None)
    if not taken:
        return "not its turn"  # another copy took it, or the turn was replaced
    outcome = engine.advance(target_id)
    if outcome.again_in is not None:
        reconcile.schedule(target_id, outcome.again_in, _send_later, lease)
        return outcome.status
    reconcile.release(target_id, lease)
    if outcome.freed and outcome.plan_id is not None:
        try:
            reconcile.reconcile_plan(outcome.plan_id, _send, wait=True)
        except OperationalError:  # the plan stayed locked too long: beat's next tick does it
            log.warning(
                "reconciling plan %s after target %s: plan locked", outcome.plan_id, target_id
            )
    return outcome.status


@shared_task(name="rollout.pull_events_in_flight", ignore_result=True)
def pull_events_in_flight() -> int:
    """Beat: queue a pull of the events of each cluster a rollout is changing or watching, so
    its page's timeline follows the change; one pulled within half the period is left."""
    period = datetime.timedelta(seconds=settings.WAVEGATE_CLUSTER_EVENTS_IN_FLIGHT_SECONDS)
    return events.queue_pulls(engine.watched_clusters(), period / 2)


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
def send_webhook(self: Task, payload: dict[str, Any], destination: str = notify.LEGACY) -> str:
    """POST one announcement (rollout/notify.py) to one destination, by its name (a message
    queued before there were destinations is for WAVEGATE_WEBHOOK_URL's). The payload, not a
    primary key: it says what happened when it happened. Its delivery id stays the same on
    every try; each destination's task is tried again on its own."""
    tries = self.request.retries + 1
    try:
        status = notify.deliver(payload, destination)
    except notify.Refused as exc:
        notify.give_up(payload, str(exc), tries, destination)
        return "refused"
    except notify.Unavailable as exc:
        if self.request.retries >= (self.max_retries or 0):
            notify.give_up(payload, str(exc), tries, destination)
            return "gave up"
        raise  # autoretry_for sends it again after a backoff
    return f"delivered ({status})"
