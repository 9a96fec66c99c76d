"""Every move of a plan, a wave or a target writes its audit event in the same transaction as the
move, through rollout/transitions.py; a move that does not happen writes none; a move the state
tables do not allow raises; and nothing may write the audit log outside a transaction."""

from __future__ import annotations

import pytest

import audit
from audit.log import OutsideTransaction
from audit.models import AuditEvent
from fleet.choices import SyncTrigger
from fleet.sync import run_sync
from rollout import actions, engine
from rollout.choices import TARGET_MOVES, RolloutEvent, TargetStatus, WaveStatus
from rollout.transitions import IllegalMove, move_target
from tests.aksim.builders import eligible_clean
from tests.factories import lone_target, make_cluster, make_user
from tests.rollout.audit_trails import Move, plan_trail_problems, trail_problems
from tests.rollout.stepping import run_tick, run_until_settled

T = TargetStatus


def cluster_events(target) -> list[tuple[str, str, str]]:
    """(action, from, to) of the target's recorded moves, in order."""
    return [
        (e.action, e.before["status"], e.after["status"])
        for e in AuditEvent.objects.filter(
            object_type="fleet.cluster", object_id=str(target.cluster_id)
        ).order_by("seq")
        if e.before and "status" in e.before and e.after.get("target") == target.pk
    ]


@pytest.mark.django_db
def test_it_records_every_step_of_a_cluster_from_pending_to_enabled(fleet, personas):
    target = lone_target(personas["operator"], fleet.one(eligible_clean, "a clean cluster").name)

    assert run_until_settled(target)[-1] == T.ENABLED

    assert cluster_events(target) == [
        (RolloutEvent.TARGET_STARTED, T.PENDING, T.PREFLIGHT),
        (RolloutEvent.TARGET_READY, T.PREFLIGHT, T.READY),
        (RolloutEvent.TARGET_CHANGE_STARTED, T.READY, T.ENABLING),
        (RolloutEvent.TARGET_VERIFYING, T.ENABLING, T.VERIFYING),
        (RolloutEvent.TARGET_DONE, T.VERIFYING, T.ENABLED),
    ]
    sent = AuditEvent.objects.get(action=RolloutEvent.TARGET_CHANGE_SENT)
    target.refresh_from_db()
    assert sent.after["request_id"] == target.request_id


@pytest.mark.django_db
def test_the_whole_plan_history_reads_back_from_the_audit_log(fleet, personas, eager):
    operator, approver = personas["operator"], personas["approver"]
    target = lone_target(
        operator, fleet.one(eligible_clean, "a clean cluster").name, soak_minutes=0
    )
    plan = target.plan
    actions.approve_wave(plan.waves.get(), acting_user=approver, comment="go")
    for _ in range(200):
        run_tick()
        plan.refresh_from_db()
        if plan.status == "completed":
            break

    assert plan.status == "completed"
    assert plan_trail_problems(plan) == []
    waves = AuditEvent.objects.filter(object_type="rollout.wave").order_by("seq")
    assert [(e.before["status"], e.after["status"]) for e in waves if e.before] == [
        (WaveStatus.PENDING, WaveStatus.AWAITING_APPROVAL),
        (WaveStatus.AWAITING_APPROVAL, WaveStatus.APPROVED),
        (WaveStatus.APPROVED, WaveStatus.RUNNING),
        (WaveStatus.RUNNING, WaveStatus.SOAKING),
        (WaveStatus.SOAKING, WaveStatus.DONE),
    ]


@pytest.mark.django_db
def test_a_move_that_does_not_happen_records_nothing(personas):
    make_cluster(name="aks-lone")
    target = lone_target(personas["operator"], "aks-lone")
    before = AuditEvent.objects.count()

    # Someone else moved it first: it is pending, not preflight.
    assert move_target(target, T.PREFLIGHT, T.READY) is False

    assert AuditEvent.objects.count() == before
    target.refresh_from_db()
    assert target.status == T.PENDING


@pytest.mark.django_db
def test_a_move_the_table_does_not_allow_raises_and_writes_nothing(personas):
    make_cluster(name="aks-lone")
    target = lone_target(personas["operator"], "aks-lone")
    before = AuditEvent.objects.count()

    with pytest.raises(IllegalMove, match="from pending to enabled"):
        move_target(target, T.PENDING, T.ENABLED)

    assert AuditEvent.objects.count() == before
    target.refresh_from_db()
    assert target.status == T.PENDING


def test_audit_record_refuses_to_run_outside_a_transaction(isolated_db):
    with pytest.raises(OutsideTransaction, match="inside the transaction"):
        audit.record("test.outside")

    assert not AuditEvent.objects.filter(action="test.outside").exists()


def test_the_trail_check_names_a_missing_an_extra_and_an_illegal_move():
    full = [
        Move(1, "started", T.PENDING, T.PREFLIGHT),
        Move(2, "ready", T.PREFLIGHT, T.READY),
        Move(3, "change", T.READY, T.ENABLING),
    ]
    assert trail_problems("c", TARGET_MOVES, T.PENDING, full, T.ENABLING) == []

    missing = trail_problems("c", TARGET_MOVES, T.PENDING, [full[0], full[2]], T.ENABLING)
    assert missing == ["c: event #3 (change) moves it from ready, but the events before leave "
                       "it in preflight"]  # fmt: skip
    extra = trail_problems(
        "c", TARGET_MOVES, T.PENDING, [*full, Move(4, "change", T.READY, T.ENABLING)], T.ENABLING
    )
    assert extra == ["c: event #4 (change) moves it from ready, but the events before leave it "
                     "in enabling"]  # fmt: skip
    short = trail_problems("c", TARGET_MOVES, T.PENDING, full[:2], T.ENABLING)
    assert short == ["c: the events leave it in ready, but it is enabling"]
    illegal = trail_problems(
        "c", TARGET_MOVES, T.PENDING, [Move(1, "x", T.PENDING, T.ENABLED)], T.ENABLED
    )
    assert illegal == ["c: event #1 (x) records a move pending → enabled that the state table "
                       "does not allow"]  # fmt: skip


def test_a_move_and_its_event_commit_together(isolated_db, wavegate_on_aksim, settings):
    """Outside any test transaction, as in a worker: each engine move is one commit with its
    event, so there is never a moved target without its record."""
    settings.WAVEGATE_SCAN_POLL_SECONDS = 0.05
    settings.WAVEGATE_SCAN_DEADLINE_SECONDS = 5.0
    assert run_sync(SyncTrigger.COMMAND).status == "succeeded"
    operator = make_user("operator", username="olga")
    target = lone_target(operator, wavegate_on_aksim.one(eligible_clean, "a clean cluster").name)

    assert engine.advance(target.pk, go_on=False).status == T.PREFLIGHT
    assert engine.advance(target.pk, go_on=False).status == T.READY

    assert [(a, s, d) for a, s, d in cluster_events(target)] == [
        (RolloutEvent.TARGET_STARTED, T.PENDING, T.PREFLIGHT),
        (RolloutEvent.TARGET_READY, T.PREFLIGHT, T.READY),
    ]
