"""The accounts app's permissions (roles are groups: accounts/roles.py)."""

from __future__ import annotations

from django.db import models


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
