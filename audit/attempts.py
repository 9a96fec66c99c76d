"""Failed sign-ins and refused requests are recorded one by one only up to a number a minute;
the rest are counted (accounts.models.AttemptWindow, AttemptTally), and once the minute has
passed a beat task writes one audit event saying how many there were, by whom and from where.
A password-guessing storm or a script hammering a button cannot flood the log, nor go unseen.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import groupby
from typing import Any

from celery import shared_task
from django.conf import settings
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from accounts.choices import AttemptKind, RefusalEvent, UserEvent
from accounts.models import AttemptTally, AttemptWindow
from audit.log import record

WINDOW = timedelta(minutes=1)
TOP = 10  # names and addresses a summary lists by name; the rest it only counts


@dataclass(frozen=True)
class _Summary:
    action: str
    counted: str  # what the attempts are, in the summary's words


_SUMMARIES = {
    AttemptKind.SIGN_IN_FAILURE: _Summary(UserEvent.SIGN_IN_FAILURES, "failures"),
    AttemptKind.REFUSAL: _Summary(RefusalEvent.COUNTED, "refusals"),
}


def window_of(moment: datetime) -> datetime:
    """The start of the minute `moment` falls in."""
    return moment.replace(second=0, microsecond=0)


def count(
    kind: AttemptKind,
    *,
    username: str,
    address: str | None,
    scope: str,
    limit: int,
    recordable: bool = True,
) -> bool:
    """Count one attempt now, inside the caller's transaction; True when the caller is to
    record it one by one (one of the first `limit` recordable ones of this minute and scope)."""
    window = window_of(timezone.now())
    # The scope's row first: it is locked until commit, so concurrent attempts queue here.
    recorded = AttemptWindow.count(kind, window, scope, recordable=recordable, limit=limit)
    AttemptTally.count(kind, window, username, address or "")
    return recorded


def _top(kind: str, window: datetime, field: str) -> tuple[list[dict[str, Any]], int]:
    """The `TOP` values of `field` with the most attempts, and how many other values there were."""
    rows = list(
        AttemptTally.objects.filter(kind=kind, window=window)
        .values(field)
        .annotate(n=Sum("attempts"))
        .order_by("-n", field)
    )
    return [{field: row[field], "attempts": row["n"]} for row in rows[:TOP]], max(
        0, len(rows) - TOP
    )


def _summarise(kind: str, window: datetime, rows: list[AttemptWindow]) -> bool:
    """Record the summary of one closed minute when some of its attempts were only counted."""
    attempts = sum(row.attempts for row in rows)
    recorded = sum(row.recorded for row in rows)
    if attempts == recorded:
        return False
    summary = _SUMMARIES[AttemptKind(kind)]
    usernames, more_usernames = _top(kind, window, "username")
    addresses, more_addresses = _top(kind, window, "address")
    record(
        summary.action,
        object_type="auth.user",
        object_label=(
            f"{attempts} {AttemptKind(kind).label.lower()}s, {window:%Y-%m-%d %H:%M} UTC"
        ),
        after={
            "from": window,
            "until": window + WINDOW,
            summary.counted: attempts,
            "recorded_one_by_one": recorded,
            "counted_only": attempts - recorded,
            "usernames": usernames,
            "more_usernames": more_usernames,
            "addresses": addresses,
            "more_addresses": more_addresses,
        },
    )
    return True


def summarise_closed_windows(now: datetime | None = None) -> int:
    """Summarise every minute that has passed (before `now`) and forget its counts; returns
    the number of summaries recorded. Safe to run twice: a minute is summarised once."""
    current = window_of(now or timezone.now())
    written = 0
    with transaction.atomic():
        # Locked as counting locks them (the minute's rows, then the tally), so that an
        # attempt counted in the last instant of a minute is in its summary or waits for it.
        closed = list(
            AttemptWindow.objects.select_for_update()
            .filter(window__lt=current)
            .order_by("kind", "window", "pk")
        )
        for (kind, window), rows in groupby(closed, key=lambda row: (row.kind, row.window)):
            written += _summarise(kind, window, list(rows))
            AttemptTally.objects.filter(kind=kind, window=window).delete()
        AttemptWindow.objects.filter(pk__in=[row.pk for row in closed]).delete()
    return written


@shared_task(name="audit.summarise_attempts", ignore_result=True)
def summarise_attempts() -> int:
    """Beat, every minute: the summaries of the minutes that have passed."""
    return summarise_closed_windows()


def sign_in_failure_counted(username: str, address: str | None, *, checked: bool) -> bool:
    """Count one failed sign-in; True when it is to be recorded one by one. A try refused by a
    lock-out before its password was checked (`checked` false) is only ever counted."""
    return count(
        AttemptKind.SIGN_IN_FAILURE,
        username=username,
        address=address,
        scope="",  # a storm spreads over names and addresses: one budget for the whole site
        limit=settings.WAVEGATE_SIGN_IN_FAILURES_RECORDED_PER_MINUTE,
        recordable=checked,
    )


def refusal_counted(username: str, address: str | None) -> bool:
    """Count one refused request; True when it is to be recorded one by one (each person, or
    each address when nobody is signed in, has a budget of its own)."""
    return count(
        AttemptKind.REFUSAL,
        username=username,
        address=address,
        scope=f"user:{username}" if username else f"address:{address or ''}",
        limit=settings.WAVEGATE_REFUSALS_RECORDED_PER_MINUTE,
    )
