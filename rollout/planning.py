"""Cutting a rollout plan into waves: a pure function, no Django, no database.

A selection (subscriptions, regions, rings, tags, names) picks clusters; those that cannot take
part (ineligible, blocked by iptables rules, already at the goal, claimed by another active plan,
refused by their node disruption policy, or allowed only in a window that is closed now when the
plan does not wait for windows) are set apart with their reasons. The rest are ordered by ring,
then region, then name, and cut by a wave specification such as ``1, 5%, 25%, 100%``: each
entry is the cumulative number of clusters (a count, or a percentage rounded up) that have been
changed once that wave is done. Empty waves are dropped; the last entry must reach every cluster
(``100%``). `estimate` says how long the waves take, waiting for maintenance windows if asked.
"""

from __future__ import annotations

import datetime
import fnmatch
import functools
import heapq
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from accounts.wording import counted
from fleet.disruption import (
    BLOCK,
    BLOCK_REASON,
    IN_WINDOW,
    NODE_OS_SCHEDULE,
    Disruption,
    Verdict,
    disruption_verdict,
    when,
)
from fleet.maintenance import UnreadableWindow, next_open

BPFVETH, NONE = "BpfVeth", "None"
NO_RING = ""

_ENTRY = re.compile(r"(?P<number>\d+(?:\.\d+)?)(?P<percent>%)?")


class PlanError(ValueError):
    """The plan cannot be cut as asked; the message says what to change."""


@dataclass(frozen=True)
class Candidate:
    """What planning needs to know of one cluster."""

    id: int
    name: str
    subscription_id: str
    region: str
    ring: str
    tags: Mapping[str, str]
    eligible: bool
    eligibility_reasons: tuple[str, ...] = ()
    acceleration_mode: str = NONE
    preflight: str = ""  # the latest scan's status; "" when never scanned
    claimed_by: str = ""  # the name of another active plan that holds it
    stopped: bool = False  # its power state is Stopped: AKS changes nothing on it
    # ARM keeps a change's target mode in the resource, also after it failed: a mode is on only
    # when read with Succeeded.
    provisioning_state: str = "Succeeded"
    # What the node disruption policy needs ("" while unknown), and the stored maintenance
    # window that governs node reimages ({} for none).
    node_disruption_policy: str = ""
    node_disruption_error: str = ""
    maintenance_window: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Selection:
    """Which clusters a plan covers. Empty criteria select everything; within a criterion any
    value matches; across criteria all must. Names match exactly or as shell-style globs."""

    subscriptions: frozenset[str] = frozenset()
    regions: frozenset[str] = frozenset()
    rings: frozenset[str] = frozenset()
    tags: Mapping[str, str] = field(default_factory=dict)
    names: tuple[str, ...] = ()

    def matches(self, c: Candidate) -> bool:
        if self.subscriptions and c.subscription_id not in self.subscriptions:
            return False
        if self.regions and c.region not in self.regions:
            return False
        if self.rings and c.ring not in self.rings:
            return False
        if any(c.tags.get(k) != v for k, v in self.tags.items()):
            return False
        return not self.names or self._name_matcher(c.name)

    @functools.cached_property
    def _name_matcher(self) -> Callable[[str], bool]:
        """Whether a name is one of `names` or matches one of its globs: exact names in a set,
        the globs compiled once into one expression (not each pattern against each cluster)."""
        exact = frozenset(p for p in self.names if not any(ch in p for ch in "*?["))
        globs = [fnmatch.translate(p) for p in self.names if p not in exact]
        combined = re.compile("|".join(f"(?:{g})" for g in globs)) if globs else None

        def matches(name: str) -> bool:
            return name in exact or (combined is not None and combined.match(name) is not None)

        return matches


@dataclass(frozen=True)
class Step:
    """One entry of a wave specification: a cumulative count or percentage."""

    text: str
    count: int | None = None
    percent: float | None = None

    def total(self, clusters: int) -> int:
        if self.count is not None:
            return min(self.count, clusters)
        assert self.percent is not None
        # 5% of 60 is 3.0000000000000004 in floating point: round before taking the ceiling.
        return min(clusters, math.ceil(round(self.percent * clusters / 100, 9)))


def parse_waves(spec: str) -> list[Step]:
    """`1, 5%, 25%, 100%` → steps. Raises PlanError with what is wrong."""
    entries = [e.strip() for e in (spec or "").split(",")]
    if not any(entries):
        raise PlanError("Give the waves, for example: 1, 5%, 25%, 100%.")
    steps: list[Step] = []
    for position, entry in enumerate(entries, 1):
        m = _ENTRY.fullmatch(entry.replace(" ", ""))
        if m is None:
            raise PlanError(
                f"Wave {position} ({entry!r}) is neither a number of clusters nor a percentage "
                "such as 25%."
            )
        if m["percent"]:
            percent = float(m["number"])
            if not 0 < percent <= 100:
                raise PlanError(f"Wave {position} ({entry}) must be above 0% and at most 100%.")
            steps.append(Step(entry, percent=percent))
        else:
            if "." in m["number"] or int(m["number"]) < 1:
                raise PlanError(f"Wave {position} ({entry}) must be a whole number of clusters.")
            steps.append(Step(entry, count=int(m["number"])))
    last = steps[-1]
    if last.percent != 100:
        raise PlanError(
            f"The last wave is {last.text}; it must be 100% so that every selected cluster is "
            "in a wave."
        )
    return steps


