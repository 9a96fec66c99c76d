"""Exports of the audit log, checked offline by `python -m audit.verify_export` as an auditor
runs it: without Wavegate's dependencies (`python -S`: no site-packages, so no Django)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import transaction

import audit
from audit.chain import event_hash, format_time, key_id, sign_checkpoint
from audit.export import AuditExport
from audit.export_format import from_csv_cells
from audit.models import AuditCheckpoint, AuditEvent
from tests.processes import ROOT

pytestmark = pytest.mark.django_db


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "audit.key"
    path.write_bytes(os.urandom(48).hex().encode())
    return path


def write_events(count: int) -> list[AuditEvent]:
    with transaction.atomic():
        return [
            audit.record(
                "rollout.target_done",
                object_type="fleet.cluster",
                object_id=str(n),
                object_label=f"cluster-{n:03d}",
                after={"n": n},
            )
            for n in range(count)
        ]


def checkpoint(key_file: Path, event: AuditEvent) -> AuditCheckpoint:
    key = key_file.read_bytes().strip()
    made = AuditCheckpoint(seq=event.seq, hash=event.hash, at=event.at, key_id=key_id(key))
    made.signature = sign_checkpoint(key, made.signed_fields())
    made.save()
    return made


def export(tmp_path: Path, fmt: str, *options: str) -> Path:
    path = tmp_path / f"audit.{fmt}"
    call_command(
        "audit_export", "--format", fmt, "--output", str(path), *options, stdout=StringIO()
    )
    return path


def verify(path: Path, key_file: Path | None = None) -> subprocess.CompletedProcess[str]:
    keyed = ["--key-file", str(key_file)] if key_file else []
    return subprocess.run(
        [sys.executable, "-S", "-m", "audit.verify_export", str(path), *keyed],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def line_of(path: Path, seq: int) -> int:
    starts = (f"event,{seq},", f'{{"record":"event","seq":{seq},')
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if line.startswith(starts):
            return number
    raise AssertionError(f"event {seq} is not in {path}")


def edit_lines(path: Path, change) -> None:
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(change(lines)))


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_a_complete_export_verifies_chain_and_checkpoints(tmp_path, key_file, fmt):
    events = write_events(30)
    checkpoint(key_file, events[9])
    checkpoint(key_file, events[24])

    done = verify(export(tmp_path, fmt), key_file)

    assert done.returncode == 0, done.stdout + done.stderr
    # …and the export itself, recorded as it began.
    assert f"31 events, chain intact from {events[0].seq} to {events[-1].seq + 1}" in done.stdout
    assert "2 checkpoints signed and matching" in done.stdout
    assert f"events after {events[24].seq} not covered by a checkpoint" in done.stdout


def test_every_value_survives_the_csv_and_a_spreadsheet_runs_no_formula(tmp_path):
    with transaction.atomic():
        awkward = [
            audit.record("cluster.changed", object_label='=HYPERLINK("http://x")'),
            audit.record("cluster.changed", object_label="'quoted", before={"a": None}, after=[]),
            audit.record("cluster.changed", before=-1, after={"text": 'line\nbreak, "quoted"'}),
            audit.record("cluster.changed", object_id="", after=None, cluster_id=7, plan_id=3),
        ]
    path = export(tmp_path, "csv")

    rows = list(csv.reader(path.open(newline="")))
    read = [values for kind, values in map(from_csv_cells, rows[1:]) if kind == "event"]
    assert read[:4] == [{**e.chain_fields(), "at": format_time(e.at)} for e in awkward]
    assert all(event_hash(values) == values["hash"] for values in read)
    labels = [row[9] for row in rows if row[0] == "event"]
    assert labels[:2] == ['\'=HYPERLINK("http://x")', "''quoted"]
    assert verify(path).returncode == 0


def test_jsonl_keeps_nulls_and_json_values(tmp_path):
    with transaction.atomic():
        made = audit.record("cluster.changed", object_label="", after={"n": None, "l": [1, "x"]})
    path = export(tmp_path, "jsonl")

    event = json.loads(path.read_text().splitlines()[1])
    assert event["after"] == {"n": None, "l": [1, "x"]}
    assert (event["before"], event["actor_ip"], event["object_label"]) == (None, None, "")
    assert event["hash"] == made.hash


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_a_changed_byte_is_named_with_its_line(tmp_path, key_file, fmt):
    events = write_events(20)
    path = export(tmp_path, fmt)
    target = events[11]
    line = line_of(path, target.seq)

    def change(lines):
        lines[line - 1] = lines[line - 1].replace("cluster-011", "cluster-111")
        return lines

    edit_lines(path, change)
    done = verify(path, key_file)

    assert done.returncode == 1
    assert f"line {line}: event {target.seq}'s content does not match its hash" in done.stdout
    assert "PROBLEM: line" in done.stderr


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_a_deleted_line_is_named(tmp_path, fmt):
    events = write_events(20)
    path = export(tmp_path, fmt)
    gone = events[6].seq
    line = line_of(path, gone)

    edit_lines(path, lambda lines: lines[: line - 1] + lines[line:])
    done = verify(path)

    assert done.returncode == 1
    assert (
        f"line {line}: event {gone} is missing (seq jumps from {gone - 1} to {gone + 1})"
        in done.stdout
    )


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
@pytest.mark.parametrize("mid_line", [False, True])
def test_a_cut_tail_is_named_by_the_checkpoint_beyond_it(tmp_path, key_file, fmt, mid_line):
    events = write_events(20)
    checkpoint(key_file, events[-1])
    path = export(tmp_path, fmt)
    kept = events[14].seq
    line = line_of(path, kept)
    text = path.read_text()
    cut = sum(len(part) for part in text.splitlines(keepends=True)[:line])
    path.write_text(text[: cut + (25 if mid_line else 0)])

    done = verify(path, key_file)

    assert done.returncode == 1
    assert (
        f"line {line + 1}: the export ends at event {kept}, but the checkpoint on line "
        f"{3 if fmt == 'csv' else 2} says event {events[-1].seq} exists: its tail was cut off"
    ) in done.stdout


def test_a_cut_tail_without_a_checkpoint_is_named_by_the_header(tmp_path):
    events = write_events(10)
    path = export(tmp_path, "jsonl")
    edit_lines(path, lambda lines: lines[:-3])

    done = verify(path)

    assert done.returncode == 1
    assert f"says it runs to event {events[-1].seq + 1}: its tail was cut off" in done.stdout


def test_a_rewritten_export_is_caught_only_with_the_key(tmp_path, key_file):
    """Whoever edits an event, recomputes every later hash and the checkpoint's fools the chain,
    not the key the checkpoint was signed with."""
    events = write_events(12)
    checkpoint(key_file, events[-1])
    path = export(tmp_path, "jsonl")
    records = [json.loads(line) for line in path.read_text().splitlines()]
    prev, hashes = events[3].hash, {}
    for record in records:
        if record["record"] == "event" and record["seq"] >= events[4].seq:
            if record["seq"] == events[4].seq:
                record["after"] = {"n": "rewritten"}
            record["prev_hash"] = prev
            record["hash"] = hashes[record["seq"]] = prev = event_hash(record)
    records[1]["hash"] = hashes[records[1]["seq"]]  # the checkpoint
    records[-1]["last_hash"] = prev  # and the end record
    path.write_text("".join(json.dumps(record) + "\n" for record in records))

    without_key = verify(path)
    with_key = verify(path, key_file)

    assert without_key.returncode == 0  # every hash, link and count agrees
    assert "signatures not checked (give --key-file)" in without_key.stdout
    assert with_key.returncode == 1
    assert (
        f"line 2: the checkpoint at event {events[-1].seq} is not signed with this key: "
        f"forged or altered" in with_key.stdout
    )


def test_checkpoints_are_refused_with_a_wrong_key_or_a_forged_signature(tmp_path, key_file):
    events = write_events(6)
    checkpoint(key_file, events[2])
    made = checkpoint(key_file, events[5])
    path = export(tmp_path, "csv")
    other = tmp_path / "other.key"
    other.write_bytes(os.urandom(48).hex().encode())

    wrong_key = verify(path, other)
    edit_lines(path, lambda lines: [line.replace(made.signature, "0" * 64) for line in lines])
    forged = verify(path, key_file)

    assert wrong_key.returncode == 1
    assert f"line 3: the checkpoint at event {events[2].seq} was signed with another key" in (
        wrong_key.stdout
    )
    assert forged.returncode == 1
    assert (
        f"line 4: the checkpoint at event {events[5].seq} is not signed with this key: "
        f"forged or altered" in forged.stdout
    )
    assert "PROBLEM: line 3" not in forged.stderr


def test_a_filtered_export_checks_each_row_and_says_links_cannot_be_checked(tmp_path):
    with transaction.atomic():
        for n in range(12):
            audit.record(
                "rollout.target_done" if n % 3 else "rollout.decision_refused", object_id=f"{n}"
            )
    refused = AuditEvent.objects.filter(action="rollout.decision_refused")
    path = tmp_path / "refused.csv"
    path.write_text("".join(AuditExport(refused, filters={"outcome": "refused"}).csv_lines()))

    done = verify(path)
    line = line_of(path, refused.order_by("seq")[1].seq)
    edit_lines(
        path,
        lambda lines: [
            *lines[: line - 1],
            lines[line - 1].replace("decision", "decisiom"),
            *lines[line:],
        ],
    )
    tampered = verify(path)

    assert done.returncode == 0, done.stdout + done.stderr
    assert "4 events, each checked against its own hash" in done.stdout
    assert "filtered export: links cannot be checked across the gaps" in done.stdout
    assert "filter: outcome=refused" in done.stdout
    assert tampered.returncode == 1
    assert (
        f"line {line}: event {refused.order_by('seq')[1].seq}'s content does not match"
        in tampered.stdout
    )


def test_since_and_until_export_a_complete_stretch_of_the_chain(tmp_path):
    events = write_events(15)
    since, until = events[4], events[11]

    path = export(tmp_path, "csv", "--since", since.at.isoformat(), "--until", until.at.isoformat())
    done = verify(path)

    assert done.returncode == 0, done.stdout + done.stderr
    assert (
        f"8 events, chain intact from {since.seq} to {until.seq} (its link to event "
        f"{since.seq - 1}, before the export, is not checked)"
    ) in done.stdout


def test_without_output_the_export_goes_to_stdout_and_is_recorded(tmp_path):
    events = write_events(3)
    out, err = StringIO(), StringIO()

    call_command("audit_export", "--format", "jsonl", stdout=out, stderr=err)

    records = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [r["record"] for r in records] == ["header", *["event"] * 4, "end"]
    assert [r["seq"] for r in records[1:4]] == [e.seq for e in events]
    exported = records[4]
    assert (exported["action"], exported["actor_name"]) == ("audit.exported", "system")
    assert exported["after"] == {"format": "jsonl", "filter": {}}
    assert f"4 events (complete, from 1 to {exported['seq']})" in err.getvalue()


@pytest.mark.parametrize(
    ("options", "said"),
    [
        (["--since", "yesterday"], "--since 'yesterday' is not a date or time: give ISO 8601"),
        (["--until", "2026-13-01"], "--until '2026-13-01' is not a date or time"),
        (["--since", "2026-12-05", "--until", "2026-12-04"], "--since is after --until"),
    ],
)
def test_bad_dates_are_refused_with_exit_2(options, said):
    with pytest.raises(CommandError, match=said) as refused:
        call_command("audit_export", "--format", "csv", *options)

    assert refused.value.returncode == 2


def test_an_unwritable_output_exits_1_and_leaves_no_partial_file(tmp_path):
    write_events(2)
    taken = tmp_path / "a-directory"
    taken.mkdir()

    with pytest.raises(CommandError, match="could not be written") as failed:
        call_command("audit_export", "--format", "csv", "--output", str(taken))

    assert failed.value.returncode == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-directory"]


def test_the_verifier_says_what_it_cannot_read_with_exit_2(tmp_path):
    missing = verify(tmp_path / "nothing.csv")
    (tmp_path / "empty.key").write_bytes(b"\n")
    (tmp_path / "x.csv").write_text("record\n")
    no_key = verify(tmp_path / "x.csv", tmp_path / "empty.key")

    assert missing.returncode == 2
    assert "nothing.csv cannot be read" in missing.stderr
    assert no_key.returncode == 2
    assert "empty.key is empty" in no_key.stderr
