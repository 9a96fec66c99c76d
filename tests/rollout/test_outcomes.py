"""An ended wave or plan says what it did (rollout/outcomes.py): "Done" only when it changed
its clusters, "Done with failures" when some failed, "Nothing changed" when none was changed,
on the plan page, the wave page, the plans list and the cluster's rollout history."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from rollout import actions
from rollout.choices import PlanStatus, TargetStatus, WaveStatus
from rollout.models import RolloutPlan
from tests.factories import make_cluster, submitted_plan

pytestmark = pytest.mark.django_db
T = TargetStatus


def ended(plan: RolloutPlan, waves: dict[int, list[str]], status: str = PlanStatus.COMPLETED):
    """Each wave of `plan` done with its clusters in the states given, in rollout order, and
    the plan in `status`."""
    for index, states in waves.items():
        wave = plan.waves.get(index=index)
        targets = list(wave.targets.order_by("position"))
        assert len(targets) == len(states)
        for target, state in zip(targets, states, strict=True):
            type(target).objects.filter(pk=target.pk).update(status=state)
        type(wave).objects.filter(pk=wave.pk).update(status=WaveStatus.DONE)
    RolloutPlan.objects.filter(pk=plan.pk).update(status=status)


def badges(html: str, testid: str) -> list[tuple[str, str]]:
    """(style, text) of each badge marked `testid`."""
    return re.findall(
        rf'<span class="badge ([\w ]+)" data-testid="{testid}"[^>]*>([^<]*)</span>', html
    )


def detail(html: str, testid: str) -> list[str]:
    return re.findall(rf'data-testid="{testid}-detail">([^<]*)<', html)


@pytest.fixture
def plan(personas):
    """Three waves of two clusters each."""
    for i in range(6):
        make_cluster(name=f"aks-{i}")
    return submitted_plan(personas["operator"], name="p", wave_spec="2, 4, 100%")


def plan_page(client, plan: RolloutPlan) -> str:
    return client.get(reverse("rollout:plan", kwargs={"pk": plan.pk})).content.decode()


def wave_page(client, plan: RolloutPlan, index: int) -> str:
    url = reverse("rollout:wave", kwargs={"pk": plan.pk, "index": index})
    return client.get(url).content.decode()


def test_it_calls_a_wave_that_changed_nothing_nothing_changed_never_a_green_done(client_as, plan):
    ended(plan, {1: [T.ENABLED, T.ENABLED], 2: [T.SKIPPED, T.SKIPPED], 3: [T.SKIPPED] * 2})
    client = client_as("viewer")

    html = plan_page(client, plan)

    assert badges(html, "wave-status") == [
        ("ok", "Done"),
        ("unchanged", "Nothing changed"),
        ("unchanged", "Nothing changed"),
    ]
    assert detail(html, "wave-status") == [
        "2 clusters enabled",
        "2 clusters skipped",
        "2 clusters skipped",
    ]
    assert badges(html, "plan-status") == [("ok", "Completed")]
    assert detail(html, "plan-status") == ["2 clusters enabled, 4 skipped"]
    wave = wave_page(client, plan, 3)
    assert badges(wave, "wave-status") == [("unchanged", "Nothing changed")]
    assert badges(wave, "previous-status") == [("unchanged", "Nothing changed")]


def test_it_says_done_with_failures_and_counts_them(client_as, plan):
    ended(
        plan,
        {1: [T.ENABLED, T.FAILED], 2: [T.FAILED, T.BLOCKED], 3: [T.ENABLED, T.ENABLED]},
    )

    html = plan_page(client_as("viewer"), plan)

    assert badges(html, "wave-status") == [
        ("bad", "Done with failures"),
        ("bad", "Nothing changed"),
        ("ok", "Done"),
    ]
    assert detail(html, "wave-status")[:2] == [
        "1 cluster enabled, 1 failed",
        "1 cluster failed, 1 blocked by preflight",
    ]
    assert badges(html, "plan-status") == [("bad", "Completed with failures")]


def test_the_plans_list_and_the_cluster_history_show_the_outcome(client_as, plan):
    ended(plan, {1: [T.SKIPPED] * 2, 2: [T.SKIPPED] * 2, 3: [T.SKIPPED] * 2})
    client = client_as("viewer")

    listed = client.get(reverse("rollout:plans")).content.decode()
    cluster = plan.targets.order_by("position")[0].cluster_id
    history = client.get(reverse("fleet:cluster", kwargs={"pk": cluster})).content.decode()

    assert badges(listed, "plan-status") == [("unchanged", "Nothing changed")]
    assert detail(listed, "plan-status") == ["6 clusters skipped"]
    assert badges(history, "plan-status") == [("unchanged", "Nothing changed")]


def test_a_stopped_plan_keeps_its_name_and_says_what_it_did_before(client_as, plan):
    ended(plan, {1: [T.ENABLED, T.ENABLED]}, status=PlanStatus.ABORTED)

    html = plan_page(client_as("viewer"), plan)

    assert badges(html, "plan-status") == [("bad", "Aborted")]
    assert detail(html, "plan-status") == ["2 clusters enabled, 4 not started"]


def test_a_roll_back_plan_says_its_clusters_were_rolled_back(client_as, personas):
    make_cluster(name="aks-fast", acceleration_mode="BpfVeth")
    plan = submitted_plan(personas["operator"], name="back", goal="None", wave_spec="100%")
    ended(plan, {1: [T.ENABLED]})

    html = plan_page(client_as("viewer"), plan)

    assert badges(html, "wave-status") == [("ok", "Done")]
    assert detail(html, "wave-status") == ["1 cluster rolled back to None"]


def test_a_running_wave_shows_its_state(client_as, plan):
    html = plan_page(client_as("viewer"), plan)

    assert badges(html, "wave-status")[0] == ("awaiting_approval", "Awaiting approval")
    assert detail(html, "wave-status") == []


def test_a_rejection_reads_rejected(client_as, plan, personas):
    actions.reject_wave(plan.waves.get(index=1), acting_user=personas["approver"], comment="no")

    html = plan_page(client_as("viewer"), plan)

    assert '<span class="badge reject">Rejected</span> by approver-user' in html
    assert "Rejectd" not in html
