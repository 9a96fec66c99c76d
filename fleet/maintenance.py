"""A cluster's stored maintenance window, told in plain sentences, and whether it is open.

The sync stores the configuration that governs node reimages as Azure returns it:
{"name": "aksManagedNodeOSUpgradeSchedule" | "default", "properties": {...}}, or {} for none.
Azure adds schedule kinds now and then, so an unknown shape is shown as it is, never refused.
"""

from __future__ import annotations

import datetime
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


# --- is the window open? ----------------------------------------------------------------------

_WEEK_INDEX = {"First": 0, "Second": 1, "Third": 2, "Fourth": 3}


class UnreadableWindow(ValueError):
    """A window whose shape Wavegate cannot evaluate: the caller treats it as closed."""


def window_open(window: Any, now: datetime.datetime) -> bool:
    """Whether the stored configuration lets AKS reimage nodes at `now` (aware, any zone).
    No configuration: always. Raises UnreadableWindow for a shape it cannot evaluate."""
    if not window:
        return True
    if not isinstance(window, dict) or not isinstance(window.get("properties"), dict):
        raise UnreadableWindow(_as_is(window))
    properties = window["properties"]
    try:
        recurring = properties.get("maintenanceWindow")
        if isinstance(recurring, dict):
            return _recurring_open(recurring, now)
        slots = properties.get("timeInWeek")
        if isinstance(slots, list) and slots:
            return _slots_open(slots, properties.get("notAllowedTime") or [], now)
    except (KeyError, TypeError, ValueError) as exc:
        raise UnreadableWindow(f"{_as_is(window)} ({exc})") from exc
    raise UnreadableWindow(_as_is(window))


def _offset(text: str) -> datetime.timedelta:
    sign = -1 if text.startswith("-") else 1
    hours, minutes = (int(x) for x in text.lstrip("+-").split(":"))
    return sign * datetime.timedelta(hours=hours, minutes=minutes)


def _date(text: Any) -> datetime.date | None:
    return datetime.date.fromisoformat(str(text)[:10]) if text else None


def _recurring_open(window: dict[str, Any], now: datetime.datetime) -> bool:
    local = now.astimezone(datetime.UTC).replace(tzinfo=None) + _offset(
        window.get("utcOffset") or "+00:00"
    )
    hour, minute = (int(x) for x in str(window["startTime"]).split(":")[:2])
    duration = datetime.timedelta(hours=float(window["durationHours"]))
    first, last = _date(window.get("startDate")), _date(window.get("endDate"))
    banned = [(_date(s["start"]), _date(s["end"])) for s in window.get("notAllowedDates") or []]
    for days_back in range(int(duration / datetime.timedelta(days=1)) + 2):
        day = (local - datetime.timedelta(days=days_back)).date()
        if (first and day < first) or (last and day > last):
            continue
        if not _scheduled(window["schedule"], day, first):
            continue
        start = datetime.datetime.combine(day, datetime.time(hour, minute))
        if start <= local < start + duration:
            return not any(a and b and a <= local.date() <= b for a, b in banned)
    return False


def _scheduled(schedule: dict[str, Any], day: datetime.date, anchor: datetime.date | None) -> bool:
    """Whether the schedule opens a window on this (local) day."""
    anchor = anchor or day
    if "weekly" in schedule:
        weekly = schedule["weekly"]
        if day.strftime("%A") != weekly["dayOfWeek"]:
            return False
        interval = int(weekly.get("intervalWeeks") or 1)
        weeks = (day - anchor).days // 7
        return weeks % interval == 0
    if "daily" in schedule:
        interval = int(schedule["daily"].get("intervalDays") or 1)
        return (day - anchor).days % interval == 0
    months = (day.year - anchor.year) * 12 + day.month - anchor.month
    if "absoluteMonthly" in schedule:
        monthly = schedule["absoluteMonthly"]
        interval = int(monthly.get("intervalMonths") or 1)
        return day.day == int(monthly["dayOfMonth"]) and months % interval == 0
    if "relativeMonthly" in schedule:
        monthly = schedule["relativeMonthly"]
        interval = int(monthly.get("intervalMonths") or 1)
        if day.strftime("%A") != monthly["dayOfWeek"] or months % interval:
            return False
        index = monthly["weekIndex"]
        if index == "Last":
            return (day + datetime.timedelta(days=7)).month != day.month
        return (day.day - 1) // 7 == _WEEK_INDEX[index]
    raise ValueError(f"unknown schedule {sorted(schedule)}")


