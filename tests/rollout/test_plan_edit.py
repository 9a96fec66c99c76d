"""Editing a plan from its page: the new-plan form filled in with the plan, saved through
edit_plan and submitted again, saying plainly that approvals given were voided."""

from __future__ import annotations

import pytest
from django.urls import reverse

from audit.models import AuditEvent
from rollout import actions
from rollout.choices import PlanStatus, WaveStatus
from rollout.models import Approval, RolloutPlan
from tests.factories import make_cluster, plan_form, submitted_plan

pytestmark = pytest.mark.django_db


@pytest.fixture
def plan(personas):
    """Submitted over six clusters tagged team=a (and aks-b, team=b, left out), approvals: 2."""
    for i in range(6):
        make_cluster(name=f"aks-{i}", tags={"ring": "broad", "team": "a"})
    make_cluster(name="aks-b", tags={"ring": "broad", "team": "b"})
    return submitted_plan(
        personas["operator"],
        name="team a",
        selection={"tags": {"team": "a"}, "names": ["aks-*"]},
        wave_spec="1, 100%",
        soak_minutes=15,
        failure_budget="10%",
        approvals_needed=2,
    )


def edit_url(plan: RolloutPlan) -> str:
    return reverse("rollout:plan_edit", kwargs={"pk": plan.pk})


def approve(plan: RolloutPlan, user) -> None:
    actions.approve_wave(plan.waves.get(index=1), acting_user=user, comment="fine")


def test_the_plan_page_offers_edit_to_operators_while_the_plan_has_not_started(client_as, plan):
    page = reverse("rollout:plan", kwargs={"pk": plan.pk})

    assert f'href="{edit_url(plan)}"' in client_as("operator").get(page).content.decode()
    assert "Edit</a>" not in client_as("approver").get(page).content.decode()
    RolloutPlan.objects.filter(pk=plan.pk).update(status=PlanStatus.RUNNING)
    assert "Edit</a>" not in client_as("operator").get(page).content.decode()


def test_the_form_is_filled_in_with_the_plan_and_warns_about_approvals(client_as, personas, plan):
    approve(plan, personas["approver"])

    html = client_as("operator").get(edit_url(plan)).content.decode()

    assert "Edit plan team a" in html
    assert 'value="team a"' in html
    assert "\nteam=a</textarea>" in html
    assert "\naks-*</textarea>" in html
    assert 'value="1, 100%"' in html
    assert 'value="15"' in html
    assert 'value="10%"' in html
    assert f'name="plan" value="{plan.pk}"' in html  # the preview knows which plan it is
    assert "the <strong>1 approval</strong> given so far is voided" in html
    assert "Save and submit again" in html


def test_saving_submits_the_plan_again_and_says_the_approvals_were_voided(
    client_as, personas, plan
):
    approve(plan, personas["approver"])
    approve(plan, personas["admin"])
    assert plan.waves.get(index=1).status == WaveStatus.APPROVED

    response = client_as("operator").post(
        edit_url(plan),
        plan_form(name="team a, slower", tags="team=a", names="aks-*", wave_spec="2, 100%",
                  approvals_needed="1"),
        follow=True,
    )  # fmt: skip

    html = response.content.decode()
    assert response.redirect_chain[-1][0] == reverse("rollout:plan", kwargs={"pk": plan.pk})
    assert "saved and submitted again" in html
    assert "The 2 approvals given for the earlier version were voided." in html
    plan.refresh_from_db()
    assert plan.name == "team a, slower"
    assert plan.status == PlanStatus.SUBMITTED
    assert [w.targets.count() for w in plan.waves.order_by("index")] == [2, 4]
    assert plan.waves.get(index=1).status == WaveStatus.AWAITING_APPROVAL
    assert not Approval.objects.exists()
    assert (
        "Approve wave 1"
        in client_as("approver")
        .get(reverse("rollout:plan", kwargs={"pk": plan.pk}))
        .content.decode()
    )
    edited = AuditEvent.objects.get(action="rollout.plan_edited")
    assert edited.after["approvals_voided"] == 2


def test_the_preview_of_an_edit_counts_the_plans_own_clusters_as_free(client_as, plan):
    form = plan_form(tags="team=a", names="aks-*", wave_spec="1, 100%")
    client = client_as("operator")

    as_new = client.post(reverse("rollout:plan_preview"), form).content.decode()
    as_edit = client.post(
        reverse("rollout:plan_preview"), {**form, "plan": plan.pk}
    ).content.decode()
    forged = client.post(reverse("rollout:plan_preview"), {**form, "plan": "x"}).content.decode()

    assert "0 clusters in 0 waves, 6 set apart" in as_new  # all held by the plan itself
    assert "6 clusters in 2 waves, 0 set apart" in as_edit
    assert "0 clusters in 0 waves" in forged
    huge = client.post(reverse("rollout:plan_preview"), {**form, "plan": "9" * 30})
    assert huge.status_code == 200


def test_a_form_error_keeps_the_plan_as_it_was(client_as, personas, plan):
    approve(plan, personas["approver"])

    response = client_as("operator").post(
        edit_url(plan), plan_form(tags="team=a", wave_spec="1, 50%")
    )

    assert response.status_code == 200
    assert "it must be 100%" in response.content.decode()
    plan.refresh_from_db()
    assert plan.status == PlanStatus.SUBMITTED
    assert Approval.objects.count() == 1


def test_a_refused_submit_leaves_the_plan_and_its_approvals_as_they_were(client_as, personas, plan):
    approve(plan, personas["approver"])

    response = client_as("operator").post(edit_url(plan), plan_form(names="nothing-*"))

    assert response.status_code == 200
    assert "selects no cluster" in response.content.decode()
    plan.refresh_from_db()
    assert plan.status == PlanStatus.SUBMITTED
    assert plan.name == "team a"
    assert Approval.objects.count() == 1
    assert not AuditEvent.objects.filter(action="rollout.plan_edited").exists()


@pytest.mark.parametrize("method", ["get", "post"])
def test_a_plan_that_has_started_cannot_be_edited(client_as, plan, method):
    RolloutPlan.objects.filter(pk=plan.pk).update(status=PlanStatus.RUNNING)
    client = client_as("operator")

    response = getattr(client, method)(edit_url(plan), plan_form(names="aks-*"), follow=True)

    assert response.redirect_chain[-1][0] == reverse("rollout:plan", kwargs={"pk": plan.pk})
    assert "is running: it can no longer be edited" in response.content.decode()
    plan.refresh_from_db()
    assert plan.name == "team a"


def test_only_operators_edit(client_as, plan):
    for role in ("viewer", "approver", "auditor"):
        response = client_as(role).post(edit_url(plan), plan_form(names="aks-*"))
        assert response.status_code == 403
    assert (
        client_as("operator")
        .get(reverse("rollout:plan_edit", kwargs={"pk": plan.pk + 1000}))
        .status_code
        == 404
    )
    plan.refresh_from_db()
    assert plan.name == "team a"
