"""The fleet pages' form: the cluster list's query string (filters, search, sort and paging).

A bad value in the cluster list's query string never fails the page: the list falls back to the
default for that one parameter and `problems()` says what was ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from django import forms

from fleet.choices import SCAN_OPEN, AccelerationMode, ScanStatus
from fleet.inventory import DEFAULT_SORT, NEVER_SCANNED, SORTS, ClusterQuery, FilterChoices
from fleet.widgets import LongSelect

PER_PAGE = 50
MAX_PER_PAGE = 200
PER_PAGE_CHOICES = (25, 50, 100, 200)  # the pager offers these; any 1..200 works

ANY = ("", "Any")


def _unknown(what: str) -> dict[str, str]:
    return {"invalid_choice": f"There is no {what} “%(value)s” in the inventory; showing all."}


@dataclass(frozen=True)
class SortLink:
    """A sortable column header: where clicking it goes, and how the list is sorted now."""

    label: str
    href: str
    direction: str  # "ascending", "descending" or "" (aria-sort)


class ClusterFilter(forms.Form):
    q = forms.CharField(
        label="Name contains",
        required=False,
        max_length=100,
        error_messages={"max_length": "Search for at most 100 characters; showing all names."},
    )
    subscription = forms.TypedChoiceField(
        coerce=int,
        empty_value=None,
        required=False,
        error_messages=_unknown("subscription"),
        widget=LongSelect,
    )
    region = forms.ChoiceField(required=False, error_messages=_unknown("region"), widget=LongSelect)
    ring = forms.ChoiceField(required=False, error_messages=_unknown("ring"), widget=LongSelect)
    version = forms.ChoiceField(
        label="Kubernetes", required=False, error_messages=_unknown("Kubernetes version")
    )
    eligibility = forms.ChoiceField(
        choices=[ANY, ("eligible", "Eligible"), ("blocked", "Not eligible")],
        required=False,
        error_messages={
            "invalid_choice": "Eligibility is “eligible” or “blocked”, not “%(value)s”; "
            "showing both."
        },
    )
    mode = forms.ChoiceField(
        label="Acceleration",
        choices=[ANY, *AccelerationMode.choices],
        required=False,
        error_messages=_unknown("acceleration mode"),
    )
    preflight = forms.ChoiceField(
        choices=[
            ANY,
            *((value, label) for value, label in ScanStatus.choices if value not in SCAN_OPEN),
            (NEVER_SCANNED, "Never scanned"),
        ],
        required=False,
        error_messages={
            "invalid_choice": "There is no preflight result “%(value)s”; showing every result."
        },
    )
    removed = forms.BooleanField(label="Include removed clusters", required=False)
    sort = forms.ChoiceField(
        choices=[(s, s) for key in SORTS for s in (key, f"-{key}")],
        required=False,
        widget=forms.HiddenInput,
        error_messages={
            "invalid_choice": "The list cannot be sorted by “%(value)s”; sorted by name."
        },
    )
    page = forms.IntegerField(
        min_value=1,
        required=False,
        widget=forms.HiddenInput,
        error_messages={
            "invalid": "The page number must be a whole number; showing the first page.",
            "min_value": "Pages start at 1; showing the first page.",
        },
    )
    per_page = forms.IntegerField(
        min_value=1,
        required=False,
        widget=forms.HiddenInput,
        error_messages={
            "invalid": f"Clusters per page must be a whole number; showing {PER_PAGE}.",
            "min_value": f"Show at least 1 cluster per page; showing {PER_PAGE}.",
        },
    )

    def __init__(self, data: Any, *, choices: FilterChoices) -> None:
        super().__init__(data, label_suffix="")
        fields: dict[str, Any] = self.fields
        fields["subscription"].choices = [ANY, *choices.subscriptions]
        fields["region"].choices = [ANY, *((r, r) for r in choices.regions)]
        fields["ring"].choices = [ANY, *((r, r) for r in choices.rings)]
        fields["version"].choices = [ANY, *((v, v) for v in choices.versions)]

    def clean_per_page(self) -> int | None:
        value: int | None = self.cleaned_data["per_page"]
        return min(value, MAX_PER_PAGE) if value is not None else None

    def _value(self, name: str, default: Any) -> Any:
        """The checked value of one parameter, or `default` when it was missing or bad."""
        self.is_valid()
        value = self.cleaned_data.get(name)
        return default if value in (None, "") else value

    def query(self) -> ClusterQuery:
        return ClusterQuery(
            search=self._value("q", ""),
            subscription=self._value("subscription", None),
            region=self._value("region", ""),
            ring=self._value("ring", ""),
            version=self._value("version", ""),
            eligibility=self._value("eligibility", ""),
            mode=self._value("mode", ""),
            preflight=self._value("preflight", ""),
            include_removed=self._value("removed", False),
            sort=self._value("sort", DEFAULT_SORT),
        )

    def page_number(self) -> int:
        return int(self._value("page", 1))

    def page_size(self) -> int:
        return int(self._value("per_page", PER_PAGE))

    def problems(self) -> list[str]:
        """What was wrong with the query string and what the list did instead."""
        self.is_valid()
        return [str(message) for errors in self.errors.values() for message in errors]

    def filtering(self) -> bool:
        """Does the query narrow the list (so an empty list means "no match", not "empty")?"""
        q = self.query()
        return any(
            (
                q.search,
                q.subscription,
                q.region,
                q.ring,
                q.version,
                q.eligibility,
                q.mode,
                q.preflight,
            )
        )

    def sort_links(self) -> dict[str, SortLink]:
        """Each sortable column's header link: ascending first, a second click reverses."""
        current = self._value("sort", DEFAULT_SORT)
        kept = {
            key: value
            for key, value in self.data.items()
            if key not in {"sort", "page"} and value != ""
        }
        links = {}
        for key, (_, label) in SORTS.items():
            direction = {key: "ascending", f"-{key}": "descending"}.get(current, "")
            target = f"-{key}" if current == key else key
            links[key] = SortLink(label, "?" + urlencode({**kept, "sort": target}), direction)
        return links
