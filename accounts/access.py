"""The shape of an access rule, and how views enforce one.

Each app writes its rules once, in its own `access.py`, as `Rule`s (or functions of the user
and an object); pages and API call the same rules.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any, TypeVar

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponseBase

View = TypeVar("View", bound=Callable[..., HttpResponseBase])


@dataclass(frozen=True)
class Rule:
    """May a user do this? Granted by a Django permission that roles carry."""

    permission: str
    refusal: str  # shown to a user who may not, saying which role would

    def __call__(self, user: Any) -> bool:
        return bool(user.is_authenticated and user.has_perm(self.permission))


def requires(rule: Rule) -> Callable[[View], View]:
    """Answer 403, with the rule's explanation, unless the signed-in user passes `rule`."""

    def decorate(view: View) -> View:
        @wraps(view)
        def guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            if not rule(request.user):
                raise PermissionDenied(rule.refusal)
            return view(request, *args, **kwargs)

        return guarded  # type: ignore[return-value]

    return decorate


can_lift_lockouts = Rule(
    "accounts.lift_lockouts", "Seeing and lifting sign-in lock-outs needs the admin role."
)
