"""Four eyes: who may approve or reject a wave, what an approval is bound to, and what a
rejection stops."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied

from audit.models import AuditEvent
from rollout import actions
from rollout.choices import PlanStatus, WaveStatus
from rollout.models import Approval, ClusterClaim
from tests.factories import make_cluster, make_user, submitted_plan

pytestmark = pytest.mark.django_db


@pytest.fixture
def plan(personas):
    for i in range(5):
        make_cluster(name=f"aks-{i}")
    return submitted_plan(personas["operator"], name="bpf", wave_spec="1, 100%", approvals_needed=1)


def test_another_approver_approves_the_first_wave(plan, personas):
    wave = plan.waves.get(index=1)

    wave = actions.approve_wave(wave, acting_user=personas["approver"], comment="canary ok")

    assert wave.status == WaveStatus.APPROVED
    approval = Approval.objects.get()
    assert approval.plan_hash == plan.content_hash
    event = AuditEvent.objects.get(action="rollout.wave_approved")
    assert event.after["comment"] == "canary ok"
    assert event.actor_name == personas["approver"].get_username()


def test_the_plans_creator_cannot_approve_even_as_admin(personas):
    make_cluster(name="aks-solo")
    admin = personas["admin"]
    plan = submitted_plan(admin, name="mine", wave_spec="100%")

    with pytest.raises(PermissionDenied, match="four eyes"):
        actions.approve_wave(plan.waves.get(), acting_user=admin, comment="mine")
    assert not Approval.objects.exists()
    assert plan.waves.get().status == WaveStatus.AWAITING_APPROVAL


@pytest.mark.parametrize("role", ["viewer", "operator", "auditor"])
def test_roles_without_approval_rights_are_refused(plan, personas, role):
    with pytest.raises(PermissionDenied):
        actions.approve_wave(plan.waves.get(index=1), acting_user=personas[role], comment="x")


def test_a_decision_needs_a_comment(plan, personas):
    with pytest.raises(actions.ActionRefused, match="comment"):
        actions.approve_wave(plan.waves.get(index=1), acting_user=personas["approver"], comment=" ")


def test_a_wave_needing_two_approvals_waits_for_the_second_person(personas):
    for i in range(3):
        make_cluster(name=f"aks-{i}")
    plan = submitted_plan(personas["operator"], name="p", wave_spec="100%", approvals_needed=2)
    wave = plan.waves.get()

    wave = actions.approve_wave(wave, acting_user=personas["approver"], comment="one")
    assert wave.status == WaveStatus.AWAITING_APPROVAL
    with pytest.raises(actions.ActionRefused, match="already decided"):
        actions.approve_wave(wave, acting_user=personas["approver"], comment="again")
    second = make_user("approver", username="approver-2")
    wave = actions.approve_wave(wave, acting_user=second, comment="two")

    assert wave.status == WaveStatus.APPROVED


def test_an_approval_given_before_an_edit_no_longer_counts(plan, personas):
    operator = personas["operator"]
    actions.approve_wave(plan.waves.get(index=1), acting_user=personas["approver"], comment="ok")

    plan = actions.edit_plan(plan, acting_user=operator, soak_minutes=5)
    plan = actions.submit_plan(plan, acting_user=operator)

    wave = plan.waves.get(index=1)
    assert wave.status == WaveStatus.AWAITING_APPROVAL
    assert wave.valid_approvals(plan.content_hash) == 0


def test_a_rejection_stops_the_plan_and_frees_its_clusters(plan, personas):
    actions.reject_wave(plan.waves.get(index=1), acting_user=personas["approver"], comment="no")

    plan.refresh_from_db()
    assert plan.status == PlanStatus.REJECTED
    assert set(plan.waves.values_list("status", flat=True)) == {
        WaveStatus.REJECTED,
        WaveStatus.ABORTED,
    }
    assert not ClusterClaim.objects.exists()
    second = make_user("approver", username="approver-2")
    with pytest.raises(actions.ActionRefused, match="rejected"):
        actions.approve_wave(plan.waves.get(index=2), acting_user=second, comment="x")
