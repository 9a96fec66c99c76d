"""A plan's state for scripts, as plain data: the API's status endpoint and `manage.py
plan_status` both say this, in the words and figures the plan's page shows."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from django.conf import settings
from django.db.models import Count
from django.urls import reverse

from rollout import outcomes, progress
from rollout.choices import PLAN_LIVE, PlanStatus
from rollout.models import RolloutPlan


def _progress(counts: Counter[str], goal: str) -> dict[str, Any]:
    found = progress.progress(counts, goal)
    return {
        "total": found.total,
        "done": found.done,
        "in_flight": found.in_flight,
        "not_started": found.left,
        "failed": found.failed,
        "skipped": found.skipped,
        "rolled_back": found.rolled_back,
        "settled": found.settled,
        "percent_settled": found.percent_settled,
        "by_state": dict(sorted(counts.items())),
    }


def _outcome(status: str, counts: Counter[str], goal: str) -> dict[str, str] | None:
    found = outcomes.outcome(status, counts, goal)
    if found is None:
        return None
    return {"headline": found.headline, "tone": found.tone, "detail": found.detail}


def plan_status(plan: RolloutPlan) -> dict[str, Any]:
    """Where the plan is: its state, each wave's, the clusters by where they are, its outcome
    once it has ended, and its earliest finish while it is live."""
    waves = list(plan.waves.order_by("index"))
    by_wave: defaultdict[int, Counter[str]] = defaultdict(Counter)
    for wave_id, state, n in (
        plan.targets.order_by().values_list("wave_id", "status").annotate(n=Count("pk"))
    ):
        by_wave[wave_id][state] += n
    everything: Counter[str] = sum(by_wave.values(), Counter())
    finish = progress.read_finish(plan, waves) if plan.status in PLAN_LIVE else None
    return {
        "id": plan.pk,
        "name": plan.name,
        "status": plan.status,
        "status_label": PlanStatus(plan.status).label,
        "finished": plan.status not in PLAN_LIVE and plan.status != PlanStatus.DRAFT,
        "paused_reason": plan.paused_reason,
        "content_hash": plan.content_hash,
        "finished_at": plan.finished_at.isoformat() if plan.finished_at else None,
        "url": settings.WAVEGATE_PUBLIC_URL.rstrip("/")
        + reverse("rollout:plan", kwargs={"pk": plan.pk}),
        "progress": _progress(everything, plan.goal),
        "outcome": _outcome(plan.status, everything, plan.goal),
        "finish": None
        if finish is None
        else {
            "at": None if finish.blocked or finish.paused else finish.at.isoformat(),
            "minutes": None if finish.blocked or finish.paused else finish.minutes,
            "conditions": finish.conditions,
            "blocked": finish.blocked,
            "paused": finish.paused,
        },
        "waves": [
            {
                "index": wave.index,
                "status": wave.status,
                "approvals_needed": wave.approvals_needed,
                "started_at": wave.started_at.isoformat() if wave.started_at else None,
                "finished_at": wave.finished_at.isoformat() if wave.finished_at else None,
                "soak_until": wave.soak_until.isoformat() if wave.soak_until else None,
                "progress": _progress(by_wave[wave.pk], plan.goal),
                "outcome": _outcome(wave.status, by_wave[wave.pk], plan.goal),
            }
            for wave in waves
        ],
    }
