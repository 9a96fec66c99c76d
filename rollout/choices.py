"""The states of plans, waves and targets, and the moves between them, written once.

shared/DESIGN.md §6 describes the same tables in words; tests/rollout/test_states.py checks that
every state named there is here and that every move leads somewhere reachable. The engine and the
operator actions move a row only along an arrow of its table, with a conditional update
(`UPDATE … WHERE status = <from>`) that must change exactly one row.
"""

from __future__ import annotations

from collections.abc import Mapping

from django.db import models


class Goal(models.TextChoices):
    BPFVETH = "BpfVeth", "Turn eBPF host routing on (BpfVeth)"
    NONE = "None", "Roll back (None)"


class PlanStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    SUBMITTED = "submitted", "Submitted"
    RUNNING = "running", "Running"
    PAUSED = "paused", "Paused"
    COMPLETED = "completed", "Completed"
    REJECTED = "rejected", "Rejected"
    ABORTED = "aborted", "Aborted"


class WaveStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    AWAITING_APPROVAL = "awaiting_approval", "Awaiting approval"
    APPROVED = "approved", "Approved"
    RUNNING = "running", "Running"
    SOAKING = "soaking", "Soaking"
    PAUSED = "paused", "Paused"
    DONE = "done", "Done"
    REJECTED = "rejected", "Rejected"
    ABORTED = "aborted", "Aborted"


class TargetStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    PREFLIGHT = "preflight", "Preflight"
    READY = "ready", "Ready"
    WAITING_FOR_WINDOW = "waiting_for_window", "Waiting for its maintenance window"
    ENABLING = "enabling", "Changing"
    VERIFYING = "verifying", "Verifying"
    ENABLED = "enabled", "Done"
    BLOCKED = "blocked", "Blocked"
    FAILED = "failed", "Failed"
    SKIPPED = "skipped", "Skipped"
    ROLLING_BACK = "rolling_back", "Rolling back"
    ROLLED_BACK = "rolled_back", "Rolled back"


class Decision(models.TextChoices):
    APPROVE = "approve", "Approve"
    REJECT = "reject", "Reject"


P, W, T = PlanStatus, WaveStatus, TargetStatus

# from-state → the states it may move to.
PLAN_MOVES: Mapping[str, frozenset[str]] = {
    P.DRAFT: frozenset({P.SUBMITTED, P.ABORTED}),
    P.SUBMITTED: frozenset({P.RUNNING, P.REJECTED, P.ABORTED, P.DRAFT}),  # DRAFT: edited
    P.RUNNING: frozenset({P.PAUSED, P.COMPLETED, P.REJECTED, P.ABORTED}),
    P.PAUSED: frozenset({P.RUNNING, P.ABORTED}),
    P.COMPLETED: frozenset(),
    P.REJECTED: frozenset(),
    P.ABORTED: frozenset(),
}

# A paused wave returns to where it was (running or soaking): the wave keeps that state in
# `paused_from`.
WAVE_MOVES: Mapping[str, frozenset[str]] = {
    W.PENDING: frozenset({W.AWAITING_APPROVAL, W.ABORTED}),
    W.AWAITING_APPROVAL: frozenset({W.APPROVED, W.REJECTED, W.ABORTED, W.PENDING}),
    W.APPROVED: frozenset({W.RUNNING, W.PAUSED, W.ABORTED, W.PENDING}),  # PENDING: voided
    W.RUNNING: frozenset({W.SOAKING, W.PAUSED, W.ABORTED}),
    W.SOAKING: frozenset({W.DONE, W.PAUSED, W.ABORTED, W.RUNNING}),  # RUNNING: a retry
    W.PAUSED: frozenset({W.APPROVED, W.RUNNING, W.SOAKING, W.ABORTED}),
    W.DONE: frozenset(),
    W.REJECTED: frozenset(),
    W.ABORTED: frozenset(),
}

TARGET_MOVES: Mapping[str, frozenset[str]] = {
    T.PENDING: frozenset({T.PREFLIGHT, T.SKIPPED}),
    T.PREFLIGHT: frozenset({T.READY, T.BLOCKED, T.FAILED, T.SKIPPED}),
    T.READY: frozenset({T.WAITING_FOR_WINDOW, T.ENABLING, T.SKIPPED}),
    T.WAITING_FOR_WINDOW: frozenset({T.ENABLING, T.SKIPPED}),
    T.ENABLING: frozenset({T.VERIFYING, T.FAILED}),
    T.VERIFYING: frozenset({T.ENABLED, T.FAILED}),
    T.ENABLED: frozenset({T.ROLLING_BACK}),
    T.BLOCKED: frozenset({T.PENDING, T.SKIPPED}),  # retried once the rules are gone
    T.FAILED: frozenset({T.PENDING, T.SKIPPED, T.ROLLING_BACK}),
    T.SKIPPED: frozenset(),
    T.ROLLING_BACK: frozenset({T.ROLLED_BACK, T.FAILED}),
    T.ROLLED_BACK: frozenset(),
}

PLAN_FINAL = frozenset(s for s, moves in PLAN_MOVES.items() if not moves)
WAVE_FINAL = frozenset(s for s, moves in WAVE_MOVES.items() if not moves)
# A target is settled when the engine has nothing more to do with it unless an operator acts.
TARGET_SETTLED = frozenset({T.ENABLED, T.BLOCKED, T.FAILED, T.SKIPPED, T.ROLLED_BACK})
# The error code of a cluster whose roll back failed begins so: a retry would set the plan's
# goal on it again, so it is rolled back again instead.
ROLLBACK_FAILED = "Rollback"
# The plan holds its clusters (an exclusive claim) while it is not finished.
PLAN_ACTIVE = frozenset(set(PLAN_MOVES) - PLAN_FINAL)


def can_move(moves: Mapping[str, frozenset[str]], source: str, target: str) -> bool:
    return target in moves.get(source, frozenset())
