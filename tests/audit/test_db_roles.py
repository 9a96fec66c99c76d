"""Two database roles: the owner migrates; the application's role may only add and read audit
events and checkpoints, and PostgreSQL itself refuses it the rest. The audit migrations that
install the triggers and the grants refuse to run backwards.

Roles are cluster-wide in PostgreSQL: each test names its own (unique per run) and drops them.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connection, connections, transaction
from django.db.migrations.exceptions import IrreversibleError
from django.db.migrations.recorder import MigrationRecorder
from django.db.utils import DatabaseError
from psycopg import errors, sql

import audit
from accounts.roles import roles_of
from audit import anchor
from audit.models import AuditCheckpoint, AuditEvent, ChainWatch
from audit.verification import check_increment, verify_stored_chain
from fleet.models import Cluster
from tests.factories import make_cluster
from tests.processes import ROOT

TRIGGERS = ["audit_event_no_truncate", "audit_event_no_update_delete"]


@dataclass(frozen=True)
class Roles:
    owner: str
    app: str
    password: str


def server(**overrides: Any) -> dict[str, Any]:
    """How to reach the suite's PostgreSQL, as its superuser unless told otherwise."""
    settings_dict = connections["default"].settings_dict
    return {
        "host": settings_dict["HOST"] or "localhost",
        "port": settings_dict["PORT"] or 5432,
        "user": settings_dict["USER"],
        "password": settings_dict["PASSWORD"] or None,
        "dbname": settings_dict["NAME"],
        **overrides,
    }


def url(database: str, user: str, password: str) -> str:
    where = server()
    return f"postgres://{user}:{password}@{where['host']}:{where['port']}/{database}"


def superuser_url(database: str) -> str:
    where = server()
    auth = where["user"] + (f":{where['password']}" if where["password"] else "")
    return f"postgres://{auth}@{where['host']}:{where['port']}/{database}"


def drop(database: str, roles: Roles) -> None:
    connections.close_all()
    with psycopg.connect(**server(dbname="postgres"), autocommit=True) as admin:
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database))
        )
        for role in (roles.app, roles.owner):
            admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def new_roles() -> Roles:
    suffix = uuid.uuid4().hex[:10]
    return Roles(f"wg_owner_{suffix}", f"wg_app_{suffix}", secrets.token_hex(16))


@pytest.fixture
def roles(isolated_db, monkeypatch) -> Iterator[Roles]:
    """The two roles, set up by `db_roles` (as the superuser) on this test's migrated database."""
    made = new_roles()
    monkeypatch.setenv("WAVEGATE_DB_OWNER_PASSWORD", made.password)
    monkeypatch.setenv("WAVEGATE_DB_APP_PASSWORD", made.password)
    try:
        call_command("db_roles", owner=made.owner, app=made.app, verbosity=0)
        yield made
    finally:
        drop(isolated_db.name, made)


@contextmanager
def connected_as(role: str, password: str) -> Iterator[None]:
    """Django's own connection, signed in to the database as `role` meanwhile."""
    connections.close_all()
    settings_dict = connections["default"].settings_dict
    saved = settings_dict["USER"], settings_dict["PASSWORD"]
    settings_dict["USER"], settings_dict["PASSWORD"] = role, password
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT current_user")
            assert cursor.fetchone() == (role,)
        yield
    finally:
        connections.close_all()
        settings_dict["USER"], settings_dict["PASSWORD"] = saved


def refusal(database: str, role: str, password: str, statement: str) -> errors.Error:
    as_role = server(dbname=database, user=role, password=password)
    with psycopg.connect(**as_role) as raw, pytest.raises(errors.Error) as refused:
        raw.execute(statement)
    return refused.value


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_auditevent SET action = 'forged'",
        "DELETE FROM audit_auditevent",
        "TRUNCATE audit_auditevent",
        "UPDATE audit_auditcheckpoint SET signature = 'forged'",
        "DELETE FROM audit_auditcheckpoint",
        "TRUNCATE audit_auditcheckpoint",
    ],
)
def test_it_refuses_the_app_role_any_change_to_recorded_events_by_privilege(
    isolated_db, roles, statement
):
    with transaction.atomic():
        audit.record("test.written")
    table = statement.split("audit_")[1].split()[0]

    refused = refusal(isolated_db.name, roles.app, roles.password, statement)

    # PostgreSQL's privilege check, before any trigger could run (whose message says
    # "append-only" under the same SQLSTATE).
    assert refused.sqlstate == "42501"
    assert f"permission denied for table audit_{table}" in str(refused)
    assert AuditEvent.objects.filter(action="test.written").count() == 1
    assert AuditCheckpoint.objects.count() == 0


def test_it_lets_the_app_role_record_read_anchor_and_verify(isolated_db, roles, tmp_path, settings):
    key = tmp_path / "audit.key"
    key.write_bytes(os.urandom(48).hex().encode())
    settings.WAVEGATE_AUDIT_HMAC_KEY_FILE = str(key)
    settings.WAVEGATE_AUDIT_CHECKPOINT_FILE = str(tmp_path / "checkpoints.jsonl")

    with connected_as(roles.app, roles.password):
        with transaction.atomic():
            first = audit.record("test.written", object_type="test.thing", object_id="1")
            audit.record("test.written", object_type="test.thing", object_id="2")
        checkpoint = anchor.make_checkpoint()
        watch = check_increment()
        read = list(AuditEvent.objects.values_list("action", flat=True))
        verdict = verify_stored_chain()

    assert read == ["access.database_roles_set", "test.written", "test.written"]
    assert verdict.intact
    assert checkpoint is not None
    assert checkpoint.seq == first.seq + 1
    assert AuditCheckpoint.objects.get().signature == checkpoint.signature
    # The verifier's bookmark is the one audit row the app role moves on.
    assert watch.verified_seq == first.seq + 1
    assert ChainWatch.objects.get().verified_seq == first.seq + 1


