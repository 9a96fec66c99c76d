"""Who may see and act on the fleet inventory. Pages and API ask here, nowhere else."""

from __future__ import annotations

from accounts.access import Rule

can_view_fleet = Rule("fleet.view_fleet", "Seeing the fleet needs a Wavegate role.")
can_sync_inventory = Rule(
    "fleet.sync_inventory", "Starting an inventory sync needs the operator or admin role."
)
