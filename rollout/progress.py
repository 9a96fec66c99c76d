"""Where a plan stands and when it may end: its clusters counted as done, in flight, left,
failed and skipped (for progress bars), the earliest finish given its concurrency, soak,
the approvals it still needs and the clusters' maintenance windows, and who may give those
approvals. The plan page, its live cards and the overview all ask here."""

from __future__ import annotations

import datetime
import math
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import Count
from django.utils import timezone

from accounts.wording import counted
from rollout import planning
from rollout.choices import (
    PLAN_LIVE,
    TARGET_SETTLED,
    Decision,
    Goal,
    PlanStatus,
    TargetStatus,
    WaveStatus,
)
from rollout.models import Approval, RolloutPlan, Wave

T = TargetStatus
MODEL_BACKEND = "django.contrib.auth.backends.ModelBackend"
NAMES_SHOWN = 5


@dataclass(frozen=True)
class Segment:
    key: str  # done, in_flight, left, failed, skipped: the bar's style
    label: str
    count: int
    percent: float


@dataclass(frozen=True)
class Progress:
    """A wave's or a plan's clusters by where they are."""

    done: int
    in_flight: int
    left: int
    failed: int
    skipped: int
    rolled_back: int = 0  # an enabling plan's clusters put back to None

    @property
    def total(self) -> int:
        return (
            self.done + self.in_flight + self.left + self.failed + self.skipped + self.rolled_back
        )

    @property
    def settled(self) -> int:
        return self.done + self.failed + self.skipped + self.rolled_back

    @property
    def percent_settled(self) -> int:
        """Whole percent of clusters that need nothing more; 100 only when all do."""
        if not self.total:
            return 0
        return math.floor(100 * self.settled / self.total)

    @property
    def segments(self) -> list[Segment]:
        parts = [
            ("done", "Done", self.done),
            ("failed", "Failed or blocked", self.failed),
            ("skipped", "Skipped", self.skipped),
            ("rolled_back", "Rolled back", self.rolled_back),
            ("in_flight", "In flight", self.in_flight),
            ("left", "Not started", self.left),
        ]
        total = self.total or 1
        return [Segment(k, label, n, round(100 * n / total, 2)) for k, label, n in parts if n]

    @property
    def summary(self) -> str:
        """ "3 of 10 clusters done, 2 in flight, 5 not started" """
        parts = [f"{self.done} of {counted(self.total, 'cluster')} done"]
        parts += [
            f"{n} {what}"
            for n, what in (
                (self.in_flight, "in flight"),
                (self.left, "not started"),
                (self.failed, "failed or blocked"),
                (self.skipped, "skipped"),
                (self.rolled_back, "rolled back"),
            )
            if n
        ]
        return ", ".join(parts)


def progress(counts: Mapping[str, int], goal: str) -> Progress:
    """`counts`: target state → how many. A rollback plan's clusters are done once rolled
    back; an enabling plan's rolled back clusters are settled, not done."""
    rolling_back = goal == Goal.NONE
    done = counts.get(T.ENABLED, 0) + (counts.get(T.ROLLED_BACK, 0) if rolling_back else 0)
    failed = counts.get(T.FAILED, 0) + counts.get(T.BLOCKED, 0)
    skipped = counts.get(T.SKIPPED, 0)
    rolled_back = 0 if rolling_back else counts.get(T.ROLLED_BACK, 0)
    left = counts.get(T.PENDING, 0)
    in_flight = sum(n for s, n in counts.items() if s not in TARGET_SETTLED and s != T.PENDING)
    return Progress(done, in_flight, left, failed, skipped, rolled_back)


# --- the finish ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Window:
    maintenance_window: Mapping[str, Any]


@dataclass(frozen=True)
class Finish:
    """The earliest a live plan can end."""

    at: datetime.datetime
    minutes: int
    approvals: int  # approvals still to give, on waves not started yet
    waiting: int  # clusters that wait for a maintenance window
    unplaced: int  # clusters whose window Wavegate cannot place (their wait is left out)
    paused: bool
    blocked: list[str] = field(default_factory=list)  # why it cannot finish as it stands

    @property
    def duration(self) -> str:
        hours, minutes = divmod(self.minutes, 60)
        days, hours = divmod(hours, 24)
        parts = [f"{days} d"] * bool(days) + [f"{hours} h"] * bool(hours)
        return " ".join([*parts, f"{minutes} min"] if minutes or not parts else parts)

    @property
    def conditions(self) -> list[str]:
        said = []
        if self.approvals:
            said.append(
                f"if the {counted(self.approvals, 'approval')} still needed "
                f"{'is' if self.approvals == 1 else 'are'} given as soon as asked"
            )
        if self.waiting:
            said.append(
                f"including the wait of {counted(self.waiting, 'cluster')} for "
                "their maintenance windows"
            )
        return said


