"""The preflight app's audit actions: scans asked for, started and finished, and changes to the
accepted iptables owners. (Scan statuses stay with the models, in fleet/choices.py.)"""

from __future__ import annotations

from django.db import models


class PreflightEvent(models.TextChoices):
    SCAN_REQUESTED = "preflight.scan_requested", "Preflight scan requested"
    FLEET_SCAN_REQUESTED = "preflight.fleet_scan_requested", "Fleet-wide scan requested"
    SCAN_STARTED = "preflight.scan_started", "Preflight scan started"
    SCAN_FINISHED = "preflight.scan_finished", "Preflight scan finished"
    LEFTOVER_REMOVED = "preflight.leftover_removed", "Leftover scan namespace removed"
    OWNER_PROPOSED = "iptables.owner_proposed", "Accepted iptables owner proposed"
    OWNER_ADDED = "iptables.owner_added", "Accepted iptables owner confirmed, active"
    OWNER_DECLINED = "iptables.owner_declined", "Proposed iptables owner declined or withdrawn"
    OWNER_RETIRE_PROPOSED = "iptables.owner_retire_proposed", "Retirement of an owner proposed"
    OWNER_RETIRED = "iptables.owner_retired", "Accepted iptables owner retired"
    OWNER_CONFIRMATION_REFUSED = "iptables.owner_confirmation_refused", "Confirmation refused"
