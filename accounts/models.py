"""The accounts app's permissions (roles are groups: accounts/roles.py), and the counts that
keep failed sign-ins and refused requests from flooding the audit log."""

from __future__ import annotations

from datetime import datetime

from django.db import IntegrityError, models, transaction
from django.db.models import F

from accounts.choices import AttemptKind


class AccountsPermissions(models.Model):
    """Carries the accounts app's permissions, which roles hold; it has no table."""

    class Meta:
        managed = False
        default_permissions = ()
        permissions = [
            ("lift_lockouts", "Can see sign-in lock-outs and lift them"),
        ]

    def __str__(self) -> str:
        return "accounts permissions"


class AttemptWindow(models.Model):
    """One minute's attempts of one kind by one scope (the whole site for failed sign-ins, one
    person or address for refused requests): how many there were, and how many of them the
    audit log recorded one by one. The rest are only counted, and summarised in one audit event
    once the minute has passed (audit/attempts.py), so that a flood cannot flood the log."""

    kind = models.CharField(max_length=20, choices=AttemptKind.choices)
    window = models.DateTimeField(help_text="the minute's start")
    scope = models.CharField(max_length=200, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    recorded = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["kind", "window", "scope"], name="accounts_attempt_window_once"
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.scope or 'site'} at {self.window:%H:%M}: {self.attempts}"

    @classmethod
    def count(
        cls, kind: str, window: datetime, scope: str, *, recordable: bool, limit: int
    ) -> bool:
        """Count one attempt; True when it is one of the first `limit` recordable ones of its
        minute and scope, to be recorded one by one. The row stays locked until the caller's
        transaction ends, so that concurrent attempts are counted one after the other."""
        row, _ = cls.objects.select_for_update().get_or_create(
            kind=kind, window=window, scope=scope
        )
        row.attempts += 1
        recorded = recordable and row.recorded < limit
        if recorded:
            row.recorded += 1
        row.save(update_fields=["attempts", "recorded"])
        return recorded


class AttemptTally(models.Model):
    """Who made one minute's attempts of one kind: the name given and the address, counted for
    the minute's summary."""

    kind = models.CharField(max_length=20, choices=AttemptKind.choices)
    window = models.DateTimeField(help_text="the minute's start")
    username = models.CharField(max_length=150, blank=True)
    address = models.CharField(max_length=45, blank=True)
    attempts = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["kind", "window", "username", "address"],
                name="accounts_attempt_tally_once",
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.username!r} from {self.address or '?'}: {self.attempts}"

    @classmethod
    def count(cls, kind: str, window: datetime, username: str, address: str) -> None:
        """Add one attempt by `username` from `address`, in the caller's transaction."""
        key = {"kind": kind, "window": window, "username": username[:150], "address": address}
        if cls.objects.filter(**key).update(attempts=F("attempts") + 1):
            return
        try:
            with transaction.atomic():
                cls.objects.create(**key, attempts=1)
        except IntegrityError:  # counted by someone else meanwhile: add to theirs
            cls.objects.filter(**key).update(attempts=F("attempts") + 1)
