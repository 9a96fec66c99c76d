"""Read a plan's history back from the audit log: every move of the plan, its waves and its
targets must be there, in order, each from where the previous one left, ending where the row is
now; and none for a move that did not happen."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from audit.models import AuditEvent
from rollout.choices import (
    PLAN_MOVES,
    TARGET_MOVES,
    WAVE_MOVES,
    PlanStatus,
    TargetStatus,
    WaveStatus,
    can_move,
)
from rollout.models import RolloutPlan


@dataclass(frozen=True)
class Move:
    seq: int
    action: str
    source: str
    destination: str


def trail_problems(
    name: str,
    moves: Mapping[str, frozenset[str]],
    start: str,
    trail: Iterable[Move],
    now: str,
) -> list[str]:
    """What is wrong with one row's recorded moves: from `start` to `now`, each one allowed and
    starting where the one before it ended."""
    problems = []
    at = start
    for move in trail:
        if move.source != at:
            problems.append(
                f"{name}: event #{move.seq} ({move.action}) moves it from {move.source}, "
                f"but the events before leave it in {at}"
            )
        if not can_move(moves, move.source, move.destination):
            problems.append(
                f"{name}: event #{move.seq} ({move.action}) records a move {move.source} → "
                f"{move.destination} that the state table does not allow"
            )
        at = move.destination
    if at != now:
        problems.append(f"{name}: the events leave it in {at}, but it is {now}")
    return problems


def _moves(events: Iterable[AuditEvent]) -> list[Move]:
    return [
        Move(e.seq, e.action, e.before["status"], e.after["status"])
        for e in events
        if isinstance(e.before, dict) and "status" in e.before
    ]


def plan_trail_problems(plan: RolloutPlan) -> list[str]:
    """Every move of the plan, its waves and its targets, checked against the audit log."""
    rollout_events = AuditEvent.objects.filter(action__startswith="rollout.").order_by("seq")
    problems = trail_problems(
        f"plan {plan.pk}",
        PLAN_MOVES,
        PlanStatus.DRAFT,
        _moves(rollout_events.filter(object_type="rollout.rolloutplan", object_id=str(plan.pk))),
        plan.status,
    )
    by_wave: dict[str, list[AuditEvent]] = defaultdict(list)
    for event in rollout_events.filter(object_type="rollout.wave"):
        by_wave[event.object_id].append(event)
    for wave in plan.waves.order_by("index"):
        problems += trail_problems(
            f"wave {wave.index}",
            WAVE_MOVES,
            WaveStatus.PENDING,
            _moves(by_wave[str(wave.pk)]),
            wave.status,
        )
    by_target: dict[int, list[AuditEvent]] = defaultdict(list)
    for event in rollout_events.filter(object_type="fleet.cluster"):
        if isinstance(event.after, dict) and event.after.get("plan") == plan.pk:
            by_target[event.after["target"]].append(event)
    for target in plan.targets.select_related("cluster").order_by("position"):
        problems += trail_problems(
            f"cluster {target.cluster.name}",
            TARGET_MOVES,
            TargetStatus.PENDING,
            _moves(by_target[target.pk]),
            target.status,
        )
    return problems