@dataclass(frozen=True)
class Excluded:
    candidate: Candidate
    reason: str


@dataclass
class Cut:
    waves: list[list[Candidate]]
    excluded: list[Excluded]
    steps: list[Step]
    # Clusters in the waves whose node disruption policy has something to say (waiting for
    # its window, open now, unknown), by id; only when the cut was given `now`.
    disruption: dict[int, Verdict] = field(default_factory=dict)

    @property
    def cluster_count(self) -> int:
        return sum(len(w) for w in self.waves)


REFUSED_BY_POLICY = (
    "refused: node disruption policy Block. AKS refuses any change that reimages nodes, as "
    "this one does (OperationBlockedByNodeDisruptionPolicy); an administrator must set the "
    "cluster's node disruption policy to Allow"
)


@dataclass(frozen=True)
class _Facts:
    node_disruption_policy: str
    maintenance_window: Any


def _text(window: Any) -> str:
    return json.dumps(window, sort_keys=True, default=str)


# Clusters share a few windows, and the preview runs on every keystroke over the whole fleet:
# each distinct window is evaluated once per moment.
@functools.lru_cache(maxsize=4096)
def _window_verdict(window: str, error: str, now: datetime.datetime) -> Verdict:
    return disruption_verdict(_Facts(IN_WINDOW, json.loads(window)), now, error=error)


@functools.lru_cache(maxsize=4096)
def _opening(window: str, at: datetime.datetime) -> datetime.datetime | None:
    return next_open(_parsed(window), at)


@functools.lru_cache(maxsize=256)
def _parsed(window: str) -> Any:
    """A window as `_text` wrote it, read once (callers only read it)."""
    return json.loads(window)


def verdict(c: Candidate, now: datetime.datetime) -> Verdict:
    if c.node_disruption_policy == IN_WINDOW:  # the only one that depends on the window
        return _window_verdict(_text(c.maintenance_window), c.node_disruption_error, now)
    return disruption_verdict(c, now, error=c.node_disruption_error)


def waiting_note(found: Verdict) -> str:
    """A cluster whose node disruption policy lets AKS change it only inside its window."""
    if found.opens_at is None:  # the sentence says why Wavegate cannot tell when
        return f"waits for its maintenance window. {found.sentence}"
    return (
        f"waits for its maintenance window, next opens {when(found.opens_at)}. Its node "
        f"disruption policy is {found.policy}: AKS refuses the change outside the "
        f"{NODE_OS_SCHEDULE} window (OperationOutsideNodeDisruptionWindow)."
    )


def exclusion(
    c: Candidate,
    goal: str,
    *,
    now: datetime.datetime | None = None,
    respect_windows: bool = True,
) -> str | None:
    """Why a selected cluster cannot be in a plan with this goal, or None. With `now`, a plan
    that does not wait for maintenance windows also sets apart the clusters whose node
    disruption policy allows the change only inside a window that is closed now."""
    if c.claimed_by:
        return f"in plan {c.claimed_by!r}, which is still active"
    if goal == NONE:  # a rollback: only clusters now at BpfVeth, no preflight
        if c.acceleration_mode != BPFVETH:
            return "not at BpfVeth: nothing to roll back"
        if c.stopped:
            return "stopped: AKS refuses to change a stopped cluster; start it (az aks start) first"
    elif c.acceleration_mode == BPFVETH and c.provisioning_state == "Succeeded":
        return "already at BpfVeth"
    if c.node_disruption_policy == BLOCK:  # a rollback reimages the nodes too
        others = [r for r in c.eligibility_reasons if r != BLOCK_REASON] if goal != NONE else []
        return REFUSED_BY_POLICY + (f"; also not eligible: {'; '.join(others)}" if others else "")
    if goal != NONE:
        if not c.eligible:
            reasons = "; ".join(c.eligibility_reasons) or "not eligible"
            return f"not eligible: {reasons}"
        if c.preflight == "blocked":
            return "blocked: its latest preflight scan found user-installed iptables rules"
    if now is not None and not respect_windows:
        found = verdict(c, now)
        if found.waits:
            return f"{waiting_note(found)} This plan does not wait for maintenance windows."
    return None


def order_key(c: Candidate, ring_order: Sequence[str]) -> tuple[int, str, str, str, int]:
    """Rings in the configured order, then other rings by name, then clusters with no ring;
    within a ring by region, then name."""
    if c.ring in ring_order:
        rank = ring_order.index(c.ring)
    else:
        rank = len(ring_order) + (1 if c.ring == NO_RING else 0)
    return (rank, c.ring, c.region, c.name, c.id)


