"""The emergency stop: what it would stop right now, stopping every plan at once, and lifting it.

While a stop is in force no plan is submitted or resumed (rollout/actions.py refuses both), so
nothing new starts anywhere. Lifting it resumes nothing: operators resume each plan themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone

import audit
from accounts.wording import counted
from rollout import access, notify
from rollout.actions import ActionRefused, emergency_lock
from rollout.choices import (
    PLAN_PAUSABLE,
    TARGET_IN_FLIGHT,
    PlanStatus,
    RolloutEvent,
    TargetStatus,
)
from rollout.models import EmergencyStop, RolloutPlan, RolloutTarget
from rollout.transitions import pause_plan


@dataclass(frozen=True)
class Reach:
    """What a stop would stop now: the plans it pauses, their clusters already started (they
    carry on to the end of their change) and those not started yet (they do not start)."""

    plans: list[str]
    in_flight: int
    not_started: int


def reach() -> Reach:
    counts = RolloutTarget.objects.filter(plan__status__in=PLAN_PAUSABLE).aggregate(
        in_flight=Count("pk", filter=Q(status__in=TARGET_IN_FLIGHT)),
        not_started=Count("pk", filter=Q(status=TargetStatus.PENDING)),
    )
    plans = RolloutPlan.objects.filter(status__in=PLAN_PAUSABLE).order_by("name", "pk")
    return Reach(list(plans.values_list("name", flat=True)), **counts)


def _stopping(stopping: Reach) -> str:
    """What a stop stops, for its announcement."""
    if not stopping.plans:
        return "No plan was running."
    return (
        f"Paused {counted(len(stopping.plans), 'plan')} ({', '.join(stopping.plans)}). "
        f"Clusters being changed: {stopping.in_flight} (they finish); not started: "
        f"{stopping.not_started} (they wait)."
    )


def _said(stop: EmergencyStop) -> str:
    return (
        f"since {stop.started_at:%Y-%m-%d %H:%M} UTC, by {stop.started_by.get_username()}: "
        f"{stop.reason}"
    )


@transaction.atomic
def stop_everything(*, acting_user: Any, reason: str) -> Reach:
    """Pause every submitted or running plan at once, and keep any from being submitted or
    resumed until the stop is lifted. Returns what it stopped."""
    if not access.can_emergency_stop(acting_user):
        raise PermissionDenied(access.can_emergency_stop.refusal)
    reason = (reason or "").strip()
    if not reason:
        raise ActionRefused("Say why everything stops: it is shown on every page.")
    emergency_lock(exclusive=True)
    current = EmergencyStop.in_force()
    if current is not None:
        raise ActionRefused(f"An emergency stop is already in force ({_said(current)}).")
    plans = list(
        RolloutPlan.objects.select_for_update().filter(status__in=PLAN_PAUSABLE).order_by("pk")
    )
    stopping = reach()  # under the plans' locks: exactly what is paused below
    stop = EmergencyStop.objects.create(
        started_at=timezone.now(), started_by=acting_user, reason=reason
    )
    audit.record(
        RolloutEvent.EMERGENCY_STOP,
        acting_user=acting_user,
        obj=stop,
        after={
            "reason": reason,
            "plans": [p.pk for p in plans],
            "clusters_in_flight": stopping.in_flight,
            "clusters_not_started": stopping.not_started,
        },
    )
    # Announced before its plans' pauses, so that it is heard first.
    notify.announce_stop(
        "emergency_stop",
        stop,
        f"Stopped by {acting_user.get_username()}: {reason.rstrip('.')}. {_stopping(stopping)}",
    )
    said = f"Paused by {acting_user.get_username()}: emergency stop: {reason}"
    for plan in plans:
        pause_plan(plan, reason=said, acting_user=acting_user)
    return stopping


@transaction.atomic
def lift(*, acting_user: Any, reason: str) -> EmergencyStop:
    """End the stop in force. Its plans stay paused: each is resumed by an operator."""
    if not access.can_emergency_stop(acting_user):
        raise PermissionDenied(access.can_emergency_stop.refusal)
    reason = (reason or "").strip()
    if not reason:
        raise ActionRefused("Say why the emergency stop can be lifted: it goes in the audit log.")
    emergency_lock(exclusive=True)
    stop = EmergencyStop.in_force()
    if stop is None:
        raise ActionRefused("No emergency stop is in force: there is nothing to lift.")
    stop.lifted_at, stop.lifted_by, stop.lift_reason = timezone.now(), acting_user, reason
    stop.save(update_fields=["lifted_at", "lifted_by", "lift_reason"])
    paused = RolloutPlan.objects.filter(status=PlanStatus.PAUSED).count()
    audit.record(
        RolloutEvent.EMERGENCY_STOP_LIFTED,
        acting_user=acting_user,
        obj=stop,
        before={"reason": stop.reason, "started_by": stop.started_by.get_username()},
        after={
            "reason": reason,
            # Left paused: the plans each operator resumes now.
            "plans_paused": paused,
        },
    )
    notify.announce_stop(
        "emergency_stop_lifted",
        stop,
        f"Lifted by {acting_user.get_username()}: {reason.rstrip('.')}. Plans still paused: "
        f"{paused} (an operator resumes each).",
    )
    return stop
