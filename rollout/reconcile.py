"""The rollout engine's reconciler: move every active plan as far as its gates allow, start
clusters as slots free up, and send an engine step (rollout.advance_target) to every target that
needs one and has none queued.

The database is the source of truth: the reconciler reads plans, waves and targets as they are
and works out what should happen next, so a worker or a Redis that died loses nothing. Each
plan is handled under a row lock, so two reconcilers never handle one plan at once. It runs on
beat's tick, and also right after a step settles a cluster, so that the next one starts at once
instead of at the next tick.

A target's steps schedule their own next one. `next_step_at` holds the target's turn: the time
the step queued for it is due, which its message carries. A step runs only if it takes that
turn (`take_turn`, a conditional update), so of two copies of one message only the first runs,
and a message whose turn was replaced (the target retried, rolled back, restarted) runs none.
The reconciler sends a step (`dispatch`) to a target with no turn, and sends a turn overdue by
WAVEGATE_STEP_GRACE_SECONDS again as it is (lost with a worker, or late behind a backlog: either
copy may take it), and never to a target a worker is on right now. So each target has one chain
of steps, whatever dies or arrives late.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, F, Q
from django.utils import timezone

from accounts.wording import counted
from rollout import engine, notify
from rollout.choices import (
    PLAN_LIVE,
    TARGET_IN_FLIGHT,
    TARGET_SETTLED,
    WAVE_FINAL,
    PlanStatus,
    TargetStatus,
    WaveStatus,
)
from rollout.models import RolloutPlan, RolloutTarget, Wave
from rollout.planning import allowed_failures
from rollout.transitions import move_plan, move_targets, move_wave, pause_plan

log = logging.getLogger(__name__)
T, W, P = TargetStatus, WaveStatus, PlanStatus
# What the reconciler sends steps to: clusters in flight, rolling back, or watched in soak (a
# pending one is started by the reconciler itself, under the plan's lock, never by a step).
_STEPPED = TARGET_IN_FLIGHT | {T.ROLLING_BACK, T.ENABLED}

Send = Callable[[int, str], None]  # queue a step: target id, its turn (ISO time)
SendLater = Callable[[int, str, float], None]  # the same, to run in so many seconds


def dispatch(target_ids: Iterable[int], send: Send) -> int:
    """Send a step to each of these targets that has no turn, and again to each whose turn is
    long overdue; never to one a worker is on right now. Returns how many were sent."""
    wanted = set(target_ids) - engine.busy_targets()
    if not wanted:
        return 0
    now = timezone.now()
    lost = now - datetime.timedelta(seconds=settings.WAVEGATE_STEP_GRACE_SECONDS)
    rows = dict(
        RolloutTarget.objects.filter(
            Q(next_step_at__isnull=True) | Q(next_step_at__lt=lost), pk__in=wanted
        ).values_list("pk", "next_step_at")
    )
    new = [target_id for target_id, turn in rows.items() if turn is None]
    if new:
        # New turns; conditional, so that a step that scheduled its next one meanwhile wins
        # and a cluster no longer in flight gets none.
        RolloutTarget.objects.filter(
            pk__in=new, next_step_at__isnull=True, status__in=_STEPPED
        ).update(next_step_at=now)
        given = set(
            RolloutTarget.objects.filter(pk__in=new, next_step_at=now).values_list("pk", flat=True)
        )
        rows.update(dict.fromkeys(given, now))
    sent = 0
    for target_id, turn in sorted(rows.items()):
        if turn is not None:
            send(target_id, turn.isoformat())
            sent += 1
    return sent


def _lease() -> datetime.datetime | None:
    """What a running step leaves in `next_step_at`. On PostgreSQL nothing: the target's lock
    says a worker is on it (`engine.busy_targets`), and a killed worker's lock goes with its
    connection. Elsewhere (the demo's SQLite) a lease until the step's hard time limit, so the
    reconciler sends no second step meanwhile."""
    if connection.vendor == "postgresql":
        return None
    return timezone.now() + datetime.timedelta(seconds=settings.WAVEGATE_STEP_TIME_LIMIT_SECONDS)


def take_turn(target_id: int, turn: str) -> tuple[bool, datetime.datetime | None]:
    """Take the queued step `turn` for this run: (taken, the lease left while it runs)."""
    lease = _lease()
    taken = RolloutTarget.objects.filter(
        pk=target_id, next_step_at=datetime.datetime.fromisoformat(turn)
    ).update(next_step_at=lease)
    return taken == 1, lease


def _holding(target_id: int, lease: datetime.datetime | None) -> Any:
    query = RolloutTarget.objects.filter(pk=target_id)
    return (
        query.filter(next_step_at__isnull=True)
        if lease is None
        else query.filter(next_step_at=lease)
    )


def schedule(
    target_id: int, seconds: float, send_later: SendLater, lease: datetime.datetime | None = None
) -> bool:
    """Queue the target's next step in `seconds`, unless another turn was set meanwhile."""
    due = timezone.now() + datetime.timedelta(seconds=seconds)
    if _holding(target_id, lease).update(next_step_at=due):
        send_later(target_id, due.isoformat(), seconds)
        return True
    return False


def release(target_id: int, lease: datetime.datetime | None) -> None:
    """The step ended wanting no next one: drop its lease."""
    if lease is not None:
        _holding(target_id, lease).update(next_step_at=None)


def tick(send: Send) -> int:
    """Reconcile every active plan; `send(target_id)` queues one engine step. Returns how many
    steps were sent."""
    # Roll backs are followed wherever they are (a done wave, a finished plan).
    sent = dispatch(
        RolloutTarget.objects.filter(status=T.ROLLING_BACK).values_list("pk", flat=True), send
    )
    for plan_id in RolloutPlan.objects.filter(status__in=PLAN_LIVE).values_list("pk", flat=True):
        try:
            sent += reconcile_plan(plan_id, send)
        except Exception:  # one plan's trouble must not stop the others
            log.exception("reconciling plan %s failed", plan_id)
    return sent


def reconcile_plan(plan_id: int, send: Send, *, wait: bool = False) -> int:
    """Reconcile one plan. Beat's tick skips a plan another reconciler holds (`wait` False);
    a step that freed a slot waits for it, so the next cluster starts all the same."""
    steps: list[int] = []
    with transaction.atomic():
        query = RolloutPlan.objects.filter(pk=plan_id)
        if connection.vendor == "postgresql":
            if wait:  # not for long: a step waiting here holds a worker
                with connection.cursor() as cursor:
                    cursor.execute("SET LOCAL lock_timeout = '10s'")
            query = query.select_for_update(skip_locked=not wait)
        plan = query.first()
        if plan is None or plan.status not in PLAN_LIVE:
            return 0  # held by another reconciler, or no longer active
        wave = plan.waves.exclude(status__in=WAVE_FINAL).order_by("index").first()
        if wave is None:
            if plan.status != P.PAUSED:
                _complete(plan)
        else:
            _advance_wave(plan, wave, steps)
            # A later wave's clusters still in flight when an operator's retry reopened this
            # one: they finish (no new one starts until this wave is done again).
            steps.extend(
                plan.targets.filter(status__in=TARGET_IN_FLIGHT, wave__index__gt=wave.index)
                .order_by("position")
                .values_list("pk", flat=True)
            )
    return dispatch(steps, send)


def _complete(plan: RolloutPlan) -> None:
    counts = dict(plan.targets.values_list("status").annotate(n=Count("pk")))
    if move_plan(plan, P.COMPLETED, details={"targets": counts}, finished_at=timezone.now()):
        plan.claims.all().delete()
        notify.announce("plan_completed", plan)


def _advance_wave(plan: RolloutPlan, wave: Wave, steps: list[int]) -> None:
    now = timezone.now()
    if wave.status == W.PENDING and move_wave(wave, W.AWAITING_APPROVAL):
        notify.announce("wave_awaiting_approval", plan, wave)
    if (
        wave.status == W.AWAITING_APPROVAL
        and wave.valid_approvals(plan.content_hash) >= wave.approvals_needed
    ):
        move_wave(wave, W.APPROVED)
    if wave.status == W.APPROVED and plan.status != P.PAUSED:
        move_wave(wave, W.RUNNING, started_at=now)
        if plan.status == P.SUBMITTED:
            move_plan(plan, P.RUNNING)
    if wave.status in (W.RUNNING, W.PAUSED):
        _run(plan, wave, steps)
    if wave.status == W.SOAKING and wave.soak_until and now >= wave.soak_until:
        move_wave(wave, W.DONE, finished_at=now)
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
    in_flight = list(
        wave.targets.filter(status__in=TARGET_IN_FLIGHT)
        .order_by("position")
        .values_list("pk", "status")
    )
    steps.extend(pk for pk, _ in in_flight)
    allowed = allowed_failures(plan.failure_budget, counts["total"])
    if counts["failed"] > allowed and plan.status != P.PAUSED:
        reason = (
            f"Wave {wave.index}: {counts['failed']} failed of its "
            f"{counted(counts['total'], 'cluster')}, over "
            f"the failure budget of {plan.failure_budget} ({allowed} allowed). Retry, skip or "
            "roll back the failed clusters, then resume."
        )
        pause_plan(
            plan,
            reason=reason,
            wave=wave,
            details={"wave": wave.index},
            cause=notify.FAILURE_BUDGET_EXCEEDED,
        )
        wave.refresh_from_db()
    if plan.status == P.PAUSED or wave.status == W.PAUSED:
        return  # targets in flight finish; none start
    waiting = sum(1 for _, status in in_flight if status == T.WAITING_FOR_WINDOW)
    room = plan.concurrency - (len(in_flight) - waiting)  # a cluster waiting takes no slot
    if room > 0 and counts["pending"]:
        # Started here, under the plan's lock: the slot is taken before any step runs, so
        # the next reconciler counts it even while its first step is still queued.
        starting = list(
            wave.targets.filter(status=T.PENDING)
            .order_by("position")
            .values_list("pk", flat=True)[:room]
        )
        steps.extend(
            move_targets(
                RolloutTarget.objects.filter(pk__in=starting),
                T.PENDING,
                T.PREFLIGHT,
                started_at=timezone.now(),
                next_step_at=None,
            )
        )
    if counts["settled"] == counts["total"]:
        until = timezone.now() + datetime.timedelta(minutes=plan.soak_minutes)
        move_wave(
            wave,
            W.SOAKING,
            details={
                "until": until.isoformat(),
                "targets": dict(wave.targets.values_list("status").annotate(n=Count("pk"))),
            },
            soak_until=until,
        )
