"""Every API error as the same JSON: a stable `code`, a `message` for a person, the `field`
at fault (or null), and for invalid input every field's messages under `errors`.

Refusals carry the words the pages show: a permission (403) or an action that cannot be done
now (409), from the same action functions, recorded in the audit log as the pages record them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import exception_handler

import fleet.actions
import preflight.actions
import rollout.actions
from audit.refusals import REASON, mark_recorded, record_refusal

R = TypeVar("R")

ACTION_REFUSALS: tuple[type[Exception], ...] = (
    rollout.actions.ActionRefused,
    preflight.actions.ActionRefused,
    fleet.actions.ActionRefused,
)

REFUSALS: tuple[type[Exception], ...] = (PermissionDenied, *ACTION_REFUSALS)


class Refused(exceptions.APIException):
    """An action refused: 403 for who is asking, 409 for the state things are in."""

    def __init__(self, message: str, *, forbidden: bool) -> None:
        self.status_code = status.HTTP_403_FORBIDDEN if forbidden else status.HTTP_409_CONFLICT
        super().__init__(message, code="forbidden" if forbidden else "conflict")


class Invalid(exceptions.ValidationError):
    """Input that fails a check outside a serializer, for one field (or None: the whole)."""

    def __init__(self, message: str, field: str | None = None, code: str = "invalid") -> None:
        super().__init__({field or "non_field_errors": [message]}, code=code)


def perform(
    request: Request,
    do: Callable[[], R],
    *,
    refusal_recorded: bool = False,
    **subjects: Any,
) -> R:
    """Run an action function as the pages do: a refusal is recorded in the audit log (unless
    the action recorded it itself) and answered 403 or 409 with its own words."""
    try:
        return do()
    except REFUSALS as refusal:
        if refusal_recorded:
            mark_recorded(request._request)
        else:
            record_refusal(request._request, refusal, **subjects)
        message = str(refusal) or "Your role does not allow this."
        raise Refused(message, forbidden=isinstance(refusal, PermissionDenied)) from refusal


def _first(detail: Any) -> tuple[str | None, str, str]:
    """The field, message and code of the first error in a ValidationError's detail."""
    if isinstance(detail, dict):
        for field, inner in detail.items():
            sub_field, message, code = _first(inner)
            if field == "non_field_errors":
                return None, message, code
            path = f"{field}.{sub_field}" if sub_field else str(field)
            return path, message, code
    if isinstance(detail, list) and detail:
        return _first(detail[0])
    return None, str(detail), getattr(detail, "code", "invalid") or "invalid"


def _plain(detail: Any) -> Any:
    if isinstance(detail, dict):
        return {str(k): _plain(v) for k, v in detail.items()}
    if isinstance(detail, list):
        return [_plain(v) for v in detail]
    return str(detail)


CODES = {
    exceptions.NotAuthenticated: "not_authenticated",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.ParseError: "malformed",
    exceptions.Throttled: "throttled",
}


def handle(exc: Exception, context: dict[str, Any]) -> Response | None:
    """REST_FRAMEWORK's EXCEPTION_HANDLER."""
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(
            exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        )
    if isinstance(exc, Http404):
        exc = exceptions.NotFound("Nothing here: the id or address is not one Wavegate knows.")
    response = exception_handler(exc, context)
    if response is None:
        return None
    request: Request | None = context.get("request")
    field: str | None = None
    errors: Any = None
    if isinstance(exc, exceptions.ValidationError):
        field, message, code = _first(exc.detail)
        code = "invalid" if code in ("invalid", "required", "null", "blank") else code
        errors = _plain(
            exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        )
        if field:
            message = f"{field}: {message}"
    else:
        message = str(getattr(exc, "detail", exc))
        code = next((c for kind, c in CODES.items() if isinstance(exc, kind)), "")
        if not code:
            detail_code = getattr(getattr(exc, "detail", None), "code", None)
            code = str(detail_code or getattr(exc, "default_code", "error"))
        if code == "permission_denied":
            code = "forbidden"
    if response.status_code == status.HTTP_403_FORBIDDEN and request is not None:
        # For the audit middleware, which records refused changes with the reason given.
        setattr(request._request, REASON, message)
    body: dict[str, Any] = {"code": code, "message": message, "field": field}
    if errors is not None:
        body["errors"] = errors
    response.data = body
    return response
