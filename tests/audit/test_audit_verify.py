"""`manage.py audit_verify`, run as an auditor runs it, on a database someone tampered with."""

from __future__ import annotations

import os
import subprocess
import sys

from django.db import connection, transaction

import audit
from tests.processes import ROOT


def audit_verify(isolated_db) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", "audit_verify"],
        cwd=ROOT,
        env=dict(os.environ, DATABASE_URL=isolated_db.url),
        capture_output=True,
        text=True,
        timeout=120,
    )


def behind_the_triggers_back(statement: str, params: list) -> None:
    """What a database superuser could do: switch the trigger off, change rows, switch it on."""
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE audit_auditevent DISABLE TRIGGER USER")
        cursor.execute(statement, params)
        cursor.execute("ALTER TABLE audit_auditevent ENABLE TRIGGER USER")


def write_events(count: int) -> list:
    with transaction.atomic():  # as every change writes its event
        return [audit.record("test.event", object_id=str(n), after={"n": n}) for n in range(count)]


def test_an_intact_chain_exits_0_with_its_count(isolated_db):
    write_events(5)
    from audit.models import AuditEvent

    last = AuditEvent.objects.order_by("-seq").first().seq
    done = audit_verify(isolated_db)

    assert done.returncode == 0, done.stderr
    assert f"chain intact to event {last}" in done.stdout


def test_a_changed_row_exits_1_naming_its_sequence_number(isolated_db):
    events = write_events(6)
    tampered = events[3]
    behind_the_triggers_back(
        "UPDATE audit_auditevent SET after = '{\"n\": 999}' WHERE seq = %s", [tampered.seq]
    )

    done = audit_verify(isolated_db)

    assert done.returncode == 1
    assert f"event {tampered.seq} altered: its content does not match its hash" in done.stderr


def test_a_row_rehashed_to_hide_a_change_breaks_the_next_link(isolated_db):
    from audit.chain import event_hash
    from audit.models import AuditEvent

    events = write_events(4)
    tampered = AuditEvent.objects.get(seq=events[1].seq)
    tampered.action = "test.forged"
    forged_hash = event_hash(tampered.chain_fields())
    behind_the_triggers_back(
        "UPDATE audit_auditevent SET action = 'test.forged', hash = %s WHERE seq = %s",
        [forged_hash, tampered.seq],
    )

    done = audit_verify(isolated_db)

    assert done.returncode == 1
    assert f"event {events[2].seq} does not follow event {tampered.seq}" in done.stderr


def test_a_deleted_row_exits_1_naming_the_missing_sequence_number(isolated_db):
    events = write_events(5)
    behind_the_triggers_back("DELETE FROM audit_auditevent WHERE seq = %s", [events[2].seq])

    done = audit_verify(isolated_db)

    assert done.returncode == 1
    assert f"event {events[2].seq} is missing" in done.stderr
