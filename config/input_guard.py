"""Refuse a request whose form fields or query parameters hold control characters.

A NUL or an escape sequence typed or pasted into a field is never what a person meant, and
PostgreSQL cannot store a NUL in text: without this guard such a value reached a view and ended
in a 500 after part of the work was done. Every parameter (names and values) is checked
before any view runs. A form sent (POST) with one is refused, so it changes nothing: the person
gets a page (or, for a live fragment, a message in place) naming the field and the character,
and what to do. A page read (GET) goes on without that parameter and says it was ignored.
The API (/api/) refuses any such request, in its JSON, naming the parameter.
Tab, line feed and carriage return stay allowed: text areas hold lines.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, JsonResponse, QueryDict
from django.template.loader import render_to_string

# C0 controls but tab, LF and CR; DEL; C1 controls; lone surrogates a decoder let through.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


def first_control(params: QueryDict) -> tuple[str, str] | None:
    """(field name, the character as U+XXXX) of the first control character, or None."""
    for key, values in params.lists():
        for text in (key, *values):
            found = _CONTROL.search(text)
            if found:
                return key, f"U+{ord(found.group()):04X}"
    return None


class InputGuardMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path.startswith("/static/"):
            return self.get_response(request)
        if request.path.startswith("/api/"):
            # A script reads a refusal better than a silently dropped parameter.
            found = first_control(request.GET) or (
                first_control(request.POST) if request.method == "POST" else None
            )
            if found is not None:
                return self.refuse(request, *found)
        elif request.method == "POST":
            found = first_control(request.GET) or first_control(request.POST)
            if found is not None:
                return self.refuse(request, *found)
        elif first_control(request.GET) is not None:
            self.drop_from_query(request)
        return self.get_response(request)

    def drop_from_query(self, request: HttpRequest) -> None:
        """A page read (GET changes nothing) goes on without the parameters that hold control
        characters, and says which were ignored."""
        kept = request.GET.copy()
        while (found := first_control(kept)) is not None:
            field, char = found
            del kept[field]
            messages.warning(
                request,
                f"The parameter {_CONTROL.sub('?', field)[:100]!r} held a control character "
                f"({char}) and was ignored.",
            )
        kept._mutable = False
        request.GET = kept  # type: ignore[assignment]  # a copy, read-only again

    def refuse(self, request: HttpRequest, field: str, char: str) -> HttpResponse:
        field = _CONTROL.sub("?", field)[:100]
        message = (
            f"The field {field!r} holds a control character ({char}) that Wavegate does not "
            "accept. Nothing was changed: remove the character (it often comes with pasted "
            "text) and send it again."
        )
        if request.path.startswith("/api/"):
            return JsonResponse({"code": "invalid", "message": message, "field": field}, status=400)
        live = request.headers.get("HX-Request") == "true"
        template = "_bad_input.html" if live else "400.html"
        body = render_to_string(template, {"message": message}, request=request)
        # A live fragment is answered 200 so that htmx puts the message in place.
        return HttpResponse(body, status=200 if live else 400)
