"""The rollout engine's beat tick: move every active plan as far as its gates allow, and send
one engine step (rollout.advance_target) for every target in flight.

The database is the source of truth: the tick reads plans, waves and targets as they are and
works out what should happen next, so a worker or a Redis that died loses nothing; the next
tick sends the steps again. Each plan is handled under a row lock taken with SKIP LOCKED, so
two ticks never handle one plan at once.
"""

from __future__ import annotations

import datetime
import logging
import math
from collections.abc import Callable

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, F, Q
from django.utils import timezone

import audit
from rollout import notify
from rollout.actions import valid_approvals
from rollout.choices import TARGET_SETTLED, PlanStatus, TargetStatus, WaveStatus
from rollout.models import RolloutPlan, RolloutTarget, Wave

log = logging.getLogger(__name__)
T, W, P = TargetStatus, WaveStatus, PlanStatus
IN_FLIGHT = (T.PREFLIGHT, T.READY, T.WAITING_FOR_WINDOW, T.ENABLING, T.VERIFYING)


def allowed_failures(budget: str, wave_size: int) -> int:
    """The failed targets a wave tolerates: a count, or a percentage of the wave (rounded down)."""
    if budget.endswith("%"):
        return math.floor(int(budget[:-1]) * wave_size / 100)
    return int(budget)


def tick(send: Callable[[int], None]) -> int:
    """Reconcile every active plan; `send(target_id)` queues one engine step. Returns how many
    steps were sent."""
    # Roll backs are followed wherever they are (a done wave, a finished plan).
    rolling = list(RolloutTarget.objects.filter(status=T.ROLLING_BACK).values_list("pk", flat=True))
    for target_id in rolling:
        send(target_id)
    sent = len(rolling)
    for plan_id in RolloutPlan.objects.filter(
        status__in=(P.SUBMITTED, P.RUNNING, P.PAUSED)
    ).values_list("pk", flat=True):
        try:
            sent += reconcile_plan(plan_id, send)
        except Exception:  # one plan's trouble must not stop the others
            log.exception("reconciling plan %s failed", plan_id)
    return sent


def reconcile_plan(plan_id: int, send: Callable[[int], None]) -> int:
    steps: list[int] = []
    with transaction.atomic():
        query = RolloutPlan.objects.filter(pk=plan_id)
        if connection.vendor == "postgresql":
            query = query.select_for_update(skip_locked=True)
        plan = query.first()
        if plan is None:
            return 0
        wave = (
            plan.waves.exclude(status__in=(W.DONE, W.REJECTED, W.ABORTED)).order_by("index").first()
        )
        if wave is None:
            if plan.status != P.PAUSED:
                _complete(plan)
        else:
            _advance_wave(plan, wave, steps)
    for target_id in steps:
        send(target_id)
    return len(steps)


def _complete(plan: RolloutPlan) -> None:
    plan.status = P.COMPLETED
    plan.finished_at = timezone.now()
    plan.save(update_fields=["status", "finished_at"])
    plan.claims.all().delete()
    counts = dict(plan.targets.values_list("status").annotate(n=Count("pk")))
    audit.record("rollout.plan_completed", obj=plan, after={"targets": counts})


def _advance_wave(plan: RolloutPlan, wave: Wave, steps: list[int]) -> None:
    now = timezone.now()
    if wave.status == W.PENDING:
        wave.status = W.AWAITING_APPROVAL
        wave.save(update_fields=["status"])
        audit.record("rollout.wave_awaiting_approval", obj=wave, after={"plan": plan.pk})
        notify.announce("wave_awaiting_approval", plan, wave)
    if wave.status == W.AWAITING_APPROVAL and valid_approvals(wave, plan) >= wave.approvals_needed:
        wave.status = W.APPROVED
        wave.save(update_fields=["status"])
    if wave.status == W.APPROVED and plan.status != P.PAUSED:
        wave.status, wave.started_at = W.RUNNING, now
        wave.save(update_fields=["status", "started_at"])
        if plan.status == P.SUBMITTED:
            plan.status = P.RUNNING
            plan.save(update_fields=["status"])
        audit.record("rollout.wave_started", obj=wave, after={"plan": plan.pk})
    if wave.status in (W.RUNNING, W.PAUSED):
        _run(plan, wave, steps)
    if wave.status == W.SOAKING and wave.soak_until and now >= wave.soak_until:
        wave.status, wave.finished_at = W.DONE, now
        wave.save(update_fields=["status", "finished_at"])
        audit.record("rollout.wave_done", obj=wave, after={"plan": plan.pk})
    elif wave.status == W.SOAKING:
        # The soak watch: each done cluster's nodes are read again once per check period, at
        # most `concurrency` clusters at a time, the longest unread first.
        due = now - datetime.timedelta(seconds=settings.WAVEGATE_SOAK_CHECK_SECONDS)
        steps.extend(
            wave.targets.filter(status=T.ENABLED)
            .filter(Q(checked_at__isnull=True) | Q(checked_at__lte=due))
            .order_by(F("checked_at").asc(nulls_first=True), "position")
            .values_list("pk", flat=True)[: plan.concurrency]
        )


def _run(plan: RolloutPlan, wave: Wave, steps: list[int]) -> None:
    counts = wave.targets.aggregate(
        total=Count("pk"),
        settled=Count("pk", filter=Q(status__in=TARGET_SETTLED)),
        failed=Count("pk", filter=Q(status=T.FAILED)),
        pending=Count("pk", filter=Q(status=T.PENDING)),
    )
    steps.extend(
        wave.targets.filter(status__in=IN_FLIGHT).order_by("position").values_list("pk", flat=True)
    )
    allowed = allowed_failures(plan.failure_budget, counts["total"])
    if counts["failed"] > allowed and plan.status != P.PAUSED:
        reason = (
            f"Wave {wave.index}: {counts['failed']} of {counts['total']} clusters failed, over "
            f"the failure budget of {plan.failure_budget} ({allowed} allowed). Retry, skip or "
            "roll back the failed clusters, then resume."
        )
        plan.status, plan.paused_reason = P.PAUSED, reason
        plan.save(update_fields=["status", "paused_reason"])
        wave.paused_from, wave.status = wave.status, W.PAUSED
        wave.save(update_fields=["paused_from", "status"])
        audit.record("rollout.plan_paused", obj=plan, after={"reason": reason, "wave": wave.index})
        notify.announce("plan_paused", plan, wave, reason)
    if plan.status == P.PAUSED or wave.status == W.PAUSED:
        return  # targets in flight finish; none start
    waiting = wave.targets.filter(status=T.WAITING_FOR_WINDOW).count()
    room = plan.concurrency - (len(steps) - waiting)  # a cluster waiting takes no slot
    if room > 0 and counts["pending"]:
        starting = list(
            wave.targets.filter(status=T.PENDING)
            .order_by("position")
            .values_list("pk", flat=True)[:room]
        )
        steps.extend(starting)
    if counts["settled"] == counts["total"]:
        wave.status = W.SOAKING
        wave.soak_until = timezone.now() + datetime.timedelta(minutes=plan.soak_minutes)
        wave.save(update_fields=["status", "soak_until"])
        audit.record(
            "rollout.wave_soaking",
            obj=wave,
            after={
                "plan": plan.pk,
                "until": wave.soak_until.isoformat(),
                "targets": dict(wave.targets.values_list("status").annotate(n=Count("pk"))),
            },
        )
