"""`audit_verify --json` and `audit_export --json` for scripts: what was found or written as
one JSON document, and the exit statuses of the README's table."""

from __future__ import annotations

import json

from django.db import connection, transaction

import audit
from audit.models import AuditEvent
from tests.scripting import ended, run


def write_events(count: int) -> list:
    with transaction.atomic():
        return [audit.record("test.event", object_id=str(n), after={"n": n}) for n in range(count)]


def test_verify_says_an_intact_chain_as_json(db):
    events = write_events(3)

    ran = run("audit_verify", "--json")

    assert ran.status == 0, ran.err
    said = ran.json()
    assert said["intact"] is True
    assert said["last_seq"] == events[-1].seq
    assert f"chain intact to event {events[-1].seq}" in said["statements"]
    assert said["problems"] == []
    assert said["acknowledged"] is None


def test_verify_names_a_changed_event_and_exits_1_with_one_document(db):
    events = write_events(4)
    with connection.cursor() as cursor:  # what a database superuser could do
        cursor.execute("ALTER TABLE audit_auditevent DISABLE TRIGGER USER")
        cursor.execute("UPDATE audit_auditevent SET after = '{}' WHERE seq = %s", [events[1].seq])
        cursor.execute("ALTER TABLE audit_auditevent ENABLE TRIGGER USER")

    ran = run("audit_verify", "--json")

    assert "the audit log does not hold" in ended(ran, 1)
    said = ran.json()  # the report, not an error document besides it
    assert said["intact"] is False
    assert (
        f"event {events[1].seq} altered: its content does not match its hash"
        in (said["problems"][0])
    )
    assert f"PROBLEM: event {events[1].seq} altered" in ran.err


def test_acknowledge_without_a_reason_is_a_usage_error(db):
    ran = run("audit_verify", "--acknowledge", "  ", "--json")

    assert ended(ran, 2) == "--acknowledge needs the reason, e.g. what was found and done"
    assert ran.json()["field"] == "--acknowledge"


def test_export_with_json_says_what_it_wrote(db, tmp_path):
    events = write_events(3)
    path = tmp_path / "log.jsonl"

    ran = run("audit_export", "--format", "jsonl", "--output", str(path), "--json")

    assert ran.status == 0, ran.err
    said = ran.json()
    exported = AuditEvent.objects.get(action="audit.exported")
    assert said == {
        "output": str(path),
        "format": "jsonl",
        "filter": {},
        "scope": "complete",
        "events": 4,
        "first_seq": events[0].seq,
        "last_seq": exported.seq,
        "checkpoints": 0,
    }
    assert len(path.read_text().splitlines()) == 6  # header, 4 events, end


def test_export_json_without_output_is_a_usage_error_and_exports_nothing(db):
    ran = run("audit_export", "--format", "csv", "--json")

    assert ended(ran, 2) == "--json needs --output: without it the export itself goes to stdout"
    assert json.loads(ran.out)["field"] == "--output"
    assert not AuditEvent.objects.filter(action="audit.exported").exists()


def test_a_bad_date_names_its_option(db, tmp_path):
    out = str(tmp_path / "log.csv")

    ran = run("audit_export", "--format", "csv", "--since", "yesterday", "--output", out, "--json")

    assert "is not a date or time" in ended(ran, 2)
    assert ran.json()["field"] == "--since"


def test_a_moment_before_year_1_in_utc_names_its_option(db, tmp_path):
    out = str(tmp_path / "log.csv")
    since = "0001-01-01T00:00:00+01:00"

    ran = run("audit_export", "--format", "csv", "--since", since, "--output", out, "--json")

    assert "is out of range" in ended(ran, 2)
    assert ran.json()["field"] == "--since"
    assert not AuditEvent.objects.filter(action="audit.exported").exists()


def test_a_file_that_cannot_be_written_records_no_export(db, tmp_path):
    write_events(2)
    out = str(tmp_path / "missing-folder" / "log.csv")

    ran = run("audit_export", "--format", "jsonl", "--output", out, "--json")

    assert "the export could not be written to" in ended(ran, 1)
    assert ran.json()["field"] == "--output"
    assert not AuditEvent.objects.filter(action="audit.exported").exists()
