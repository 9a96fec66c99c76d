"""Record sign-in, sign-out and failed sign-ins in the audit log."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver

from audit.log import record


@receiver(user_logged_in, dispatch_uid="audit.signed_in")
def signed_in(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    record("user.signed_in", acting_user=user, obj=user)


@receiver(user_logged_out, dispatch_uid="audit.signed_out")
def signed_out(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    if user is not None:  # signing out without a session changes nothing
        record("user.signed_out", acting_user=user, obj=user)


@receiver(user_login_failed, dispatch_uid="audit.sign_in_failed")
def sign_in_failed(
    sender: Any, credentials: dict[str, Any], request: Any = None, **kwargs: Any
) -> None:
    # Django has already masked anything secret in `credentials`; the username stays.
    username = str(credentials.get("username", ""))
    record("user.sign_in_failed", object_type="auth.user", object_label=username)
