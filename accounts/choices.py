"""The accounts app's audit actions: sign-ins and changes of users and roles."""

from __future__ import annotations

from django.db import models


class UserEvent(models.TextChoices):
    SIGNED_IN = "user.signed_in", "Signed in"
    SIGNED_OUT = "user.signed_out", "Signed out"
    SIGN_IN_FAILED = "user.sign_in_failed", "Sign-in failed"
    CREATED = "user.created", "User created"
    PASSWORD_RESET = "user.password_reset", "Password reset"
    ROLES_CHANGED = "user.roles_changed", "Roles changed"
    LOCKED_OUT = "user.locked_out", "Locked out after failed sign-ins"
    LOCKOUT_LIFTED = "user.lockout_lifted", "Lock-out lifted"


class LockoutKind(models.TextChoices):
    """What a sign-in lock-out holds back: one user name (from anywhere), or one address."""

    USER = "user", "User"
    ADDRESS = "address", "Address"
