"""The preflight app's audit actions: scans asked for, started and finished, and changes to the
accepted iptables owners. (Scan statuses stay with the models, in fleet/choices.py.)"""

from __future__ import annotations

from django.db import models


class PreflightEvent(models.TextChoices):
    SCAN_REQUESTED = "preflight.scan_requested", "Preflight scan requested"
    FLEET_SCAN_REQUESTED = "preflight.fleet_scan_requested", "Fleet-wide scan requested"
    SCAN_STARTED = "preflight.scan_started", "Preflight scan started"
    SCAN_FINISHED = "preflight.scan_finished", "Preflight scan finished"
    OWNER_ADDED = "iptables.owner_added", "Accepted iptables owner added"
    OWNER_RETIRED = "iptables.owner_retired", "Accepted iptables owner retired"
