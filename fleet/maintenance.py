"""A cluster's stored maintenance window, told in plain sentences.

The sync stores the configuration that governs node reimages as Azure returns it:
{"name": "aksManagedNodeOSUpgradeSchedule" | "default", "properties": {...}}, or {} for none.
Azure adds schedule kinds now and then, so an unknown shape is shown as it is, never refused.
"""

from __future__ import annotations

import json
from typing import Any

NO_WINDOW = "No maintenance window: Azure may reimage nodes at any time."

CONFIGURATIONS = {
    "aksManagedNodeOSUpgradeSchedule": "Node OS upgrade schedule",
    "default": "Default maintenance configuration",
}


def describe(window: Any) -> list[str]:
    """Sentences an operator reads: which configuration governs, when it opens, exceptions."""
    if not window:
        return [NO_WINDOW]
    if not isinstance(window, dict):
        return [_as_is(window)]
    name = str(window.get("name", ""))
    properties = window.get("properties")
    properties = properties if isinstance(properties, dict) else {}
    lines = [f"{CONFIGURATIONS.get(name, name or 'Unnamed configuration')} ({name or '?'})."]
    recurring = properties.get("maintenanceWindow")
    if isinstance(recurring, dict):
        lines.append(_recurring(recurring))
        lines.extend(_not_allowed_dates(recurring.get("notAllowedDates")))
    slots = properties.get("timeInWeek")
    if isinstance(slots, list) and slots:
        lines.extend(_time_in_week(slot) for slot in slots)
    lines.extend(_not_allowed_dates(properties.get("notAllowedTime")))
    if len(lines) == 1:
        lines.append(_as_is(properties))
    return lines


def _recurring(window: dict[str, Any]) -> str:
    schedule = window.get("schedule")
    when = _schedule(schedule) if isinstance(schedule, dict) else None
    if when is None:
        return _as_is(window)
    start = window.get("startTime") or "?"
    offset = window.get("utcOffset") or "+00:00"
    hours = window.get("durationHours")
    text = f"{when} at {start} (UTC{offset})"
    if hours:
        text += f" for {hours} hour{'s' if hours != 1 else ''}"
    if window.get("startDate"):
        text += f", starting {window['startDate']}"
    if window.get("endDate"):
        text += f", until {window['endDate']}"
    return text + "."


def _every(count: Any, unit: str) -> str:
    return f"every {unit}" if count in (None, 1) else f"every {count} {unit}s"


def _schedule(schedule: dict[str, Any]) -> str | None:
    if isinstance(schedule.get("weekly"), dict):
        weekly = schedule["weekly"]
        every = _every(weekly.get("intervalWeeks"), "week").capitalize()
        return f"{every} on {weekly.get('dayOfWeek', '?')}"
    if isinstance(schedule.get("daily"), dict):
        return _every(schedule["daily"].get("intervalDays"), "day").capitalize()
    if isinstance(schedule.get("absoluteMonthly"), dict):
        monthly = schedule["absoluteMonthly"]
        every = _every(monthly.get("intervalMonths"), "month")
        return f"On day {monthly.get('dayOfMonth', '?')} of {every}"
    if isinstance(schedule.get("relativeMonthly"), dict):
        monthly = schedule["relativeMonthly"]
        return (
            f"On the {str(monthly.get('weekIndex', '?')).lower()} {monthly.get('dayOfWeek', '?')} "
            f"of {_every(monthly.get('intervalMonths'), 'month')}"
        )
    return None


def _time_in_week(slot: Any) -> str:
    if not isinstance(slot, dict):
        return _as_is(slot)
    hours = sorted(h for h in slot.get("hourSlots") or [] if isinstance(h, int))
    if not hours:
        return f"{slot.get('day', '?')}: all day (UTC)."
    ranges: list[tuple[int, int]] = []
    for hour in hours:
        if ranges and ranges[-1][1] == hour:
            ranges[-1] = (ranges[-1][0], hour + 1)
        else:
            ranges.append((hour, hour + 1))
    spans = ", ".join(f"{start:02d}:00 to {end:02d}:00" for start, end in ranges)
    return f"{slot.get('day', '?')} {spans} (UTC)."


def _not_allowed_dates(spans: Any) -> list[str]:
    if not isinstance(spans, list):
        return []
    return [
        f"Not allowed from {span.get('start', '?')} to {span.get('end', '?')}."
        if isinstance(span, dict)
        else _as_is(span)
        for span in spans
    ]


def _as_is(value: Any) -> str:
    return f"A window Wavegate cannot describe: {json.dumps(value, sort_keys=True, default=str)}"
