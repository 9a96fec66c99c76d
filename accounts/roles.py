"""Wavegate's roles. A role is a Django group; what each role may do is the set of
permissions its group holds, granted by each app's own data migration."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db import models

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser, AnonymousUser


class Role(models.TextChoices):
    VIEWER = "viewer", "Viewer"
    OPERATOR = "operator", "Operator"
    APPROVER = "approver", "Approver"
    AUDITOR = "auditor", "Auditor"
    ADMIN = "admin", "Admin"


def roles_of(user: AbstractBaseUser | AnonymousUser) -> list[str]:
    """The role names a user holds, in the order of `Role` (a user may hold several)."""
    if not user.is_authenticated:
        return []
    held = set(user.groups.values_list("name", flat=True))  # type: ignore[attr-defined]
    return [role.value for role in Role if role.value in held]
