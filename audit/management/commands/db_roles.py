"""Create (or bring up to date) the two PostgreSQL roles Wavegate runs as: an owner that migrates
and an application role that may only add and read audit events and checkpoints.

Run as a PostgreSQL superuser (DATABASE_URL), before or after `migrate`; running it again
changes nothing but the passwords it is given. README: Database roles.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection, transaction
from django.db.migrations.loader import MigrationLoader

from audit.log import record

ROLE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
# The tables no role but their owner may change rows of (as audit/migrations/0006).
APPEND_ONLY_TABLES = ("audit_auditevent", "audit_auditcheckpoint")
ROW_RIGHTS = "SELECT, INSERT, UPDATE, DELETE"
# Neither role may create roles or databases, replicate, bypass row security, or be superuser.
PLAIN_ROLE = "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS"

# Relations and functions in the public schema not owned by the owner (created by a superuser's
# migrate, say), but an extension's. Sequences that belong to a column (serial, identity) follow
# their table and are left out.
FOREIGN_RELATIONS = """
SELECT c.relname, c.relkind
FROM pg_class AS c
JOIN pg_namespace AS n ON n.oid = c.relnamespace
WHERE n.nspname = 'public'
  AND c.relkind IN ('r', 'p', 'f', 'v', 'm', 'S')
  AND c.relowner <> (SELECT oid FROM pg_roles WHERE rolname = %s)
  AND NOT EXISTS (
      SELECT 1 FROM pg_depend AS d
      WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
        AND (d.deptype = 'e' OR (c.relkind = 'S' AND d.deptype IN ('a', 'i')))
  )
ORDER BY c.relkind, c.relname
"""
FOREIGN_FUNCTIONS = """
SELECT p.oid::regprocedure::text
FROM pg_proc AS p
JOIN pg_namespace AS n ON n.oid = p.pronamespace
WHERE n.nspname = 'public'
  AND p.proowner <> (SELECT oid FROM pg_roles WHERE rolname = %s)
  AND NOT EXISTS (
      SELECT 1 FROM pg_depend AS d
      WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
  )
