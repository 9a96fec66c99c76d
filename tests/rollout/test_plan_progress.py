"""A plan's page says how far it is and when it can end (rollout/progress.py): a progress bar
and counts for the plan and each wave, the earliest finish from concurrency, soak, approvals
still needed and maintenance windows, and who the wave awaiting approval waits for."""

from __future__ import annotations

import datetime
import re

import pytest
from django.urls import reverse
from django.utils import timezone

from rollout import actions, planning, progress
from rollout.choices import TargetStatus, WaveStatus
from rollout.models import RolloutPlan, RolloutTarget, Wave
from tests.factories import make_cluster, make_user, submitted_plan

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def thirty_minute_operations(settings):
    settings.WAVEGATE_ESTIMATED_OPERATION_MINUTES = 30


def text(html: str, testid: str) -> str:
    found = re.search(rf'data-testid="{testid}"[^>]*>(.*?)</', html, re.S)
    assert found, f"no {testid} on the page"
    return re.sub(r"<[^>]+>", "", found.group(1)).strip()


def block(html: str, testid: str) -> str:
    found = re.search(rf'data-testid="{testid}"[^>]*>(.*?)</p>', html, re.S)
    assert found, f"no {testid} on the page"
    return " ".join(re.sub(r"<[^>]+>", "", found.group(1)).split())


def page(client, plan: RolloutPlan) -> str:
    return client.get(reverse("rollout:plan", kwargs={"pk": plan.pk})).content.decode()


@pytest.fixture
def plan(personas):
    """Three waves of two clusters, one at a time, 10 min soak, windows ignored."""
    for i in range(6):
        make_cluster(name=f"aks-{i}")
    return submitted_plan(
        personas["operator"],
        name="p",
        wave_spec="2, 4, 100%",
        concurrency=1,
        soak_minutes=10,
        respect_maintenance_windows=False,
    )


def test_a_submitted_plan_estimates_every_wave_and_counts_the_approvals_it_assumes(client_as, plan):
    html = page(client_as("viewer"), plan)

    # Each wave: two clusters one after the other (2 x 30 min), then 10 min of soak.
    assert text(html, "plan-finish-in") == "3 h 30 min"
    assert "if the 3 approvals still needed are given as soon as asked" in block(
        html, "plan-estimate"
    )
    assert text(html, "count-left") == "6"
    assert text(html, "count-done") == "0"
    assert "0 of 6 clusters done, 6 not started" in text(html, "plan-progress-summary")
    # The operator wrote it: the wave waits for the approver or the admin, not for them.
    awaits = block(html, "wave-awaits")
    assert awaits == "Waits for 1 approval from one of admin-user, approver-user."


def test_as_a_wave_runs_the_counts_and_the_estimate_follow(client_as, personas, plan):
    actions.approve_wave(plan.waves.get(index=1), acting_user=personas["approver"], comment="ok")
    first = plan.waves.get(index=1)
    Wave.objects.filter(pk=first.pk).update(status=WaveStatus.RUNNING)
    done, changing = first.targets.order_by("position")
    RolloutTarget.objects.filter(pk=done.pk).update(status=TargetStatus.ENABLED)
    RolloutTarget.objects.filter(pk=changing.pk).update(status=TargetStatus.ENABLING)

    html = page(client_as("viewer"), plan)

    assert [text(html, f"count-{k}") for k in ("done", "in-flight", "left", "failed")] == [
        "1",
        "1",
        "4",
        "0",
    ]
    assert text(html, "plan-percent") == "16%"
    # Wave 1: the cluster still changing (30 min) and its soak; waves 2 and 3: 70 min each.
    assert text(html, "plan-finish-in") == "3 h"
    assert "if the 2 approvals still needed" in block(html, "plan-estimate")
    assert "50% settled" in block(html, "wave-progress")


