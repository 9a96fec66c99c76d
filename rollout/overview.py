"""The overview's rollout part: plans by state, clusters changed today and in flight, the
waves that wait for approval and whom they wait for, the paused plans and why. A fixed number
of queries, whatever the fleet's size (one more per wave shown waiting, at most WAVES_SHOWN)."""

from __future__ import annotations

import datetime
from collections import defaultdict
from dataclasses import dataclass

from django.db.models import Count, Q
from django.utils import timezone

from rollout import progress
from rollout.choices import (
    PLAN_LIVE,
    TARGET_SETTLED,
    Decision,
    Goal,
    PlanStatus,
    TargetStatus,
    WaveStatus,
)
from rollout.models import Approval, PlanAuthor, RolloutPlan, RolloutTarget, Wave

WAVES_SHOWN = 10
PLANS_SHOWN = 10


@dataclass(frozen=True)
class PlanTally:
    status: str
    label: str
    count: int


@dataclass(frozen=True)
class Awaiting:
    wave: Wave
    missing: int  # approvals still needed
    deciders: progress.Deciders


@dataclass(frozen=True)
class RolloutOverview:
    plans: list[PlanTally]
    enabled_today: int
    rolled_back_today: int
    in_flight: int
    awaiting: list[Awaiting]
    awaiting_total: int
    paused: list[RolloutPlan]
    paused_total: int

    @property
    def plan_total(self) -> int:
        return sum(t.count for t in self.plans)

    @property
    def awaiting_more(self) -> int:
        return self.awaiting_total - len(self.awaiting)

    @property
    def paused_more(self) -> int:
        return self.paused_total - len(self.paused)


def read(now: datetime.datetime | None = None) -> RolloutOverview:
    now = now or timezone.now()
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    found = dict(RolloutPlan.objects.values_list("status").annotate(n=Count("pk")).order_by())
    plans = [PlanTally(s, str(label), found.get(s, 0)) for s, label in PlanStatus.choices]
    # A rollback plan's cluster ends "done" (enabled) once back at None; a cluster rolled back
    # from any plan is in flight until it is back, whatever its plan's state.
    in_flight = (
        Q(plan__status__in=PLAN_LIVE) & ~Q(status__in=[*TARGET_SETTLED, TargetStatus.PENDING])
    ) | Q(status=TargetStatus.ROLLING_BACK)
    today = Q(
        finished_at__gte=midnight, status__in=[TargetStatus.ENABLED, TargetStatus.ROLLED_BACK]
    )
    rolled_back = Q(status=TargetStatus.ROLLED_BACK) | Q(
        status=TargetStatus.ENABLED, plan__goal=Goal.NONE
    )
    targets = (
        RolloutTarget.objects.filter(today | in_flight)  # not every target ever
        .order_by()
        .aggregate(
            enabled=Count(
                "pk", filter=Q(status=TargetStatus.ENABLED) & ~Q(plan__goal=Goal.NONE) & today
            ),
            rolled_back=Count("pk", filter=rolled_back & today),
            in_flight=Count("pk", filter=in_flight),
        )
    )
    waiting = Wave.objects.filter(
        status=WaveStatus.AWAITING_APPROVAL, plan__status__in=PLAN_LIVE
    ).select_related("plan")
    shown = list(waiting.order_by("plan__submitted_at", "plan_id", "index")[:WAVES_SHOWN])
    paused = RolloutPlan.objects.filter(status=PlanStatus.PAUSED)
    return RolloutOverview(
        plans=plans,
        enabled_today=targets["enabled"],
        rolled_back_today=targets["rolled_back"],
        in_flight=targets["in_flight"],
        awaiting=_awaiting(shown),
        awaiting_total=waiting.count() if len(shown) == WAVES_SHOWN else len(shown),
        paused=list(paused.order_by("-pk")[:PLANS_SHOWN]),
        paused_total=paused.count(),
    )


def _awaiting(waves: list[Wave]) -> list[Awaiting]:
    """Each wave with the approvals it still needs and who may give them (four eyes)."""
    authors: defaultdict[int, set[int]] = defaultdict(set)
    for plan_id, user_id in PlanAuthor.objects.filter(
        plan_id__in={w.plan_id for w in waves}
    ).values_list("plan_id", "user_id"):
        authors[plan_id].add(user_id)
    decided: defaultdict[int, set[int]] = defaultdict(set)
    approved: defaultdict[int, int] = defaultdict(int)
    hashes = {w.pk: w.plan.content_hash for w in waves}
    for wave_id, user_id, decision, plan_hash in Approval.objects.filter(
        wave_id__in=hashes
    ).values_list("wave_id", "user_id", "decision", "plan_hash"):
        if plan_hash == hashes[wave_id]:
            decided[wave_id].add(user_id)
            approved[wave_id] += decision == Decision.APPROVE
    return [
        Awaiting(
            wave,
            max(0, wave.approvals_needed - approved[wave.pk]),
            progress.deciders(authors[wave.plan_id], decided[wave.pk]),
        )
        for wave in waves
    ]