def test_it_lets_the_app_role_change_every_other_table(isolated_db, roles):
    events_before = AuditEvent.objects.count()

    with connected_as(roles.app, roles.password):
        cluster = make_cluster(name="aks-writable")
        Cluster.objects.filter(pk=cluster.pk).update(ring="canary")
        changed = Cluster.objects.get(pk=cluster.pk).ring
        call_command("set_roles", "alice", "operator", "--create", verbosity=0)
        call_command("set_roles", "alice", "approver", verbosity=0)
        Cluster.objects.filter(pk=cluster.pk).delete()
        left = Cluster.objects.filter(pk=cluster.pk).exists()

    assert changed == "canary"
    assert not left
    assert roles_of(get_user_model().objects.get(username="alice")) == ["approver"]
    assert AuditEvent.objects.count() > events_before


def test_the_database_is_the_owners_and_setting_up_the_roles_again_changes_nothing(
    isolated_db, roles
):
    call_command("db_roles", owner=roles.owner, app=roles.app, verbosity=0)

    with psycopg.connect(**server(dbname=isolated_db.name)) as raw:
        owners = raw.execute(
            "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'"
        ).fetchall()
        may_update = raw.execute(
            "SELECT has_table_privilege(%s, 'audit_auditevent', 'UPDATE'),"
            " has_table_privilege(%s, 'fleet_cluster', 'UPDATE')",
            [roles.app, roles.app],
        ).fetchone()
    assert owners == [(roles.owner,)]
    assert may_update == (False, True)
    assert AuditEvent.objects.filter(action="access.database_roles_set").count() == 2


def test_it_will_not_set_up_roles_unless_run_as_a_superuser(isolated_db, roles):
    done = subprocess.run(
        [sys.executable, "manage.py", "db_roles", "--owner", "someone", "--app", "else"],
        cwd=ROOT,
        env=dict(os.environ, DATABASE_URL=url(isolated_db.name, roles.app, roles.password)),
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert done.returncode != 0
    assert f"db_roles runs as a PostgreSQL superuser, and {roles.app}" in done.stderr


def test_roles_made_before_migrate_leave_the_app_role_only_adding_and_reading(django_db_setup):
    """The production order (docker-compose.yml, `make run`): roles first, then `migrate` run as
    the owner with the app role named, then the application as its role."""
    made = new_roles()
    database = f"{server()['dbname'][:30]}_{made.app}"
    with psycopg.connect(**server(dbname="postgres"), autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    env = dict(
        os.environ, WAVEGATE_DB_OWNER_PASSWORD=made.password, WAVEGATE_DB_APP_PASSWORD=made.password
    )

    def manage(*args: str, **more: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env={**env, **more},
            capture_output=True,
            text=True,
            timeout=300,
        )

    try:
        roles_set = manage(
            "db_roles",
            "--owner",
            made.owner,
            "--app",
            made.app,
            DATABASE_URL=superuser_url(database),
        )
        migrated = manage(
            "migrate",
            "--noinput",
            DATABASE_URL=url(database, made.owner, made.password),
            WAVEGATE_DB_APP_ROLE=made.app,
        )
        assert roles_set.returncode == 0, roles_set.stderr
        assert migrated.returncode == 0, migrated.stderr
        as_app = server(dbname=database, user=made.app, password=made.password)
        with psycopg.connect(**as_app) as raw:
            raw.execute("SELECT count(*) FROM audit_auditevent")
            raw.execute("UPDATE fleet_cluster SET ring = ring")
            raw.execute("UPDATE audit_chainwatch SET verified_seq = verified_seq")
        refused = refusal(database, made.app, made.password, "TRUNCATE audit_auditevent")
        assert "permission denied for table audit_auditevent" in str(refused)
        with psycopg.connect(**server(dbname=database)) as raw:
            owners = raw.execute(
                "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'"
            ).fetchall()
        assert owners == [(made.owner,)]
    finally:
        drop(database, made)


def installed_triggers() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tgname FROM pg_trigger WHERE tgrelid = 'audit_auditevent'::regclass"
            " AND NOT tgisinternal ORDER BY tgname"
        )
        return [name for (name,) in cursor.fetchall()]


@pytest.mark.parametrize(
    ("faked_away", "refusing"),
    [(None, "audit.0006_append_only_grants"), ("0005", "audit.0002_append_only")],
    ids=["grants", "triggers-with-grants-faked-away"],
)
def test_rolling_the_audit_log_back_is_refused_and_the_triggers_stay(
    isolated_db, faked_away, refusing
):
    if faked_away:
        call_command("migrate", "audit", faked_away, fake=True, verbosity=0)

    with pytest.raises(IrreversibleError, match=f"{refusing} cannot be unapplied") as refused:
        call_command("migrate", "audit", "0001", verbosity=0)

    assert "Nothing was changed" in str(refused.value)
    assert installed_triggers() == TRIGGERS
    applied = MigrationRecorder(connection).applied_migrations()
    assert ("audit", "0002_append_only") in applied
    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute("TRUNCATE audit_auditevent")
