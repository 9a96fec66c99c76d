"""On PostgreSQL the audit table refuses UPDATE, DELETE and TRUNCATE, whoever sends them."""

from __future__ import annotations

import pytest
from django.db import connection, transaction
from django.db.utils import DatabaseError

import audit
from audit.models import AuditEvent

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_auditevent SET action = 'forged' WHERE seq = %s",
        "DELETE FROM audit_auditevent WHERE seq = %s",
        "TRUNCATE audit_auditevent",
    ],
    ids=["update", "delete", "truncate"],
)
def test_the_database_refuses_changes_to_recorded_events(statement):
    event = audit.record("test.written")

    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(statement, [event.seq] if "%s" in statement else None)

    assert AuditEvent.objects.get(seq=event.seq).action == "test.written"


def test_the_orm_cannot_change_an_event_either():
    event = audit.record("test.written")
    event.action = "forged"

    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        event.save()
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditEvent.objects.filter(seq=event.seq).delete()
