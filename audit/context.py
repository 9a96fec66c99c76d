"""Who is acting right now: the request (or task) whose changes the audit log attributes.

The middleware sets it for each web request; Celery's task signals set it for each task run.
`audit.record` reads it, so callers need not pass request details down through every layer.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Context:
    request_id: str
    ip: str | None = None
    # Returns the signed-in user; called only when an event is recorded, because the
    # request's user is known only after the authentication middleware has run.
    get_user: Callable[[], Any] | None = None

    def user(self) -> Any:
        user = self.get_user() if self.get_user else None
        return user if user is not None and user.is_authenticated else None


_current: contextvars.ContextVar[Context | None] = contextvars.ContextVar(
    "wavegate_audit_context", default=None
)


def current() -> Context | None:
    return _current.get()


@contextmanager
def acting(context: Context) -> Iterator[Context]:
    token = _current.set(context)
    try:
        yield context
    finally:
        _current.reset(token)


def begin(context: Context) -> contextvars.Token[Context | None]:
    """Start acting as `context` until `end` is called with the token (for signal pairs)."""
    return _current.set(context)


def end(token: contextvars.Token[Context | None]) -> None:
    _current.reset(token)
