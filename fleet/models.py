"""The fleet inventory's models."""

from __future__ import annotations

from django.db import models


class FleetPermissions(models.Model):
    """Carries the fleet app's permissions, which roles hold; it has no table."""

    class Meta:
        managed = False
        default_permissions = ()
        permissions = [
            ("view_fleet", "Can see the fleet inventory and preflight results"),
            ("sync_inventory", "Can start an inventory sync"),
            ("scan_clusters", "Can start preflight scans"),
            ("manage_iptables_owners", "Can extend the table of accepted iptables owners"),
        ]

    def __str__(self) -> str:
        return "fleet permissions"
