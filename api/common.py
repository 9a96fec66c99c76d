"""What every module of the API shares: the page's permission rule, a page's address, and
strict reading of the query and the body (a misspelt name is refused, never ignored)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django import forms
from django.conf import settings
from django.urls import reverse
from django_filters import rest_framework as filters
from rest_framework import serializers
from rest_framework.request import Request

from accounts.access import Rule
from api.errors import Invalid, Refused

PAGING = ("cursor", "limit")


def allowed(request: Request, rule: Rule) -> None:
    """Refuse (403, the page's words) unless the user passes `rule`, as the page's decorator
    does; the audit middleware records a refused change, not a refused read (as for pages)."""
    if not rule(request.user):
        raise Refused(rule.refusal, forbidden=True)


def page_url(name: str, **kwargs: Any) -> str:
    """The address of a page, for a person to open."""
    return settings.WAVEGATE_PUBLIC_URL.rstrip("/") + reverse(name, kwargs=kwargs)


def known_params(request: Request, known: Sequence[str]) -> None:
    """Refuse a query parameter the endpoint does not know: a misspelt filter would otherwise
    list everything, silently."""
    unknown = sorted(set(request.query_params) - set(known))
    if unknown:
        raise Invalid(
            f"Unknown query parameter(s): {', '.join(unknown)}. Known: {', '.join(known)}.",
            unknown[0],
        )


def _not_text(data: Any, where: str = "") -> str | None:
    """Where in the JSON a string is no text PostgreSQL can store (a lone surrogate, which
    JSON's \\u escapes allow); None when there is none."""
    if isinstance(data, str):
        try:
            data.encode("utf-8")
        except UnicodeEncodeError:
            return where
        return None
    items = (
        data.items()
        if isinstance(data, dict)
        else enumerate(data)
        if isinstance(data, list)
        else ()
    )
    for key, value in items:
        found = _not_text(str(key), where) if isinstance(key, str) else None
        if found is not None:
            return found
        found = _not_text(value, f"{where}.{key}" if where else str(key))
        if found is not None:
            return found
    return None


def body(serializer: type[serializers.Serializer[Any]], request: Request) -> dict[str, Any]:
    """The request's JSON checked against `serializer`; a field it does not know is refused
    (a typo would otherwise be silently ignored)."""
    found = serializer(data=request.data)
    where = _not_text(request.data)
    if where is not None:
        raise Invalid(
            "Holds a lone surrogate (\\ud800…\\udfff), which is not text: send UTF-8 text.",
            where or None,
        )
    if isinstance(request.data, dict):
        unknown = sorted(set(request.data) - set(found.fields))
        if unknown:
            raise Invalid(
                f"Unknown field(s): {', '.join(unknown)}. Known: {', '.join(found.fields)}.",
                unknown[0],
            )
    found.is_valid(raise_exception=True)
    return dict(found.validated_data)


class _Nothing(serializers.Serializer[Any]):
    pass


def no_body(request: Request) -> dict[str, Any]:
    """An action that takes no input still reads what was sent: malformed JSON (400), another
    media type (415) or a field (400) is refused before the action runs, never ignored."""
    return body(_Nothing, request)


class WholeNumberFilter(filters.NumberFilter):
    """An id or an index: "1.5" is refused (400), never truncated to 1."""

    field_class = forms.IntegerField
