"""What a finished wave or plan did, read from its clusters: "Done: 3 clusters enabled",
"Done with failures", "Nothing changed". Every page that shows a wave's or a plan's final state
asks here, so that a wave that changed nothing is never shown as a green "Done"."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from accounts.wording import counted
from rollout.choices import Decision, Goal, PlanStatus, TargetStatus, WaveStatus

T = TargetStatus

NOTHING_CHANGED = "Nothing changed"
WITH_FAILURES = "{} with failures"
# The states that end a wave or a plan as it was meant to end, whose outcome is read from what
# its clusters did; a rejected or aborted one keeps its name and says what it did before.
ENDED_WELL: dict[str, str] = {
    WaveStatus.DONE: str(WaveStatus.DONE.label),
    PlanStatus.COMPLETED: str(PlanStatus.COMPLETED.label),
}
STOPPED = frozenset(
    {WaveStatus.REJECTED, WaveStatus.ABORTED, PlanStatus.REJECTED, PlanStatus.ABORTED}
)
# Every badge an outcome may show, for tests/test_page_wording.py to know them.
HEADLINES = frozenset(
    {NOTHING_CHANGED} | {WITH_FAILURES.format(label) for label in ENDED_WELL.values()}
)

# What an approval did, in the words of the wave state it asks for ("Rejected", not "Rejectd").
DECIDED: dict[str, str] = {
    Decision.APPROVE: str(WaveStatus.APPROVED.label),
    Decision.REJECT: str(WaveStatus.REJECTED.label),
}


@dataclass(frozen=True)
class Outcome:
    headline: str  # the badge's text
    tone: str  # the badge's style: "ok" (changed what it was for), "bad", "unchanged"
    detail: str  # "3 clusters enabled, 1 skipped"


def outcome(status: str, counts: Mapping[str, int], goal: str) -> Outcome | None:
    """The outcome of a wave or plan in `status` whose clusters are `counts` (target state →
    how many); None while it has not ended (its state says where it is)."""
    if status not in ENDED_WELL and status not in STOPPED:
        return None
    rolling_back = goal == Goal.NONE
    changed = counts.get(T.ENABLED, 0) + (counts.get(T.ROLLED_BACK, 0) if rolling_back else 0)
    failed = counts.get(T.FAILED, 0) + counts.get(T.BLOCKED, 0)
    detail = _detail(counts, rolling_back)
    if status in STOPPED:
        label = (WaveStatus if status in WaveStatus.values else PlanStatus)(status).label
        return Outcome(str(label), "bad", detail)
    touched = changed + counts.get(T.ROLLED_BACK, 0) + counts.get(T.ROLLING_BACK, 0)
    if not touched:
        return Outcome(NOTHING_CHANGED, "bad" if failed else "unchanged", detail)
    if failed:
        return Outcome(WITH_FAILURES.format(ENDED_WELL[status]), "bad", detail)
    return Outcome(ENDED_WELL[status], "ok" if changed else "unchanged", detail)


def _detail(counts: Mapping[str, int], rolling_back: bool) -> str:
    """ "3 clusters enabled, 1 skipped, 2 failed": what its clusters did, the noun once."""
    done = "rolled back to None" if rolling_back else "enabled"
    parts = [
        (counts.get(T.ENABLED, 0) + (counts.get(T.ROLLED_BACK, 0) if rolling_back else 0), done),
        (0 if rolling_back else counts.get(T.ROLLED_BACK, 0), "rolled back"),
        (counts.get(T.ROLLING_BACK, 0), "rolling back"),
        (counts.get(T.FAILED, 0), "failed"),
        (counts.get(T.BLOCKED, 0), "blocked by preflight"),
        (counts.get(T.SKIPPED, 0), "skipped"),
    ]
    said = {T.ENABLED, T.ROLLED_BACK, T.ROLLING_BACK, T.FAILED, T.BLOCKED, T.SKIPPED, T.PENDING}
    parts.append((sum(n for s, n in counts.items() if s not in said), "in flight"))
    parts.append((counts.get(T.PENDING, 0), "not started"))
    shown = [(n, what) for n, what in parts if n]
    if not shown:
        return "no cluster"
    (n, what), rest = shown[0], shown[1:]
    return ", ".join([f"{counted(n, 'cluster')} {what}", *(f"{m} {w}" for m, w in rest)])


def decided(decision: str) -> str:
    """ "Approved" or "Rejected"; an unknown decision as it is stored."""
    return DECIDED.get(decision, decision)
