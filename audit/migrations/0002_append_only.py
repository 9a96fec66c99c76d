"""On PostgreSQL, make the audit table append-only: UPDATE, DELETE and TRUNCATE are refused.

There is deliberately no setting to turn this off, and no way back: unapplying this migration
is refused, so `migrate audit 0001` cannot drop the triggers. A test that must empty the table
works on a database of its own (see tests/conftest.py).
"""

from django.db import migrations
from django.db.migrations.exceptions import IrreversibleError

INSTALL = """
CREATE OR REPLACE FUNCTION audit_event_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only: % on audit_auditevent is refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER audit_event_no_update_delete
    BEFORE UPDATE OR DELETE ON audit_auditevent
    FOR EACH ROW EXECUTE FUNCTION audit_event_refuse_change();
CREATE TRIGGER audit_event_no_truncate
    BEFORE TRUNCATE ON audit_auditevent
    FOR EACH STATEMENT EXECUTE FUNCTION audit_event_refuse_change();
"""


def install(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(INSTALL, params=None)


def refuse_to_remove(apps, schema_editor):
    # Dropping the triggers is what rewriting history would start with: no migration does it.
    raise IrreversibleError(
        "audit.0002_append_only cannot be unapplied: it would drop the triggers that keep the "
        "audit log append-only. Nothing was changed."
    )


class Migration(migrations.Migration):
    dependencies = [("audit", "0001_initial")]
    operations = [migrations.RunPython(install, refuse_to_remove)]
