"""Cursor pagination: pages stay correct while rows are added (a running wave, the audit log)."""

from __future__ import annotations

import json
import math
import operator
import re
from collections.abc import Sequence
from functools import reduce
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import Q, QuerySet
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import Cursor as Position
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request

_NUMBER = re.compile(r"[0-9]{1,18}")


def _not_ours() -> ValidationError:
    return ValidationError(
        {"cursor": ["Not a cursor this list gave: follow `next` or `previous`."]}
    )


class Cursor(CursorPagination):
    page_size = 100
    page_size_query_param = "limit"
    max_page_size = 1000
    ordering = "-pk"

    integer_positions = True  # the position is a row's number (pk, seq): digits only

    def get_page_size(self, request: Request) -> int:
        """`limit`, a whole number from 1 to max_page_size: anything else is refused, never
        quietly replaced by the default or the maximum."""
        given = request.query_params.get(self.page_size_query_param)
        if given is None:
            return self.page_size
        if not _NUMBER.fullmatch(given) or not 1 <= int(given) <= self.max_page_size:
            raise ValidationError(
                {"limit": [f"A whole number from 1 to {self.max_page_size} (rows a page)."]}
            )
        return int(given)

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        parameters: list[dict[str, Any]] = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"] = {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": self.max_page_size,
                    "default": self.page_size,
                }
        return parameters

    def decode_cursor(self, request: Request) -> Any:
        try:
            cursor = super().decode_cursor(request)
        except NotFound as exc:  # DRF's answer to a cursor it did not give: the input is wrong
            raise _not_ours() from exc
        position = cursor.position if cursor is not None else None
        # A hand-made position would reach the query (a 500, or a broken transaction).
        if self.integer_positions and position is not None and not _NUMBER.fullmatch(position):
            raise _not_ours()
        return cursor


class OldestFirst(Cursor):
    ordering = "pk"


def _after(order: Sequence[str], values: Sequence[Any]) -> Q:
    """The rows after `values` in `order`: later on the first key, or equal on it and later on
    the second, and so on."""
    later, equal = [], Q()
    for key, value in zip(order, values, strict=True):
        name = key.lstrip("-")
        later.append(equal & Q(**{f"{name}__{'lt' if key.startswith('-') else 'gt'}": value}))
        equal &= Q(**{name: value})
    return reduce(operator.or_, later)


def _flipped(order: Sequence[str]) -> tuple[str, ...]:
    return tuple(key[1:] if key.startswith("-") else f"-{key}" for key in order)


def _storable(value: Any) -> bool:
    """A value PostgreSQL can compare with a column: no NUL, no lone surrogate, no infinity,
    an integer within 64 bits."""
    if isinstance(value, bool):
        return True
    if isinstance(value, int):
        return abs(value) < 2**63
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return "\x00" not in value
    return False


class Keyset(Cursor):
    """Cursor pages in the queryset's own order, over any number of keys ending in a unique
    one: a cursor holds the last row's value of each key, so the next page starts right after
    it however many rows share the first keys. (DRF's cursor holds the first key alone and
    skips rows sharing it by an offset it caps at 1000: ten thousand clusters sorted by region
    would repeat pages.)"""

    integer_positions = False  # its positions are JSON lists, checked by _values

    def get_ordering(self, request: Request, queryset: Any, view: Any) -> tuple[str, ...]:
        return tuple(str(key) for key in queryset.query.order_by) or (str(self.ordering),)

    def paginate_queryset(
        self, queryset: QuerySet[Any], request: Request, view: Any = None
    ) -> list[Any]:
        self.request = request
        self.page_size = self.get_page_size(request)
        self.base_url = request.build_absolute_uri()
        self.keys = self.get_ordering(request, queryset, view)
        self.cursor = self.decode_cursor(request)
        backwards = bool(self.cursor and self.cursor.reverse)
        self.at = self.cursor.position if self.cursor else None
        order = _flipped(self.keys) if backwards else self.keys
        rows = queryset.order_by(*order)
        if self.at is not None:
            try:
                rows = rows.filter(_after(order, self._values(self.at)))
            except (ValueError, TypeError, OverflowError, DjangoValidationError) as exc:
                # A hand-made cursor naming values its keys cannot hold.
                raise _not_ours() from exc
        found = list(rows[: self.page_size + 1])
        self.page = found[: self.page_size]
        more = len(found) > self.page_size
        if backwards:
            self.page.reverse()
        started = self.at is not None
        self.has_next, self.has_previous = (started, more) if backwards else (more, started)
        return self.page

    def _values(self, position: str) -> list[Any]:
        try:
            values = json.loads(position)
        except ValueError:
            values = None
        if (
            not isinstance(values, list)
            or len(values) != len(self.keys)
            # PostgreSQL holds no NUL in text, nor compares a key with a list.
            or not all(_storable(v) for v in values)
        ):
            raise _not_ours()
        return values

    def _position(self, row: Any) -> str:
        values = []
        for key in self.keys:
            value = row
            for name in key.lstrip("-").split("__"):
                value = getattr(value, name)
            values.append(value)
        return json.dumps(values, cls=DjangoJSONEncoder)

    def get_next_link(self) -> str | None:
        if not self.has_next:
            return None
        position = self._position(self.page[-1]) if self.page else self.at
        return str(self.encode_cursor(Position(offset=0, reverse=False, position=position)))

    def get_previous_link(self) -> str | None:
        if not self.has_previous:
            return None
        position = self._position(self.page[0]) if self.page else self.at
        return str(self.encode_cursor(Position(offset=0, reverse=True, position=position)))


# --- what goes out ------------------------------------------------------------------------------
