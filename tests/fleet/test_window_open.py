"""Whether a stored maintenance window is open at a moment: every schedule kind, offsets,
windows past midnight, dates it may not run on, and agreement with aksim's AKS rule."""

from __future__ import annotations

import datetime

import pytest

from aksim.aks import _in_maintenance_window
from aksim.generate import generate_fleet
from fleet.maintenance import UnreadableWindow, window_open

UTC = datetime.UTC


def at(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text).replace(tzinfo=UTC)


def recurring(
    schedule: dict, start: str = "22:00", hours: int = 4, offset: str = "+00:00", **extra
) -> dict:
    return {
        "name": "aksManagedNodeOSUpgradeSchedule",
        "properties": {
            "maintenanceWindow": {
                "schedule": schedule,
                "startTime": start,
                "durationHours": hours,
                "utcOffset": offset,
                **extra,
            }
        },
    }


SATURDAYS = recurring({"weekly": {"dayOfWeek": "Saturday", "intervalWeeks": 1}})


@pytest.mark.parametrize(
    ("moment", "open_"),
    [
        ("2026-11-28T21:59:00", False),  # Saturday, a minute early
        ("2026-11-28T22:00:00", True),
        ("2026-11-29T01:59:00", True),  # past midnight, into Sunday
        ("2026-11-29T02:00:00", False),
        ("2026-11-27T23:00:00", False),  # Friday
    ],
)
def test_a_weekly_window_opens_on_its_day_and_runs_past_midnight(moment, open_):
    assert window_open(SATURDAYS, at(moment)) is open_


def test_the_utc_offset_moves_the_window():
    window = recurring({"weekly": {"dayOfWeek": "Saturday"}}, start="02:00", offset="+05:30")

    assert window_open(window, at("2026-11-27T20:30:00"))  # 02:00 Saturday in +05:30
    assert not window_open(window, at("2026-11-28T02:00:00"))


def test_every_second_week_counts_from_the_start_date():
    window = recurring(
        {"weekly": {"dayOfWeek": "Saturday", "intervalWeeks": 2}}, startDate="2026-11-21"
    )

    assert window_open(window, at("2026-11-21T23:00:00"))
    assert not window_open(window, at("2026-11-28T23:00:00"))
    assert window_open(window, at("2026-12-05T23:00:00"))


def test_daily_monthly_and_relative_monthly_schedules():
    daily = recurring({"daily": {"intervalDays": 1}}, start="03:00", hours=2)
    monthly = recurring({"absoluteMonthly": {"dayOfMonth": 15, "intervalMonths": 1}})
    last_friday = recurring(
        {"relativeMonthly": {"weekIndex": "Last", "dayOfWeek": "Friday", "intervalMonths": 1}}
    )
    second_tuesday = recurring(
        {"relativeMonthly": {"weekIndex": "Second", "dayOfWeek": "Tuesday", "intervalMonths": 1}}
    )

    assert window_open(daily, at("2026-11-25T04:00:00"))
    assert not window_open(daily, at("2026-11-25T05:00:00"))
    assert window_open(monthly, at("2026-12-15T23:00:00"))
    assert not window_open(monthly, at("2026-12-14T23:00:00"))
    assert window_open(last_friday, at("2026-11-27T23:00:00"))
    assert not window_open(last_friday, at("2026-11-20T23:00:00"))
    assert window_open(second_tuesday, at("2026-11-10T23:00:00"))
    assert not window_open(second_tuesday, at("2026-11-03T23:00:00"))


def test_dates_it_may_not_run_on_and_its_start_and_end_dates_close_it():
    window = recurring(
        {"daily": {"intervalDays": 1}},
        startDate="2026-11-01",
        endDate="2026-12-31",
        notAllowedDates=[{"start": "2026-11-26", "end": "2026-11-27"}],
    )

    assert window_open(window, at("2026-11-25T23:00:00"))
    assert not window_open(window, at("2026-11-26T23:00:00"))
    assert not window_open(window, at("2026-10-30T23:00:00"))
    assert not window_open(window, at("2027-01-02T23:00:00"))


def test_the_default_configurations_hour_slots_in_utc():
    window = {
        "name": "default",
        "properties": {
            "timeInWeek": [{"day": "Sunday", "hourSlots": [1, 2]}],
            "notAllowedTime": [{"start": "2026-12-06T00:00:00Z", "end": "2026-12-07T00:00:00Z"}],
        },
    }

    assert window_open(window, at("2026-11-29T02:30:00"))
    assert not window_open(window, at("2026-11-29T03:00:00"))
    assert not window_open(window, at("2026-12-06T01:30:00"))


def test_no_window_is_always_open_and_an_unknown_shape_is_unreadable():
    assert window_open({}, at("2026-11-26T12:00:00"))
    with pytest.raises(UnreadableWindow):
        window_open(
            {"name": "x", "properties": {"maintenanceWindow": {"schedule": {"hourly": {}}}}},
            at("2026-11-26T12:00:00"),
        )
    with pytest.raises(UnreadableWindow):
        window_open("every night", at("2026-11-26T12:00:00"))


def test_it_agrees_with_aksims_aks_rule_for_every_generated_window():
    fleet = generate_fleet(300, 3, 7, "demo")
    windows = [c for c in fleet.clusters if c.maintenance.get("aksManagedNodeOSUpgradeSchedule")]
    assert windows
    start = at("2026-11-23T00:00:00")
    for cluster in windows:
        stored = {
            "name": "aksManagedNodeOSUpgradeSchedule",
            "properties": cluster.maintenance["aksManagedNodeOSUpgradeSchedule"],
        }
        for quarter in range(0, 7 * 24 * 4, 3):
            moment = start + datetime.timedelta(minutes=15 * quarter)
            window = cluster.maintenance["aksManagedNodeOSUpgradeSchedule"]["maintenanceWindow"]
            assert window_open(stored, moment) == _in_maintenance_window(window, moment), (
                cluster.name,
                moment,
            )
