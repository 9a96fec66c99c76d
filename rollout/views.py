"""Rollout pages."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from accounts.access import requires
from rollout import access


@requires(access.can_view_plans)
def plan_list(request: HttpRequest) -> HttpResponse:
    return render(request, "rollout/plan_list.html")
