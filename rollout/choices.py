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


class Authorship(models.TextChoices):
    """What a person did to a plan's content: each of these makes them one of its authors,
    who may not decide its waves (four eyes)."""

    CREATED = "created", "created"
    EDITED = "edited", "edited"
    SUBMITTED = "submitted", "submitted"


P, W, T = PlanStatus, WaveStatus, TargetStatus

# from-state → the states it may move to.
PLAN_MOVES: Mapping[str, frozenset[str]] = {
    P.DRAFT: frozenset({P.SUBMITTED, P.ABORTED}),
    # DRAFT: edited; PAUSED: paused before its first wave started
    P.SUBMITTED: frozenset({P.RUNNING, P.PAUSED, P.REJECTED, P.ABORTED, P.DRAFT}),
    P.RUNNING: frozenset({P.PAUSED, P.COMPLETED, P.REJECTED, P.ABORTED}),
    # A paused plan returns to running, or to submitted when none of its waves had started; a
    # wave awaiting approval may be rejected while the plan is paused.
    P.PAUSED: frozenset({P.RUNNING, P.SUBMITTED, P.REJECTED, P.ABORTED}),
    P.COMPLETED: frozenset(),
    P.REJECTED: frozenset(),
    P.ABORTED: frozenset(),
}

# A paused wave returns to where it was (running or soaking): the wave keeps that state in
# `paused_from`.
WAVE_MOVES: Mapping[str, frozenset[str]] = {
    # A wave is decided only once it awaits approval: after the one before it is done.
    W.PENDING: frozenset({W.AWAITING_APPROVAL, W.ABORTED}),
    W.AWAITING_APPROVAL: frozenset({W.APPROVED, W.REJECTED, W.ABORTED, W.PENDING}),
    W.APPROVED: frozenset({W.RUNNING, W.PAUSED, W.ABORTED, W.PENDING}),  # PENDING: voided
    W.RUNNING: frozenset({W.SOAKING, W.PAUSED, W.ABORTED}),
    W.SOAKING: frozenset({W.DONE, W.PAUSED, W.ABORTED, W.RUNNING}),  # RUNNING: a retry
    W.PAUSED: frozenset({W.APPROVED, W.RUNNING, W.SOAKING, W.ABORTED}),
    W.DONE: frozenset({W.RUNNING}),  # reopened: an operator retried one of its clusters
    W.REJECTED: frozenset(),
    W.ABORTED: frozenset(),
}

TARGET_MOVES: Mapping[str, frozenset[str]] = {
    T.PENDING: frozenset({T.PREFLIGHT, T.SKIPPED}),
    T.PREFLIGHT: frozenset({T.READY, T.BLOCKED, T.FAILED, T.SKIPPED}),
    # FAILED: past its deadline (Azure kept refusing the PUT for a passing reason).
    T.READY: frozenset({T.WAITING_FOR_WINDOW, T.ENABLING, T.SKIPPED, T.FAILED}),
    # READY: its window opened and the plan has a free slot.
    T.WAITING_FOR_WINDOW: frozenset({T.READY, T.ENABLING, T.SKIPPED}),
    # READY: Azure throttled the PUT, or a PUT that never landed may be sent again.
    T.ENABLING: frozenset({T.VERIFYING, T.FAILED, T.READY}),
    T.VERIFYING: frozenset({T.ENABLED, T.FAILED}),
    T.ENABLED: frozenset({T.ROLLING_BACK}),
    T.BLOCKED: frozenset({T.PENDING, T.SKIPPED}),  # retried once the rules are gone
    # ENABLED / ROLLED_BACK: an operator checked it by hand and marked it done, with a reason.
    T.FAILED: frozenset({T.PENDING, T.SKIPPED, T.ROLLING_BACK, T.ENABLED, T.ROLLED_BACK}),
    T.SKIPPED: frozenset(),
    T.ROLLING_BACK: frozenset({T.ROLLED_BACK, T.FAILED}),
    T.ROLLED_BACK: frozenset(),
}


def can_move(moves: Mapping[str, frozenset[str]], source: str, target: str) -> bool:
    return target in moves.get(source, frozenset())


def sources_of(moves: Mapping[str, frozenset[str]], destination: str) -> frozenset[str]:
    """The states from which a row may move to `destination`."""
    return frozenset(s for s, out in moves.items() if destination in out)


def _reachable(
    moves: Mapping[str, frozenset[str]], start: str, stop: frozenset[str]
) -> frozenset[str]:
    """`start` and every state reachable from it without passing through `stop`."""
    seen, frontier = {start}, [start]
    while frontier:
        for nxt in moves[frontier.pop()]:
            if nxt not in seen and nxt not in stop:
                seen.add(nxt)
                frontier.append(nxt)
    return frozenset(seen)


