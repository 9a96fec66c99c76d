"""The new-plan preview and the node disruption policy (issue 15): Block is set apart, a cluster
allowed only in its window waits for it (and the estimate with it) when the plan respects
windows, and is set apart when the plan does not."""

from __future__ import annotations

import datetime
import re

import pytest
from django.urls import reverse

from fleet.choices import SyncTrigger
from fleet.sync import run_sync
from rollout.models import RolloutPlan
from rollout.planning import BPFVETH, NONE, Candidate, Selection, cut, estimate
from tests.aksim import builders
from tests.factories import plan_form

pytestmark = pytest.mark.django_db

SCHEDULE = "aksManagedNodeOSUpgradeSchedule"


def changeable(aksim, count: int):
    """Changeable clusters with no maintenance configuration (the engine would wait for it)."""
    found = builders.changeable(aksim, count)
    for cluster in found:
        aksim.admin("POST", f"clusters/{cluster.key}/change", {"maintenance": {}})
    return found


def biweekly_today(off_week: bool) -> dict:
    """Every other week on today's weekday, all day (UTC); this week off when `off_week`."""
    today = datetime.datetime.now(datetime.UTC).date()
    start = today - datetime.timedelta(weeks=1 if off_week else 0)
    return {
        "maintenanceWindow": {
            "schedule": {"weekly": {"intervalWeeks": 2, "dayOfWeek": today.strftime("%A")}},
            "durationHours": 24,
            "utcOffset": "+00:00",
            "startDate": start.isoformat(),
            "startTime": "00:00",
        }
    }


def in_window_only(aksim, cluster, *, off_week: bool) -> None:
    aksim.admin(
        "POST",
        f"clusters/{cluster.key}/change",
        {
            "nodeDisruptionPolicy": "AllowDuringMaintenanceWindow",
            "maintenance": {SCHEDULE: biweekly_today(off_week)},
        },
    )


def preview(client, names, **fields) -> str:
    form = plan_form(names="\n".join(c.name for c in names), wave_spec="1, 100%", **fields)
    response = client.post(reverse("rollout:plan_preview"), form)
    assert response.status_code == 200
    return response.content.decode()


def set_apart(page: str) -> dict[str, str]:
    block = page.split('data-testid="preview-excluded">', 1)[1].split("</ul>", 1)[0]
    return dict(re.findall(r"<li><strong>([^<]+)</strong>: (.*?)</li>", block))


def wave_names(page: str) -> list[str]:
    return re.findall(r'<tr data-testid="preview-wave">\s*<td class="num">\d+</td>\s*'
                      r'<td class="num" data-testid="preview-wave-size">\d+</td>\s*<td>([^<]*)',
                      page)  # fmt: skip


def test_an_off_week_of_a_biweekly_window_waits_a_week_in_a_plan_that_respects_windows(
    wavegate_on_aksim, client_as
):
    aksim = wavegate_on_aksim
    waiting, free = changeable(aksim, 2)
    in_window_only(aksim, waiting, off_week=True)
    assert aksim.truth(waiting)["refusal"]["code"] == "OperationOutsideNodeDisruptionWindow"
    run_sync(SyncTrigger.COMMAND)
    next_week = datetime.datetime.now(datetime.UTC).date() + datetime.timedelta(weeks=1)

    page = preview(client_as("operator"), [waiting, free])

    assert "0 set apart" in page
    notes = page.split('data-testid="preview-disruption">', 1)[1].split("</ul>", 1)[0]
    assert f"<strong>{waiting.name}</strong>" in notes
    assert f"waits for its maintenance window, next opens {next_week:%Y-%m-%d} 00:00 UTC" in notes
    assert free.name not in notes
    assert 'data-testid="preview-waiting">1 cluster waits' in page
    # The wave lasts until the window opens next week: 6 days and some hours at least.
    duration = page.split('data-testid="preview-duration">', 1)[1].split("<", 1)[0]
    assert re.match(r"[67] d ", duration), duration
    assert not RolloutPlan.objects.exists()


