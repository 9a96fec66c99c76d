"""Operator actions on the fleet: each checks permission, records its audit event and sends
follow-up work once the transaction commits."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from django.db import transaction

import audit
from fleet import access
from fleet.choices import SyncStatus, SyncTrigger
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
    audit.record("inventory.sync_requested", acting_user=acting_user)

    from fleet.tasks import sync_inventory

    transaction.on_commit(lambda: sync_inventory.delay(SyncTrigger.BUTTON, acting_user.pk))
