"""The auditor's desk: the filtered log (keyset pages, newest first), one event's page, exports
and the chain's state."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from django.http import Http404, HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_safe

from accounts.access import requires
from audit import access, anchor, export
from audit.chain import checkpoint_signed, event_hash
from audit.filters import FILTER_FIELDS, FilterForm, Filters, newest
from audit.models import AuditCheckpoint, AuditEvent, ChainWatch

PAGE_SIZE = 50


def _cursor(request: HttpRequest, name: str) -> int | None:
    raw = request.GET.get(name, "")
    return int(raw) if raw.isascii() and raw.isdecimal() and len(raw) < 19 else None


@dataclass(frozen=True)
class Link:
    text: str
    url: str


def object_links(event: AuditEvent) -> list[Link]:
    """Links to what the event concerns: its cluster, plan and wave."""
    links = []
    if event.cluster_id is not None:
        label = event.object_label if event.object_type == "fleet.cluster" else "cluster"
        links.append(
            Link(label or f"cluster {event.cluster_id}", _url("fleet:cluster", event.cluster_id))
        )
    if event.plan_id is not None:
        links.append(Link(f"plan {event.plan_id}", _url("rollout:plan", event.plan_id)))
        wave = event.after.get("wave") if isinstance(event.after, dict) else None
        if event.object_type == "rollout.wave" and isinstance(wave, int):
            links.append(Link(f"wave {wave}", _url("rollout:wave", event.plan_id, wave)))
    return links


def _url(name: str, *args: Any) -> str:
    return reverse(name, args=args)


def _query(filters: FilterForm, **more: Any) -> str:
    given = {k: filters.data[k] for k in FILTER_FIELDS if filters.data.get(k)}
    return urlencode({**given, **more})


@requires(access.can_view_audit)
def event_list(request: HttpRequest) -> HttpResponse:
    form = FilterForm(request.GET or None)
    filters = Filters.from_form(form)
    events = filters.apply() if not form.errors else AuditEvent.objects.none()
    before, after = _cursor(request, "before"), _cursor(request, "after")
    if after is not None:
        rows = list(events.filter(seq__gt=after).order_by("seq")[: PAGE_SIZE + 1])
        has_newer = len(rows) > PAGE_SIZE
        rows = rows[:PAGE_SIZE][::-1]
        has_older = bool(rows) and events.filter(seq__lt=rows[-1].seq).exists()
    else:
        rows = newest(
            events, below=before, count=PAGE_SIZE + 1, searching=bool(filters.values.get("q"))
        )
        has_older = len(rows) > PAGE_SIZE
        rows = rows[:PAGE_SIZE]
        has_newer = before is not None and events.filter(seq__gte=before).exists()
    context = {
        "form": form,
        "filtered": filters.active,
        "rows": [(event, object_links(event)) for event in rows],
        "older": _query(form, before=rows[-1].seq) if rows and has_older else "",
        "newer": _query(form, after=rows[0].seq) if rows and has_newer else "",
        "newest": _query(form) if has_newer else None,
        "export_query": _query(form),
        "may_export": access.can_export_audit(request.user),
        "watch": ChainWatch.objects.filter(pk=1).first(),
    }
    return render(request, "audit/event_list.html", context)


@dataclass(frozen=True)
class FieldChange:
    name: str
    before: Any
    after: Any
    changed: bool


def field_changes(before: Any, after: Any) -> list[FieldChange]:
    """Before and after, field by field (top-level keys; anything else as one value)."""
    if not isinstance(before, dict) and not isinstance(after, dict):
        if before is None and after is None:
            return []
        return [FieldChange("value", before, after, before != after)]
    old = before if isinstance(before, dict) else {}
    new = after if isinstance(after, dict) else {}
    missing = object()
    changes = []
    for name in sorted(old.keys() | new.keys()):
        a, b = old.get(name, missing), new.get(name, missing)
        changes.append(
            FieldChange(
                name,
                None if a is missing else a,
                None if b is missing else b,
                a != b,
            )
        )
    return changes


@dataclass(frozen=True)
class Coverage:
    checkpoint: AuditCheckpoint | None
    # "valid": signed with our key and the table still holds its hash at its event;
    # "contradicted": signed, but the table's hash there differs (history was rewritten);
    # "invalid": not signed with our key; "unchecked": no key here to check it with.
    state: str


def vouches(checkpoint: AuditCheckpoint | None) -> Coverage:
    """Does this checkpoint vouch for the events up to it, as the table holds them now?"""
    if checkpoint is None:
        return Coverage(None, "unchecked")
    try:
        key = anchor.load_key()
    except anchor.AnchorProblem:
        return Coverage(checkpoint, "unchecked")
    if not checkpoint_signed(key, checkpoint.signed_fields()):
        return Coverage(checkpoint, "invalid")
    stored = AuditEvent.objects.filter(seq=checkpoint.seq).values_list("hash", flat=True).first()
    return Coverage(checkpoint, "valid" if stored == checkpoint.hash else "contradicted")


def coverage(event: AuditEvent) -> Coverage:
    """The first checkpoint at or after the event, which vouches for it."""
    return vouches(AuditCheckpoint.objects.filter(seq__gte=event.seq).order_by("seq", "id").first())


@requires(access.can_view_audit)
def event_detail(request: HttpRequest, seq: int) -> HttpResponse:
    event = AuditEvent.objects.filter(seq=seq).first()
    if event is None:
        raise Http404(f"There is no audit event {seq}.")
    context = {
        "event": event,
        "links": object_links(event),
        "changes": field_changes(event.before, event.after),
        "hash_matches": event_hash(event.chain_fields()) == event.hash,
        "previous": AuditEvent.objects.filter(seq=seq - 1).values("seq", "hash").first(),
        "next_seq": AuditEvent.objects.filter(seq=seq + 1).values_list("seq", flat=True).first(),
        "coverage": coverage(event),
        "actor_query": urlencode({"actor": event.actor_name}),
    }
    return render(request, "audit/event_detail.html", context)


@requires(access.can_view_audit)
def verify(request: HttpRequest) -> HttpResponse:
    """Beat's incremental check as it stands (the whole chain is `manage.py audit_verify`'s job:
    it takes minutes at a million events, too long for a page)."""
    context = {
        "watch": ChainWatch.objects.filter(pk=1).first(),
        "head": AuditEvent.objects.order_by("-seq").values("seq", "at").first(),
        "coverage": vouches(AuditCheckpoint.objects.order_by("-seq", "-id").first()),
        "key_configured": anchor.key_configured(),
    }
    return render(request, "audit/verify.html", context)


@require_safe
@requires(access.can_export_audit)
def export_events(request: HttpRequest, fmt: str) -> HttpResponseBase:
    """The current filter's events, streamed as CSV or JSON lines with their hashes and the
    checkpoints in range (audit/export.py); the export itself is recorded."""
    chosen = export.FORMATS.get(fmt)
    if chosen is None:
        raise Http404(f"There is no {fmt!r} export: choose csv or jsonl.")
    form = FilterForm(request.GET or None)
    if form.errors:
        # The log page shows what is wrong with the filter, in place.
        return redirect(f"{reverse('audit:events')}?{request.GET.urlencode()}")
    filters = Filters.from_form(form)
    return export.streamed(filters.apply(), chosen, filters.describe())
