"""The auditor's pages: the event log, newest first, and a check of the whole chain."""

from __future__ import annotations

from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from accounts.access import requires
from audit import access
from audit.models import AuditEvent
from audit.verification import verify_stored_chain

PAGE_SIZE = 50


@requires(access.can_view_audit)
def event_list(request: HttpRequest) -> HttpResponse:
    events = AuditEvent.objects.order_by("-seq")
    page = Paginator(events, PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "audit/event_list.html", {"page": page})


@requires(access.can_view_audit)
def verify(request: HttpRequest) -> HttpResponse:
    return render(request, "audit/verify.html", {"verdict": verify_stored_chain()})
