"""Record sign-in lock-outs (django-axes) and their lifting (accounts.lockouts).

Connected after audit.signals (audit/apps.py), so that the failed sign-in that causes a
lock-out is recorded before the lock-out.
"""

from __future__ import annotations

from typing import Any

from axes.signals import user_locked_out
from django.db import transaction
from django.dispatch import receiver

from accounts.choices import LockoutKind, UserEvent
from accounts.signals import lockout_lifted
from audit.log import record
from audit.signals import refused_unchecked


@receiver(user_locked_out, dispatch_uid="audit.locked_out")
def locked_out(
    sender: Any, request: Any, username: str | None, ip_address: str | None, **kwargs: Any
) -> None:
    # axes sends this for the try that locks out, and again for each try refused during it.
    if refused_unchecked(request):
        return
    failures = getattr(request, "axes_failures_since_start", None)
    with transaction.atomic():
        record(
            UserEvent.LOCKED_OUT,
            object_type="auth.user",
            object_label=username or "",
            after={"user": username or "", "address": ip_address, "failures": failures},
        )


@receiver(lockout_lifted, dispatch_uid="audit.lockout_lifted")
def lockout_was_lifted(
    sender: Any, kind: str, value: str, failures: int, acting_user: Any, **kwargs: Any
) -> None:
    # Sent inside the transaction that lifted it: the event commits with the change or not at all.
    record(
        UserEvent.LOCKOUT_LIFTED,
        acting_user=acting_user,
        object_type="auth.user" if kind == LockoutKind.USER else "address",
        object_label=value,
        before={LockoutKind(kind).value: value, "failures": failures},
    )
