"""The emergency stop: reached from every page by those allowed, confirmed with a reason after
saying what it stops, shown on every page while in force, and lifted with a reason; both audited.
"""

from __future__ import annotations

import pytest
from django.urls import reverse

from audit.models import AuditEvent
from rollout import actions, emergency, reconcile
from rollout.choices import PlanStatus, TargetStatus
from rollout.models import EmergencyStop, RolloutPlan, RolloutTarget
from tests.factories import approved_plan, make_cluster, make_plan, plan_over_a_new_cluster
from tests.rollout.stepping import Sent

pytestmark = pytest.mark.django_db

STOP = reverse("rollout:emergency_stop")
LIFT = reverse("rollout:emergency_lift")
PAGES = [reverse("fleet:overview"), reverse("fleet:clusters"), reverse("rollout:plans")]


@pytest.fixture
def running(personas):
    """Plan "west" running its first wave, one cluster in flight; plan "east" submitted."""
    for i in range(4):
        make_cluster(name=f"aks-{i}")
    plan = approved_plan(
        personas["operator"], personas["approver"], name="west", wave_spec="2, 100%",
        concurrency=1,
    )  # fmt: skip
    reconcile.tick(Sent())
    plan.refresh_from_db()
    assert plan.status == PlanStatus.RUNNING
    plan_over_a_new_cluster(personas["operator"], "east")
    return plan


def said(client, url: str, data: dict) -> str:
    """Post the form, then read what the next page says (its message and banners)."""
    answer = client.post(url, data)
    assert answer.status_code == 302
    return html(client, reverse("fleet:overview"))


def html(client, url: str) -> str:
    return client.get(url).content.decode()


def emergency_banner(client, url: str) -> str:
    page = html(client, url)
    if 'data-testid="emergency-banner"' not in page:
        return ""
    return page.split('data-testid="emergency-banner"', 1)[1].split("</div>", 1)[0]


def test_it_is_offered_in_the_header_of_every_page_to_those_allowed(client_as):
    for role in ("operator", "admin"):
        for url in PAGES:
            assert 'data-testid="header-emergency-stop"' in html(client_as(role), url)
    for role in ("viewer", "approver", "auditor"):
        for url in PAGES:
            assert 'data-testid="header-emergency-stop"' not in html(client_as(role), url)


def test_the_confirmation_page_says_what_it_will_stop(running, client_as):
    in_flight = running.targets.filter(status=TargetStatus.PREFLIGHT).count()
    assert in_flight == 1

    page = html(client_as("operator"), STOP)

    assert "It pauses 2 plans:" in page
    assert "<li>east</li>" in page
    assert "<li>west</li>" in page
    assert "1 cluster in flight in them finishes" in page
    assert "4 clusters not started yet do not start" in page
    assert 'name="reason"' in page
    assert RolloutPlan.objects.get(pk=running.pk).status == PlanStatus.RUNNING  # not yet


def test_an_empty_reason_is_refused_and_nothing_stops(running, client_as):
    answer = said(client_as("operator"), STOP, {"reason": "  "})

    assert "Say why everything stops" in answer
    running.refresh_from_db()
    assert running.status == PlanStatus.RUNNING
    assert not EmergencyStop.objects.exists()
    assert not AuditEvent.objects.filter(action="rollout.emergency_stop").exists()


def test_the_stop_pauses_every_plan_and_every_signed_in_user_sees_the_banner(running, client_as):
    answer = said(client_as("operator"), STOP, {"reason": "latency alarm"})

    assert "Emergency stop in force: 2 plans paused." in answer
    assert set(RolloutPlan.objects.values_list("status", flat=True)) == {PlanStatus.PAUSED}
    running.refresh_from_db()
    assert "Paused by operator-user: emergency stop: latency alarm" in running.paused_reason
    for role in ("viewer", "approver", "auditor", "operator", "admin"):
        for url in (reverse("fleet:overview"), reverse("fleet:clusters")):
            shown = emergency_banner(client_as(role), url)
            assert "Emergency stop in force" in shown
            assert "by operator-user: latency alarm" in shown
    assert LIFT in emergency_banner(client_as("admin"), reverse("fleet:overview"))
    assert LIFT not in emergency_banner(client_as("viewer"), reverse("fleet:overview"))
    # While in force the header offers no second stop.
    assert 'data-testid="header-emergency-stop"' not in html(client_as("operator"), PAGES[0])


