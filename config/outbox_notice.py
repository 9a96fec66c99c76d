"""Tell the person when the work their action queued could not reach the workers yet.

The action itself stands (its change and its audit event are committed, and the work is in the
outbox, fleet/outbox.py): the page says the work is queued and starts once the workers can be
reached, instead of an error page.
"""

from __future__ import annotations

from collections.abc import Callable

from django.contrib import messages
from django.http import HttpRequest, HttpResponse

from fleet import outbox

NOTICE = (
    "Done, but Wavegate cannot reach its workers right now (the message broker is down): the "
    "work this started is queued and starts once they can be reached. Wavegate sends it again "
    "every minute; nothing needs doing again."
)


class OutboxNoticeMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        with outbox.watching() as unsent:
            response = self.get_response(request)
        if unsent:
            messages.warning(request, NOTICE)
        return response
