"""Who may see, run and approve rollouts. Pages and API ask here, nowhere else."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from accounts.access import Rule
from rollout.choices import PLAN_LIVE, WAVE_UNDECIDED, PlanStatus, WaveStatus
from rollout.models import RolloutPlan, Wave

can_view_plans = Rule("rollout.view_plans", "Seeing rollout plans needs a Wavegate role.")
can_manage_plans = Rule(
    "rollout.manage_plans", "Planning and running rollouts needs the operator or admin role."
)
can_approve_waves = Rule(
    "rollout.approve_waves", "Approving waves needs the approver or admin role."
)
can_emergency_stop = Rule(
    "rollout.emergency_stop", "The emergency stop needs the operator or admin role."
)


@dataclass(frozen=True)
class Refusal:
    """Why a user may not decide on a wave now."""

    message: str
    forbidden: bool  # never for this user (role, four eyes), rather than not now (its state)


def decision_refusal(
    user: Any,
    *,
    plan_name: str,
    plan_status: str,
    authors: Mapping[int, str],
    wave_index: int,
    wave_status: str,
    decided_by: Collection[int],
) -> Refusal | None:
    """The four-eyes rule, decided here only: may `user` approve or reject this wave now?
    None when they may. Actions, pages and the banner all ask this.

    Nobody who created, edited or submitted the plan (`authors`: user id → what they did) may
    decide its waves, admins included: each version carries what the ones before it had."""
    if not can_approve_waves(user):
        return Refusal(can_approve_waves.refusal, forbidden=True)
    if user.pk in authors:
        return Refusal(
            f"You {authors[user.pk]} plan {plan_name!r}: another approver, who did not write "
            "it, must decide its waves (four eyes).",
            forbidden=True,
        )
    if plan_status not in PLAN_LIVE:
        return Refusal(
            f"Plan {plan_name!r} is {PlanStatus(plan_status).label.lower()}: its waves take no "
            "decisions now.",
            forbidden=False,
        )
    if wave_status == WaveStatus.PENDING:
        return Refusal(
            f"Wave {wave_index} is not up for approval yet: it is decided once the wave before "
            "it is done.",
            forbidden=False,
        )
    if wave_status not in WAVE_UNDECIDED:
        return Refusal(
            f"Wave {wave_index} is {WaveStatus(wave_status).label.lower()}: it takes no "
            "decisions now.",
            forbidden=False,
        )
    if user.pk in decided_by:
        return Refusal(
            f"You have already decided on wave {wave_index} of this plan.", forbidden=False
        )
    return None


def may_decide(
    user: Any,
    wave: Wave,
    plan: RolloutPlan,
    decided_by: Collection[int] | None = None,
    authors: Mapping[int, str] | None = None,
) -> Refusal | None:
    """`decision_refusal` for a wave and plan as read; `decided_by` and `authors` when
    already known (neither is read for a user without the approver role)."""
    if not can_approve_waves(user):
        return Refusal(can_approve_waves.refusal, forbidden=True)
    return decision_refusal(
        user,
        plan_name=plan.name,
        plan_status=plan.status,
        authors=plan.authorship() if authors is None else authors,
        wave_index=wave.index,
        wave_status=wave.status,
        decided_by=wave.deciders(plan.content_hash) if decided_by is None else decided_by,
    )