def test_no_plan_is_resumed_or_submitted_while_the_stop_is_in_force(running, personas, client_as):
    operator = personas["operator"]
    emergency.stop_everything(acting_user=operator, reason="incident 7")
    draft = make_plan(operator, name="later", wave_spec="100%")

    with pytest.raises(actions.ActionRefused, match="emergency stop is in force"):
        actions.resume_plan(running, acting_user=operator)
    with pytest.raises(actions.ActionRefused, match="emergency stop is in force"):
        actions.submit_plan(draft, acting_user=operator)
    answer = said(
        client_as("operator"), reverse("rollout:plan_resume", kwargs={"pk": running.pk}), {}
    )

    assert "cannot be resumed until someone lifts it" in answer
    # The plan's page offers no Resume button meanwhile, and says why.
    page = html(client_as("operator"), reverse("rollout:plan", kwargs={"pk": running.pk}))
    assert reverse("rollout:plan_resume", kwargs={"pk": running.pk}) not in page
    assert "Resume waits for the emergency stop to be lifted" in page
    running.refresh_from_db()
    draft.refresh_from_db()
    assert (running.status, draft.status) == (PlanStatus.PAUSED, PlanStatus.DRAFT)
    # Nothing new starts: the reconciler leaves the paused plans' clusters pending.
    pending = RolloutTarget.objects.filter(status=TargetStatus.PENDING).count()
    reconcile.tick(Sent())
    assert RolloutTarget.objects.filter(status=TargetStatus.PENDING).count() == pending


def test_a_second_stop_is_refused_while_one_is_in_force(running, client_as):
    operator = client_as("operator")
    operator.post(STOP, {"reason": "first"})

    page = html(operator, STOP)
    answer = said(operator, STOP, {"reason": "second"})

    assert "already in force" in page
    assert 'name="reason"' not in page
    assert "An emergency stop is already in force" in answer
    assert EmergencyStop.objects.count() == 1


def test_lifting_needs_a_reason_removes_the_banner_and_leaves_plans_paused(
    running, client_as, personas
):
    operator = client_as("operator")
    operator.post(STOP, {"reason": "latency alarm"})
    viewer = client_as("viewer")
    assert emergency_banner(viewer, PAGES[0])

    assert "resumes nothing: 2 plans paused now stay paused" in html(operator, LIFT)
    refused = said(operator, LIFT, {"reason": ""})
    assert "Say why the emergency stop can be lifted" in refused
    assert emergency_banner(viewer, PAGES[0])

    answer = said(operator, LIFT, {"reason": "alarm cleared"})

    assert "Emergency stop lifted. Every plan it paused is still paused" in answer
    assert emergency_banner(viewer, PAGES[0]) == ""
    assert set(RolloutPlan.objects.values_list("status", flat=True)) == {PlanStatus.PAUSED}
    again = said(operator, LIFT, {"reason": "twice"})
    assert "No emergency stop is in force" in again
    # Operators resume each plan themselves, now that it is lifted.
    actions.resume_plan(running, acting_user=personas["operator"])
    running.refresh_from_db()
    assert running.status == PlanStatus.RUNNING


def test_the_stop_and_its_lift_are_audited_with_what_they_concerned(running, client_as):
    east = RolloutPlan.objects.get(name="east")
    operator = client_as("operator")

    operator.post(STOP, {"reason": "latency alarm"})
    operator.post(LIFT, {"reason": "alarm cleared"})

    stop = EmergencyStop.objects.get()
    started = AuditEvent.objects.get(action="rollout.emergency_stop")
    lifted = AuditEvent.objects.get(action="rollout.emergency_stop_lifted")
    assert started.actor_name == lifted.actor_name == "operator-user"
    assert started.object_id == lifted.object_id == str(stop.pk)
    assert started.after == {
        "reason": "latency alarm",
        "plans": sorted([running.pk, east.pk]),
        "clusters_in_flight": 1,
        "clusters_not_started": 4,
    }
    assert lifted.after == {"reason": "alarm cleared", "plans_paused": 2}
    assert stop.lifted_by.get_username() == "operator-user"
    assert stop.lift_reason == "alarm cleared"


@pytest.mark.parametrize("role", ["viewer", "auditor", "approver"])
def test_those_not_allowed_see_no_button_and_are_refused(running, client_as, role):
    client = client_as(role)
    assert 'data-testid="emergency-stop"' not in html(client, reverse("rollout:plans"))

    assert client.post(STOP, {"reason": "x"}).status_code == 403
    assert client.get(STOP).status_code == 403
    assert client.post(LIFT, {"reason": "x"}).status_code == 403

    running.refresh_from_db()
    assert running.status == PlanStatus.RUNNING
    assert not EmergencyStop.objects.exists()


def test_the_banner_is_never_stale_after_a_stop_or_a_lift(client_as):
    operator, viewer = client_as("operator"), client_as("viewer")
    assert emergency_banner(viewer, PAGES[0]) == ""  # "no stop" now cached

    operator.post(STOP, {"reason": "freeze"})
    assert "freeze" in emergency_banner(viewer, PAGES[0])

    operator.post(LIFT, {"reason": "thawed"})
    assert emergency_banner(viewer, PAGES[0]) == ""
