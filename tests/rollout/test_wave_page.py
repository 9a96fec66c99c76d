"""A wave's own page as a user sees it: its status and gates, every cluster with what the
engine and Azure said, the buttons that act on them, and a fixed cost however large the wave."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from fleet.models import Cluster
from rollout.choices import TargetStatus, WaveStatus
from rollout.models import RolloutPlan, RolloutTarget, Wave
from tests.factories import make_cluster, make_subscription, submitted_plan

pytestmark = pytest.mark.django_db
DASH = "\N{EN DASH}"  # between the first and last row shown: "Clusters 1-100 of 1000"


def wave_url(plan: RolloutPlan, index: int, **query: str) -> str:
    url = reverse("rollout:wave", kwargs={"pk": plan.pk, "index": index})
    return url + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else "")


@pytest.fixture
def plan(personas):
    """Submitted by the operator: wave 1 of 2 clusters awaits approval, wave 2 has 3."""
    for i in range(5):
        make_cluster(name=f"aks-{i}")
    return submitted_plan(personas["operator"], name="p", wave_spec="2, 100%")


def first_target(plan: RolloutPlan, index: int = 1) -> RolloutTarget:
    return plan.targets.filter(wave__index=index).order_by("position")[0]


def failed(target: RolloutTarget) -> None:
    now = timezone.now()
    RolloutTarget.objects.filter(pk=target.pk).update(
        status=TargetStatus.FAILED,
        attempts=2,
        request_id="5f0c2a4e-0000-4000-8000-00000000abcd",
        error_code="OperationFailed",
        error_message="Azure's operation ended Failed. Retry the cluster or roll it back.",
        profile_before={"accelerationMode": "None", "provisioningState": "Succeeded"},
        profile_after={"accelerationMode": "BpfVeth", "provisioningState": "Failed"},
        started_at=now,
        finished_at=now,
    )


def test_it_shows_the_wave_its_gates_and_every_cluster_with_what_azure_said(client_as, plan):
    failed(first_target(plan))

    html = client_as("viewer").get(wave_url(plan, 1)).content.decode()

    assert "Wave 1" in html
    assert "of 2 in plan p" in html
    assert "Awaiting approval" in html
    assert "0 of 1" in html  # approvals given of needed
    assert "first wave" in html
    assert "30 min once every cluster" in html  # the soak to come
    assert "aks-0" in html
    assert "aks-1" in html
    assert "aks-2" not in html  # wave 2's
    assert "5f0c2a4e-0000-4000-8000-00000000abcd" in html
    assert "OperationFailed" in html
    assert "Azure&#x27;s operation ended Failed" in html
    assert "None → BpfVeth" in html
    assert "Retry</button>" not in html  # a viewer acts on nothing
    assert "Approve wave" not in html


def test_the_plan_page_links_each_wave_card_to_its_page(client_as, plan):
    html = client_as("viewer").get(reverse("rollout:plan", kwargs={"pk": plan.pk})).content.decode()

    assert f'href="{wave_url(plan, 1)}"' in html
    assert f'href="{wave_url(plan, 2)}"' in html


def test_the_second_wave_shows_what_it_waits_for(client_as, plan):
    html = client_as("viewer").get(wave_url(plan, 2)).content.decode()

    assert "Pending" in html
    assert f'href="{wave_url(plan, 1)}">Wave 1</a>' in html
    assert "this wave waits until it is done and has soaked" in html


def test_an_approver_approves_from_the_wave_page_and_sees_who_when_and_why(client_as, plan):
    client = client_as("approver")
    wave = plan.waves.get(index=1)
    page = client.get(wave_url(plan, 1)).content.decode()

    response = client.post(
        reverse("rollout:wave_approve", kwargs={"pk": plan.pk, "wave_id": wave.pk}),
        {"comment": "canary looks fine", "next": wave_url(plan, 1), "plan_hash": plan.content_hash},
        follow=True,
    )

    assert "Approve wave 1" in page
    assert response.redirect_chain[-1][0] == wave_url(plan, 1)
    html = response.content.decode()
    assert "You approved wave 1" in html
    assert "Approved</span> by <strong>approver-user</strong>" in html
    assert "canary looks fine" in html
    assert "1 of 1" in html
    assert "Approve wave 1" not in html  # decided: the wave is approved now


def test_the_creator_sees_no_approve_button_but_the_four_eyes_note(client_as, personas, plan):
    RolloutPlan.objects.filter(pk=plan.pk).update(created_by=personas["admin"])
    plan.authors.update(user=personas["admin"])

    html = client_as("admin").get(wave_url(plan, 1)).content.decode()

    assert "Approve wave" not in html
    assert "another approver, who did not write it, must decide its waves" in html


def test_a_cluster_is_retried_from_the_wave_page_which_comes_back_with_its_filter(client_as, plan):
    target = first_target(plan)
    failed(target)
    client = client_as("operator")
    here = wave_url(plan, 1, state="failed")
    page = client.get(here).content.decode()

    response = client.post(
        reverse("rollout:target_retry", kwargs={"pk": plan.pk, "target_id": target.pk}),
        {"next": here},
        follow=True,
    )

    assert f'name="next" value="{here.replace("&", "&amp;")}"' in page
    assert response.redirect_chain[-1][0] == here
    html = response.content.decode()
    assert f"{target.cluster.name} starts again from a fresh preflight." in html
    assert "No cluster of this wave is failed." in html
    target.refresh_from_db()
    assert target.status == TargetStatus.PENDING


def test_a_refused_action_on_the_wave_page_is_a_message_there(client_as, plan):
    target = first_target(plan)  # pending: nothing to roll back
    response = client_as("operator").post(
        reverse("rollout:target_roll_back", kwargs={"pk": plan.pk, "target_id": target.pk}),
        {"comment": "just in case", "next": wave_url(plan, 1)},
        follow=True,
    )

    assert response.redirect_chain[-1][0] == wave_url(plan, 1)
    assert "Only a changed or failed cluster can be rolled back." in response.content.decode()


@pytest.mark.parametrize(
    "forged", ["https://evil.example/plans/", "//evil.example/", "/plans/999999/", "/audit/"]
)
def test_a_forged_return_address_goes_back_to_the_plan_page(client_as, plan, forged):
    target = first_target(plan)

    response = client_as("operator").post(
        reverse("rollout:target_skip", kwargs={"pk": plan.pk, "target_id": target.pk}),
        {"comment": "owner asked", "next": forged},
    )

    assert response.status_code == 302
    assert response["Location"] == reverse("rollout:plan", kwargs={"pk": plan.pk})


def test_the_wave_is_rolled_back_from_its_page(client_as, plan):
    failed(first_target(plan))
    client = client_as("operator")
    wave = plan.waves.get(index=1)

    page = client.get(wave_url(plan, 1)).content.decode()
    response = client.post(
        reverse("rollout:wave_roll_back", kwargs={"pk": plan.pk, "wave_id": wave.pk}),
        {"comment": "dashboards red", "next": wave_url(plan, 1)},
        follow=True,
    )

    assert "Roll back wave 1" in page
    assert "1 cluster of wave 1 rolling back." in response.content.decode()
    assert first_target(plan).status == TargetStatus.ROLLING_BACK
    # Audited as what it is: the wave's roll back, with the operator's reason, and each
    # cluster's roll back; never as an emergency.
    actions = list(
        AuditEvent.objects.filter(plan_id=plan.pk).order_by("seq").values_list("action", "after")
    )
    assert "rollout.wave_rollback_started" in [a for a, _ in actions]
    wave_event = next(after for a, after in actions if a == "rollout.wave_rollback_started")
    assert wave_event is not None
    assert wave_event["comment"] == "dashboards red"
    assert wave_event["clusters"] == [first_target(plan).cluster_id]
    assert "rollout.target_rollback_started" in [a for a, _ in actions]
    assert not [a for a, _ in actions if "emergency" in a]


def test_an_unknown_wave_is_a_404_that_says_so(client_as, plan):
    client = client_as("viewer")

    response = client.get(wave_url(plan, 3))
    panel = client.get(reverse("rollout:wave_panel", kwargs={"pk": plan.pk, "index": 0}))
    no_plan = client.get(reverse("rollout:wave", kwargs={"pk": plan.pk + 1000, "index": 1}))

    assert response.status_code == 404
    assert "Plan &#x27;p&#x27; has no wave 3: it has 2." in response.content.decode()
    assert panel.status_code == 404
    assert no_plan.status_code == 404
    assert "There is no page at this address" in no_plan.content.decode()
    assert "RolloutPlan" not in no_plan.content.decode()  # no model names from the code


def test_an_unknown_state_or_page_shows_every_cluster_with_a_note(client_as, plan):
    client = client_as("viewer")

    bad_state = client.get(wave_url(plan, 1, state="exploded"))
    bad_page = client.get(wave_url(plan, 1, page="lots"))

    assert bad_state.status_code == 200
    assert "There is no cluster state “exploded”" in bad_state.content.decode()
    assert f"Clusters 1{DASH}2 of 2" in bad_state.content.decode()
    assert bad_page.status_code == 200
    assert f"Clusters 1{DASH}2 of 2" in bad_page.content.decode()


def test_the_wave_page_follows_itself_while_the_wave_is_live_and_stops_after(client_as, plan):
    client = client_as("operator")
    panel = reverse("rollout:wave_panel", kwargs={"pk": plan.pk, "index": 1})

    live = client.get(panel + "?state=pending").content.decode()
    client.post(reverse("rollout:plan_abort", kwargs={"pk": plan.pk}), {"comment": "no"})
    over = client.get(panel).content.decode()

    assert "every 3s" in live
    assert f'hx-get="{panel}?state=pending"' in live  # the poll keeps the filter
    assert "Aborted" in over
    assert "every 3s" not in over


def bulk_clusters(count: int) -> None:
    """`count` eligible clusters in one insert: a wave of a thousand without a thousand
    factories."""
    subscription = make_subscription()
    now = timezone.now()
    Cluster.objects.bulk_create(
        [
            Cluster(
                arm_id=f"/subscriptions/{subscription.subscription_id}/resourcegroups/rg"
                f"/providers/microsoft.containerservice/managedclusters/aks-bulk-{n:04d}",
                subscription=subscription,
                name=f"aks-bulk-{n:04d}",
                resource_group="rg",
                location="westeurope",
                kubernetes_version="1.33.2",
                network_plugin="azure",
                network_dataplane="cilium",
                acns_enabled=True,
                provisioning_state="Succeeded",
                power_state="Running",
                tags={"ring": "broad"},
                ring="broad",
                eligible=True,
                first_seen=now,
                changed_at=now,
            )
            for n in range(count)
        ]
    )


def queries_of(client, url: str) -> list[str]:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200
    return [q["sql"] for q in captured.captured_queries]


def test_a_wave_of_a_thousand_clusters_costs_what_a_wave_of_ten_does(
    client_as, personas, django_assert_num_queries
):
    bulk_clusters(1010)
    plan = submitted_plan(personas["operator"], name="big", wave_spec="10, 100%")
    big = plan.targets.filter(wave__index=2).order_by("position")
    for target in big[:3]:
        failed(target)
    client = client_as("operator")
    queries_of(client, wave_url(plan, 1))  # the first request of a session may warm caches

    ten = queries_of(client, wave_url(plan, 1))
    with django_assert_num_queries(len(ten)):
        response = client.get(wave_url(plan, 2))
    with django_assert_num_queries(len(ten)):
        filtered = client.get(wave_url(plan, 2, state="failed"))
    with django_assert_num_queries(len(ten)):
        last_page = client.get(wave_url(plan, 2, page="10"))

    # The session and user, permissions, roles; the plan, its waves, the wave's counts by state,
    # the page's count and rows, the approvals; the banner is cached.
    assert len(ten) <= 12, "\n".join(ten)
    html = response.content.decode()
    assert "1000 clusters" in html
    assert f"Clusters 1{DASH}100 of 1000" in html
    assert html.count("<tr data-target=") == 100
    assert "Failed 3" in html
    assert 'data-testid="next-page"' in html
    assert filtered.content.decode().count("<tr data-target=") == 3
    assert f"Clusters 901{DASH}1000 of 1000" in last_page.content.decode()
    assert not any('FROM "fleet_cluster" WHERE' in sql for sql in ten)  # clusters are joined


def test_the_wave_panel_is_as_cheap_as_the_page(client_as, plan, django_assert_max_num_queries):
    client = client_as("viewer")
    url = reverse("rollout:wave_panel", kwargs={"pk": plan.pk, "index": 2})
    client.get(url)

    with django_assert_max_num_queries(10):
        response = client.get(url)

    assert 'data-testid="wave-panel"' in response.content.decode()
    assert WaveStatus.PENDING.label in response.content.decode()


def test_a_done_waves_failed_cluster_offers_retry_roll_back_and_mark_done(client_as, plan):
    target = first_target(plan)
    failed(target)
    Wave.objects.filter(pk=target.wave_id).update(status=WaveStatus.DONE)

    html = client_as("operator").get(wave_url(plan, 1)).content.decode()

    assert "Retry</button>" in html  # a retry reopens the wave
    assert "Roll back</button>" in html
    assert "Mark done</button>" in html