# --- named sets, derived from the tables -------------------------------------------------------
PLAN_FINAL = frozenset(s for s, moves in PLAN_MOVES.items() if not moves)
# Waves that have ended: the reconciler moves on past them. A done wave is reopened only by an
# operator's retry of one of its clusters.
WAVE_FINAL = frozenset(s for s, moves in WAVE_MOVES.items() if not moves) | {W.DONE}
TARGET_FINAL = frozenset(s for s, moves in TARGET_MOVES.items() if not moves)
# The plan holds its clusters (an exclusive claim) while it is not finished.
PLAN_ACTIVE = frozenset(set(PLAN_MOVES) - PLAN_FINAL)
# Submitted and not finished: the engine reconciles it, its waves take decisions, its pages poll.
PLAN_LIVE = PLAN_ACTIVE - {P.DRAFT}
PLAN_EDITABLE = sources_of(PLAN_MOVES, P.DRAFT) | {P.DRAFT}
PLAN_PAUSABLE = sources_of(PLAN_MOVES, P.PAUSED)

# Waves that take approvals and rejections: only the one awaiting approval.
WAVE_UNDECIDED = sources_of(WAVE_MOVES, W.REJECTED)
# Waves that have not started: a plan resumed with only these goes back to submitted.
WAVE_NOT_STARTED = frozenset({W.PENDING, W.AWAITING_APPROVAL})
WAVE_PAUSABLE = sources_of(WAVE_MOVES, W.PAUSED)

# A target is settled when the engine has nothing more to do with it unless an operator acts.
TARGET_SETTLED = frozenset({T.ENABLED, T.BLOCKED, T.FAILED, T.SKIPPED, T.ROLLED_BACK})
# What an operator may do to a cluster, by its state.
TARGET_RETRYABLE = sources_of(TARGET_MOVES, T.PENDING)
TARGET_SKIPPABLE = sources_of(TARGET_MOVES, T.SKIPPED)
TARGET_ROLLBACKABLE = sources_of(TARGET_MOVES, T.ROLLING_BACK)
# Failed clusters an operator may mark done after checking them by hand.
TARGET_MARKABLE = sources_of(TARGET_MOVES, T.ROLLED_BACK) - {T.ROLLING_BACK}
# Between its start and settling within the plan's goal: it holds a slot of the plan's
# concurrency (but while it waits for its maintenance window, see TARGET_TAKING_SLOTS).
TARGET_IN_FLIGHT = _reachable(TARGET_MOVES, T.PREFLIGHT, TARGET_SETTLED)
TARGET_TAKING_SLOTS = TARGET_IN_FLIGHT - {T.WAITING_FOR_WINDOW}
# Not settled and not pending: the engine waits on something outside (a scan, a window, Azure,
# the nodes) and steps it again later.
TARGET_UNSETTLED = frozenset(set(TARGET_MOVES) - TARGET_SETTLED - {T.PENDING})
# Being changed in Azure right now: neither skipped nor aborted under a worker's feet.
TARGET_CHANGING = TARGET_UNSETTLED - TARGET_SKIPPABLE
# Not yet changed: an abort skips them.
TARGET_NOT_CHANGED = TARGET_SKIPPABLE - TARGET_SETTLED

# The error code of a cluster whose roll back failed begins so: a retry would set the plan's
# goal on it again, so it is rolled back again instead.
ROLLBACK_FAILED = "Rollback"


