"""The rollout banner on every page: an emergency stop in force, waves the signed-in approver
may approve now, and paused plans with their reasons.

What every user's banner is made of is read once for everybody and cached for a few seconds,
so that a page costs no query for it while the cache is warm; each user's own banner is then
picked from it (not their own plans, not waves they have decided). Pages that change a plan or
a wave `forget` it at once; changes by the engine show within CACHE_SECONDS.

The emergency stop is the exception: it is read on every page (one indexed query), never
cached, since the cache is each process's own and a stop must show on every page at once,
whichever process serves it.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from django.core.cache import cache

from rollout import access
from rollout.choices import PLAN_LIVE, PlanStatus, WaveStatus
from rollout.models import Approval, EmergencyStop, PlanAuthor, RolloutPlan, Wave

CACHE_SECONDS = 10
SHOWN = 5  # items per list; more are summed up as "and more"
# Beyond this many waves awaiting approval at once the banner says "and more" for everybody.
AWAITING_READ = 100
_AWAITING_KEY = "rollout:banner:awaiting"
_PAUSED_KEY = "rollout:banner:paused"


@dataclass(frozen=True)
class AwaitingWave:
    plan_id: int
    plan_name: str
    plan_status: str
    index: int
    authors: dict[int, str]  # who created, edited or submitted the plan, and what they did
    decided_by: frozenset[int]  # users who decided on it for the plan as it is now


@dataclass(frozen=True)
class PausedPlan:
    plan_id: int
    name: str
    reason: str


def _read_awaiting() -> list[AwaitingWave]:
    rows = list(
        Wave.objects.filter(status=WaveStatus.AWAITING_APPROVAL, plan__status__in=PLAN_LIVE)
        .order_by("plan__submitted_at", "plan_id", "index")
        .values_list("pk", "plan_id", "plan__name", "plan__status", "index",
                     "plan__content_hash")[:AWAITING_READ]
    )  # fmt: skip
    authors: dict[int, dict[int, str]] = {}
    for plan_id, user_id, did in (
        PlanAuthor.objects.filter(plan_id__in={row[1] for row in rows})
        .order_by("at", "pk")
        .values_list("plan_id", "user_id", "did")
    ):
        authors.setdefault(plan_id, {}).setdefault(user_id, did)
    decided: dict[int, set[int]] = {}
    hashes = {pk: content_hash for pk, *_, content_hash in rows}
    for wave_id, user_id, plan_hash in Approval.objects.filter(wave_id__in=hashes).values_list(
        "wave_id", "user_id", "plan_hash"
    ):
        if plan_hash == hashes[wave_id]:
            decided.setdefault(wave_id, set()).add(user_id)
    return [
        AwaitingWave(
            plan_id, name, status, index, authors.get(plan_id, {}), frozenset(decided.get(pk, ()))
        )
        for pk, plan_id, name, status, index, _ in rows
    ]


def _read_paused() -> list[PausedPlan]:
    return [
        PausedPlan(pk, name, reason)
        for pk, name, reason in RolloutPlan.objects.filter(status=PlanStatus.PAUSED)
        .order_by("-created_at", "-pk")
        .values_list("pk", "name", "paused_reason")[: SHOWN + 1]
    ]


@dataclass(frozen=True)
class StopInForce:
    started_at: datetime.datetime
    started_by: str
    reason: str


def _read_stop() -> StopInForce | None:
    stop = EmergencyStop.in_force()
    if stop is None:
        return None
    return StopInForce(stop.started_at, stop.started_by.get_username(), stop.reason)


def forget() -> None:
    """Read the banner afresh on the next page (after a plan or wave changed, or an emergency
    stop started or was lifted)."""
    cache.delete_many([_AWAITING_KEY, _PAUSED_KEY])


class Banner:
    """One user's banner; each half is read (or taken from the cache) only when shown."""

    def __init__(self, user: Any) -> None:
        self.user = user

    @cached_property
    def emergency_stop(self) -> StopInForce | None:
        """Shown to everyone signed in: it holds every plan."""
        return _read_stop()

    @cached_property
    def may_stop(self) -> bool:
        """Offer the emergency stop (or its lift) on every page."""
        return access.can_emergency_stop(self.user)

    @property
    def awaiting(self) -> list[AwaitingWave]:
        return self._awaiting[:SHOWN]

    @property
    def more_awaiting(self) -> bool:
        return len(self._awaiting) > SHOWN

    @property
    def paused(self) -> list[PausedPlan]:
        return self._paused[:SHOWN]

    @property
    def more_paused(self) -> bool:
        return len(self._paused) > SHOWN

    @cached_property
    def _awaiting(self) -> list[AwaitingWave]:
        """Waves awaiting approval that this user may decide on (rollout/access.py)."""
        if not access.can_approve_waves(self.user):
            return []
        waves: list[AwaitingWave] = (
            cache.get_or_set(_AWAITING_KEY, _read_awaiting, CACHE_SECONDS) or []
        )
        return [
            w
            for w in waves
            if access.decision_refusal(
                self.user,
                plan_name=w.plan_name,
                plan_status=w.plan_status,
                authors=w.authors,
                wave_index=w.index,
                wave_status=WaveStatus.AWAITING_APPROVAL,
                decided_by=w.decided_by,
            )
            is None
        ]

    @cached_property
    def _paused(self) -> list[PausedPlan]:
        if not access.can_view_plans(self.user):
            return []
        plans: list[PausedPlan] = cache.get_or_set(_PAUSED_KEY, _read_paused, CACHE_SECONDS) or []
        return plans
