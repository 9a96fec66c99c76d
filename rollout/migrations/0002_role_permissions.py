"""What each role may do with rollout plans."""

from django.db import migrations

from accounts.grants import grant

LABELS = {
    "view_plans": "Can see rollout plans and waves",
    "manage_plans": "Can create, submit, pause, resume, abort and roll back plans",
    "approve_waves": "Can approve or reject a wave of another person's plan",
    "emergency_stop": "Can pause every running plan at once",
}
GRANTS = {
    "viewer": ["view_plans"],
    "operator": ["view_plans", "manage_plans", "emergency_stop"],
    "approver": ["view_plans", "approve_waves"],
    "auditor": ["view_plans"],
    "admin": list(LABELS),
}


def grant_roles(apps, schema_editor):
    grant(apps, "rollout", "rolloutpermissions", GRANTS, LABELS)


class Migration(migrations.Migration):
    dependencies = [
        ("rollout", "0001_initial"),
        ("accounts", "0001_roles"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]
    operations = [migrations.RunPython(grant_roles, migrations.RunPython.noop)]
