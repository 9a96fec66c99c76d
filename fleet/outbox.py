"""Work that must happen after a commit, recorded in the database first and sent on commit.

`enqueue(task, *args)` writes an OutboxMessage row in the caller's transaction and, once that
commits, sends the task (by name) to the broker. If the broker refuses (Redis down), the row
stays unsent and the caller's change stands: the request that asked for it still answers (the
page says the work is queued until the workers can be reached, config/outbox_notice.py), and
beat's `fleet.resend_outbox` sends it again every minute. A row still unsent after
WAVEGATE_OUTBOX_GIVE_UP_MINUTES is given up, with an audit event, and what it was for is failed
with that reason by its owner (a queued scan: preflight/scans.py `fail_unsent`).

Tasks must bear being sent twice (a send that reached the broker but whose row update did not
commit is sent again): each one re-reads the database and does nothing twice.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import threading
from collections.abc import Iterator
from typing import Any

from celery import current_app
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from kombu.exceptions import OperationalError

import audit
from fleet.choices import FleetEvent
from fleet.models import OutboxMessage

log = logging.getLogger(__name__)
_watch = threading.local()


def enqueue(task: str, *args: Any) -> OutboxMessage:
    """Record `task(*args)` in the caller's transaction; send it once that commits."""
    message = OutboxMessage.objects.create(task=task, args=list(args))
    transaction.on_commit(lambda: send(message.pk))
    return message


def send(pk: int) -> bool:
    """Send one unsent message to the broker; False (kept for beat) when it cannot."""
    message = OutboxMessage.objects.filter(pk=pk, sent_at__isnull=True).first()
    if message is None:
        return True  # sent already
    try:
        current_app.signature(message.task, args=message.args).apply_async(
            retry_policy=settings.WAVEGATE_OUTBOX_PUBLISH_RETRY
        )
    except (OperationalError, OSError) as exc:  # the broker is not there: beat sends it again
        log.warning("could not send %s to the broker: %s", message, exc)
        OutboxMessage.objects.filter(pk=pk).update(
            attempts=F("attempts") + 1, last_error=f"{type(exc).__name__}: {exc}"[:1000]
        )
        for unsent in getattr(_watch, "lists", ()):
            unsent.append(pk)
        return False
    OutboxMessage.objects.filter(pk=pk).update(
        sent_at=timezone.now(), attempts=F("attempts") + 1, last_error=""
    )
    return True


@contextlib.contextmanager
def watching() -> Iterator[list[int]]:
    """The messages this thread could not send while inside (a request's, for its notice)."""
    unsent: list[int] = []
    _watch.lists = [*getattr(_watch, "lists", ()), unsent]
    try:
        yield unsent
    finally:
        _watch.lists = [x for x in _watch.lists if x is not unsent]


def resend() -> tuple[int, int]:
    """Send what was never sent, oldest first, stopping at the first refusal (the broker is
    still down); give up what waited longer than WAVEGATE_OUTBOX_GIVE_UP_MINUTES. Returns
    (sent, given up)."""
    now = timezone.now()
    cutoff = now - datetime.timedelta(minutes=settings.WAVEGATE_OUTBOX_GIVE_UP_MINUTES)
    pending = OutboxMessage.objects.filter(sent_at__isnull=True, given_up_at__isnull=True)
    given_up = 0
    for message in pending.filter(created_at__lt=cutoff):
        with transaction.atomic():
            if OutboxMessage.objects.filter(pk=message.pk, sent_at__isnull=True).update(
                given_up_at=now
            ):
                audit.record(
                    FleetEvent.WORK_NOT_SENT,
                    object_type="outbox",
                    object_id=str(message.pk),
                    object_label=message.task,
                    after={
                        "task": message.task,
                        "args": message.args,
                        "queued_at": message.created_at.isoformat(),
                        "last_error": message.last_error,
                    },
                )
                given_up += 1
    sent = 0
    young = now - datetime.timedelta(seconds=5)  # leave the ones whose commit is sending them
    for pk in pending.filter(created_at__lt=young).values_list("pk", flat=True)[:1000]:
        if not send(pk):
            break
        sent += 1
    return sent, given_up


def was_given_up(task: str, args: list[Any]) -> bool:
    return OutboxMessage.objects.filter(task=task, args=args, given_up_at__isnull=False).exists()