"""
ALTER_OWNER = {"r": "TABLE", "p": "TABLE", "f": "FOREIGN TABLE", "v": "VIEW"}
ALTER_OWNER |= {"m": "MATERIALIZED VIEW", "S": "SEQUENCE"}


def _password(env_var: str, file_option: str | None) -> str | None:
    if file_option:
        try:
            return Path(file_option).read_text().strip() or None
        except OSError as error:
            raise CommandError(f"cannot read the password file {file_option}: {error}") from error
    return os.environ.get(env_var) or None


class Command(BaseCommand):
    help = (
        "As a PostgreSQL superuser: create the owner role (owns the database, migrates) and the "
        "application role (web, worker, beat; INSERT and SELECT only on the audit tables). "
        "Passwords from WAVEGATE_DB_OWNER_PASSWORD and WAVEGATE_DB_APP_PASSWORD or files."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--owner", required=True, help="the owner role, e.g. wavegate_owner")
        parser.add_argument("--app", required=True, help="the application role, e.g. wavegate_app")
        parser.add_argument("--owner-password-file", help="else WAVEGATE_DB_OWNER_PASSWORD")
        parser.add_argument("--app-password-file", help="else WAVEGATE_DB_APP_PASSWORD")

    def handle(self, *args: Any, owner: str, app: str, **options: Any) -> None:
        if connection.vendor != "postgresql":
            raise CommandError(
                "db_roles is for PostgreSQL. On SQLite there are no roles: the audit log is kept "
                "append-only only by Wavegate's own code."
            )
        for name in (owner, app):
            if not ROLE_NAME.fullmatch(name):
                raise CommandError(
                    f"{name!r} is not a role name this command takes: lower-case letters, "
                    "digits and '_', starting with a letter or '_', at most 63"
                )
        if owner == app:
            raise CommandError("the owner and the application role must be two different roles")
        passwords = {
            owner: _password("WAVEGATE_DB_OWNER_PASSWORD", options["owner_password_file"]),
            app: _password("WAVEGATE_DB_APP_PASSWORD", options["app_password_file"]),
        }
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                "SELECT current_user, rolsuper FROM pg_roles WHERE rolname = current_user"
            )
            me, is_superuser = cursor.fetchone()
            if not is_superuser:
                raise CommandError(
                    f"db_roles runs as a PostgreSQL superuser, and {me} (DATABASE_URL's user) is "
                    "not one: it creates roles and hands the database to the owner."
                )
            if me in (owner, app):
                raise CommandError(f"{me} is the superuser running this: choose other role names")
            for role in (owner, app):
                self._create_or_update(cursor, role, passwords[role])
            self._hand_over_to_owner(cursor, owner, app)
            self._grant_to_app(cursor, owner, app)
            refused = self._check_append_only(cursor, app)
            if self._audit_log_migrated():
                record(
                    "access.database_roles_set",
                    object_type="database",
                    object_id=connection.settings_dict["NAME"],
                    object_label=connection.settings_dict["NAME"],
                    after={"owner": owner, "app": app},
                )
        self.stdout.write(
            f"owner role {owner}: owns the database and its schema; run migrate as it"
        )
        self.stdout.write(f"application role {app}: {refused}")

    def _create_or_update(self, cursor: Any, role: str, password: str | None) -> None:
        quoted = connection.ops.quote_name(role)
        cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role])
        verb = "ALTER" if cursor.fetchone() else "CREATE"
        if password is None:
            cursor.execute(f"{verb} ROLE {quoted} {PLAIN_ROLE}")
            return
        # Hashed here (SCRAM), so the password itself never reaches the server or its logs.
        raw = connection.connection
        assert raw is not None
        verifier = raw.pgconn.encrypt_password(password.encode(), role.encode(), b"scram-sha-256")
        cursor.execute(f"{verb} ROLE {quoted} {PLAIN_ROLE} PASSWORD %s", [verifier.decode()])

    def _hand_over_to_owner(self, cursor: Any, owner: str, app: str) -> None:
        quote = connection.ops.quote_name
        database = quote(connection.settings_dict["NAME"])
        cursor.execute("SELECT pg_has_role(%s, %s, 'MEMBER')", [app, owner])
        if cursor.fetchone()[0]:
            raise CommandError(f"{app} is a member of {owner}: it would hold the owner's rights")
        cursor.execute(f"ALTER DATABASE {database} OWNER TO {quote(owner)}")
        cursor.execute(f"ALTER SCHEMA public OWNER TO {quote(owner)}")
        # Only the owner creates objects (PostgreSQL 15 and later already say so).
        cursor.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
        cursor.execute(FOREIGN_RELATIONS, [owner])
        for name, kind in cursor.fetchall():
            cursor.execute(f"ALTER {ALTER_OWNER[kind]} {quote(name)} OWNER TO {quote(owner)}")
        cursor.execute(FOREIGN_FUNCTIONS, [owner])
        for (signature,) in cursor.fetchall():
            cursor.execute(f"ALTER FUNCTION {signature} OWNER TO {quote(owner)}")

    def _grant_to_app(self, cursor: Any, owner: str, app: str) -> None:
        quote = connection.ops.quote_name
        database = quote(connection.settings_dict["NAME"])
        cursor.execute(f"GRANT CONNECT ON DATABASE {database} TO {quote(app)}")
        cursor.execute(f"GRANT USAGE ON SCHEMA public TO {quote(app)}")
        # Tables the owner creates from now on (migrate) are the app's to change rows of …
        default = f"ALTER DEFAULT PRIVILEGES FOR ROLE {quote(owner)} IN SCHEMA public GRANT"
        cursor.execute(f"{default} {ROW_RIGHTS} ON TABLES TO {quote(app)}")
        cursor.execute(f"{default} USAGE, SELECT ON SEQUENCES TO {quote(app)}")
        # … and so are those that exist already,
        cursor.execute(f"GRANT {ROW_RIGHTS} ON ALL TABLES IN SCHEMA public TO {quote(app)}")
        cursor.execute(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {quote(app)}")
        # … but for the audit tables, which it may only add to and read (as migration 0006).
        for table in self._existing(cursor, APPEND_ONLY_TABLES):
            for holder in ("PUBLIC", quote(app)):
                cursor.execute(f"REVOKE UPDATE, DELETE, TRUNCATE ON {quote(table)} FROM {holder}")
            cursor.execute(f"GRANT SELECT, INSERT ON {quote(table)} TO {quote(app)}")

    def _existing(self, cursor: Any, tables: tuple[str, ...]) -> list[str]:
        cursor.execute("SELECT relname FROM pg_class WHERE relname = ANY(%s)", [list(tables)])
        found = {name for (name,) in cursor.fetchall()}
        return [table for table in tables if table in found]

    def _check_append_only(self, cursor: Any, app: str) -> str:
        tables = self._existing(cursor, APPEND_ONLY_TABLES)
        if not tables:
            return "row rights on every table; run migrate (as the owner) next"
        for table in tables:
            for right in ("UPDATE", "DELETE", "TRUNCATE"):
                cursor.execute("SELECT has_table_privilege(%s, %s, %s)", [app, table, right])
                if cursor.fetchone()[0]:
                    raise CommandError(f"{app} still holds {right} on {table}: not safe to run")
        return f"row rights on every table but {', '.join(tables)}: INSERT and SELECT only"

    def _audit_log_migrated(self) -> bool:
        """The audit log can record this only once its table is as the model says."""
        loader = MigrationLoader(connection)
        leaves = [node for node in loader.graph.leaf_nodes() if node[0] == "audit"]
        return all(leaf in loader.applied_migrations for leaf in leaves)
