"""Pause, resume, abort, retry and skip: who may, when they are refused, what they leave."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied

from audit.models import AuditEvent
from rollout import actions, reconcile
from rollout.choices import PlanStatus, TargetStatus, WaveStatus
from rollout.models import ClusterClaim, RolloutTarget
from tests.factories import approved_plan, make_cluster, submitted_plan
from tests.rollout.stepping import Sent

pytestmark = pytest.mark.django_db


@pytest.fixture
def running(personas):
    """A plan whose first wave was approved and started by the reconciler."""
    for i in range(6):
        make_cluster(name=f"aks-{i}")
    plan = approved_plan(
        personas["operator"], personas["approver"], name="p", wave_spec="2, 100%", concurrency=1
    )
    sent = Sent()
    reconcile.tick(sent)
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
    # The cluster in flight finishes; its slot frees, and still nothing new starts.
    started = plan.targets.get(status=TargetStatus.PREFLIGHT)
    RolloutTarget.objects.filter(pk=started.pk).update(status=TargetStatus.ENABLED)
    sent = Sent()
    reconcile.tick(sent)
    assert sent == []
    assert plan.targets.filter(status=TargetStatus.PENDING).count() == 5

    plan = actions.resume_plan(plan, acting_user=operator)

    assert plan.status == PlanStatus.RUNNING
    assert plan.waves.get(index=1).status == WaveStatus.RUNNING
    reconcile.tick(sent)
    assert sent == [plan.targets.get(status=TargetStatus.PREFLIGHT).pk]
    assert plan.targets.filter(status=TargetStatus.PENDING).count() == 4
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

    reconcile.tick(Sent())

    running.refresh_from_db()
    assert running.status == PlanStatus.PAUSED
    assert "1 failed of its 2 clusters, over the failure budget of 0" in running.paused_reason
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
    with pytest.raises(actions.ActionRefused, match="Say why the plan is aborted"):
        actions.abort_plan(running, acting_user=operator, reason="  ")
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


def test_a_cluster_not_yet_changed_cannot_be_rolled_back(running, personas):
    with pytest.raises(actions.ActionRefused, match="changed or failed"):
        actions.roll_back_target(
            running.targets.first(), acting_user=personas["operator"], comment="x"
        )


def test_a_cluster_of_an_aborted_plan_cannot_be_retried(running, personas, client_as):
    operator = personas["operator"]
    failed = running.waves.get(index=1).targets.order_by("position").first()
    RolloutTarget.objects.filter(pk=failed.pk).update(status=TargetStatus.FAILED)
    RolloutTarget.objects.filter(plan=running).exclude(pk=failed.pk).update(
        status=TargetStatus.PENDING
    )
    actions.abort_plan(running, acting_user=operator, reason="wrong clusters")

    with pytest.raises(actions.ActionRefused, match="aborted and has let its clusters go"):
        actions.retry_target(failed, acting_user=operator)
    assert RolloutTarget.objects.get(pk=failed.pk).status == TargetStatus.FAILED
    page = client_as("operator").get(f"/plans/{running.pk}/").content.decode()
    assert f"/targets/{failed.pk}/retry" not in page


def test_a_rollback_plans_done_cluster_offers_no_roll_back(personas):
    operator = personas["operator"]
    make_cluster(name="aks-on", acceleration_mode="BpfVeth")
    plan = submitted_plan(operator, name="back", goal="None", wave_spec="100%")
    target = plan.targets.get()
    RolloutTarget.objects.filter(pk=target.pk).update(status=TargetStatus.ENABLED)
    target.refresh_from_db()

    with pytest.raises(actions.ActionRefused, match="at None"):
        actions.roll_back_target(target, acting_user=operator, comment="again")
    with pytest.raises(actions.ActionRefused, match="no changed or failed cluster"):
        actions.roll_back_wave(plan.waves.get(), acting_user=operator, comment="again")


def test_an_approver_who_approved_is_told_what_is_missing_and_not_asked_again(personas, client_as):
    make_cluster(name="aks-two")
    plan = submitted_plan(
        personas["operator"], name="two-eyes", wave_spec="100%", approvals_needed=2
    )
    wave = plan.waves.get()
    approver = client_as("approver")
    assert b'data-testid="approve"' in approver.get(f"/plans/{plan.pk}/").content

    answer = approver.post(
        f"/plans/{plan.pk}/waves/{wave.pk}/approve",
        {"comment": "looks fine", "plan_hash": plan.content_hash},
        follow=True,
    )

    page = answer.content.decode()
    assert "You approved wave 1; it needs 1 more approval from another approver." in page
    assert 'data-testid="approve"' not in page
    assert b'data-testid="approve"' in client_as("admin").get(f"/plans/{plan.pk}/").content


def test_a_cluster_retried_while_its_wave_soaks_runs_and_the_wave_soaks_again(personas):
    operator = personas["operator"]
    for i in range(2):
        make_cluster(name=f"soak-{i}")
    plan = approved_plan(
        operator, personas["approver"], name="s", wave_spec="100%", failure_budget="1",
        soak_minutes=30,
    )  # fmt: skip
    wave = plan.waves.get()
    reconcile.tick(Sent())
    done, failed = plan.targets.order_by("position")
    RolloutTarget.objects.filter(pk=done.pk).update(status=TargetStatus.ENABLED)
    RolloutTarget.objects.filter(pk=failed.pk).update(status=TargetStatus.FAILED)
    reconcile.tick(Sent())
    wave.refresh_from_db()
    assert wave.status == WaveStatus.SOAKING  # one failure, within the budget of 1

    actions.retry_target(failed, acting_user=operator)

    wave.refresh_from_db()
    assert wave.status == WaveStatus.RUNNING
    sent = Sent()
    reconcile.tick(sent)
    assert sent == [failed.pk]
    RolloutTarget.objects.filter(pk=failed.pk).update(status=TargetStatus.ENABLED)
    reconcile.tick(Sent())
    wave.refresh_from_db()
    assert wave.status == WaveStatus.SOAKING
    plan.refresh_from_db()
    assert plan.status == PlanStatus.RUNNING  # not completed with a cluster left behind


def test_a_cluster_whose_roll_back_failed_is_rolled_back_again_not_retried(running, personas):
    operator = personas["operator"]
    target = running.targets.order_by("position").first()
    RolloutTarget.objects.filter(pk=target.pk).update(
        status=TargetStatus.FAILED,
        error_code="RollbackOperationFailed",
        error_message="Rolling back: Azure's operation ended Failed. Try again.",
    )

    with pytest.raises(actions.ActionRefused, match="Roll it back again instead"):
        actions.retry_target(target, acting_user=operator)
    actions.roll_back_target(target, acting_user=operator, comment="again")

    target.refresh_from_db()
    assert target.status == TargetStatus.ROLLING_BACK
