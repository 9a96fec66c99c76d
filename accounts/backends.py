"""The sign-in throttle, as the first authentication backend (settings.AUTHENTICATION_BACKENDS)."""

from __future__ import annotations

from typing import Any

from axes.backends import AxesBackend
from django.http import HttpRequest


class SignInThrottle(AxesBackend):
    """django-axes' lock-out check, for sign-ins through a web request.

    The sign-in page always passes its request. A sign-in without one (a shell, the test
    client's `login`) has no address to count by and no one to guess through, so it goes on to
    the password check; axes itself would refuse it with an error.
    """

    def authenticate(
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        **kwargs: Any,
    ) -> None:
        if request is None:
            return None
        return super().authenticate(request, username, password, **kwargs)