def _slots_open(slots: list[Any], banned: list[Any], now: datetime.datetime) -> bool:
    """The `default` configuration: hour slots per weekday, in UTC, minus notAllowedTime."""
    utc = now.astimezone(datetime.UTC)
    for span in banned:
        start = datetime.datetime.fromisoformat(str(span["start"]).replace("Z", "+00:00"))
        end = datetime.datetime.fromisoformat(str(span["end"]).replace("Z", "+00:00"))
        if start.tzinfo is None:
            start, end = start.replace(tzinfo=datetime.UTC), end.replace(tzinfo=datetime.UTC)
        if start <= utc < end:
            return False
    for slot in slots:
        if slot["day"] == utc.strftime("%A"):
            hours = slot.get("hourSlots") or list(range(24))
            if utc.hour in hours:
                return True
    return False


# --- when does it open next? ------------------------------------------------------------------

HORIZON = datetime.timedelta(weeks=8)


def next_open(
    window: Any, after: datetime.datetime, within: datetime.timedelta = HORIZON
) -> datetime.datetime | None:
    """The first moment from `after` (aware) at which `window_open` holds: `after` itself when
    it is open then, else the next opening within `within`, else None. Raises UnreadableWindow.

    A window can only open at one of its scheduled starts, at an hour (the `default`
    configuration's hour slots), or when a span that bans it ends: those are the moments tried,
    each with `window_open`, so the answer never differs from what `window_open` says."""
    if window_open(window, after):
        return after
    until = after + within
    properties = window["properties"]
    try:
        if isinstance(properties.get("maintenanceWindow"), dict):
            moments = _recurring_starts(properties["maintenanceWindow"], after, until)
        else:
            moments = _slot_starts(properties.get("notAllowedTime") or [], after, until)
    except (KeyError, TypeError, ValueError) as exc:
        raise UnreadableWindow(f"{_as_is(window)} ({exc})") from exc
    for moment in sorted(m for m in moments if after < m <= until):
        if window_open(window, moment):
            return moment
    return None


def _recurring_starts(
    window: dict[str, Any], after: datetime.datetime, until: datetime.datetime
) -> list[datetime.datetime]:
    offset = _offset(window.get("utcOffset") or "+00:00")
    hour, minute = (int(x) for x in str(window["startTime"]).split(":")[:2])
    first = _date(window.get("startDate"))
    day = (after.astimezone(datetime.UTC) + offset).date() - datetime.timedelta(days=1)
    last = (until.astimezone(datetime.UTC) + offset).date()
    local_moments = []
    while day <= last:
        if _scheduled(window["schedule"], day, first):
            local_moments.append(datetime.datetime.combine(day, datetime.time(hour, minute)))
        day += datetime.timedelta(days=1)
    for span in window.get("notAllowedDates") or []:
        end = _date(span["end"])
        if end is not None:  # the day after a banned span, from its midnight
            local_moments.append(datetime.datetime.combine(end, datetime.time()))
            local_moments[-1] += datetime.timedelta(days=1)
    return [(m - offset).replace(tzinfo=datetime.UTC) for m in local_moments]


def _slot_starts(
    banned: list[Any], after: datetime.datetime, until: datetime.datetime
) -> list[datetime.datetime]:
    hour = after.astimezone(datetime.UTC).replace(minute=0, second=0, microsecond=0)
    moments = []
    while hour <= until:
        hour += datetime.timedelta(hours=1)
        moments.append(hour)
    for span in banned:
        end = datetime.datetime.fromisoformat(str(span["end"]).replace("Z", "+00:00"))
        moments.append(end if end.tzinfo else end.replace(tzinfo=datetime.UTC))
    return moments
