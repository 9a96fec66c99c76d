"""Each cluster has one chain of engine steps: a step that waits schedules its next one when
Azure's Retry-After says, the reconciler sends a step only to a cluster with none queued (or one
lost with a worker) and never to one a worker is on, and a cluster that settles starts the next
one at once instead of at the next tick."""

from __future__ import annotations

import datetime
import time

import psycopg
import pytest
from django.db import connection
from django.utils import timezone

from aksim.generate import _eligible
from rollout import actions, engine, reconcile, tasks
from rollout.choices import TargetStatus
from rollout.models import RolloutPlan, RolloutTarget
from tests.aksim.builders import eligible_clean
from tests.factories import approved_plan, submitted_plan
from tests.rollout.stepping import Sent

pytestmark = pytest.mark.django_db
T = TargetStatus


def started_plan(fleet, personas, clusters: int) -> tuple[RolloutPlan, Sent]:
    """A plan over `clusters` clean clusters at concurrency 1, approved, and the ids the
    reconciler's first tick sent a step to."""
    names = sorted(c.name for c in fleet.fleet.clusters if eligible_clean(c) and _eligible(c))
    plan = approved_plan(
        personas["operator"],
        personas["approver"],
        name="scheduled",
        wave_spec="100%",
        concurrency=1,
        soak_minutes=0,
        respect_maintenance_windows=False,
        selection={"names": names[:clusters]},
    )
    sent = Sent()
    reconcile.tick(sent)
    return plan, sent


def turn_of(target_id: int) -> str:
    return RolloutTarget.objects.get(pk=target_id).next_step_at.isoformat()


def test_a_waiting_step_schedules_one_next_turn_and_a_copy_of_a_turn_runs_once(
    fleet, personas, eager, settings
):
    settings.WAVEGATE_STEP_GRACE_SECONDS = 20
    _, sent = started_plan(fleet, personas, clusters=1)
    [target_id] = sent
    first = turn_of(target_id)

    before = timezone.now()
    assert tasks.advance_target(target_id, first) == T.ENABLING  # preflight, PUT; it runs

    due = RolloutTarget.objects.get(pk=target_id).next_step_at
    assert due is not None
    wait = (due - before).total_seconds()
    assert 1 <= wait <= 31, "the next read is due when Azure's Retry-After says (1 to 30 s)"
    # A second copy of the turn already taken (a resend, a redelivery) does nothing.
    assert tasks.advance_target(target_id, first) == "not its turn"
    assert reconcile.dispatch([target_id], sent) == 0, "its next turn is queued already"
    # A turn overdue by more than the grace is taken as lost with a worker: sent again, as it
    # is, so that whichever copy comes first takes it and the other finds nothing to do.
    lost = timezone.now() - datetime.timedelta(seconds=settings.WAVEGATE_STEP_GRACE_SECONDS + 1)
    RolloutTarget.objects.filter(pk=target_id).update(next_step_at=lost)
    assert reconcile.dispatch([target_id], sent) == 1
    assert sent[-1] == target_id
    assert tasks.advance_target(target_id, lost.isoformat()) == T.ENABLING
    assert tasks.advance_target(target_id, lost.isoformat()) == "not its turn"


def test_a_retried_cluster_ignores_the_steps_queued_before_the_retry(fleet, personas, eager):
    plan, sent = started_plan(fleet, personas, clusters=1)
    [target_id] = sent
    stale = turn_of(target_id)  # a step queued, then held up behind a backlog
    RolloutTarget.objects.filter(pk=target_id).update(status=T.FAILED, error_message="no")
    actions.retry_target(RolloutTarget.objects.get(pk=target_id), acting_user=personas["operator"])
    actions.pause_plan(plan, acting_user=personas["operator"], reason="look first")

    assert tasks.advance_target(target_id, stale) == "not its turn"
    assert RolloutTarget.objects.get(pk=target_id).status == T.PENDING  # paused: not started


def test_no_step_is_sent_to_a_cluster_a_worker_is_on(fleet, personas):
    _, sent = started_plan(fleet, personas, clusters=1)
    [target_id] = sent
    RolloutTarget.objects.filter(pk=target_id).update(next_step_at=None)  # its step is running

    params = connection.get_connection_params()
    with psycopg.connect(
        dbname=params["dbname"], user=params.get("user"), host=params.get("host"),
        port=params.get("port"), autocommit=True,
    ) as other:  # fmt: skip
        other.execute("SELECT pg_advisory_lock(%s, %s)", [engine._TARGET_LOCKS, target_id])
        assert engine.busy_targets() == {target_id}
        assert reconcile.dispatch([target_id], sent) == 0

    # The lock goes with its connection: the server releases it as that backend exits, which
    # can be a moment after the client has closed it.
    deadline = time.monotonic() + 5
    while engine.busy_targets() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert engine.busy_targets() == set()
    assert reconcile.dispatch([target_id], sent) == 1


def test_a_cluster_that_settles_starts_the_next_without_waiting_for_a_tick(fleet, personas, eager):
    plan, sent = started_plan(fleet, personas, clusters=2)
    first, second = plan.targets.order_by("position").values_list("pk", flat=True)
    assert sent == [first]

    for _ in range(200):
        if tasks.advance_target(first, turn_of(first)) == T.ENABLED:
            break
        time.sleep(0.05)

    assert RolloutTarget.objects.get(pk=first).status == T.ENABLED
    # No tick ran: the step that settled the first cluster started the second, whose first
    # step (run here at once by the eager worker) already sent its PUT.
    second_now = RolloutTarget.objects.get(pk=second)
    assert second_now.status in (T.ENABLING, T.VERIFYING, T.ENABLED)
    assert second_now.attempts == 1


def test_an_approval_starts_its_wave_at_once_rather_than_at_beats_next_tick(
    fleet, personas, eager, django_capture_on_commit_callbacks
):
    spec = next(c for c in fleet.fleet.clusters if eligible_clean(c) and _eligible(c))
    plan = submitted_plan(
        personas["operator"],
        name="approved",
        wave_spec="100%",
        respect_maintenance_windows=False,
        selection={"names": [spec.name]},
    )

    with django_capture_on_commit_callbacks(execute=True):
        actions.approve_wave(plan.waves.get(), acting_user=personas["approver"], comment="go")

    plan.refresh_from_db()
    assert plan.status == "running"
    target = plan.targets.get()
    assert target.status in (T.ENABLING, T.VERIFYING, T.ENABLED)
    assert target.attempts == 1
