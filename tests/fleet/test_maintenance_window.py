"""A stored maintenance window, read out as sentences; odd shapes never fail the page."""

from __future__ import annotations

import pytest

from fleet.maintenance import NO_WINDOW, describe


def schedule(kind: dict, **window) -> dict:
    return {
        "name": "aksManagedNodeOSUpgradeSchedule",
        "properties": {
            "maintenanceWindow": {
                "schedule": kind,
                "durationHours": 4,
                "utcOffset": "-05:00",
                "startTime": "01:00",
                **window,
            }
        },
    }


def test_no_window():
    assert describe({}) == [NO_WINDOW]
    assert describe(None) == [NO_WINDOW]


@pytest.mark.parametrize(
    ("kind", "sentence"),
    [
        (
            {"weekly": {"intervalWeeks": 1, "dayOfWeek": "Sunday"}},
            "Every week on Sunday at 01:00 (UTC-05:00) for 4 hours.",
        ),
        (
            {"weekly": {"intervalWeeks": 2, "dayOfWeek": "Friday"}},
            "Every 2 weeks on Friday at 01:00 (UTC-05:00) for 4 hours.",
        ),
        ({"daily": {"intervalDays": 1}}, "Every day at 01:00 (UTC-05:00) for 4 hours."),
        (
            {"absoluteMonthly": {"intervalMonths": 1, "dayOfMonth": 15}},
            "On day 15 of every month at 01:00 (UTC-05:00) for 4 hours.",
        ),
        (
            {"relativeMonthly": {"intervalMonths": 3, "weekIndex": "First", "dayOfWeek": "Monday"}},
            "On the first Monday of every 3 months at 01:00 (UTC-05:00) for 4 hours.",
        ),
    ],
)
def test_each_kind_of_schedule(kind, sentence):
    assert describe(schedule(kind)) == [
        "Node OS upgrade schedule (aksManagedNodeOSUpgradeSchedule).",
        sentence,
    ]


def test_dates_it_may_not_run_on_are_listed():
    window = schedule(
        {"daily": {"intervalDays": 1}},
        notAllowedDates=[{"start": "2025-12-24", "end": "2025-12-26"}],
    )

    assert describe(window)[-1] == "Not allowed from 2025-12-24 to 2025-12-26."


def test_the_default_configuration_lists_its_hours():
    window = {
        "name": "default",
        "properties": {
            "timeInWeek": [{"day": "Saturday", "hourSlots": [1, 2, 3, 4, 22]}],
            "notAllowedTime": [],
        },
    }

    assert describe(window) == [
        "Default maintenance configuration (default).",
        "Saturday 01:00 to 05:00, 22:00 to 23:00 (UTC).",
    ]


@pytest.mark.parametrize(
    "window",
    [
        {"name": "default"},
        {"name": "aksManagedNodeOSUpgradeSchedule", "properties": {"maintenanceWindow": {}}},
        {"properties": {"maintenanceWindow": {"schedule": {"hourly": {}}}}},
        {"properties": {"timeInWeek": ["Monday"], "notAllowedTime": "soon"}},
        ["not", "a", "dict"],
    ],
)
def test_a_shape_it_does_not_know_is_shown_as_it_is(window):
    lines = describe(window)

    assert lines
    assert any(line.startswith("A window Wavegate cannot describe:") for line in lines)
