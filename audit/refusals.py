"""Record refused requests with their reason: a permission refused (`access.refused`), or an
action that cannot be done now, in its app's words (`rollout.action_refused`, …).

Only requests that would change something are recorded (not a page a role may not read), each
in a transaction of its own, after the refused change rolled back; at most a few a minute per
person, the rest counted and summarised (audit/attempts.py).
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from django.db import models, transaction
from django.http import HttpRequest, HttpResponseBase

from accounts.choices import RefusalEvent
from audit import attempts, context
from audit.log import record

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
# accounts.views.permission_denied (the 403 page) leaves the refusal's text on the request
# under this name, for RequestContextMiddleware to record (accounts may not import audit).
REASON = "refusal_reason"
_RECORDED = "refusal_recorded"
_UNEXPLAINED = (
    "Refused (HTTP 403) before reaching the page, for instance for a missing or stale form "
    "token (CSRF)."
)
_APP_ACTIONS = {
    "fleet": RefusalEvent.FLEET,
    "preflight": RefusalEvent.PREFLIGHT,
    "rollout": RefusalEvent.ROLLOUT,
}


def action_of(refusal: BaseException) -> str:
    """`access.refused` for a permission; else the refusing app's `<app>.action_refused`."""
    if isinstance(refusal, PermissionDenied):
        return RefusalEvent.ACCESS
    return _APP_ACTIONS.get(type(refusal).__module__.partition(".")[0], RefusalEvent.ACCESS)


def record_refusal(
    request: HttpRequest,
    refusal: BaseException,
    *,
    obj: models.Model | None = None,
    cluster_id: int | None = None,
    plan_id: int | None = None,
) -> None:
    """Record that `request` was refused, and why (the text the person was shown)."""
    _record(
        request,
        action_of(refusal),
        str(refusal) or "Your role does not allow this.",
        obj=obj,
        cluster_id=cluster_id,
        plan_id=plan_id,
    )


def record_command_refusal(user: Any, refusal: BaseException, command: str) -> None:
    """Record that a management command acting as `user` was refused, as the pages record a
    refused request: in a transaction of its own, a few a minute per person."""
    with transaction.atomic():
        if attempts.refusal_counted(user.get_username(), None):
            record(
                action_of(refusal),
                acting_user=user,
                object_label=f"manage.py {command}",
                after={"command": f"manage.py {command}", "refusal": str(refusal)},
            )


def record_forbidden(request: HttpRequest, response: HttpResponseBase) -> None:
    """Record a 403 answer to a request that would have changed something, unless its refusal
    was recorded already: with the reason the 403 page gave, if it was the one to answer."""
    if response.status_code == 403 and not getattr(request, _RECORDED, False):
        _record(request, RefusalEvent.ACCESS, getattr(request, REASON, "") or _UNEXPLAINED)


def _record(request: HttpRequest, action: str, reason: str, **subjects: Any) -> None:
    if request.method in SAFE_METHODS:
        return
    setattr(request, _RECORDED, True)
    user = getattr(request, "user", None)
    username = user.get_username() if user is not None and user.is_authenticated else ""
    ctx = context.current()
    match = request.resolver_match
    with transaction.atomic():
        if attempts.refusal_counted(username, ctx.ip if ctx else None):
            record(
                action,
                object_label="" if subjects.get("obj") is not None else request.path[:255],
                after={
                    "method": request.method,
                    "path": request.path[:1000],
                    "view": match.view_name if match else "",
                    "refusal": reason,
                },
                **subjects,
            )


def mark_recorded(request: HttpRequest) -> None:
    """The refusal of this request was recorded elsewhere (by the action itself): the 403 the
    request is answered with is not recorded again."""
    setattr(request, _RECORDED, True)
