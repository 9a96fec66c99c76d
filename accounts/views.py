"""Error pages that explain themselves, and the admins' page of sign-in lock-outs."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST, require_safe

from accounts.access import can_lift_lockouts, requires
from accounts.choices import LockoutKind
from accounts.lockouts import current_lockouts, lift_lockout


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    reason = str(exception) if exception and str(exception) else "Your role does not allow this."
    # For the audit log, which records refused changes (audit/middleware.py; accounts may not
    # import audit, so it reads the reason from here).
    request.refusal_reason = reason  # type: ignore[attr-defined]
    return render(request, "403.html", {"reason": reason}, status=403)


class LiftForm(forms.Form):
    kind = forms.ChoiceField(choices=LockoutKind.choices)
    value = forms.CharField(max_length=255)


@require_safe
@requires(can_lift_lockouts)
def lockouts(request: HttpRequest) -> HttpResponse:
    context = {
        "lockouts": current_lockouts(),
        "limit": settings.AXES_FAILURE_LIMIT,
        "cooloff": settings.AXES_COOLOFF_TIME,
    }
    return render(request, "accounts/lockouts.html", context)


@require_POST
@requires(can_lift_lockouts)
def lift(request: HttpRequest) -> HttpResponse:
    form = LiftForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose a lock-out from the list to lift.")
    elif lifted := lift_lockout(
        form.cleaned_data["kind"], form.cleaned_data["value"], acting_user=request.user
    ):
        messages.success(
            request, f"Lifted the lock-out of {lifted.kind.label.lower()} {lifted.value}."
        )
    else:
        messages.info(request, f"{form.cleaned_data['value']} is not locked out (any more).")
    return redirect("accounts:lockouts")
