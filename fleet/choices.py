"""Status values of the fleet app, as choice classes."""

from __future__ import annotations

from django.db import models


class AccelerationMode(models.TextChoices):
    NONE = "None", "None"
    BPFVETH = "BpfVeth", "BpfVeth"


class SyncStatus(models.TextChoices):
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class SyncTrigger(models.TextChoices):
    SCHEDULE = "schedule", "Schedule"
    BUTTON = "button", "Sync now"
    COMMAND = "command", "Command line"


class ScanStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    CLEAN = "clean", "Clean"
    BLOCKED = "blocked", "Blocked by rules"
    INCOMPLETE = "incomplete", "Incomplete"
    ERROR = "error", "Error"


# A scan in one of these states has not ended yet.
SCAN_OPEN = (ScanStatus.QUEUED, ScanStatus.RUNNING)


class FleetEvent(models.TextChoices):
    """The fleet app's audit actions: inventory syncs and what they found."""

    SYNC_REQUESTED = "inventory.sync_requested", "Inventory sync requested"
    SYNC_STARTED = "inventory.sync_started", "Inventory sync started"
    SYNC_FINISHED = "inventory.sync_finished", "Inventory sync finished"
    SYNC_FAILED = "inventory.sync_failed", "Inventory sync failed"
    WORK_NOT_SENT = "outbox.given_up", "Queued work never reached the workers"
    SUBSCRIPTION_DISCOVERED = "subscription.discovered", "Subscription discovered"
    SUBSCRIPTION_CHANGED = "subscription.changed", "Subscription changed"
    SUBSCRIPTION_REMOVED = "subscription.removed", "Subscription removed"
    CLUSTER_DISCOVERED = "cluster.discovered", "Cluster discovered"
    CLUSTER_CHANGED = "cluster.changed", "Cluster changed"
    CLUSTER_REMOVED = "cluster.removed", "Cluster removed"