def test_a_soaking_wave_ends_with_its_soak(client_as, plan):
    waves = list(plan.waves.order_by("index"))
    for wave in waves[:2]:
        wave.targets.update(status=TargetStatus.ENABLED)
    Wave.objects.filter(pk=waves[0].pk).update(status=WaveStatus.DONE)
    Wave.objects.filter(pk=waves[1].pk).update(
        status=WaveStatus.SOAKING, soak_until=timezone.now() + datetime.timedelta(minutes=8)
    )

    html = page(client_as("viewer"), plan)

    # 8 min of soak left, then wave 3: 70 min.
    assert text(html, "plan-finish-in") in {"1 h 18 min", "1 h 17 min"}
    assert "4 of 6 clusters done" in text(html, "plan-progress-summary")


def test_a_closed_maintenance_window_moves_the_finish(client_as, personas):
    now = timezone.now()
    opens = (now + datetime.timedelta(hours=5)).replace(second=0, microsecond=0)
    make_cluster(
        name="aks-late",
        maintenance_window={
            "name": "aksManagedNodeOSUpgradeSchedule",
            "properties": {
                "maintenanceWindow": {
                    "schedule": {"daily": {"intervalDays": 1}},
                    "startTime": opens.strftime("%H:%M"),
                    "durationHours": 2,
                    "utcOffset": "+00:00",
                }
            },
        },
    )
    plan = submitted_plan(
        personas["operator"], name="w", wave_spec="100%", concurrency=1, soak_minutes=10
    )

    html = page(client_as("viewer"), plan)

    finish_in = text(html, "plan-finish-in")
    assert finish_in.startswith("5 h"), finish_in  # the window opens in 5 h, then 30 + 10 min
    assert "including the wait of 1 cluster for their maintenance windows" in block(
        html, "plan-estimate"
    )


def test_a_finished_plan_shows_no_estimate_and_stops_polling(client_as, plan):
    plan.targets.update(status=TargetStatus.ENABLED)
    plan.waves.update(status=WaveStatus.DONE)
    RolloutPlan.objects.filter(pk=plan.pk).update(status="completed")

    html = page(client_as("viewer"), plan)

    assert 'data-testid="plan-estimate"' not in html
    assert text(html, "plan-percent") == "100%"
    assert "hx-trigger" not in html.split('<div id="plan-cards"')[1].split(">")[0]
    assert "not refreshing while the plan is not running" in html


def test_a_wave_nobody_may_approve_says_so(client_as, personas, plan):
    # The approver and the admin have left; the only other approver wrote the plan.
    for who in ("approver", "admin"):
        personas[who].is_active = False
        personas[who].save()
    author = make_user("approver", "operator", username="wrote-it-too")
    edited = actions.edit_plan(plan, acting_user=author, concurrency=2)
    edited = actions.submit_plan(edited, acting_user=author)

    html = page(client_as("viewer"), edited)

    assert block(html, "wave-awaits").startswith("Waits for 1 approval from nobody:")


def test_the_plans_list_follows_live_plans_and_slows_down_once_none_is(client_as, plan):
    client = client_as("viewer")

    while_live = client.get(reverse("rollout:plans")).content.decode()
    polled = client.get(reverse("rollout:plans"), {"live": "1"}).content.decode()
    plan.targets.update(status=TargetStatus.ENABLED)
    plan.waves.update(status=WaveStatus.DONE)
    RolloutPlan.objects.filter(pk=plan.pk).update(status="completed")
    ended = client.get(reverse("rollout:plans"), {"live": "1"}).content.decode()

    assert 'hx-get="/plans/?live=1&amp;page=1" hx-trigger="every 5s"' in while_live
    assert "<html" not in polled
    assert 'data-plan="' in polled
    assert 'hx-trigger="every 30s"' in ended  # others create and submit plans meanwhile
    assert "Completed" in ended


@pytest.mark.parametrize("goal", ["BpfVeth", "None"])
def test_every_cluster_state_is_counted_once(goal):
    counts = {state: n for n, state in enumerate(TargetStatus, 1)}

    found = progress.progress(counts, goal)

    assert found.total == sum(counts.values())
    assert sum(s.count for s in found.segments) == found.total
    rolled_back = counts[TargetStatus.ROLLED_BACK]
    enabled = counts[TargetStatus.ENABLED]
    # A rollback plan is done with a cluster once it is back at None; an enabling plan is not.
    assert found.done == (enabled + rolled_back if goal == "None" else enabled)


