"""On PostgreSQL, only the audit tables' owner holds UPDATE, DELETE and TRUNCATE on them.

The application connects as a role of its own (README: Database roles): on the audit events and
the checkpoints it may INSERT and SELECT, nothing more, so PostgreSQL itself refuses a rewrite
("permission denied"), and 0002's triggers stay as a second line. The owner, which migrates,
keeps its rights (and meets the triggers). Like 0002, this migration refuses to run backwards.
"""

from django.conf import settings
from django.db import migrations
from django.db.migrations.exceptions import IrreversibleError

APPEND_ONLY_TABLES = ("audit_auditevent", "audit_auditcheckpoint")

# Every role other than the owner that holds a right to change rows: the app role (through
# ALTER DEFAULT PRIVILEGES or a GRANT) and any other. PUBLIC (grantee 0) is revoked apart.
HOLDERS_OF_CHANGE_RIGHTS = """
SELECT DISTINCT holder.rolname
FROM pg_class AS c
CROSS JOIN LATERAL aclexplode(c.relacl) AS acl
JOIN pg_roles AS holder ON holder.oid = acl.grantee
WHERE c.oid = %s::regclass
  AND acl.privilege_type IN ('UPDATE', 'DELETE', 'TRUNCATE')
  AND acl.grantee <> c.relowner
"""


def restrict_to_append(apps, schema_editor):
    connection = schema_editor.connection
    if connection.vendor != "postgresql":
        return
    quote = connection.ops.quote_name
    app_role = getattr(settings, "WAVEGATE_DB_APP_ROLE", "")
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [app_role])
        app_role_exists = app_role and cursor.fetchone() is not None
        for table in APPEND_ONLY_TABLES:
            cursor.execute(f"REVOKE UPDATE, DELETE, TRUNCATE ON {quote(table)} FROM PUBLIC")
            cursor.execute(HOLDERS_OF_CHANGE_RIGHTS, [table])
            for (holder,) in cursor.fetchall():
                cursor.execute(
                    f"REVOKE UPDATE, DELETE, TRUNCATE ON {quote(table)} FROM {quote(holder)}"
                )
            if app_role_exists:
                cursor.execute(f"GRANT SELECT, INSERT ON {quote(table)} TO {quote(app_role)}")


def refuse_to_undo(apps, schema_editor):
    raise IrreversibleError(
        "audit.0006_append_only_grants cannot be unapplied: it would hand the application's "
        "database role the right to rewrite or empty the audit log. Nothing was changed."
    )


class Migration(migrations.Migration):
    dependencies = [("audit", "0005_anchors_and_filters")]
    operations = [migrations.RunPython(restrict_to_append, refuse_to_undo)]
