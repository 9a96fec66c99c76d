"""The plan pages as a user sees them: the list, the new-plan form and its preview, one plan
with its waves, and approving from the page (never one's own plan)."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from rollout.choices import PlanStatus, WaveStatus
from rollout.models import Approval, RolloutPlan
from tests.factories import make_cluster, plan_form, submitted_plan

pytestmark = pytest.mark.django_db

FORM = plan_form()


@pytest.fixture
def fleet():
    """Six eligible clusters, and one already at BpfVeth that a plan sets apart."""
    for i in range(6):
        make_cluster(name=f"aks-{i}")
    make_cluster(name="aks-done", acceleration_mode="BpfVeth")


@pytest.fixture
def submitted(fleet, personas):
    return submitted_plan(personas["operator"], name="p", wave_spec="2, 100%")


def test_it_lists_plans_newest_first_with_waves_and_cluster_counts(
    client_as, submitted, personas, django_assert_max_num_queries
):
    older = RolloutPlan.objects.create(
        name="older draft",
        created_by=personas["operator"],
        created_at=submitted.created_at.replace(year=2020),
    )

    client = client_as("viewer")
    with django_assert_max_num_queries(12):
        page = client.get(reverse("rollout:plans")).content.decode()

    assert page.index(">p</a>") < page.index(">older draft</a>")
    assert "0/2" in page  # waves done/total
    assert "Pending 6" in page
    assert older.get_status_display() in page
    assert "New plan" not in page
    assert "New plan" in client_as("operator").get(reverse("rollout:plans")).content.decode()


def test_the_list_pages_from_newer_to_older_plans(client_as, personas):
    now = timezone.now()
    RolloutPlan.objects.bulk_create(
        RolloutPlan(name=f"plan {i:02}", created_by=personas["operator"], created_at=now)
        for i in range(26)
    )
    client = client_as("viewer")

    first = client.get(reverse("rollout:plans")).content.decode()
    second = client.get(reverse("rollout:plans") + "?page=2").content.decode()

    assert "Page 1 of 2" in first
    assert 'href="?page=2" data-testid="next-page">Older</a>' in first
    assert "Page 2 of 2" in second
    assert '<a href="?page=1">Newer</a>' in second


def test_the_list_needs_a_fixed_number_of_queries_however_many_plans(
    client_as, personas, fleet, django_assert_max_num_queries
):
    for i in range(3):
        submitted_plan(personas["operator"], name=f"p{i}", selection={"names": [f"aks-{i}"]})
    client = client_as("viewer")
    with django_assert_max_num_queries(12) as few:
        client.get(reverse("rollout:plans"))
    for i in range(3, 6):
        submitted_plan(personas["operator"], name=f"p{i}", selection={"names": [f"aks-{i}"]})
    with django_assert_max_num_queries(len(few.captured_queries)):
        client.get(reverse("rollout:plans"))


def test_the_preview_shows_the_wave_sizes_and_who_is_set_apart(client_as, fleet):
    # The page asks for a preview as soon as it loads, before any name is typed.
    response = client_as("operator").post(reverse("rollout:plan_preview"), plan_form(name=""))

    page = response.content.decode()
    assert response.status_code == 200
    sizes = [
        int(part.split("<", 1)[0]) for part in page.split('data-testid="preview-wave-size">')[1:]
    ]
    assert sizes == [1, 2, 3]  # 1, then 50% of 6 = 3 in all, then the rest
    assert "aks-done" in page
    assert "already at BpfVeth" in page
    # 30 min soak per wave + ceil(size / 2) operations of 30 min: 3 * 30 + (1 + 1 + 2) * 30 = 210 min.
    assert "3 h 30 min" in page
    assert not RolloutPlan.objects.exists()


def test_a_bad_wave_spec_shows_the_error_and_saves_nothing(client_as, fleet):
    client = client_as("operator")
    bad = plan_form(wave_spec="1, 5%, 50%")

    preview = client.post(reverse("rollout:plan_preview"), bad).content.decode()
    response = client.post(reverse("rollout:plan_new"), bad)

    assert "it must be 100%" in preview
    assert "<strong>Waves</strong>:" in preview  # the error names its field
    assert response.status_code == 200
    assert "it must be 100%" in response.content.decode()
    assert not RolloutPlan.objects.exists()
    assert not AuditEvent.objects.filter(action="rollout.plan_created").exists()


def test_a_selection_with_no_cluster_shows_why_and_saves_nothing(client_as, fleet):
    response = client_as("operator").post(reverse("rollout:plan_new"), plan_form(names="nothing-*"))

    assert response.status_code == 200
    assert "selects no cluster" in response.content.decode()
    assert not RolloutPlan.objects.exists()


def test_a_malformed_tag_line_is_a_form_error(client_as, fleet):
    response = client_as("operator").post(reverse("rollout:plan_preview"), plan_form(tags="env"))

    assert "is not key=value" in response.content.decode()


def test_the_form_creates_and_submits_the_plan(client_as, fleet, personas):
    response = client_as("operator").post(
        reverse("rollout:plan_new"), plan_form(tags="ring=broad", names="aks-*")
    )

    plan = RolloutPlan.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("rollout:plan", kwargs={"pk": plan.pk})
    assert plan.status == PlanStatus.SUBMITTED
    assert plan.created_by == personas["operator"]
    assert plan.selection["tags"] == {"ring": "broad"}
    assert [w.targets.count() for w in plan.waves.order_by("index")] == [1, 2, 3]
    assert plan.waves.get(index=1).status == WaveStatus.AWAITING_APPROVAL


def test_the_plan_page_shows_waves_and_their_clusters(client_as, submitted):
    page = client_as("viewer").get(reverse("rollout:plan", kwargs={"pk": submitted.pk}))

    html = page.content.decode()
    assert 'data-testid="wave-1"' in html
    assert 'data-testid="wave-2"' in html
    assert "Awaiting approval" in html
    assert "aks-0" in html
    assert "every 3s" in html  # a live plan follows itself
    assert "Approve wave" not in html  # a viewer decides nothing
    assert "Pause" not in html


def test_the_creator_sees_no_approve_button_and_a_forged_approval_is_refused(
    client_as, personas, submitted
):
    # An admin may approve, but not a plan they wrote.
    submitted.created_by = personas["admin"]
    submitted.save(update_fields=["created_by"])
    submitted.authors.update(user=personas["admin"])
    client = client_as("admin")
    wave = submitted.waves.get(index=1)

    page = client.get(reverse("rollout:plan", kwargs={"pk": submitted.pk})).content.decode()
    response = client.post(
        reverse("rollout:wave_approve", kwargs={"pk": submitted.pk, "wave_id": wave.pk}),
        {"comment": "looks fine to me"},
        follow=True,
    )

    assert "Approve wave" not in page
    assert "another approver, who did not write it, must decide its waves" in page
    assert "another approver, who did not write it, must decide" in response.content.decode()
    assert not Approval.objects.exists()
    wave.refresh_from_db()
    assert wave.status == WaveStatus.AWAITING_APPROVAL


def test_an_approver_approves_with_a_comment_and_the_wave_shows_approved(client_as, submitted):
    client = client_as("approver")
    wave = submitted.waves.get(index=1)
    url = reverse("rollout:wave_approve", kwargs={"pk": submitted.pk, "wave_id": wave.pk})

    page = client.get(reverse("rollout:plan", kwargs={"pk": submitted.pk})).content.decode()
    read = submitted.content_hash
    refused = client.post(url, {"comment": "  ", "plan_hash": read}, follow=True).content.decode()
    unbound = client.post(url, {"comment": "fine"}, follow=True).content.decode()
    response = client.post(
        url, {"comment": "canary dashboards are green", "plan_hash": read}, follow=True
    )

    assert "Approve wave 1" in page
    assert "Say why in a comment" in refused
    # A hand-made request that does not say which version it approves is refused.
    assert "Nothing said which version of plan" in unbound
    html = response.content.decode()
    assert "You approved wave 1" in html
    assert "canary dashboards are green" in html
    wave.refresh_from_db()
    assert wave.status == WaveStatus.APPROVED
    assert Approval.objects.get().comment == "canary dashboards are green"


def test_pause_shows_the_reason_and_a_refusal_is_a_message(client_as, submitted):
    client = client_as("operator")
    kwargs = {"pk": submitted.pk}

    client.post(reverse("rollout:plan_pause", kwargs=kwargs), {"comment": "change freeze"})
    again = client.post(reverse("rollout:plan_pause", kwargs=kwargs), {"comment": "x"}, follow=True)

    html = again.content.decode()
    assert again.status_code == 200
    assert "Paused by operator-user: change freeze" in html
    assert "is paused" in html  # the second pause is refused, as a message
    assert "Resume" in html


def test_a_finished_plan_stops_polling(client_as, submitted):
    client = client_as("operator")
    client.post(reverse("rollout:plan_abort", kwargs={"pk": submitted.pk}), {"comment": "no"})

    html = client.get(reverse("rollout:plan_cards", kwargs={"pk": submitted.pk})).content.decode()

    assert "Aborted" in html
    assert "every 3s" not in html


def test_per_cluster_buttons_call_their_actions_and_refusals_are_messages(client_as, submitted):
    client = client_as("operator")
    target = submitted.targets.order_by("position").first()
    kwargs = {"pk": submitted.pk, "target_id": target.pk}

    retried = client.post(reverse("rollout:target_retry", kwargs=kwargs), follow=True)
    unexplained = client.post(reverse("rollout:target_skip", kwargs=kwargs), follow=True)
    skipped = client.post(
        reverse("rollout:target_skip", kwargs=kwargs), {"comment": "owner asked"}, follow=True
    )

    assert "Only a failed or blocked cluster can be retried." in retried.content.decode()
    assert "Say why the cluster is skipped." in unexplained.content.decode()
    assert f"{target.cluster.name} skipped." in skipped.content.decode()
    target.refresh_from_db()
    assert target.status == "skipped"
