"""Operator actions on the fleet inventory: each checks permission, records its audit event and
sends follow-up work once the transaction commits."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from django.db import transaction

import audit
from fleet import access, outbox
from fleet.choices import FleetEvent, SyncStatus, SyncTrigger
from fleet.models import SyncRun


class ActionRefused(Exception):
    """The action cannot be done now; the message says why and what to do."""


@transaction.atomic
def request_sync(*, acting_user: Any) -> None:
    """Queue an inventory sync now ("Sync now")."""
    if not access.can_sync_inventory(acting_user):
        raise PermissionDenied(access.can_sync_inventory.refusal)
    if SyncRun.objects.filter(status=SyncStatus.RUNNING).exists():
        raise ActionRefused("An inventory sync is already running; its result will show here.")
    audit.record(FleetEvent.SYNC_REQUESTED, acting_user=acting_user)
    # Sent by name (fleet/tasks.py): actions sit below the tasks that call them.
    outbox.enqueue("fleet.sync_inventory", SyncTrigger.BUTTON, acting_user.pk)