def test_a_plan_that_does_not_wait_for_windows_sets_the_closed_ones_apart(
    wavegate_on_aksim, client_as
):
    aksim = wavegate_on_aksim
    closed, open_now, free = changeable(aksim, 3)
    in_window_only(aksim, closed, off_week=True)
    in_window_only(aksim, open_now, off_week=False)
    run_sync(SyncTrigger.COMMAND)
    next_week = datetime.datetime.now(datetime.UTC).date() + datetime.timedelta(weeks=1)

    page = preview(client_as("operator"), [closed, open_now, free], respect_maintenance_windows="")

    apart = set_apart(page)
    assert list(apart) == [closed.name]
    assert apart[closed.name].startswith(
        f"waits for its maintenance window, next opens {next_week:%Y-%m-%d} 00:00 UTC."
    )
    assert "This plan does not wait for maintenance windows." in apart[closed.name]
    assert sorted(n.strip() for n in ", ".join(wave_names(page)).split(",")) == sorted(
        [open_now.name, free.name]
    )
    notes = page.split('data-testid="preview-disruption">', 1)[1].split("</ul>", 1)[0]
    assert f"<strong>{open_now.name}</strong>" in notes
    assert "if its wave reaches it after the window closes, AKS refuses the change" in notes
    assert "preview-waiting" not in page


def test_block_is_set_apart_saying_an_administrator_must_allow_it(wavegate_on_aksim, client_as):
    aksim = wavegate_on_aksim
    blocked, free = changeable(aksim, 2)
    aksim.admin("POST", f"clusters/{blocked.key}/change", {"nodeDisruptionPolicy": "Block"})
    run_sync(SyncTrigger.COMMAND)

    for respect in ("on", ""):
        page = preview(client_as("operator"), [blocked, free], respect_maintenance_windows=respect)

        apart = set_apart(page)
        assert list(apart) == [blocked.name]
        assert apart[blocked.name].startswith("refused: node disruption policy Block.")
        assert "must set the cluster&#x27;s node disruption policy to Allow" in apart[blocked.name]
        assert "also not eligible" not in apart[blocked.name]
        assert wave_names(page) == [free.name]


# --- planning itself (pure) -------------------------------------------------------------------
NOW = datetime.datetime(2026, 12, 4, 10, 0, tzinfo=datetime.UTC)  # a Friday
WINDOW = {
    "name": SCHEDULE,
    "properties": {
        "maintenanceWindow": {
            "schedule": {"weekly": {"intervalWeeks": 1, "dayOfWeek": "Saturday"}},
            "durationHours": 4,
            "utcOffset": "+00:00",
            "startDate": "2026-01-03",
            "startTime": "02:00",
        }
    },
}


def candidate(i: int, **fields: object) -> Candidate:
    return Candidate(i, f"aks-{i}", "s", "r", "", {}, True, **fields)


def test_a_rollback_sets_block_apart_too():
    clusters = [
        candidate(0, acceleration_mode=BPFVETH),
        candidate(1, acceleration_mode=BPFVETH, node_disruption_policy="Block"),
    ]

    plan = cut(clusters, Selection(), "100%", goal=NONE, now=NOW)

    assert [c.id for w in plan.waves for c in w] == [0]
    assert plan.excluded[0].reason.startswith("refused: node disruption policy Block.")


def test_the_estimate_waits_for_windows_closed_when_each_wave_starts():
    waiting = candidate(1, node_disruption_policy="AllowDuringMaintenanceWindow",
                        maintenance_window=WINDOW)  # fmt: skip
    plan = cut([candidate(0), waiting], Selection(), "1, 100%", now=NOW)

    assert plan.disruption[1].opens_at == datetime.datetime(2026, 12, 5, 2, tzinfo=datetime.UTC)
    respecting = estimate(plan.waves, concurrency=1, soak_minutes=30, operation_minutes=30,
                          start=NOW, respect_windows=True)  # fmt: skip
    # Wave 1 (aks-0) ends at 11:00; wave 2 waits until Saturday 02:00 (15 h), then 30 + 30 min.
    assert [(e.minutes, e.waiting) for e in respecting] == [(60, 0), (15 * 60 + 60, 1)]
    ignoring = estimate(plan.waves, concurrency=1, soak_minutes=30, operation_minutes=30,
                        start=NOW, respect_windows=False)  # fmt: skip
    assert [(e.minutes, e.waiting) for e in ignoring] == [(60, 0), (60, 0)]
