"""Who may see and lift sign-in lock-outs: admins."""

from django.db import migrations, models

from accounts.grants import grant

LABELS = {"lift_lockouts": "Can see sign-in lock-outs and lift them"}
GRANTS = {"admin": list(LABELS)}


def grant_roles(apps, schema_editor):
    grant(apps, "accounts", "accountspermissions", GRANTS, LABELS)


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0001_roles"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]
    operations = [
        migrations.CreateModel(
            name="AccountsPermissions",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
            ],
            options={
                "permissions": [("lift_lockouts", "Can see sign-in lock-outs and lift them")],
                "managed": False,
                "default_permissions": (),
            },
        ),
        migrations.RunPython(grant_roles, migrations.RunPython.noop),
    ]
