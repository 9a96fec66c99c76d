"""The auditor's filters: what the page, its exports and the evidence packs select.

One form reads the query string; `Filters.apply` turns it into a queryset ordered newest first.
Every filter follows one of the table's (field, seq) indexes, so a page of the newest matching
events is read by walking one index backwards, as fast at a million events as at a hundred
(bench/audit_desk.py measures it).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time
from typing import Any

from django import forms
from django.db import connections, router
from django.db.models import BooleanField, Q, QuerySet, TextField
from django.db.models.expressions import RawSQL
from django.db.models.functions import Cast

from audit.kinds import Category, Outcome
from audit.models import AuditEvent

# The text full-text search reads on PostgreSQL: the object's label and the words people wrote
# (comments, reasons) or were told (refusals, errors). The GIN index of migration 0007 is built
# over exactly this expression, so the two must stay alike.
SEARCH_DOCUMENT = (
    "to_tsvector('simple'::regconfig, object_label || ' ' || actor_name"
    + "".join(
        f" || ' ' || coalesce(after ->> '{key}', '')"
        for key in ("comment", "reason", "refusal", "message", "error")
    )
    + ")"
)
MAX_SEARCH = 200


class FilterForm(forms.Form):
    since = forms.DateTimeField(required=False, label="From (UTC)")
    until = forms.DateTimeField(required=False, label="Until (UTC)")
    actor = forms.CharField(required=False, max_length=150, label="Actor")
    category = forms.ChoiceField(
        required=False, choices=[("", "All"), *Category.choices], label="Group"
    )
    action = forms.CharField(required=False, max_length=100, label="Action")
    cluster = forms.IntegerField(required=False, min_value=1, label="Cluster id")
    plan = forms.IntegerField(required=False, min_value=1, label="Plan id")
    outcome = forms.ChoiceField(
        required=False, choices=[("", "All"), *Outcome.choices], label="Outcome"
    )
    q = forms.CharField(required=False, max_length=MAX_SEARCH, label="Search")

    def _in_utc(self, field: str) -> datetime | None:
        """The time in UTC: PostgreSQL refuses an offset beyond ±15:59 that Python accepts
        (-19:20), and a time before year 1 once shifted cannot be stored at all."""
        value: datetime | None = self.cleaned_data.get(field)
        if value is None:
            return None
        try:
            return value.astimezone(UTC)
        except OverflowError as exc:
            raise forms.ValidationError(
                "This time is out of range once taken to UTC: give a date between the "
                "years 1 and 9999.",
                code="invalid",
            ) from exc

    def clean_since(self) -> datetime | None:
        return self._in_utc("since")

    def clean_until(self) -> datetime | None:
        until = self._in_utc("until")
        raw = self.data.get("until", "")
        # A bare date means the whole of that day.
        if until is not None and len(raw.strip()) == 10:
            until = datetime.combine(until.date(), time.max, tzinfo=until.tzinfo)
        return until

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        since, until = data.get("since"), data.get("until")
        if since and until and since > until:
            raise forms.ValidationError("“From” is after “Until”: no event can match.")
        return data


FILTER_FIELDS = tuple(FilterForm.base_fields)


@dataclass(frozen=True)
class Filters:
    values: dict[str, Any]

    @classmethod
    def from_form(cls, form: FilterForm) -> Filters:
        if not form.is_valid():
            return cls({})
        return cls({k: v for k, v in form.cleaned_data.items() if v not in (None, "")})

    @property
    def active(self) -> bool:
        return bool(self.values)

    def describe(self) -> dict[str, str]:
        """The filter as given, for exports' headers: plain strings."""
        return {
            key: (value.astimezone(UTC).isoformat() if isinstance(value, datetime) else str(value))
            for key, value in self.values.items()
        }

    def apply(self, events: QuerySet[AuditEvent] | None = None) -> QuerySet[AuditEvent]:
        events = AuditEvent.objects.all() if events is None else events
        v = self.values
        lookups = {
            "at__gte": v.get("since"),
            "at__lte": v.get("until"),
            "actor_name": v.get("actor"),
            "category": v.get("category"),
            "action": v.get("action"),
            "cluster_id": v.get("cluster"),
            "plan_id": v.get("plan"),
            "outcome": v.get("outcome"),
        }
        events = events.filter(**{k: value for k, value in lookups.items() if value is not None})
        if v.get("q"):
            events = search(events, v["q"])
        return events.order_by("-seq")


def search(events: QuerySet[AuditEvent], text: str) -> QuerySet[AuditEvent]:
    if connections[router.db_for_read(AuditEvent)].vendor == "postgresql":
        # The search text goes in as a parameter; only our constant expression is SQL.
        matches = RawSQL(  # noqa: S611
            f"{SEARCH_DOCUMENT} @@ plainto_tsquery('simple'::regconfig, %s)",
            [text],
            output_field=BooleanField(),
        )
        return events.alias(matches=matches).filter(matches=True)
    # SQLite (the demo): a plain substring search of the same fields.
    return events.alias(after_text=Cast("after", TextField())).filter(
        Q(object_label__icontains=text)
        | Q(actor_name__icontains=text)
        | Q(after_text__icontains=text)
    )


# A search must read every match to sort them newest first: for a word in 3% of a million
# events that is 30,000 rows. The newest page is looked for first in the newest stretches of
# the chain (bounded by the primary key), so a common word costs a stretch's matches; a rare
# one falls through to the whole log, where its few matches are cheap.
SEARCH_STRETCHES = (20_000, 200_000)


def newest(
    events: QuerySet[AuditEvent], *, below: int | None, count: int, searching: bool
) -> list[AuditEvent]:
    """The newest `count` of `events` (ordered newest first) below sequence number `below`."""
    if searching:
        end = below
        if end is None:
            end = (
                AuditEvent.objects.order_by("-seq").values_list("seq", flat=True).first() or 0
            ) + 1
        for width in SEARCH_STRETCHES:
            rows = list(events.filter(seq__lt=end, seq__gte=end - width)[:count])
            if len(rows) == count:
                return rows
    page = events.filter(seq__lt=below) if below is not None else events
    return list(page[:count])
