"""The banner on every page: approvers are told which waves await their approval (never of their
own plans), everyone is told which plans are paused and why; it costs a page next to nothing."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from rollout import actions
from rollout.models import RolloutPlan
from tests.factories import make_user, plan_over_a_new_cluster

pytestmark = pytest.mark.django_db


def banners(client) -> str:
    html = client.get(reverse("fleet:overview")).content.decode()
    if 'data-testid="banners"' not in html:
        return ""
    return html.split('data-testid="banners"', 1)[1].split("</div>", 1)[0]


def test_an_approver_is_told_which_wave_awaits_approval_with_a_link(client_as):
    plan = plan_over_a_new_cluster(make_user("operator", username="olga"), "eBPF canary")

    shown = banners(client_as("approver"))

    assert "Wave 1 of plan eBPF canary awaits approval" in shown
    assert reverse("rollout:wave", kwargs={"pk": plan.pk, "index": 1}) in shown


def test_no_approval_banner_for_those_who_may_not_approve_it(client_as, personas):
    plan_over_a_new_cluster(personas["admin"], "admins own plan")

    assert banners(client_as("admin")) == ""  # four eyes: not their own plan
    assert banners(client_as("operator")) == ""  # no approver role
    assert banners(client_as("viewer")) == ""
    assert "admins own plan" in banners(client_as("approver"))


def test_the_banner_goes_once_the_approver_has_approved(client_as):
    plan = plan_over_a_new_cluster(make_user("operator", username="olga"), "p")
    client = client_as("approver")
    assert "awaits approval" in banners(client)

    response = client.post(
        reverse("rollout:wave_approve", kwargs={"pk": plan.pk, "wave_id": plan.waves.get().pk}),
        {"comment": "fine", "plan_hash": plan.content_hash},
        follow=True,
    )

    assert "You approved wave 1" in response.content.decode()
    assert "awaits approval" not in response.content.decode()
    assert banners(client) == ""


def test_everyone_is_told_a_plan_is_paused_and_why(client_as, personas):
    plan = plan_over_a_new_cluster(personas["operator"], "rollout west")
    operator_client = client_as("operator")
    viewer = client_as("viewer")
    assert banners(viewer) == ""

    operator_client.post(
        reverse("rollout:plan_pause", kwargs={"pk": plan.pk}), {"comment": "change freeze"}
    )

    for role in ("viewer", "operator", "auditor"):
        shown = banners(client_as(role))
        assert "Plan rollout west is paused" in shown
        assert "Paused by operator-user: change freeze" in shown
        assert reverse("rollout:plan", kwargs={"pk": plan.pk}) in shown

    operator_client.post(reverse("rollout:plan_resume", kwargs={"pk": plan.pk}))
    assert "is paused" not in banners(viewer)


def test_a_long_list_is_cut_with_a_pointer_to_the_plans(client_as):
    creator = make_user("operator", username="olga")
    for n in range(7):
        plan_over_a_new_cluster(creator, f"plan-{n}")

    shown = banners(client_as("approver"))

    assert shown.count('data-testid="banner-approval"') == 5
    assert "More waves await your approval" in shown


def test_the_banner_is_not_on_the_sign_in_page(client):
    plan_over_a_new_cluster(make_user("operator", username="olga"), "p")
    RolloutPlan.objects.update(status="paused", paused_reason="x")

    html = client.get(reverse("accounts:login")).content.decode()

    assert 'data-testid="banners"' not in html


def test_it_costs_five_queries_at_most_and_one_while_cached(client_as, django_assert_num_queries):
    creator = make_user("operator", username="olga")
    for n in range(4):
        plan = plan_over_a_new_cluster(creator, f"plan-{n}")
    actions.pause_plan(plan, acting_user=creator, reason="look")
    client = client_as("approver")
    url = reverse("rollout:plans")
    client.get(url)  # the session's first request

    cache.clear()
    with CaptureQueriesContext(connection) as cold:
        client.get(url)
    # waves, their plans' authors (four eyes), their approvals, paused plans; and the audit
    # chain's state (its banner, cached alike). An emergency stop in force is read on every
    # page: the cache is each process's own, and a stop must show at once everywhere.
    with django_assert_num_queries(len(cold) - 5):
        response = client.get(url)

    html = response.content.decode()
    assert html.count('data-testid="banner-approval"') == 4  # a paused plan's wave too
    assert "Plan plan-3 is paused" in html


def test_the_live_fragments_do_not_read_it(client_as):
    plan = plan_over_a_new_cluster(make_user("operator", username="olga"), "p")
    client = client_as("approver")
    url = reverse("rollout:plan_cards", kwargs={"pk": plan.pk})
    client.get(url)

    cache.clear()
    with CaptureQueriesContext(connection) as polled:
        client.get(url)

    # (The cards read who may approve the waiting wave, active approvers, on purpose.)
    assert not any(
        "auth_user_groups" in q["sql"] and "rollout" in q["sql"] and "is_active" not in q["sql"]
        for q in polled
    )
    assert not any("'paused'" in q["sql"] for q in polled)
    assert not any("'awaiting_approval'" in q["sql"] for q in polled)
