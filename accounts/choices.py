"""The accounts app's audit actions: sign-ins, changes of users, groups and roles, and refused
requests; and what the sign-in throttle counts."""

from __future__ import annotations

from django.db import models


class UserEvent(models.TextChoices):
    SIGNED_IN = "user.signed_in", "Signed in"
    SIGNED_OUT = "user.signed_out", "Signed out"
    SIGN_IN_FAILED = "user.sign_in_failed", "Sign-in failed"
    # One per minute in which more sign-ins failed than were recorded one by one.
    SIGN_IN_FAILURES = "user.sign_in_failures", "Failed sign-ins counted"
    CREATED = "user.created", "User created"
    CHANGED = "user.changed", "User changed"
    PASSWORD_CHANGED = "user.password_changed", "Password changed"
    # Written by create_demo_users before users' changes were recorded by signals; kept so
    # that older events still read well.
    PASSWORD_RESET = "user.password_reset", "Password reset"
    DELETED = "user.deleted", "User deleted"
    ROLES_CHANGED = "user.roles_changed", "Roles changed"
    PERMISSIONS_CHANGED = "user.permissions_changed", "User's own permissions changed"
    LOCKED_OUT = "user.locked_out", "Locked out after failed sign-ins"
    LOCKOUT_LIFTED = "user.lockout_lifted", "Lock-out lifted"


class GroupEvent(models.TextChoices):
    """Groups are roles (accounts/roles.py): what a group may do is what its members may."""

    CREATED = "group.created", "Group created"
    CHANGED = "group.changed", "Group renamed"
    DELETED = "group.deleted", "Group deleted"
    PERMISSIONS_CHANGED = "group.permissions_changed", "Group's permissions changed"


class RefusalEvent(models.TextChoices):
    """A request refused, with its reason: by a permission (access), or because the thing
    asked for cannot be done now (an app's action refused: wrong state, missing comment…)."""

    ACCESS = "access.refused", "Refused: not allowed"
    FLEET = "fleet.action_refused", "Fleet action refused"
    PREFLIGHT = "preflight.action_refused", "Preflight action refused"
    ROLLOUT = "rollout.action_refused", "Rollout action refused"
    # One per minute per person (or address) who was refused more often than recorded.
    COUNTED = "access.repeatedly_refused", "Refusals counted"


class LockoutKind(models.TextChoices):
    """What a sign-in lock-out holds back: one user name (from anywhere), or one address."""

    USER = "user", "User"
    ADDRESS = "address", "Address"


class AttemptKind(models.TextChoices):
    """Attempts recorded one by one only up to a number a minute, the rest counted
    (accounts.models.AttemptWindow)."""

    SIGN_IN_FAILURE = "sign_in_failure", "Failed sign-in"
    REFUSAL = "refusal", "Refused request"
