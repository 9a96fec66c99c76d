"""Signed checkpoints catch what the hash chain alone cannot: a superuser who rewrites an event
and recomputes every later hash, or cuts the last events off. And beat's incremental check
raises the alarm for every signed-in user."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection, transaction
from django.test import Client

import audit
from audit.chain import event_hash
from tests.factories import make_user
from tests.processes import ROOT


@pytest.fixture
def anchors(tmp_path, settings):
    key = tmp_path / "audit.key"
    key.write_bytes(os.urandom(48).hex().encode())
    settings.WAVEGATE_AUDIT_HMAC_KEY_FILE = str(key)
    settings.WAVEGATE_AUDIT_CHECKPOINT_FILE = str(tmp_path / "checkpoints.jsonl")
    return settings


def run(command: str, isolated_db, anchors, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(
        os.environ,
        DATABASE_URL=isolated_db.url,
        WAVEGATE_AUDIT_HMAC_KEY_FILE=anchors.WAVEGATE_AUDIT_HMAC_KEY_FILE,
        WAVEGATE_AUDIT_CHECKPOINT_FILE=anchors.WAVEGATE_AUDIT_CHECKPOINT_FILE,
    )
    return subprocess.run(
        [sys.executable, "manage.py", command, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def write_events(count: int) -> list:
    with transaction.atomic():
        return [audit.record("test.event", object_id=str(n), after={"n": n}) for n in range(count)]


def as_superuser(*statements: tuple[str, list]) -> None:
    """What the database's owner can do that the application's role cannot."""
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE audit_auditevent DISABLE TRIGGER USER")
        for statement, params in statements:
            cursor.execute(statement, params)
        cursor.execute("ALTER TABLE audit_auditevent ENABLE TRIGGER USER")


def rewrite_from(seq: int) -> None:
    """Change event `seq` and recompute its hash and every later one: the chain alone verifies."""
    from audit.models import AuditEvent

    statements = []
    prev = AuditEvent.objects.get(seq=seq - 1).hash
    for event in AuditEvent.objects.filter(seq__gte=seq).order_by("seq"):
        if event.seq == seq:
            event.after = {"n": "rewritten"}
        event.prev_hash = prev
        event.hash = event_hash(event.chain_fields())
        prev = event.hash
        statements.append(
            (
                "UPDATE audit_auditevent SET after = %s, prev_hash = %s, hash = %s WHERE seq = %s",
                [json.dumps(event.after), event.prev_hash, event.hash, event.seq],
            )
        )
    # Unique hashes: move them out of the way first.
    as_superuser(("UPDATE audit_auditevent SET hash = 'x' || seq WHERE seq >= %s", [seq]))
    as_superuser(*statements)


def test_a_rewritten_and_rehashed_chain_is_caught_by_the_signed_checkpoint(isolated_db, anchors):
    events = write_events(8)
    made = run("audit_checkpoint", isolated_db, anchors)
    assert made.returncode == 0, made.stderr
    head = events[-1].seq
    assert f"checkpoint at event {head} signed" in made.stdout
    more = write_events(2)

    before = run("audit_verify", isolated_db, anchors)
    assert before.returncode == 0, before.stderr
    assert f"chain intact to event {more[-1].seq}" in before.stdout
    assert f"checkpoint at event {head} signed" in before.stdout
    assert f"events after {head} not yet anchored" in before.stdout

    rewrite_from(events[3].seq)

    after = run("audit_verify", isolated_db, anchors)
    assert after.returncode == 1
    # The links alone are fooled, and the report says they are not to be believed.
    assert f"hashes link up to event {more[-1].seq}, but signed checkpoints contradict" in (
        after.stdout
    )
    assert "chain intact" not in after.stdout
    assert f"to {head} were altered: the signed checkpoint at event {head}" in after.stderr


def test_cutting_the_last_events_is_caught(isolated_db, anchors):
    events = write_events(6)
    assert run("audit_checkpoint", isolated_db, anchors).returncode == 0
    as_superuser(("DELETE FROM audit_auditevent WHERE seq > %s", [events[3].seq]))

    done = run("audit_verify", isolated_db, anchors)

    assert done.returncode == 1
    assert (
        f"checkpoint says event {events[-1].seq} exists, the table ends at {events[3].seq}"
        in done.stderr
    )


def test_a_forged_checkpoint_row_is_named(isolated_db, anchors):
    from audit.models import AuditCheckpoint

    events = write_events(3)
    assert run("audit_checkpoint", isolated_db, anchors).returncode == 0
    with connection.cursor() as cursor:
        cursor.execute("UPDATE audit_auditcheckpoint SET signature = %s", ["0" * 64])

    done = run("audit_verify", isolated_db, anchors)

    assert done.returncode == 1
    assert f"checkpoint at event {events[-1].seq} (the database) is not signed" in done.stderr
    assert AuditCheckpoint.objects.count() == 1


def test_the_command_without_a_key_says_what_to_do(isolated_db, anchors, tmp_path):
    write_events(1)
    anchors.WAVEGATE_AUDIT_HMAC_KEY_FILE = str(tmp_path / "nowhere.key")

    done = run("audit_checkpoint", isolated_db, anchors)

    assert done.returncode == 2
    assert "cannot be read" in done.stderr
    assert "WAVEGATE_AUDIT_HMAC_KEY_FILE" in done.stderr


def signed_in(role: str) -> Client:
    client = Client()
    client.force_login(make_user(role))
    return client


def test_beat_check_raises_a_banner_and_records_the_break_once(isolated_db, anchors):
    from audit.anchor import make_checkpoint
    from audit.models import AuditEvent
    from audit.verification import check_increment

    operator, auditor = signed_in("operator"), signed_in("auditor")
    events = write_events(5)
    make_checkpoint()
    watch = check_increment()
    assert watch.broken_seq is None
    assert watch.verified_seq == AuditEvent.objects.order_by("-seq").first().seq
    assert "chain is broken" not in operator.get("/").content.decode()

    as_superuser(("DELETE FROM audit_auditevent WHERE seq = %s", [events[-1].seq]))
    watch = check_increment()
    check_increment()  # a second run finds the same break: still one event

    assert watch.broken_seq is not None
    assert "gone" in watch.broken_reason
    assert AuditEvent.objects.filter(action="audit.chain_broken").count() == 1
    for client in (operator, auditor):
        assert "The audit log's chain is broken" in client.get("/").content.decode()


def test_a_checkpoint_being_made_while_checking_is_not_called_tampering(isolated_db, anchors):
    """The file line is written just before its row commits: a check in between sees a line
    the database lacks, or a checkpoint newer than the head it read first. Neither is a break."""
    from django.utils import timezone

    from audit.anchor import _append_to_file, _as_line
    from audit.chain import key_id, sign_checkpoint
    from audit.models import AuditCheckpoint
    from audit.verification import check_increment

    events = write_events(3)
    assert run("audit_checkpoint", isolated_db, anchors).returncode == 0
    more = write_events(2)
    key = Path(anchors.WAVEGATE_AUDIT_HMAC_KEY_FILE).read_bytes().strip()
    pending = AuditCheckpoint(seq=more[-1].seq, hash=more[-1].hash, at=timezone.now())
    pending.key_id = key_id(key)
    pending.signature = sign_checkpoint(key, pending.signed_fields())
    _append_to_file(_as_line(pending))  # its row not committed (yet)

    done = run("audit_verify", isolated_db, anchors)
    watch = check_increment()

    assert done.returncode == 0, done.stderr
    assert f"checkpoint at event {more[-1].seq}" in done.stdout
    assert "not in the database yet" in done.stdout
    assert watch.broken_seq is None
    assert events


def test_an_unreadable_key_is_a_setup_fault_not_tampering(isolated_db, anchors, tmp_path):
    from audit.anchor import make_checkpoint
    from audit.models import AuditEvent
    from audit.verification import check_increment

    write_events(2)
    make_checkpoint()
    anchors.WAVEGATE_AUDIT_HMAC_KEY_FILE = str(tmp_path / "moved-away.key")

    watch = check_increment()

    assert watch.broken_seq is None
    assert "cannot be read" in watch.unchecked_reason
    assert not AuditEvent.objects.filter(action="audit.chain_broken").exists()
    assert "chain is broken" not in signed_in("auditor").get("/").content.decode()
    assert "could not check the checkpoints" in (
        signed_in("admin").get("/audit/verify/").content.decode()
    )


def test_an_events_page_says_when_its_signed_checkpoint_is_contradicted(isolated_db, anchors):
    from audit.anchor import make_checkpoint

    events = write_events(4)
    make_checkpoint()
    auditor = signed_in("auditor")
    before = auditor.get(f"/audit/events/{events[1].seq}/").content.decode()
    rewrite_from(events[1].seq)
    after = auditor.get(f"/audit/events/{events[1].seq}/").content.decode()

    assert "it vouches for this event" in before
    assert "history up to it was rewritten" in after
    assert "vouches for this event" not in after


def test_acknowledging_a_break_says_from_where_checks_resumed(isolated_db, anchors):
    from audit.anchor import make_checkpoint
    from audit.verification import check_increment

    events = write_events(4)
    make_checkpoint()
    check_increment()
    as_superuser(("DELETE FROM audit_auditevent WHERE seq = %s", [events[-1].seq]))
    assert check_increment().broken_seq is not None

    done = run("audit_verify", isolated_db, anchors, "--acknowledge", "restored from backup")
    page = signed_in("auditor").get("/audit/verify/").content.decode()

    assert "break acknowledged" in done.stdout
    assert "Checked since event" in page
    assert "Intact." not in page
    assert "chain is broken" not in page
