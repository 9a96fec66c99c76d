"""The audit log's one table. Rows are written by `audit.log.record` and never changed."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models

from audit.chain import HASHED_FIELDS
from config.fields import JSONField


class AuditEvent(models.Model):
    # The sequence number is the key: events are ordered, gap-free, one chain.
    seq = models.BigIntegerField(primary_key=True)
    at = models.DateTimeField(db_index=True)
    # The user is kept as text (actor_name) and as a bare id: no database constraint, and
    # deleting a user does nothing here, because audit rows must never be updated.
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )
    actor_name = models.CharField(max_length=150)
    actor_ip = models.GenericIPAddressField(null=True, blank=True)
    action = models.CharField(max_length=100, db_index=True)
    object_type = models.CharField(max_length=100, blank=True)
    object_id = models.CharField(max_length=255, blank=True)
    object_label = models.CharField(max_length=255, blank=True)
    before = JSONField(null=True, blank=True)
    after = JSONField(null=True, blank=True)
    request_id = models.CharField(max_length=128, blank=True)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)

    class Meta:
        ordering = ["seq"]
        indexes = [models.Index(fields=["object_type", "object_id"], name="audit_object_idx")]
        default_permissions = ()
        permissions = [
            ("view_audit", "Can read the audit log and check its chain"),
            ("export_audit", "Can export the audit log"),
        ]

    def __str__(self) -> str:
        return f"#{self.seq} {self.action} by {self.actor_name}"

    def chain_fields(self) -> dict[str, Any]:
        return {field: getattr(self, field) for field in (*HASHED_FIELDS, "hash")}