class RolloutEvent(models.TextChoices):
    """The rollout app's audit actions. Moves of a plan, wave or target are recorded by
    rollout/transitions.py under the event of their destination (the *_EVENTS tables below)
    unless the caller names a more telling one."""

    PLAN_CREATED = "rollout.plan_created", "Plan created"
    PLAN_EDITED = "rollout.plan_edited", "Plan edited"
    PLAN_SUBMITTED = "rollout.plan_submitted", "Plan submitted"
    PLAN_STARTED = "rollout.plan_started", "Plan started"
    PLAN_PAUSED = "rollout.plan_paused", "Plan paused"
    PLAN_RESUMED = "rollout.plan_resumed", "Plan resumed"
    PLAN_COMPLETED = "rollout.plan_completed", "Plan completed"
    PLAN_REJECTED = "rollout.plan_rejected", "Plan rejected"
    PLAN_ABORTED = "rollout.plan_aborted", "Plan aborted"
    EMERGENCY_STOP = "rollout.emergency_stop", "Emergency stop"
    EMERGENCY_STOP_LIFTED = "rollout.emergency_stop_lifted", "Emergency stop lifted"
    WEBHOOK_FAILED = "rollout.webhook_failed", "Webhook not delivered"
    WAVE_AWAITING_APPROVAL = "rollout.wave_awaiting_approval", "Wave awaiting approval"
    WAVE_APPROVED = "rollout.wave_approved", "Wave approved by an approver"
    DECISION_REFUSED = "rollout.decision_refused", "Approval or rejection refused"
    WAVE_APPROVAL_COMPLETE = "rollout.wave_approval_complete", "Wave has its approvals"
    WAVE_REJECTED = "rollout.wave_rejected", "Wave rejected"
    WAVE_STARTED = "rollout.wave_started", "Wave started"
    WAVE_REOPENED = "rollout.wave_reopened", "Wave running again for a retried cluster"
    WAVE_SOAKING = "rollout.wave_soaking", "Wave soaking"
    WAVE_PAUSED = "rollout.wave_paused", "Wave paused"
    WAVE_RESUMED = "rollout.wave_resumed", "Wave resumed"
    WAVE_DONE = "rollout.wave_done", "Wave done"
    WAVE_ABORTED = "rollout.wave_aborted", "Wave aborted"
    WAVE_VOIDED = "rollout.wave_voided", "Wave's approvals voided"
    TARGET_STARTED = "rollout.target_started", "Cluster started (preflight)"
    TARGET_READY = "rollout.target_ready", "Cluster ready to change"
    TARGET_BLOCKED = "rollout.target_blocked", "Cluster blocked by preflight"
    TARGET_WAITING = "rollout.target_waiting_for_window", "Cluster waiting for its window"
    TARGET_CHANGE_STARTED = "rollout.target_change_started", "Cluster change started"
    TARGET_CHANGE_SENT = "rollout.target_change_sent", "Cluster change sent to Azure"
    TARGET_VERIFYING = "rollout.target_verifying", "Cluster being verified"
    TARGET_DONE = "rollout.target_done", "Cluster done"
    TARGET_FAILED = "rollout.target_failed", "Cluster failed"
    TARGET_RETRIED = "rollout.target_retried", "Cluster retried"
    TARGET_MARKED_DONE = "rollout.target_marked_done", "Cluster marked done after a check by hand"
    TARGET_SKIPPED = "rollout.target_skipped", "Cluster skipped"
    TARGET_ROLLBACK_STARTED = "rollout.target_rollback_started", "Cluster roll back started"
    WAVE_ROLLBACK_STARTED = "rollout.wave_rollback_started", "Wave roll back started"
    EVIDENCE_PACK_EXPORTED = "rollout.evidence_pack_exported", "Evidence pack exported"
    # The name the start of every roll back was recorded under until 2026-12-04, although most
    # were an operator's ordinary roll back of a cluster or a wave: kept to read old events.
    EMERGENCY_ROLLBACK = (
        "rollout.emergency_rollback",
        "Cluster roll back started (recorded as an emergency roll back before 2026-12-04)",
    )
    TARGET_ROLLBACK_SENT = "rollout.target_rollback_sent", "Cluster roll back sent to Azure"
    TARGET_ROLLED_BACK = "rollout.target_rolled_back", "Cluster rolled back"


E = RolloutEvent
# The event a move records, by its destination.
PLAN_EVENTS: Mapping[str, RolloutEvent] = {
    P.DRAFT: E.PLAN_EDITED,
    P.SUBMITTED: E.PLAN_SUBMITTED,
    P.RUNNING: E.PLAN_STARTED,
    P.PAUSED: E.PLAN_PAUSED,
    P.COMPLETED: E.PLAN_COMPLETED,
    P.REJECTED: E.PLAN_REJECTED,
    P.ABORTED: E.PLAN_ABORTED,
}
WAVE_EVENTS: Mapping[str, RolloutEvent] = {
    W.PENDING: E.WAVE_VOIDED,
    W.AWAITING_APPROVAL: E.WAVE_AWAITING_APPROVAL,
    W.APPROVED: E.WAVE_APPROVAL_COMPLETE,
    W.RUNNING: E.WAVE_STARTED,
    W.SOAKING: E.WAVE_SOAKING,
    W.PAUSED: E.WAVE_PAUSED,
    W.DONE: E.WAVE_DONE,
    W.REJECTED: E.WAVE_REJECTED,
    W.ABORTED: E.WAVE_ABORTED,
}
TARGET_EVENTS: Mapping[str, RolloutEvent] = {
    T.PENDING: E.TARGET_RETRIED,
    T.PREFLIGHT: E.TARGET_STARTED,
    T.READY: E.TARGET_READY,
    T.WAITING_FOR_WINDOW: E.TARGET_WAITING,
    T.ENABLING: E.TARGET_CHANGE_STARTED,
    T.VERIFYING: E.TARGET_VERIFYING,
    T.ENABLED: E.TARGET_DONE,
    T.BLOCKED: E.TARGET_BLOCKED,
    T.FAILED: E.TARGET_FAILED,
    T.SKIPPED: E.TARGET_SKIPPED,
    T.ROLLING_BACK: E.TARGET_ROLLBACK_STARTED,
    T.ROLLED_BACK: E.TARGET_ROLLED_BACK,
}
