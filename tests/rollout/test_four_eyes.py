"""Four eyes that one person cannot satisfy: nobody who created, edited or submitted a plan
decides its waves, admins included; a wave is decided only when it is up for approval; a
decision names the version it read, and every refused decision is in the audit log."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied
from django.urls import reverse

from audit.models import AuditEvent
from rollout import actions
from rollout.choices import RolloutEvent, WaveStatus
from rollout.models import Approval
from tests.factories import make_accepted_owner, make_cluster, make_user, submitted_plan

pytestmark = pytest.mark.django_db


@pytest.fixture
def plan(db):
    """Carla's submitted plan over three clusters, in three waves."""
    for n in range(3):
        make_cluster(name=f"aks-{n}")
    return submitted_plan(make_user("operator", username="carla"), wave_spec="1, 2, 100%")


def refusals() -> list[tuple[str, str, str]]:
    return [
        (e.actor_name, e.after["tried"], e.after["refusal"])
        for e in AuditEvent.objects.filter(action=RolloutEvent.DECISION_REFUSED).order_by("seq")
    ]


def test_it_refuses_an_approver_who_edited_someone_elses_plan_and_records_the_attempt(plan):
    olga = make_user("operator", "approver", username="olga")
    plan = actions.edit_plan(plan, acting_user=olga, concurrency=3)
    plan = actions.submit_plan(plan, acting_user=olga)

    with pytest.raises(PermissionDenied, match="You edited plan"):
        actions.approve_wave(plan.waves.get(index=1), acting_user=olga, comment="lgtm")

    assert not Approval.objects.exists()
    assert refusals() == [
        (
            "olga",
            "approve",
            f"You edited plan {plan.name!r}: another approver, who did not write it, must "
            "decide its waves (four eyes).",
        )
    ]


def test_an_admin_who_only_submitted_the_plan_may_not_decide_it(plan):
    admin = make_user("admin", username="ada")
    olga = make_user("operator", username="olga")
    draft = actions.edit_plan(plan, acting_user=olga, concurrency=2)
    plan = actions.submit_plan(draft, acting_user=admin)

    with pytest.raises(PermissionDenied, match="You submitted plan"):
        actions.reject_wave(plan.waves.get(index=1), acting_user=admin, comment="no")

    assert plan.waves.get(index=1).status == WaveStatus.AWAITING_APPROVAL
    assert [(who, tried) for who, tried, _ in refusals()] == [("ada", "reject")]


def test_a_third_person_approves_and_the_approval_names_the_version(plan):
    olga = make_user("operator", "approver", username="olga")
    plan = actions.submit_plan(actions.edit_plan(plan, acting_user=olga, concurrency=3),
                               acting_user=olga)  # fmt: skip
    arun = make_user("approver", username="arun")

    wave = actions.approve_wave(
        plan.waves.get(index=1), acting_user=arun, comment="ok", plan_hash=plan.content_hash
    )

    assert wave.status == WaveStatus.APPROVED
    assert Approval.objects.get().plan_hash == plan.content_hash
    assert plan.authorship() == {plan.created_by_id: "created", olga.pk: "edited"}


def test_a_later_wave_cannot_be_approved_before_the_one_before_it_is_done(plan):
    arun = make_user("approver", username="arun")

    with pytest.raises(actions.ActionRefused, match="not up for approval yet"):
        actions.approve_wave(plan.waves.get(index=2), acting_user=arun, comment="ahead")

    assert plan.waves.get(index=2).status == WaveStatus.PENDING
    assert not Approval.objects.exists()
    assert [(who, tried) for who, tried, _ in refusals()] == [("arun", "approve")]


def test_a_decision_on_a_version_the_approver_did_not_read_is_refused(plan):
    arun = make_user("approver", username="arun")
    read = plan.content_hash
    plan = actions.submit_plan(
        actions.edit_plan(plan, acting_user=plan.created_by, concurrency=7),
        acting_user=plan.created_by,
    )

    with pytest.raises(actions.ActionRefused, match="changed since you read it"):
        actions.approve_wave(plan.waves.get(index=1), acting_user=arun, comment="ok",
                             plan_hash=read)  # fmt: skip

    assert not Approval.objects.exists()
    assert "changed since you read it" in refusals()[0][2]


def test_the_plan_page_says_who_wrote_it_and_why_the_button_is_missing(plan, client):
    olga = make_user("operator", "approver", username="olga")
    plan = actions.submit_plan(actions.edit_plan(plan, acting_user=olga, concurrency=3),
                               acting_user=olga)  # fmt: skip
    arun = make_user("approver", username="arun")
    actions.approve_wave(plan.waves.get(index=1), acting_user=arun, comment="fine by me")
    client.force_login(olga)

    html = client.get(reverse("rollout:plan", kwargs={"pk": plan.pk})).content.decode()

    assert "Approve wave" not in html
    assert "<strong>carla</strong> (created)" in html
    assert "<strong>olga</strong> (edited" in html
    assert f"version <code>{plan.content_hash[:12]}</code>" in html  # the approval's version


def test_the_wave_page_tells_an_editor_why_they_cannot_decide(plan, client):
    olga = make_user("operator", "approver", username="olga")
    plan = actions.submit_plan(actions.edit_plan(plan, acting_user=olga, concurrency=3),
                               acting_user=olga)  # fmt: skip
    client.force_login(olga)

    html = client.get(reverse("rollout:wave", kwargs={"pk": plan.pk, "index": 1})).content.decode()

    assert "Approve wave" not in html
    assert "You edited plan" in html


def test_a_change_to_the_accepted_owners_after_submission_voids_the_version(plan):
    arun = make_user("approver", username="arun")
    make_accepted_owner(name="backup-agent")  # confirmed after the plan was submitted

    with pytest.raises(actions.ActionRefused, match="accepted iptables owners changed"):
        actions.approve_wave(plan.waves.get(index=1), acting_user=arun, comment="ok")

    resubmitted = actions.submit_plan(
        actions.edit_plan(plan, acting_user=plan.created_by, concurrency=5),
        acting_user=plan.created_by,
    )
    wave = actions.approve_wave(resubmitted.waves.get(index=1), acting_user=arun, comment="ok")
    assert wave.status == WaveStatus.APPROVED
