"""The emergency stop's pages: confirm a stop (what it would stop now, and why), and lift it
(why it is safe again). Each calls rollout/emergency.py and shows its refusal as a message."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from accounts.access import requires
from audit.refusals import record_refusal
from rollout import access, actions, banner, emergency
from rollout.choices import PlanStatus
from rollout.models import EmergencyStop, RolloutPlan

STOP_NAMES = 50  # plan names listed on the confirmation page; more are counted


@require_http_methods(["GET", "HEAD", "POST"])
@requires(access.can_emergency_stop)
def emergency_stop(request: HttpRequest) -> HttpResponse:
    """The emergency stop, confirmed: the page says what it would stop now and asks why."""
    if request.method == "POST":
        try:
            stopped = emergency.stop_everything(
                acting_user=request.user, reason=request.POST.get("reason", "")
            )
        except (actions.ActionRefused, PermissionDenied) as refusal:
            record_refusal(request, refusal)
            messages.error(request, str(refusal))
            return redirect("rollout:emergency_stop")
        banner.forget()
        n = len(stopped.plans)
        messages.success(
            request,
            f"Emergency stop in force: {n} plan{'s' if n != 1 else ''} paused. Clusters already "
            "started finish their change; nothing new starts until the stop is lifted and "
            "someone resumes a plan.",
        )
        return redirect("rollout:plans")
    stopping = emergency.reach()
    context = {
        "stop": EmergencyStop.in_force(),
        "reach": stopping,
        "names": stopping.plans[:STOP_NAMES],
        "more_names": max(len(stopping.plans) - STOP_NAMES, 0),
    }
    return render(request, "rollout/emergency_stop.html", context)


@require_http_methods(["GET", "HEAD", "POST"])
@requires(access.can_emergency_stop)
def emergency_lift(request: HttpRequest) -> HttpResponse:
    """Lift the emergency stop, saying why. Its plans stay paused: each is resumed by hand."""
    if request.method == "POST":
        try:
            emergency.lift(acting_user=request.user, reason=request.POST.get("reason", ""))
        except (actions.ActionRefused, PermissionDenied) as refusal:
            record_refusal(request, refusal)
            messages.error(request, str(refusal))
            return redirect("rollout:emergency_lift")
        banner.forget()
        messages.success(
            request,
            "Emergency stop lifted. Every plan it paused is still paused: resume each one "
            "when it is safe.",
        )
        return redirect("rollout:plans")
    context = {
        "stop": EmergencyStop.in_force(),
        "paused": RolloutPlan.objects.filter(status=PlanStatus.PAUSED).count(),
    }
    return render(request, "rollout/emergency_lift.html", context)
