"""Where announcements go: each destination of WAVEGATE_NOTIFY_DESTINATIONS, and
WAVEGATE_WEBHOOK_URL as the destination "webhook". Read at each use; rollout/checks.py says what
is wrong with the setting at start-up, naming the destination (never its URL: a Slack or Teams
webhook's path is its secret)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings

# Every kind of announcement, in the words of the setting's "events". A pause for the failure
# budget is announced as plan_paused with this cause: a destination asks for either.
FAILURE_BUDGET_EXCEEDED = "failure_budget_exceeded"
KINDS = (
    "wave_awaiting_approval",
    "plan_paused",
    FAILURE_BUDGET_EXCEEDED,
    "plan_completed",
    "plan_aborted",
    "plan_rejected",
    "emergency_stop",
    "emergency_stop_lifted",
)
# What WAVEGATE_WEBHOOK_URL was told before there were destinations, and still is: a receiver
# written for these two meets no other. List it in WAVEGATE_NOTIFY_DESTINATIONS for the rest.
LEGACY = "webhook"
LEGACY_KINDS = frozenset({"wave_awaiting_approval", "plan_paused"})
FORMATS = ("wavegate", "slack", "teams")
FIELDS = ("name", "url", "format", "events", "secret")
SETTING = "WAVEGATE_NOTIFY_DESTINATIONS"


@dataclass(frozen=True)
class Destination:
    name: str
    url: str
    format: str
    events: frozenset[str]  # empty: every kind
    secret: str = ""
    called: str = ""  # how messages name it: the setting it comes from, never its URL

    def wants(self, kind: str, cause: str = "") -> bool:
        return not self.events or kind in self.events or (bool(cause) and cause in self.events)


@dataclass(frozen=True)
class Reading:
    destinations: list[Destination]
    problems: list[str]


def usable_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _events(value: Any, called: str, problems: list[str]) -> frozenset[str]:
    if value is None:
        return frozenset()
    if not isinstance(value, list) or not all(isinstance(e, str) for e in value):
        problems.append(f"{called}: events must be a list of event names (empty for all).")
        return frozenset()
    unknown = [e for e in value if e not in KINDS]
    if unknown:
        problems.append(
            f"{called}: unknown event{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(map(repr, unknown))}; the events are {', '.join(KINDS)}."
        )
    return frozenset(value)


def _entry(index: int, entry: Any, taken: set[str], problems: list[str]) -> Destination | None:
    """The destination `entry` describes, or None when it cannot be delivered to (no name, a
    name used twice, no known format). A wrong URL or event is reported and kept: the URL fails
    its deliveries visibly (audited), an unknown event never matches."""
    if not isinstance(entry, Mapping):
        problems.append(f"{SETTING}: entry {index} is not an object.")
        return None
    name = entry.get("name")
    if not isinstance(name, str) or not name.strip():
        problems.append(f"{SETTING}: entry {index} has no name.")
        return None
    called = f"destination {name!r}"
    stray = sorted(str(key) for key in entry if key not in FIELDS)
    if stray:
        problems.append(
            f"{called}: unknown field{'s' if len(stray) > 1 else ''} "
            f"{', '.join(map(repr, stray))}; the fields are {', '.join(FIELDS)}."
        )
    url = entry.get("url")
    if not isinstance(url, str) or not usable_url(url):
        problems.append(f"{called}: url must be an http:// or https:// address with a host.")
    form = entry.get("format")
    if form not in FORMATS:
        problems.append(
            f"{called}: format must be one of {', '.join(FORMATS)}"
            + (f", not {form!r}." if form is not None else ".")
        )
    events = _events(entry.get("events"), called, problems)
    secret = entry.get("secret", "")
    if not isinstance(secret, str):
        problems.append(f"{called}: secret must be a string.")
        secret = ""
    elif secret and form in ("slack", "teams"):
        problems.append(
            f"{called}: a secret is only for format wavegate (Slack and Teams check no "
            "signature: their webhook URL is the secret)."
        )
        secret = ""
    if name in taken:
        problems.append(
            f"{called}: the name is taken"
            + (" by WAVEGATE_WEBHOOK_URL." if name == LEGACY else " by another destination.")
        )
        return None
    taken.add(name)
    if form not in FORMATS:
        return None
    url = url if isinstance(url, str) else ""
    return Destination(name, url, str(form), events, secret, called)


def read() -> Reading:
    """The destinations configured now, and what is wrong with the setting."""
    found: list[Destination] = []
    problems: list[str] = []
    if settings.WAVEGATE_WEBHOOK_URL:
        legacy = Destination(
            LEGACY,
            settings.WAVEGATE_WEBHOOK_URL,
            "wavegate",
            LEGACY_KINDS,
            settings.WAVEGATE_WEBHOOK_SECRET,
            "WAVEGATE_WEBHOOK_URL",
        )
        if not usable_url(legacy.url):
            problems.append(f"{legacy.called}: must be an http:// or https:// address with a host.")
        found.append(legacy)  # kept as it always was: a wrong URL fails each delivery, audited
    raw: Any = getattr(settings, SETTING, "")
    if isinstance(raw, str):
        if not raw.strip():
            return Reading(found, problems)
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as exc:
            problems.append(
                f"{SETTING} is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}."
            )
            return Reading(found, problems)
    if not isinstance(raw, list):
        problems.append(f"{SETTING} must be a JSON list of destinations.")
        return Reading(found, problems)
    taken = {d.name for d in found}
    for index, entry in enumerate(raw, start=1):
        destination = _entry(index, entry, taken, problems)
        if destination is not None:
            found.append(destination)
    return Reading(found, problems)


def named(name: str) -> Destination | None:
    """The destination of that name as configured now; None once it is not."""
    return next((d for d in read().destinations if d.name == name), None)
