"""Record sign-in, sign-out and failed sign-ins (throttled: audit/attempts.py), and attribute
Celery tasks' events."""

from __future__ import annotations

from typing import Any

from celery.signals import task_postrun, task_prerun
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.db import transaction
from django.dispatch import receiver

from accounts.choices import UserEvent
from audit import attempts, context
from audit.log import record


@receiver(user_logged_in, dispatch_uid="audit.signed_in")
def signed_in(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    with transaction.atomic():
        record(UserEvent.SIGNED_IN, acting_user=user, obj=user)


@receiver(user_logged_out, dispatch_uid="audit.signed_out")
def signed_out(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    if user is not None:  # signing out without a session changes nothing
        with transaction.atomic():
            record(UserEvent.SIGNED_OUT, acting_user=user, obj=user)


def refused_unchecked(request: Any) -> bool:
    """Was this sign-in refused by a lock-out before its password was checked?

    django-axes flags such a request as locked out without counting the try (settings:
    AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT off); the try that causes a lock-out is
    counted (`axes_failures_since_start`), or not yet flagged when this runs before axes.
    """
    return bool(getattr(request, "axes_locked_out", False)) and (
        getattr(request, "axes_failures_since_start", None) is None
    )


@receiver(user_login_failed, dispatch_uid="audit.sign_in_failed")
def sign_in_failed(
    sender: Any, credentials: dict[str, Any], request: Any = None, **kwargs: Any
) -> None:
    # Django has already masked anything secret in `credentials`; the username stays.
    username = str(credentials.get("username", ""))
    ctx = context.current()
    with transaction.atomic():
        # Only the first failures of each minute are recorded one by one, and never a try
        # during a lock-out (the lock-out was one event); the rest are counted and summarised
        # once the minute has passed, so that guessing cannot grow the log without bound.
        if attempts.sign_in_failure_counted(
            username, ctx.ip if ctx else None, checked=not refused_unchecked(request)
        ):
            record(UserEvent.SIGN_IN_FAILED, object_type="auth.user", object_label=username)


# Events written by a Celery task carry the task's id as their request id, so one run's
# changes can be found together.
_task_contexts: dict[str, Any] = {}


@task_prerun.connect(dispatch_uid="audit.task_started")
def task_started(task_id: str, **kwargs: Any) -> None:
    _task_contexts[task_id] = context.begin(context.Context(request_id=f"task:{task_id}"))


@task_postrun.connect(dispatch_uid="audit.task_finished")
def task_finished(task_id: str, **kwargs: Any) -> None:
    token = _task_contexts.pop(task_id, None)
    if token is not None:
        context.end(token)
