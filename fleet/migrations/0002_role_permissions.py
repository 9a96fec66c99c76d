"""What each role may do with the fleet."""

from django.db import migrations

from accounts.grants import grant

LABELS = {
    "view_fleet": "Can see the fleet inventory and preflight results",
    "sync_inventory": "Can start an inventory sync",
    "scan_clusters": "Can start preflight scans",
    "manage_iptables_owners": "Can extend the table of accepted iptables owners",
}
GRANTS = {
    "viewer": ["view_fleet"],
    "operator": ["view_fleet", "sync_inventory", "scan_clusters"],
    "approver": ["view_fleet"],
    "auditor": ["view_fleet"],
    "admin": list(LABELS),
}


def grant_roles(apps, schema_editor):
    grant(apps, "fleet", "fleetpermissions", GRANTS, LABELS)


class Migration(migrations.Migration):
    dependencies = [
        ("fleet", "0001_initial"),
        ("accounts", "0001_roles"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]
    operations = [migrations.RunPython(grant_roles, migrations.RunPython.noop)]
