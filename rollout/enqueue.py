"""Queue rollout tasks by their registered names, once the caller's transaction commits.

By name, so that the actions, the engine and the announcements below rollout/tasks.py need not
import it (it imports them). A task registered in this process is sent as its own `delay` would
(eagerly in tests that ask for it); otherwise by name, routed as configured.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import current_app
from django.db import transaction

from fleet import outbox

log = logging.getLogger(__name__)

TICK = "rollout.tick"
SEND_WEBHOOK = "rollout.send_webhook"


def send(task: str, *args: Any) -> None:
    """Queue `task(*args)` now."""
    current_app.signature(task, args=args).delay()


def reconcile_soon() -> None:
    """Run the reconciler as soon as the caller's transaction commits rather than at beat's
    next tick: an approved wave starts, a resumed plan goes on, a retried or rolled-back
    cluster moves. If the broker cannot be reached the action stands: beat's tick does the
    same work."""

    def queue() -> None:
        try:
            send(TICK)
        except Exception:  # the action is done; beat's next tick does the same
            log.warning("could not queue a reconciler run after an action", exc_info=True)

    transaction.on_commit(queue)


def send_webhook_on_commit(payload: dict[str, Any], destination: str) -> None:
    """Through the outbox: written with the caller's change, sent once it commits, sent again
    by beat while the broker is down. The destination by its name, never its URL (a secret)."""
    outbox.enqueue(SEND_WEBHOOK, payload, destination)