def finish(
    plan: RolloutPlan,
    waves: Iterable[Wave],
    open_targets: Iterable[tuple[int, Mapping[str, Any], int]],
    approvals_given: Mapping[int, int],
    approvers: Callable[[Wave], int],
    now: datetime.datetime | None = None,
) -> Finish | None:
    """The earliest finish of a live plan (None for one that has ended or is a draft): the
    waves not done run one after the other, each sharing the plan's concurrency with the
    assumed operation time per change (a cluster whose window is closed waits for it, when the
    plan respects windows), then soaks; a soaking wave ends when its soak does. Approvals are
    assumed given as soon as asked: `Finish.approvals` says how many that assumes.

    `open_targets`: (wave id, maintenance window, how many) of the clusters not settled yet;
    `approvals_given`: wave id → approvals of the plan's current version; `approvers(wave)`:
    how many people may still approve it (four eyes). When fewer people may approve a wave
    than it needs, or a cluster's window cannot be placed, `Finish.blocked` says so: the plan
    cannot finish as it stands, and no time is given."""
    if plan.status not in PLAN_LIVE:
        return None
    now = now or timezone.now()
    members: dict[int, list[Window]] = {}
    for wave_id, window, n in open_targets:
        members.setdefault(wave_id, []).extend(
            [Window(window if isinstance(window, dict) else {})] * n
        )
    at, approvals, waiting, unplaced = now, 0, 0, 0
    blocked: list[str] = []
    for wave in sorted(waves, key=lambda w: w.index):
        if wave.status in (WaveStatus.DONE, WaveStatus.REJECTED, WaveStatus.ABORTED):
            continue
        if wave.status == WaveStatus.SOAKING and wave.soak_until is not None:
            at = max(at, wave.soak_until)
            continue
        if wave.status in (WaveStatus.PENDING, WaveStatus.AWAITING_APPROVAL):
            missing = max(0, wave.approvals_needed - approvals_given.get(wave.pk, 0))
            approvals += missing
            if missing and approvers(wave) < missing:
                blocked.append(
                    f"wave {wave.index} needs {counted(missing, 'more approval')} and only "
                    f"{approvers(wave)} {'person' if approvers(wave) == 1 else 'people'} who did "
                    "not write the plan may give them: an admin must give the approver role to "
                    "someone else"
                )
        (estimate,) = planning.estimate(
            [members.get(wave.pk, [])],
            concurrency=plan.concurrency,
            soak_minutes=plan.soak_minutes,
            operation_minutes=settings.WAVEGATE_ESTIMATED_OPERATION_MINUTES,
            start=at,
            respect_windows=plan.respect_maintenance_windows,
        )
        waiting += estimate.waiting
        unplaced += estimate.unplaced
        at += datetime.timedelta(minutes=estimate.minutes)
    if unplaced:
        blocked.append(
            f"Wavegate cannot tell when the maintenance window of {counted(unplaced, 'cluster')} "
            "opens (unreadable, or not within the next weeks), and the engine waits for it: "
            "skip those clusters or fix their windows"
        )
    minutes = math.ceil((at - now).total_seconds() / 60)
    paused = plan.status == PlanStatus.PAUSED
    return Finish(at, minutes, approvals, waiting, unplaced, paused, blocked)


def open_windows(plan: RolloutPlan) -> Iterable[tuple[int, Mapping[str, Any], int]]:
    """(wave id, maintenance window, how many) of the plan's clusters not settled yet, one row
    per distinct window (no window read when the plan ignores them)."""
    open_targets = plan.targets.exclude(status__in=TARGET_SETTLED).order_by()
    if not plan.respect_maintenance_windows:
        return ((wave_id, {}, n) for wave_id, n in
                open_targets.values_list("wave_id").annotate(n=Count("pk")))  # fmt: skip
    return open_targets.values_list("wave_id", "cluster__maintenance_window").annotate(
        n=Count("pk")
    )


def read_finish(plan: RolloutPlan, waves: Iterable[Wave]) -> Finish | None:
    """`finish` with what it needs read (the plan page has the approvals already and calls
    `open_windows` and `finish` itself)."""
    if plan.status not in PLAN_LIVE:
        return None
    given = Counter(
        Approval.objects.filter(
            wave__plan=plan, plan_hash=plan.content_hash, decision=Decision.APPROVE
        ).values_list("wave_id", flat=True)
    )
    authors = plan.authorship()
    decided: dict[int, set[int]] = {}
    for wave_id, user_id in Approval.objects.filter(
        wave__plan=plan, plan_hash=plan.content_hash
    ).values_list("wave_id", "user_id"):
        decided.setdefault(wave_id, set()).add(user_id)
    return finish(
        plan,
        waves,
        open_windows(plan),
        given,
        lambda wave: deciders(authors, decided.get(wave.pk, set())).count,
    )


# --- who may approve -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Deciders:
    """Who may still approve a wave (the four-eyes rule applied): some names, and how many."""

    names: list[str]
    count: int

    @property
    def more(self) -> int:
        return self.count - len(self.names)


def deciders(authors: Collection[int], decided_by: Collection[int]) -> Deciders:
    """Active users with the approver role who neither wrote the plan nor decided already."""
    users = (
        get_user_model()
        .objects.with_perm("rollout.approve_waves", backend=MODEL_BACKEND)
        .filter(is_active=True)
        .exclude(pk__in=[*authors, *decided_by])
        .order_by("username")
    )
    return Deciders(list(users.values_list("username", flat=True)[:NAMES_SHOWN]), users.count())
