"""Each person's API tokens page: create one (shown once), see when each was used, revoke."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from api import tokens
from api.forms import TokenForm
from api.models import ApiToken
from audit.refusals import record_refusal


def _page(request: HttpRequest, form: TokenForm, raw: str = "", status: int = 200) -> HttpResponse:
    now = timezone.now()
    rows = [
        (token, token.state(now), token.addresses.count())
        for token in ApiToken.objects.filter(user=request.user)  # type: ignore[misc]
    ]
    context = {"form": form, "rows": rows, "new_token": raw, "section": "tokens"}
    return render(request, "api/tokens.html", context, status=status)


@never_cache  # the page that shows a new token must not be kept by any cache
@require_http_methods(["GET", "HEAD", "POST"])
def token_list(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return _page(request, TokenForm())
    form = TokenForm(request.POST)
    if not form.is_valid():
        return _page(request, form, status=400)
    data = form.cleaned_data
    try:
        with transaction.atomic():
            _, raw = tokens.issue(
                request.user,
                name=data["name"],
                days=data["days"],
                read_only=data["read_only"],
                acting_user=request.user,
            )
    except tokens.TokenRefused as refusal:
        form.add_error(None, str(refusal))
        return _page(request, form, status=400)
    # Shown in this answer only: never stored, never put in a message or a redirect.
    return _page(request, TokenForm(), raw=raw)


@require_POST
def token_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    token = ApiToken.objects.filter(pk=pk, user=request.user).first()  # type: ignore[misc]
    if token is None:
        # Someone else's token, or none: recorded, as any refused change (an attempt on
        # another person's credential is the one most worth seeing).
        refusal = PermissionDenied("You have no such token: only its own user may revoke one.")
        record_refusal(request, refusal, obj=ApiToken.objects.filter(pk=pk).first())
        messages.error(request, str(refusal))
        return redirect("tokens:list")
    try:
        tokens.revoke(token, acting_user=request.user)
    except tokens.TokenRefused as refusal:
        record_refusal(request, refusal, obj=token)
        messages.error(request, str(refusal))
    else:
        messages.success(request, f"Token {token.name!r} revoked: it is refused from now on.")
    return redirect("tokens:list")
