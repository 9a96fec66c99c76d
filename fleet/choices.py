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