def cut(
    candidates: Iterable[Candidate],
    selection: Selection,
    spec: str,
    goal: str = BPFVETH,
    ring_order: Sequence[str] = (),
    *,
    now: datetime.datetime | None = None,
    respect_windows: bool = True,
) -> Cut:
    """The plan's waves and the clusters set apart, with reasons. Raises PlanError. With `now`,
    what the clusters' node disruption policies say at that time counts (see `exclusion`)."""
    if goal not in (BPFVETH, NONE):
        raise PlanError(f"The goal must be {BPFVETH} or {NONE}, not {goal!r}.")
    steps = parse_waves(spec)
    chosen: list[Candidate] = []
    excluded: list[Excluded] = []
    for c in candidates:
        if not selection.matches(c):
            continue
        reason = exclusion(c, goal, now=now, respect_windows=respect_windows)
        if reason is None:
            chosen.append(c)
        else:
            excluded.append(Excluded(c, reason))
    chosen.sort(key=lambda c: order_key(c, ring_order))
    excluded.sort(key=lambda e: (e.candidate.name, e.candidate.id))
    waves: list[list[Candidate]] = []
    done = 0
    for step in steps:
        total = step.total(len(chosen))
        if total < done:
            raise PlanError(
                f"Wave sizes are cumulative: {step.text} ({counted(total, 'cluster')}) is fewer "
                f"than the {done} already changed by the waves before it."
            )
        if total > done:
            waves.append(chosen[done:total])
            done = total
    said = {c.id: verdict(c, now) for c in chosen} if now is not None else {}
    disruption = {i: v for i, v in said.items() if v.kind != Disruption.ALLOWED}
    return Cut(waves, excluded, steps, disruption)


@dataclass(frozen=True)
class WaveEstimate:
    minutes: int
    waiting: int  # clusters that wait for their maintenance window once the wave starts
    unplaced: int  # clusters whose window Wavegate cannot place (unreadable, or not soon)


class Windowed(Protocol):
    """What `estimate` reads of a cluster: its stored maintenance window ({} for none)."""

    @property
    def maintenance_window(self) -> Mapping[str, Any]: ...


def estimate(
    waves: Sequence[Sequence[Windowed]],
    *,
    concurrency: int,
    soak_minutes: int,
    operation_minutes: int,
    start: datetime.datetime | None = None,
    respect_windows: bool = False,
) -> list[WaveEstimate]:
    """How long each wave takes if each starts as soon as the one before ends: its clusters
    share `concurrency` slots, each change taking `operation_minutes`, then the soak. When the
    plan respects maintenance windows (and `start` is given), a cluster whose stored window is
    closed when a slot comes free for it starts once the window opens, as the engine does, and
    takes no slot meanwhile (the clusters that can start sooner go first); a window that is
    open when the wave starts may have closed by the time a slot comes free. A cluster whose
    window cannot be read, or does not open within the horizon, is `unplaced`: its wait is
    left out (the engine waits for it, so such a plan has no honest finish time)."""
    found: list[WaveEstimate] = []
    at = start
    operation = datetime.timedelta(minutes=operation_minutes)
    for members in waves:
        if at is None or not members:
            minutes = math.ceil(len(members) / concurrency) * operation_minutes + soak_minutes
            found.append(WaveEstimate(minutes, 0, 0))
            continue
        # Each cluster's first chance: its window's opening from the wave's start (or the start).
        first: list[tuple[datetime.datetime, int, str]] = []
        unplaced = 0
        texts: dict[int, str] = {}  # clusters of a plan's page share their window objects
        for n, c in enumerate(members):
            window = c.maintenance_window if respect_windows else {}
            if window and id(window) not in texts:
                texts[id(window)] = _text(window)
            text = texts[id(window)] if window else ""
            opens = _opens(text, at) if text else at
            if opens is None:
                unplaced += 1
                text, opens = "", at
            first.append((opens, n, text))
        first.sort()
        slots = [at] * min(concurrency, len(members))
        end, waiting = at, 0
        for opens, _, text in first:
            free = heapq.heappop(slots)
            begins = max(free, opens)
            if text and begins != opens:  # open when first tried; still open when a slot is?
                later = _opens(text, begins)
                begins = later if later is not None else begins
            waiting += begins > free  # it waited for its window, not for a slot
            done = begins + operation
            heapq.heappush(slots, done)
            end = max(end, done)
        minutes = math.ceil((end - at).total_seconds() / 60) + soak_minutes
        found.append(WaveEstimate(minutes, waiting, unplaced))
        at = at + datetime.timedelta(minutes=minutes)
    return found


def _opens(window: str, at: datetime.datetime) -> datetime.datetime | None:
    """When the window (as `_text` wrote it) is next open from `at`; None when it cannot be
    read or does not open within the horizon."""
    try:
        return _opening(window, at)
    except UnreadableWindow:
        return None


def allowed_failures(budget: str, wave_size: int) -> int:
    """The failed targets a wave tolerates: a count, or a percentage of the wave (rounded down)."""
    if budget.endswith("%"):
        return math.floor(int(budget[:-1]) * wave_size / 100)
    return int(budget)
