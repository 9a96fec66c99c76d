"""Every move of a plan, a wave or a target, and nothing else: checked against the tables in
rollout/choices.py, made with a conditional update (`UPDATE … WHERE status = <from>`), and
audited in the same transaction, so that a move and its record commit together or not at all.

Each function returns whether the row moved; when someone else moved it first nothing is
written and nothing recorded. Asking for a move the tables do not allow is a bug and raises
`IllegalMove`. The engine, the reconciler and the operator actions all move rows through here.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

import audit
from rollout import notify
from rollout.choices import (
    PLAN_EVENTS,
    PLAN_MOVES,
    PLAN_PAUSABLE,
    TARGET_EVENTS,
    TARGET_MOVES,
    TARGET_SETTLED,
    WAVE_EVENTS,
    WAVE_MOVES,
    WAVE_PAUSABLE,
    PlanStatus,
    WaveStatus,
    can_move,
)
from rollout.models import RolloutPlan, RolloutTarget, Wave


class IllegalMove(Exception):
    """A move that rollout/choices.py does not allow: a bug in the caller, never skipped."""


def _check(
    kind: str, moves: Mapping[str, frozenset[str]], sources: Collection[str], to: str
) -> None:
    wrong = sorted(s for s in sources if not can_move(moves, s, to))
    if wrong:
        raise IllegalMove(f"a {kind} may not move from {', '.join(wrong)} to {to}")


def _sources(source: str | Collection[str]) -> tuple[str, ...]:
    return (source,) if isinstance(source, str) else tuple(source)


# --- targets -----------------------------------------------------------------------------------
def target_entry(
    target: RolloutTarget,
    event: str,
    *,
    before: dict[str, Any] | None = None,
    details: Mapping[str, Any] | None = None,
) -> audit.Entry:
    """The audit event of something that happened to a target, filed under its cluster."""
    return audit.Entry(
        event,
        "fleet.cluster",
        str(target.cluster_id),
        target.cluster.name,
        before=before,
        after={
            "plan": target.plan_id,
            "target": target.pk,
            "status": target.status,
            "attempt": target.attempts,
            "request_id": target.request_id,
            "error_code": target.error_code,
            "error": target.error_message,
            **(details or {}),
        },
        cluster_id=target.cluster_id,
        plan_id=target.plan_id,
    )


def record_target(
    target: RolloutTarget,
    event: str,
    *,
    acting_user: Any = None,
    details: Mapping[str, Any] | None = None,
) -> None:
    """Record what happened to a target without a move (a PUT sent), in the caller's
    transaction or a transaction of its own."""
    with transaction.atomic():
        audit.record_many([target_entry(target, event, details=details)], acting_user=acting_user)


def move_target(
    target: RolloutTarget,
    source: str | Collection[str],
    destination: str,
    *,
    event: str | None = None,
    acting_user: Any = None,
    details: Mapping[str, Any] | None = None,
    **fields: Any,
) -> bool:
    """Move the target from `source` (one state, or any of several) to `destination`, set
    `fields` with it, and record the move. False, and nothing written, when the target is no
    longer in `source`. The target is read again after a move."""
    sources = _sources(source)
    _check("target", TARGET_MOVES, sources, destination)
    now = timezone.now()
    fields.setdefault("status_since", now)  # its in-flight deadline counts from here
    if destination in TARGET_SETTLED:
        fields.setdefault("finished_at", now)
    rows = RolloutTarget.objects.filter(pk=target.pk)
    with transaction.atomic():
        if len(sources) == 1:
            was = sources[0]
        else:  # which of them it is in, under the row's lock
            was = rows.select_for_update().values_list("status", flat=True).first() or ""
            if was not in sources:
                return False
        if rows.filter(status=was).update(status=destination, updated_at=now, **fields) != 1:
            return False
        target.reread()
        entry = target_entry(
            target, event or TARGET_EVENTS[destination], before={"status": was}, details=details
        )
        audit.record_many([entry], acting_user=acting_user)
    return True


def move_targets(
    targets: QuerySet[RolloutTarget],
    source: str | Collection[str],
    destination: str,
    *,
    event: str | None = None,
    acting_user: Any = None,
    details: Mapping[str, Any] | None = None,
    **fields: Any,
) -> list[int]:
    """Move every target of `targets` that is in `source` to `destination`, one audit event
    each; returns the ids of those that moved. Locks them first, in id order."""
    sources = _sources(source)
    _check("target", TARGET_MOVES, sources, destination)
    now = timezone.now()
    fields.setdefault("status_since", now)  # its in-flight deadline counts from here
    if destination in TARGET_SETTLED:
        fields.setdefault("finished_at", now)
    with transaction.atomic():
        found = dict(
            targets.filter(status__in=sources)
            .select_for_update()
            .order_by("pk")
            .values_list("pk", "status")
        )
        if not found:
            return []
        RolloutTarget.objects.filter(pk__in=found).update(
            status=destination, updated_at=now, **fields
        )
        moved = RolloutTarget.objects.filter(pk__in=found).select_related("cluster").order_by("pk")
        entries = [
            target_entry(
                target,
                event or TARGET_EVENTS[destination],
                before={"status": found[target.pk]},
                details=details,
            )
            for target in moved
        ]
        audit.record_many(entries, acting_user=acting_user)
    return list(found)


# --- waves and plans ---------------------------------------------------------------------------
def _move_row(
    row: Wave | RolloutPlan,
    moves: Mapping[str, frozenset[str]],
    destination: str,
    event: str,
    acting_user: Any,
    before: Mapping[str, Any],
    after: Mapping[str, Any],
    fields: dict[str, Any],
) -> bool:
    """Move a wave or plan from the state it was read in, set `fields` on it and its row, and
    record the move; False, and nothing written, when it moved meanwhile."""
    source = row.status
    _check(str(row._meta.verbose_name), moves, (source,), destination)
    with transaction.atomic():
        moved = (
            type(row).objects.filter(pk=row.pk, status=source).update(status=destination, **fields)
        )
        if moved != 1:
            return False
        row.status = destination
        for name, value in fields.items():
            setattr(row, name, value)
        audit.record(
            event,
            acting_user=acting_user,
            obj=row,
            before={"status": source, **before},
            after={"status": destination, **after},
        )
    return True


def move_wave(
    wave: Wave,
    destination: str,
    *,
    event: str | None = None,
    acting_user: Any = None,
    details: Mapping[str, Any] | None = None,
    **fields: Any,
) -> bool:
    """Move the wave from the state it was read in to `destination`, set `fields` on it (and
    on the row), and record the move. False, and nothing written, when it moved meanwhile."""
    after = {"plan": wave.plan_id, "wave": wave.index, **(details or {})}
    event = event or WAVE_EVENTS[destination]
    return _move_row(wave, WAVE_MOVES, destination, event, acting_user, {}, after, fields)


def move_plan(
    plan: RolloutPlan,
    destination: str,
    *,
    event: str | None = None,
    acting_user: Any = None,
    before: Mapping[str, Any] | None = None,
    details: Mapping[str, Any] | None = None,
    **fields: Any,
) -> bool:
    """Move the plan from the state it was read in to `destination`, set `fields` on it (and
    on the row), and record the move. False, and nothing written, when it moved meanwhile."""
    event = event or PLAN_EVENTS[destination]
    return _move_row(
        plan, PLAN_MOVES, destination, event, acting_user, before or {}, details or {}, fields
    )


def pause_plan(
    plan: RolloutPlan,
    *,
    reason: str,
    acting_user: Any = None,
    wave: Wave | None = None,
    details: Mapping[str, Any] | None = None,
    cause: str = "",
) -> bool:
    """Pause a submitted or running plan and its started waves (each returns to where it was
    when resumed), and announce it (with its `cause`, rollout/notify.py, when it has one). The
    caller holds the plan's row lock. False when the plan is not in a state that pauses."""
    if plan.status not in PLAN_PAUSABLE:
        return False
    with transaction.atomic():
        if not move_plan(
            plan,
            PlanStatus.PAUSED,
            acting_user=acting_user,
            details={"reason": reason, **(details or {})},
            paused_reason=reason,
        ):
            return False
        for each in plan.waves.filter(status__in=WAVE_PAUSABLE).order_by("index"):
            move_wave(
                each,
                WaveStatus.PAUSED,
                acting_user=acting_user,
                details={"reason": reason},
                paused_from=each.status,
            )
        notify.announce("plan_paused", plan, wave, reason, cause=cause)
    return True
