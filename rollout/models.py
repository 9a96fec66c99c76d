"""The rollout app's models."""

from __future__ import annotations

from django.db import models


class RolloutPermissions(models.Model):
    """Carries the rollout app's permissions, which roles hold; it has no table."""

    class Meta:
        managed = False
        default_permissions = ()
        permissions = [
            ("view_plans", "Can see rollout plans and waves"),
            ("manage_plans", "Can create, submit, pause, resume, abort and roll back plans"),
            ("approve_waves", "Can approve or reject a wave of another person's plan"),
            ("emergency_stop", "Can pause every running plan at once"),
        ]

    def __str__(self) -> str:
        return "rollout permissions"
