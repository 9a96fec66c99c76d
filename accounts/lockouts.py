"""Sign-in lock-outs: who is locked out now, and lifting one.

django-axes counts failed sign-ins per user name and address (AccessAttempt rows); a user
name, or an address, whose recent failures reach AXES_FAILURE_LIMIT is locked out until
AXES_COOLOFF_TIME has passed since the last of them, or until an admin lifts it here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from axes.models import AccessAttempt
from django.conf import settings
from django.db import transaction
from django.db.models import Max, QuerySet, Sum
from django.utils import timezone

from accounts.choices import LockoutKind
from accounts.signals import lockout_lifted

_FIELD = {LockoutKind.USER: "username", LockoutKind.ADDRESS: "ip_address"}


@dataclass(frozen=True)
class Lockout:
    kind: LockoutKind
    value: str
    failures: int
    last_attempt: datetime

    @property
    def ends(self) -> datetime:
        ends: datetime = self.last_attempt + settings.AXES_COOLOFF_TIME
        return ends


def _recent() -> QuerySet[AccessAttempt]:
    return AccessAttempt.objects.filter(
        attempt_time__gte=timezone.now() - settings.AXES_COOLOFF_TIME
    )


def current_lockouts() -> list[Lockout]:
    """Every user name and address locked out now, the latest first."""
    found = []
    for kind, field in _FIELD.items():
        rows = (
            _recent()
            .filter(**{f"{field}__isnull": False})
            .order_by()  # group by the field alone, not by the model's ordering too
            .values(field)
            .annotate(failures=Sum("failures_since_start"), last=Max("attempt_time"))
            .filter(failures__gte=settings.AXES_FAILURE_LIMIT)
        )
        found += [Lockout(kind, row[field], row["failures"], row["last"]) for row in rows]
    return sorted(found, key=lambda lockout: lockout.last_attempt, reverse=True)


def lift_lockout(kind: LockoutKind, value: str, *, acting_user: Any = None) -> Lockout | None:
    """Forget the failed sign-ins that lock `value` out, and say so in the audit log.

    Returns the lock-out lifted, or None when `value` was not locked out (nothing changes).
    """
    field = _FIELD[LockoutKind(kind)]
    with transaction.atomic():
        lockout = next(
            (lo for lo in current_lockouts() if lo.kind == kind and lo.value == value), None
        )
        if lockout is None:
            return None
        AccessAttempt.objects.filter(**{field: value}).delete()
        lockout_lifted.send(
            sender=Lockout,
            kind=lockout.kind,
            value=lockout.value,
            failures=lockout.failures,
            acting_user=acting_user,
        )
    return lockout
