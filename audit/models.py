"""The audit log's one table. Rows are written by `audit.log.record` and never changed."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models

from audit.chain import HASHED_FIELDS, OPTIONAL_HASHED_FIELDS
from audit.kinds import CATEGORY_EXPRESSION, OUTCOME_EXPRESSION, Category, Outcome
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
    action = models.CharField(max_length=100)
    object_type = models.CharField(max_length=100, blank=True)
    object_id = models.CharField(max_length=255, blank=True)
    object_label = models.CharField(max_length=255, blank=True)
    before = JSONField(null=True, blank=True)
    after = JSONField(null=True, blank=True)
    request_id = models.CharField(max_length=128, blank=True)
    # The cluster and the plan the event concerns, for the auditor's filters: hashed when set
    # (audit/chain.py OPTIONAL_HASHED_FIELDS), bare ids like actor_id.
    cluster_id = models.BigIntegerField(null=True, blank=True)
    plan_id = models.BigIntegerField(null=True, blank=True)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)
    # Computed by the database from the action's name (audit/kinds.py), for the page's filters.
    category = models.GeneratedField(
        expression=CATEGORY_EXPRESSION,
        output_field=models.CharField(max_length=20, choices=Category.choices),
        db_persist=True,
    )
    outcome = models.GeneratedField(
        expression=OUTCOME_EXPRESSION,
        output_field=models.CharField(max_length=10, choices=Outcome.choices),
        db_persist=True,
    )

    class Meta:
        ordering = ["seq"]
        # Each filter of the auditor's page reads newest first along one of these (keyset
        # pagination on seq), so a page costs the same at a million events as at a hundred.
        indexes = [
            models.Index(fields=["object_type", "object_id"], name="audit_object_idx"),
            models.Index(fields=["action", "seq"], name="audit_action_seq_idx"),
            models.Index(fields=["actor_name", "seq"], name="audit_actor_seq_idx"),
            models.Index(fields=["cluster_id", "seq"], name="audit_cluster_seq_idx"),
            models.Index(fields=["plan_id", "seq"], name="audit_plan_seq_idx"),
            models.Index(fields=["category", "seq"], name="audit_category_seq_idx"),
            models.Index(fields=["outcome", "seq"], name="audit_outcome_seq_idx"),
        ]
        default_permissions = ()
        permissions = [
            ("view_audit", "Can read the audit log and check its chain"),
            ("export_audit", "Can export the audit log"),
        ]

    def __str__(self) -> str:
        return f"#{self.seq} {self.action} by {self.actor_name}"

    def chain_fields(self) -> dict[str, Any]:
        return {
            field: getattr(self, field)
            for field in (*HASHED_FIELDS, *OPTIONAL_HASHED_FIELDS, "hash")
        }


class AuditCheckpoint(models.Model):
    """The chain's head at a moment, signed with a key the database never holds
    (WAVEGATE_AUDIT_HMAC_KEY_FILE), and copied outside it (WAVEGATE_AUDIT_CHECKPOINT_FILE).
    Append-only like the events."""

    seq = models.BigIntegerField(db_index=True)
    hash = models.CharField(max_length=64)
    at = models.DateTimeField()
    signature = models.CharField(max_length=64)
    key_id = models.CharField(max_length=12)

    class Meta:
        ordering = ["seq", "id"]
        default_permissions = ()

    def __str__(self) -> str:
        return f"checkpoint at event {self.seq}"

    def signed_fields(self) -> dict[str, Any]:
        return {"seq": self.seq, "hash": self.hash, "at": self.at, "signature": self.signature}


class ChainWatch(models.Model):
    """How far beat's incremental check has verified the chain, and what it found wrong.

    One row (pk 1). A break stays recorded until someone who may read the log has looked and
    the chain verifies again from the start (`manage.py audit_verify --reset-watch`)."""

    verified_seq = models.BigIntegerField(default=0)
    verified_hash = models.CharField(max_length=64, blank=True)
    checked_at = models.DateTimeField(null=True, blank=True)
    broken_seq = models.BigIntegerField(null=True, blank=True)
    broken_reason = models.TextField(blank=True)
    broken_since = models.DateTimeField(null=True, blank=True)
    # After a break was acknowledged, checks resumed after this event: the events before it
    # are not vouched for.
    resumed_after = models.BigIntegerField(null=True, blank=True)
    # Why the checkpoints could not be checked last time (an unreadable key or file): a fault
    # of the setup, shown to auditors, not evidence of tampering.
    unchecked_reason = models.TextField(blank=True)

    class Meta:
        default_permissions = ()

    def __str__(self) -> str:
        return f"verified to event {self.verified_seq}"
