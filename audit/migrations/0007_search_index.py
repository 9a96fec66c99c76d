"""Full-text search of the audit log on PostgreSQL: a GIN index over the expression the page
searches (audit/filters.py SEARCH_DOCUMENT). SQLite searches by substring, unindexed."""

from django.db import migrations

# Frozen here; tests/audit/test_desk.py checks the page's search still uses this index.
SEARCH_DOCUMENT = "to_tsvector('simple'::regconfig, object_label || ' ' || actor_name || ' ' || coalesce(after ->> 'comment', '') || ' ' || coalesce(after ->> 'reason', '') || ' ' || coalesce(after ->> 'refusal', '') || ' ' || coalesce(after ->> 'message', '') || ' ' || coalesce(after ->> 'error', ''))"

INDEX = "audit_search_idx"


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS {INDEX} ON audit_auditevent USING gin (({SEARCH_DOCUMENT}))"
        )


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP INDEX IF EXISTS {INDEX}")


class Migration(migrations.Migration):
    dependencies = [("audit", "0006_append_only_grants")]
    operations = [migrations.RunPython(create, drop)]
