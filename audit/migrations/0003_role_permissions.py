"""Who may read and export the audit log."""

from django.db import migrations

from accounts.grants import grant

LABELS = {
    "view_audit": "Can read the audit log and check its chain",
    "export_audit": "Can export the audit log",
}
GRANTS = {
    "auditor": ["view_audit", "export_audit"],
    "admin": ["view_audit", "export_audit"],
}


def grant_roles(apps, schema_editor):
    grant(apps, "audit", "auditevent", GRANTS, LABELS)


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0002_append_only"),
        ("accounts", "0001_roles"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]
    operations = [migrations.RunPython(grant_roles, migrations.RunPython.noop)]