def daily(opens: datetime.datetime, hours: int) -> dict:
    return {
        "name": "aksManagedNodeOSUpgradeSchedule",
        "properties": {
            "maintenanceWindow": {
                "schedule": {"daily": {"intervalDays": 1}},
                "startTime": opens.strftime("%H:%M"),
                "durationHours": hours,
                "utcOffset": "+00:00",
            }
        },
    }


def test_clusters_waiting_for_a_window_share_the_slots_with_the_others():
    now = timezone.now().replace(minute=0, second=0, microsecond=0) + datetime.timedelta(minutes=1)
    later = daily(now + datetime.timedelta(hours=1), 4)
    members = [progress.Window({})] * 4 + [progress.Window(later)] * 2

    (found,) = planning.estimate(
        [members], concurrency=1, soak_minutes=0, operation_minutes=30, start=now,
        respect_windows=True,
    )  # fmt: skip

    # The four that can start take the one slot for 2 h; the two others follow, one by one.
    assert found.minutes == 180
    assert found.waiting == 0  # by then their window is open: they waited for the slot


def test_a_window_open_now_may_have_closed_when_a_slot_comes_free():
    now = timezone.now().replace(second=0, microsecond=0)
    short = daily(now - datetime.timedelta(minutes=1), 1)  # open now, for about an hour
    members = [progress.Window(short)] * 4

    (found,) = planning.estimate(
        [members], concurrency=1, soak_minutes=0, operation_minutes=30, start=now,
        respect_windows=True,
    )  # fmt: skip

    # Two fit in the window open now; the third waits for tomorrow's, the fourth follows it.
    assert 24 * 60 < found.minutes < 26 * 60
    assert found.waiting == 1


def test_a_wave_needing_more_approvers_than_there_are_gives_no_finish_time(client_as, personas):
    for i in range(2):
        make_cluster(name=f"aks-{i}")
    plan = submitted_plan(personas["operator"], name="three", wave_spec="100%", approvals_needed=3)

    html = page(client_as("viewer"), plan)

    # Only the approver and the admin may approve: three approvals can never be given.
    assert 'data-testid="plan-finish-at"' not in html
    assert "needs 3 more approvals and only 2 people who did not write the plan" in html
    assert "too few" in block(html, "wave-awaits")


def test_a_paused_plan_gives_no_finish_time(client_as, personas, plan):
    actions.pause_plan(plan, acting_user=personas["operator"], reason="freeze")

    html = page(client_as("viewer"), plan)

    assert 'data-testid="plan-finish-at"' not in html
    assert "Paused: no finish time while it is paused" in block(html, "plan-estimate")


def test_a_finished_plan_follows_its_clusters_rolling_back(client_as, plan):
    plan.waves.update(status=WaveStatus.DONE)
    plan.targets.update(status=TargetStatus.ENABLED)
    plan.targets.filter(pk=plan.targets.first().pk).update(status=TargetStatus.ROLLING_BACK)
    RolloutPlan.objects.filter(pk=plan.pk).update(status="completed")

    html = page(client_as("viewer"), plan)
    overview = client_as("viewer").get(reverse("fleet:overview")).content.decode()

    assert 'hx-trigger="every 3s"' in html.split('<div id="plan-cards"')[1].split(">")[0]
    assert re.search(r'data-testid="in-flight">1<', overview)


def test_clusters_a_rollback_plan_put_back_today_count_as_rolled_back(client_as, personas):
    make_cluster(name="aks-back", acceleration_mode="BpfVeth")
    plan = submitted_plan(personas["operator"], name="back", wave_spec="100%", goal="None")
    plan.targets.update(status=TargetStatus.ENABLED, finished_at=timezone.now())

    overview = client_as("viewer").get(reverse("fleet:overview")).content.decode()

    assert re.search(r'data-testid="rolled-back-today">1<', overview)
    assert re.search(r'data-testid="enabled-today">0<', overview)
