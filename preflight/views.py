"""Preflight pages: a cluster's preflight section (which the cluster's page includes and polls)
with its "Scan now" button and the scan's text download, the fleet's blockers with "Scan all
eligible clusters", and the iptables owner table administrators extend."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST, require_safe

from accounts.access import requires
from audit.refusals import record_refusal
from fleet.access import can_view_fleet
from fleet.models import AcceptedOwner, Cluster, PreflightScan
from preflight import access, actions, blockers, iptables
from preflight.forms import AcceptedOwnerForm, RetireOwnerForm

BLOCKERS_PER_PAGE = 50


# --- preflight on one cluster ------------------------------------------------------------------
def _cluster_with_result(pk: int) -> Cluster:
    clusters = Cluster.objects.select_related("subscription", "latest_scan__requested_by")
    return get_object_or_404(clusters, pk=pk)


@require_safe
@requires(can_view_fleet)
def cluster_preflight(request: HttpRequest, pk: int) -> HttpResponse:
    """The cluster page's preflight section alone, which the page polls while a scan runs."""
    context = {
        **blockers.cluster_section(request.user, _cluster_with_result(pk)),
        "polling": request.GET.get("polling") == "1",
    }
    return render(request, "preflight/_preflight.html", context)


@require_POST
@requires(access.can_scan_clusters)
def cluster_scan(request: HttpRequest, pk: int) -> HttpResponse:
    cluster = get_object_or_404(Cluster, pk=pk)
    try:
        actions.request_scan(cluster, acting_user=request.user)
    except (actions.ActionRefused, PermissionDenied) as refusal:
        record_refusal(request, refusal, obj=cluster)
        messages.error(request, str(refusal))
    else:
        messages.success(
            request, f"Scan of {cluster.name} queued: its preflight section follows it."
        )
    return redirect("fleet:cluster", pk=cluster.pk)


@require_safe
@requires(can_view_fleet)
def scan_findings(request: HttpRequest, pk: int, scan_id: int) -> StreamingHttpResponse:
    """Every blocking rule one scan found, as plain text (the page shows only the first ones)."""
    scan = get_object_or_404(
        PreflightScan.objects.select_related("cluster"), pk=scan_id, cluster_id=pk
    )
    response = StreamingHttpResponse(
        blockers.scan_findings_text(scan), content_type="text/plain; charset=utf-8"
    )
    filename = f"{scan.cluster.name}-preflight-{scan.pk}.txt"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


# --- preflight across the fleet ----------------------------------------------------------------
def _progress_panel(request: HttpRequest) -> dict[str, Any]:
    return {
        "progress": blockers.scan_progress(),
        "can_scan": access.can_scan_clusters(request.user),
        "concurrency": settings.WAVEGATE_SCAN_CONCURRENCY,
    }


def _blockers_live(request: HttpRequest) -> dict[str, Any]:
    """The blockers page's live part: the scans under way and the latest results."""
    not_read = Paginator(blockers.clusters_not_read(), BLOCKERS_PER_PAGE)
    page = not_read.get_page(request.GET.get("page"))
    results = blockers.fleet_preflight()
    panel = _progress_panel(request)
    return {
        "counts": results.counts,
        "origins": results.origins,
        "not_read": page,
        # While scans run, the copies say they follow them (the one read after the last ends
        # then says so).
        "live_url": f"{reverse('preflight:scan_progress')}?"
        + ("polling=1&" if panel["progress"] else "")
        + f"page={page.number}",
        **panel,
        # Every 3 s while scans run, else every 30 s: scans started elsewhere show up too.
        "live_every": 3 if panel["progress"] else 30,
    }


@require_safe
@requires(can_view_fleet)
def blocker_list(request: HttpRequest) -> HttpResponse:
    origin = request.GET.get("origin")
    if origin is not None:
        return _blocked_by(request, origin)
    return render(request, "preflight/blockers.html", _blockers_live(request))


def _blocked_by(request: HttpRequest, origin: str) -> HttpResponse:
    """The live clusters whose latest scan found rules from one origin."""
    # Origins are short, printable names; anything else matches no cluster (and a NUL would
    # not even reach PostgreSQL).
    known = 0 < len(origin) <= 128 and origin.isprintable()
    hint = blockers.origin_hint(origin) if known else None
    clusters = blockers.clusters_blocked_by(origin) if hint is not None else Cluster.objects.none()
    page = Paginator(clusters, BLOCKERS_PER_PAGE).get_page(request.GET.get("page"))
    counts = blockers.origin_counts(origin, [c.latest_scan_id for c in page if c.latest_scan_id])
    context = {
        "origin": origin,
        "hint": hint,
        "page": page,
        "rows": [(cluster, *counts.get(cluster.latest_scan_id or 0, (0, 0))) for cluster in page],
    }
    return render(request, "preflight/blocked_by.html", context)


@require_safe
@requires(can_view_fleet)
def scan_progress(request: HttpRequest) -> HttpResponse:
    """The blockers page's live part alone, which the page polls while scans run: its last
    copy, once every scan has ended, brings their results."""
    context = {**_blockers_live(request), "polling": request.GET.get("polling") == "1"}
    return render(request, "preflight/_blockers_live.html", context)


