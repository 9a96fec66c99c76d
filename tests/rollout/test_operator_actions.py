"""Pause, resume, abort, retry and skip: who may, when they are refused, what they leave."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied

from audit.models import AuditEvent
from rollout import actions, reconcile
from rollout.choices import PlanStatus, TargetStatus, WaveStatus
from rollout.models import ClusterClaim, RolloutTarget
from tests.factories import make_cluster

pytestmark = pytest.mark.django_db


@pytest.fixture
def running(personas):
    """A plan whose first wave was approved and started by the reconciler."""
    for i in range(6):
        make_cluster(name=f"aks-{i}")
    plan = actions.submit_plan(
        actions.create_plan(
            acting_user=personas["operator"], name="p", wave_spec="2, 100%", concurrency=1
        ),
        acting_user=personas["operator"],
    )
    actions.approve_wave(plan.waves.get(index=1), acting_user=personas["approver"], comment="ok")
    sent: list[int] = []
    reconcile.tick(sent.append)
    plan.refresh_from_db()
    assert plan.status == PlanStatus.RUNNING
    assert len(sent) == 1  # concurrency 1: one cluster at a time
    return plan


def test_pause_stops_new_clusters_and_resume_goes_on(running, personas):
    operator = personas["operator"]

    plan = actions.pause_plan(running, acting_user=operator, reason="checking dashboards")

    assert plan.status == PlanStatus.PAUSED
    assert "checking dashboards" in plan.paused_reason
    assert plan.waves.get(index=1).status == WaveStatus.PAUSED
    sent: list[int] = []
    reconcile.tick(sent.append)
    assert sent == []  # nothing in flight yet, and nothing starts while paused

    plan = actions.resume_plan(plan, acting_user=operator)

    assert plan.status == PlanStatus.RUNNING
    assert plan.waves.get(index=1).status == WaveStatus.RUNNING
    reconcile.tick(sent.append)
    assert len(sent) == 1
    assert [e for e in AuditEvent.objects.values_list("action", flat=True) if "plan_" in e][
        -2:
    ] == [
        "rollout.plan_paused",
        "rollout.plan_resumed",
    ]


def test_a_wave_over_its_budget_pauses_and_resume_is_refused_until_it_is_dealt_with(
    running, personas
):
    operator = personas["operator"]
    failed = running.waves.get(index=1).targets.order_by("position").first()
    RolloutTarget.objects.filter(pk=failed.pk).update(
        status=TargetStatus.FAILED, error_message="Azure said no"
    )

    reconcile.tick(lambda _: None)

    running.refresh_from_db()
    assert running.status == PlanStatus.PAUSED
    assert "1 of 2 clusters failed, over the failure budget of 0" in running.paused_reason
    with pytest.raises(actions.ActionRefused, match="still has 1 failed"):
        actions.resume_plan(running, acting_user=operator)

    actions.retry_target(failed, acting_user=operator)
    plan = actions.resume_plan(running, acting_user=operator)

    assert plan.status == PlanStatus.RUNNING
    failed.refresh_from_db()
    assert failed.status == TargetStatus.PENDING


def test_skip_needs_a_reason_and_frees_the_cluster(running, personas):
    operator = personas["operator"]
    target = running.targets.order_by("-position").first()

    with pytest.raises(actions.ActionRefused, match="why"):
        actions.skip_target(target, acting_user=operator, reason="")
    target = actions.skip_target(target, acting_user=operator, reason="owned by team X")

    assert target.status == TargetStatus.SKIPPED
    assert not ClusterClaim.objects.filter(cluster_id=target.cluster_id).exists()


def test_a_cluster_being_changed_cannot_be_skipped_and_blocks_abort(running, personas):
    operator = personas["operator"]
    busy = running.targets.order_by("position").first()
    RolloutTarget.objects.filter(pk=busy.pk).update(status=TargetStatus.ENABLING)

    with pytest.raises(actions.ActionRefused, match="being changed"):
        actions.skip_target(busy, acting_user=operator, reason="x")
    with pytest.raises(actions.ActionRefused, match="being changed right now"):
        actions.abort_plan(running, acting_user=operator, reason="stop")

    RolloutTarget.objects.filter(pk=busy.pk).update(status=TargetStatus.ENABLED)
    plan = actions.abort_plan(running, acting_user=operator, reason="stop")

    assert plan.status == PlanStatus.ABORTED
    assert set(plan.targets.values_list("status", flat=True)) == {
        TargetStatus.ENABLED,
        TargetStatus.SKIPPED,
    }
    assert not ClusterClaim.objects.exists()


def test_only_failed_or_blocked_clusters_are_retried(running, personas):
    target = running.targets.first()
    with pytest.raises(actions.ActionRefused, match="failed or blocked"):
        actions.retry_target(target, acting_user=personas["operator"])


@pytest.mark.parametrize("role", ["viewer", "approver", "auditor"])
def test_only_operators_and_admins_act_on_plans(running, personas, role):
    user = personas[role]
    with pytest.raises(PermissionDenied):
        actions.pause_plan(running, acting_user=user, reason="x")
    with pytest.raises(PermissionDenied):
        actions.abort_plan(running, acting_user=user, reason="x")
    with pytest.raises(PermissionDenied):
        actions.skip_target(running.targets.first(), acting_user=user, reason="x")


def test_the_emergency_stop_pauses_every_running_plan_and_says_why(running, personas):
    with pytest.raises(PermissionDenied):
        actions.emergency_stop(acting_user=personas["viewer"], reason="x")

    stopped = actions.emergency_stop(acting_user=personas["operator"], reason="region outage")

    assert stopped == 1
    running.refresh_from_db()
    assert running.status == PlanStatus.PAUSED
    assert "emergency stop: region outage" in running.paused_reason
    event = AuditEvent.objects.get(action="rollout.emergency_stop")
    assert event.after == {"reason": "region outage", "plans": [running.pk]}


def test_a_cluster_not_yet_changed_cannot_be_rolled_back(running, personas):
    with pytest.raises(actions.ActionRefused, match="changed or failed"):
        actions.roll_back_target(
            running.targets.first(), acting_user=personas["operator"], comment="x"
        )
