"""Fleet pages."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from accounts.access import requires
from fleet import access


@requires(access.can_view_fleet)
def overview(request: HttpRequest) -> HttpResponse:
    return render(request, "fleet/overview.html")
