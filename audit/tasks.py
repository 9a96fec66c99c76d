"""Audit tasks for beat: anchor the chain's head every minute, and check what was added."""

from __future__ import annotations

import logging

from celery import shared_task

from audit import anchor, verification

log = logging.getLogger(__name__)


@shared_task(name="audit.checkpoint", ignore_result=True)
def checkpoint() -> int | None:
    """Sign and anchor the head when events were added since the newest checkpoint."""
    if not anchor.key_configured():
        return None
    try:
        made = anchor.make_checkpoint()
    except anchor.AnchorProblem as problem:
        # The chain check reports the missing anchor; the next minute tries again.
        log.error("audit checkpoint not made: %s", problem)
        return None
    return made.seq if made else None


@shared_task(name="audit.verify_increment", ignore_result=True, soft_time_limit=250)
def verify_increment() -> int:
    """Check the events added since the last check (and the newest checkpoints)."""
    return verification.check_increment().verified_seq
