"""Fleet pages: the overview, the cluster list, one cluster, and the button that starts a sync.

A cluster's page includes its preflight section with preflight's `{% preflight_section %}`
template tag, so that nothing in fleet imports preflight (imports run rollout → preflight →
fleet).
"""

from __future__ import annotations

import datetime
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST, require_safe

from accounts.access import requires
from audit import access as audit_access
from audit.refusals import record_refusal
from fleet import access, actions, charts, inventory, maintenance, snapshots, timeline
from fleet.choices import SyncStatus
from fleet.forms import PER_PAGE, PER_PAGE_CHOICES, ClusterFilter
from fleet.models import Cluster, SyncRun


def _sync_panel(request: HttpRequest) -> dict[str, Any]:
    syncs = inventory.recent_syncs()
    return {
        "syncs": syncs,
        "latest": syncs[0] if syncs else None,
        "running": next((s for s in syncs if s.status == SyncStatus.RUNNING), None),
        "can_sync": access.can_sync_inventory(request.user),
    }


IDLE_SECONDS = 15  # how often the overview reads itself again while nothing runs
BUSY_SECONDS = 3  # … and while a sync runs
SERIES_ROWS = 48  # the newest hours shown in the table beside the chart of modes
MIN_HOURS = 6  # the chart of modes spans at least this much
CLUSTER_LIST_SECONDS = 30  # how often the cluster list reads itself again while no sync runs


def _overview(request: HttpRequest) -> dict[str, Any]:
    """The overview's live part: the inventory's counts, clusters at BpfVeth over time, the
    sync panel (preflight and rollouts come from their own apps' template tags)."""
    panel = _sync_panel(request)
    after = _number(request.GET.get("after", ""))  # the newest sync when "Sync now" was pressed
    latest = panel["latest"]
    awaited = after is not None and not (latest and latest.pk > after and not panel["running"])
    now = timezone.now()
    series = snapshots.bpfveth_series(now)
    # The last DAYS_SHOWN days, or less while the history is shorter (at least MIN_HOURS).
    start = now - datetime.timedelta(days=snapshots.DAYS_SHOWN)
    if series:
        start = max(start, min(series[0].at, now - datetime.timedelta(hours=MIN_HOURS)))
    counts = inventory.fleet_counts()
    return {
        "counts": counts,
        "sync_minutes": settings.WAVEGATE_SYNC_MINUTES,
        "chart_since": start,
        "series": series[-SERIES_ROWS:],
        "series_more": max(0, len(series) - SERIES_ROWS),
        "mode_chart": charts.step_line(
            [(max(p.at, start), p.bpfveth) for p in series],
            start=start,
            end=now,
            y_max=max([counts.total, *(p.total for p in series)]),
        ),
        "live_every": BUSY_SECONDS if panel["running"] or awaited else IDLE_SECONDS,
        # While a sync runs the page follows it by its number, so that the copy read once it
        # has ended can say so (and only that copy's followers). After "Sync now", until a
        # newer sync has ended, it follows whichever comes (a short one may start and end
        # between two reads of the page).
        "following_query": f"?following={panel['running'].pk}"
        if panel["running"]
        else f"?after={after}"
        if awaited
        else "",
        "following": panel["latest"].pk
        if after is not None and panel["latest"] and panel["latest"].pk > after
        else _number(request.GET.get("following", "")),
        **panel,
    }


def _number(text: str) -> int | None:
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 18 else None


@require_safe
@requires(access.can_view_fleet)
def overview(request: HttpRequest) -> HttpResponse:
    return render(request, "fleet/overview.html", _overview(request))


@require_safe
@requires(access.can_view_fleet)
def sync_status(request: HttpRequest) -> HttpResponse:
    """The overview's live part alone, which the page reads again every few seconds."""
    return render(request, "fleet/_overview_live.html", _overview(request))


@require_POST
@requires(access.can_sync_inventory)
def sync(request: HttpRequest) -> HttpResponse:
    try:
        actions.request_sync(acting_user=request.user)
    except (actions.ActionRefused, PermissionDenied) as refusal:
        record_refusal(request, refusal)
        messages.error(request, str(refusal))
    else:
        messages.success(request, "Sync queued: it shows below once a worker starts it.")
        newest = SyncRun.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
        return redirect(reverse("fleet:overview") + f"?after={newest}")
    return redirect("fleet:overview")


@require_safe
@requires(access.can_view_fleet)
def cluster_list(request: HttpRequest) -> HttpResponse:
    params = request.GET.copy()
    params.pop("live", None)  # the live part's own marker: its links lead to whole pages
    form = ClusterFilter(params, choices=inventory.filter_choices())
    clusters = inventory.list_clusters(form.query())
    page = Paginator(clusters, form.page_size()).get_page(form.page_number())
    context = {
        "form": form,
        "query": form.query(),
        "per_page": form.page_size(),
        "default_per_page": PER_PAGE,
        "per_page_choices": PER_PAGE_CHOICES,
        "page": page,
        "rows": inventory.list_rows(clusters, page),
        "problems": form.problems(),
        "sorts": form.sort_links(),
        "filtering": form.filtering(),
        # Every 3 s while a sync changes the inventory, every 30 s otherwise.
        "live_every": BUSY_SECONDS
        if SyncRun.objects.filter(status=SyncStatus.RUNNING).exists()
        else CLUSTER_LIST_SECONDS,
        "live_url": f"{request.path}?{_with_live(request)}",
    }
    # The list's live part alone, which the page reads again.
    live = request.GET.get("live") == "1"
    return render(
        request, "fleet/_cluster_table.html" if live else "fleet/cluster_list.html", context
    )


def _with_live(request: HttpRequest) -> str:
    query = request.GET.copy()
    query["live"] = "1"
    return query.urlencode()


def _cluster(pk: int) -> Cluster:
    # The latest scan and who asked for it come along for the page's preflight section.
    clusters = Cluster.objects.select_related("subscription", "latest_scan__requested_by")
    return get_object_or_404(clusters, pk=pk)


def _timeline(request: HttpRequest, cluster: Cluster) -> dict[str, Any]:
    can_view_audit = audit_access.can_view_audit(request.user)
    return {
        "cluster": cluster,
        "timeline": timeline.of(cluster, all_audit=can_view_audit),
        "can_view_audit": can_view_audit,
        "events_minutes": settings.WAVEGATE_CLUSTER_EVENTS_MINUTES,
        "events_per_pull": settings.WAVEGATE_CLUSTER_EVENTS_PER_PULL,
    }


@require_safe
@requires(access.can_view_fleet)
def cluster_detail(request: HttpRequest, pk: int) -> HttpResponse:
    cluster = _cluster(pk)
    tags = cluster.tags if isinstance(cluster.tags, dict) else {}
    context = {
        "pools": cluster.node_pools.order_by("name"),
        "tags": sorted(tags.items()),
        "maintenance": maintenance.describe(cluster.maintenance_window),
        "audit_events": (
            inventory.audit_trail(cluster) if audit_access.can_view_audit(request.user) else None
        ),
        **_timeline(request, cluster),
    }
    return render(request, "fleet/cluster_detail.html", context)


@require_safe
@requires(access.can_view_fleet)
def cluster_timeline(request: HttpRequest, pk: int) -> HttpResponse:
    """The cluster page's timeline alone, which the page polls."""
    cluster = get_object_or_404(Cluster, pk=pk)
    return render(request, "fleet/_timeline.html", _timeline(request, cluster))