@require_POST
@requires(access.can_scan_clusters)
def scan_all(request: HttpRequest) -> HttpResponse:
    try:
        queued = actions.request_fleet_scan(acting_user=request.user)
    except (actions.ActionRefused, PermissionDenied) as refusal:
        record_refusal(request, refusal)
        messages.error(request, str(refusal))
    else:
        messages.success(
            request,
            f"{queued} scan{'s' if queued != 1 else ''} queued, "
            f"up to {settings.WAVEGATE_SCAN_CONCURRENCY} at a time (as many as the workers "
            "run): progress shows below.",
        )
    return redirect("preflight:blockers")


# --- the iptables owner table ------------------------------------------------------------------
def _owners_page(request: HttpRequest, form: AcceptedOwnerForm | None = None) -> HttpResponse:
    can_manage = access.can_manage_iptables_owners(request.user)
    context = {
        "builtin": [
            {
                "name": owner.name,
                "allows": owner.allows,
                "tables": sorted(owner.tables) if owner.tables is not None else None,
            }
            for owner in iptables.OWNERS
        ],
        "extensions": AcceptedOwner.objects.filter(retired_at__isnull=True)
        .select_related("added_by", "confirmed_by", "retire_requested_by")
        .order_by("name", "pk"),
        "can_manage": can_manage,
        "can_confirm": access.can_confirm_iptables_owners(request.user),
        "can_retire": can_manage,
        "form": (form if form is not None else AcceptedOwnerForm()) if can_manage else None,
    }
    return render(request, "preflight/owners.html", context)


@require_safe
@requires(can_view_fleet)
def owners(request: HttpRequest) -> HttpResponse:
    return _owners_page(request)


@require_POST
@requires(access.can_manage_iptables_owners)
def owner_add(request: HttpRequest) -> HttpResponse:
    form = AcceptedOwnerForm(request.POST)
    if not form.is_valid():
        return _owners_page(request, form)
    try:
        owner = actions.add_accepted_owner(**form.cleaned_data, acting_user=request.user)
    except (actions.ActionRefused, PermissionDenied) as refusal:
        record_refusal(request, refusal)
        form.add_error(None, str(refusal))
        return _owners_page(request, form)
    messages.success(
        request,
        f"{owner.name} proposed: once another person confirms it, scans that start from then "
        "on accept the rules it matches.",
    )
    return redirect("preflight:owners")


def _record_confirmation_refusal(
    request: HttpRequest, refusal: Exception, owner: AcceptedOwner
) -> None:
    # A confirmation refused for its permission or four eyes is recorded by the action itself
    # (iptables.owner_confirmation_refused); one refused for the owner's state is not.
    if not isinstance(refusal, PermissionDenied):
        record_refusal(request, refusal, obj=owner)


@require_POST
@requires(access.can_confirm_iptables_owners)
def owner_confirm(request: HttpRequest, pk: int) -> HttpResponse:
    owner = get_object_or_404(AcceptedOwner, pk=pk)
    try:
        actions.confirm_accepted_owner(owner, acting_user=request.user)
    except (actions.ActionRefused, PermissionDenied) as refusal:
        _record_confirmation_refusal(request, refusal, owner)
        messages.error(request, str(refusal))
    else:
        messages.success(
            request,
            f"{owner.name} confirmed: scans that start from now on accept the rules it matches.",
        )
    return redirect("preflight:owners")


@require_POST
@requires(access.can_confirm_iptables_owners)
def owner_confirm_retirement(request: HttpRequest, pk: int) -> HttpResponse:
    owner = get_object_or_404(AcceptedOwner, pk=pk)
    try:
        actions.confirm_retirement(owner, acting_user=request.user)
    except (actions.ActionRefused, PermissionDenied) as refusal:
        _record_confirmation_refusal(request, refusal, owner)
        messages.error(request, str(refusal))
    else:
        messages.success(
            request,
            f"{owner.name} retired: scans that start from now on no longer accept its rules.",
        )
    return redirect("preflight:owners")


@require_POST
@requires(access.can_manage_iptables_owners)
def owner_retire(request: HttpRequest, pk: int) -> HttpResponse:
    owner = get_object_or_404(AcceptedOwner, pk=pk)
    form = RetireOwnerForm(request.POST)
    if not form.is_valid():
        messages.error(request, " ".join(str(e) for errors in form.errors.values() for e in errors))
        return redirect("preflight:owners")
    try:
        actions.retire_accepted_owner(
            owner, reason=form.cleaned_data["reason"], acting_user=request.user
        )
    except (actions.ActionRefused, PermissionDenied) as refusal:
        record_refusal(request, refusal, obj=owner)
        messages.error(request, str(refusal))
    else:
        owner.refresh_from_db()
        messages.success(
            request,
            f"{owner.name} declined: it never applied."
            if owner.retired_at
            else f"Retiring {owner.name} asked: once another person confirms it, scans that "
            "start from then on no longer accept its rules.",
        )
    return redirect("preflight:owners")
