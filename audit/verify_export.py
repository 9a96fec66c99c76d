"""Check an audit export offline: `python -m audit.verify_export FILE [--key-file K]`.

The standard library only (audit/chain.py and audit/export_format.py are too, and importing
the `audit` package loads nothing else): an auditor runs it on any machine with Python 3.11.
It reads CSV or JSON lines (told apart by their first line; the format is described in
audit/export.py) and recomputes every event's hash. For a complete export it also checks every
link (sequence numbers without gaps, each previous hash the hash of the event before, event 1
following GENESIS), that the export was not cut short, and, given the key the checkpoints were
signed with, each checkpoint's signature and that the event it names has the hash it says.
For a filtered export links cannot be checked across the gaps: each event's own hash is.

Prints what holds, and each problem with the line it is on (the first first). Exit status 0
when the export is intact, 1 when it is not, 2 when it cannot be checked as asked.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from audit.chain import GENESIS, checkpoint_signed, event_hash, key_id
from audit.export_format import (
    CHECKPOINT,
    COMPLETE,
    CSV_COLUMNS,
    END,
    EVENT,
    FILTERED,
    FORMAT,
    HEADER,
    VERSION,
    from_csv_cells,
    from_json_line,
)

SHOWN_PROBLEMS = 20  # problems listed; more are counted


class UsageError(Exception):
    """The export or the key cannot be read: nothing was checked (exit 2)."""


@dataclass
class Checkpoint:
    line: int
    seq: int
    hash: str
    signed: bool | None  # None: no key to check it with
    status: str = "beyond"  # "matches" / "differs" its event, or its event is in a "gap"


@dataclass
class Problem:
    line: int | None
    text: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.text}" if self.line else self.text


@dataclass
class Check:
    """The state of one walk through an export, record by record."""

    key: bytes | None
    header: dict[str, Any] = field(default_factory=dict)
    header_line: int = 0
    end: dict[str, Any] | None = None
    end_line: int = 0
    problems: list[Problem] = field(default_factory=list)
    checkpoints: dict[int, list[Checkpoint]] = field(default_factory=dict)
    checkpoint_count: int = 0
    events: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    last_hash: str = ""
    last_line: int = 0
    links_checked: int = 0
    records: int = 0
    resync: bool = False  # the row before could not be read: do not judge the next link

    @property
    def scope(self) -> str:
        return COMPLETE if self.header.get("scope") == COMPLETE else FILTERED

    def problem(self, line: int | None, text: str) -> None:
        self.problems.append(Problem(line, text))

    # --- records --------------------------------------------------------------------------------
    def read(self, line: int, kind: str, values: dict[str, Any]) -> None:
        if self.end is not None:
            self.problem(line, f"a {kind} record after the end record (line {self.end_line})")
        if kind == HEADER:
            self.read_header(line, values)
        elif not self.header_line and not self.records:
            self.problem(
                line, "the export has no header: its scope is unknown, links are not checked"
            )
        self.records += 1
        if kind == CHECKPOINT:
            self.read_checkpoint(line, values)
        elif kind == EVENT:
            self.read_event(line, values)
        elif kind == END and self.end is None:
            self.end, self.end_line = values, line

    def unreadable(self, line: int, why: str) -> None:
        self.problem(line, f"this record cannot be read: {why}")
        self.resync = True

    def read_header(self, line: int, values: dict[str, Any]) -> None:
        if self.header_line:
            self.problem(line, f"a second header (the first is on line {self.header_line})")
            return
        if self.records:
            self.problem(line, "the header should be the export's first record")
        if values.get("format") != FORMAT:
            self.problem(
                line, f"this is not a {FORMAT} (its header names {values.get('format')!r})"
            )
        elif values.get("version") != VERSION:
            self.problem(
                line,
                f"format version {values.get('version')!r}: this verifier reads version {VERSION}",
            )
        if values.get("scope") not in (COMPLETE, FILTERED):
            self.problem(
                line, f"scope {values.get('scope')!r} is neither {COMPLETE} nor {FILTERED}"
            )
        for bound in ("first_seq", "last_seq"):
            if not isinstance(values.get(bound), int | None):
                self.problem(line, f"its {bound} is not a sequence number")
                values[bound] = None
        self.header, self.header_line = values, line

    def read_checkpoint(self, line: int, values: dict[str, Any]) -> None:
        self.checkpoint_count += 1
        if self.events:
            self.problem(line, "a checkpoint among the events (checkpoints come before them)")
        signed = None
        if self.key is not None:
            signed = checkpoint_signed(self.key, values)
            if not signed and values.get("key_id") != key_id(self.key):
                self.problem(
                    line,
                    f"the checkpoint at event {values['seq']} was signed with another key "
                    f"(key id {values.get('key_id')!r}; the key given is {key_id(self.key)})",
                )
            elif not signed:
                self.problem(
                    line,
                    f"the checkpoint at event {values['seq']} is not signed with this key: "
                    f"forged or altered",
                )
        checkpoint = Checkpoint(line, values["seq"], str(values["hash"]), signed)
        self.checkpoints.setdefault(checkpoint.seq, []).append(checkpoint)

    def read_event(self, line: int, event: dict[str, Any]) -> None:
        seq = event["seq"]
        self.events += 1
        if self.last_seq is None:
            self._first_event(line, event)
        elif self.resync:
            pass  # the row before could not be read: whether this one follows it is unknown
        elif self.scope == COMPLETE:
            self._next_in_chain(line, event)
        elif seq <= self.last_seq:
            self.problem(line, f"event {seq} is out of order: it comes after event {self.last_seq}")
        elif seq == self.last_seq + 1:
            self._link(line, event)
        self._own_hash(line, event)
        for checkpoint in self.checkpoints.get(seq, ()):
            if checkpoint.hash == event["hash"]:
                checkpoint.status = "matches"
            else:
                checkpoint.status = "differs"
                self.problem(
                    line,
                    f"event {seq}'s hash is not the one the checkpoint on line {checkpoint.line} "
                    f"says: events up to {seq} were altered",
                )
        self.resync = False
        self.last_seq, self.last_hash, self.last_line = seq, str(event["hash"]), line

    def _first_event(self, line: int, event: dict[str, Any]) -> None:
        seq = event["seq"]
        self.first_seq = seq
        start = self.header.get("first_seq")
        if self.scope == COMPLETE and isinstance(start, int) and seq != start:
            if seq > start:
                self.problem(line, _missing(start, seq, f"the export starts at event {start}"))
            else:
                self.problem(line, f"event {seq} comes before the export's first, event {start}")
        if seq == 1 and event["prev_hash"] != GENESIS:
            self.problem(line, "event 1 does not start the chain: its previous hash is not GENESIS")

    def _next_in_chain(self, line: int, event: dict[str, Any]) -> None:
        seq, last = event["seq"], self.last_seq or 0
        if seq > last + 1:
            self.problem(line, _missing(last + 1, seq, f"seq jumps from {last} to {seq}"))
        elif seq <= last:
            self.problem(line, f"event {seq} is out of order: it comes after event {last}")
        else:
            self._link(line, event)

    def _link(self, line: int, event: dict[str, Any]) -> None:
        self.links_checked += 1
        if event["prev_hash"] != self.last_hash:
            self.problem(
                line,
                f"event {event['seq']} does not follow event {self.last_seq}: its previous hash "
                f"is not that event's hash",
            )

    def _own_hash(self, line: int, event: dict[str, Any]) -> None:
        try:
            matches = event_hash(event) == event["hash"]
        except (ValueError, TypeError) as error:
            self.problem(line, f"event {event['seq']}'s content cannot be hashed ({error})")
            return
        if not matches:
            self.problem(line, f"event {event['seq']}'s content does not match its hash")

    # --- the end ----------------------------------------------------------------------------------
    def finish(self, lines: int, cut_inside: bool) -> None:
        """After the last record (on or before line `lines`); `cut_inside`: the file stops in
        the middle of a line."""
        last = self.last_seq or 0
        where = self.last_line + 1 if self.events else lines + 1
        ends = f"the export ends at event {last}" if self.events else "the export has no event"
        every = [c for cs in self.checkpoints.values() for c in cs]
        for checkpoint in every:
            if checkpoint.status == "beyond" and checkpoint.seq <= last:
                checkpoint.status = "gap"  # its event is not in the export
        beyond = [c for c in every if c.status == "beyond"]
        claimed = self.header.get("last_seq")
        if beyond:
            furthest = max(beyond, key=lambda c: c.seq)
            self.problem(
                where,
                f"{ends}, but the checkpoint on line {furthest.line} says event {furthest.seq} "
                f"exists: its tail was cut off",
            )
        elif isinstance(claimed, int) and claimed > last:
            self.problem(
                where,
                f"{ends}, but its header (line {self.header_line}) says it runs to event "
                f"{claimed}: its tail was cut off",
            )
        elif self.end is None:
            self.problem(
                lines + (0 if cut_inside else 1),
                f"{ends} with no end record: it was cut off",
            )
        if self.end is not None:
            self._compare_end()

    def _compare_end(self) -> None:
        end = self.end or {}
        if end.get("events") != self.events:
            self.problem(
                self.end_line,
                f"the end record counts {end.get('events')} events, the export has "
                f"{self.events}: events were removed or added",
            )
        if end.get("checkpoints") != self.checkpoint_count:
            self.problem(
                self.end_line,
                f"the end record counts {end.get('checkpoints')} checkpoints, the export has "
                f"{self.checkpoint_count}: checkpoints were removed or added",
            )
        if self.events and (end.get("last_seq"), end.get("last_hash")) != (
            self.last_seq,
            self.last_hash,
        ):
            self.problem(
                self.end_line,
                f"the end record names event {end.get('last_seq')} as the last, with another "
                f"hash than the export's last event ({self.last_seq})",
            )

    # --- what to say ------------------------------------------------------------------------------
    def summary(self) -> list[str]:
        said = [self._what_it_is()]
        if self.scope == COMPLETE:
            if not self.events:
                said.append("0 events")
            elif self.problems:
                said.append(f"{self.events} events, from {self.first_seq} to {self.last_seq}")
            else:
                chain = (
                    f"{self.events} events, chain intact from {self.first_seq} to {self.last_seq}"
                )
                if self.first_seq != 1:
                    before = (self.first_seq or 1) - 1
                    chain += f" (its link to event {before}, before the export, is not checked)"
                said.append(chain)
        elif self.problems:
            said.append(
                f"{self.events} events (filtered), from {self.first_seq} to {self.last_seq}"
            )
        else:
            said.append(
                f"{self.events} events, each checked against its own hash; filtered export: "
                f"links cannot be checked across the gaps ({self.links_checked} links between "
                f"consecutive events checked)"
            )
        said.append(self._checkpoint_summary())
        return said

    def _what_it_is(self) -> str:
        if not self.header_line:
            return "an export without a header"
        shown = ", ".join(f"{k}={v}" for k, v in (self.header.get("filter") or {}).items())
        return (
            f"{FORMAT} made {self.header.get('exported_at')}, {self.scope} "
            f"(filter: {shown or 'none'}; events {self.header.get('first_seq')} to "
            f"{self.header.get('last_seq')}, chain head then {self.header.get('chain_head')})"
        )

    def _checkpoint_summary(self) -> str:
        every = [c for cs in self.checkpoints.values() for c in cs]
        if not every:
            return "no checkpoint in this export: nothing anchors it"
        matching = [c for c in every if c.status == "matches"]
        in_gaps = sum(c.status == "gap" for c in every)
        if self.key is None:
            said = (
                f"{len(matching)} of {len(every)} checkpoints match the exported events; "
                f"signatures not checked (give --key-file)"
            )
        else:
            good = [c for c in matching if c.signed]
            said = f"{len(good)} of {len(every)} checkpoints signed and matching"
            if len(good) == len(every):
                said = f"{len(every)} checkpoint{'s' if len(every) > 1 else ''} signed and matching"
            matching = good
        if in_gaps and self.scope == FILTERED:
            said += f"; {in_gaps} name events in the gaps of the filter"
        elif in_gaps:
            said += f"; {in_gaps} name events missing from the export"
        if matching:
            newest = max(c.seq for c in matching)
            said += f"; anchored to event {newest}"
            if (self.last_seq or 0) > newest:
                said += f", events after {newest} not covered by a checkpoint in this export"
        return said


def _missing(first: int, after: int, how: str) -> str:
    if after - first == 1:
        return f"event {first} is missing ({how})"
    return f"events {first} to {after - 1} are missing ({how})"


# --- reading the file -------------------------------------------------------------------------
class _Lines:
    """A text file's lines, remembering whether the last one ended with a newline."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.count = 0
        self.ended = True

    def __iter__(self) -> Iterator[str]:
        for line in self.stream:
            self.count += 1
            self.ended = line.endswith("\n")
            yield line


Record = tuple[int, str | None, Any]  # line, kind (None: unreadable), values (or why)


def _csv_records(lines: _Lines, check: Check) -> Iterator[Record]:
    reader = csv.reader(lines)
    try:
        columns = next(reader)
    except StopIteration:
        return
    if tuple(columns) != CSV_COLUMNS:
        check.problem(1, f"these are not the columns of a {FORMAT} ({','.join(CSV_COLUMNS[:4])},…)")
    start = reader.line_num + 1
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            yield start, None, str(error)
            return
        try:
            kind, values = from_csv_cells(cells)
        except ValueError as error:
            yield start, None, str(error)
        else:
            yield start, kind, values
        start = reader.line_num + 1


def _json_records(lines: _Lines) -> Iterator[Record]:
    for number, line in enumerate(lines, start=1):
        try:
            kind, values = from_json_line(line)
        except ValueError as error:
            yield number, None, str(error) if line.strip() else "an empty line"
        else:
            yield number, kind, values


def check_export(path: Path, key: bytes | None) -> Check:
    check = Check(key)
    try:
        with open(path, encoding="utf-8", errors="surrogateescape", newline="") as stream:
            first = stream.readline()
            stream.seek(0)
            if not first:
                check.problem(None, "the file is empty")
                return check
            lines = _Lines(stream)
            records = _json_records(lines) if first.startswith("{") else _csv_records(lines, check)
            held: Record | None = None
            for record in records:
                if held is not None:
                    _take(check, held)
                held = record
    except OSError as error:
        raise UsageError(f"{path} cannot be read: {error.strerror or error}") from error
    cut_inside = not lines.ended
    # A last record that stops inside its line was cut there: finish() says so.
    if held is not None and not (held[1] is None and cut_inside):
        _take(check, held)
    check.finish(lines.count, cut_inside)
    return check


def _take(check: Check, record: Record) -> None:
    line, kind, values = record
    if kind is None:
        check.unreadable(line, values)
    else:
        check.read(line, kind, values)


def read_key(path: str) -> bytes:
    try:
        key = Path(path).read_bytes().strip()
    except OSError as error:
        raise UsageError(
            f"the key file {path} cannot be read: {error.strerror or error}"
        ) from error
    if not key:
        raise UsageError(f"the key file {path} is empty")
    return key


def main(argv: list[str] | None = None, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m audit.verify_export",
        description="Check a Wavegate audit export (CSV or JSON lines) offline: every event's "
        "hash, and for a complete export every link and, with the key, every checkpoint.",
    )
    parser.add_argument("file", type=Path, help="the export (.csv or .jsonl)")
    parser.add_argument(
        "--key-file",
        help="the file holding the key checkpoints were signed with "
        "(WAVEGATE_AUDIT_HMAC_KEY_FILE on the server)",
    )
    args = parser.parse_args(argv)
    try:
        key = read_key(args.key_file) if args.key_file else None
        check = check_export(args.file, key)
    except UsageError as error:
        err.write(f"audit.verify_export: {error}\n")
        return 2
    for statement in check.summary():
        out.write(statement + "\n")
    problems = sorted(check.problems, key=lambda p: p.line or 0)
    for problem in problems[:SHOWN_PROBLEMS]:
        err.write(f"PROBLEM: {problem}\n")
    if len(problems) > SHOWN_PROBLEMS:
        err.write(f"… and {len(problems) - SHOWN_PROBLEMS} more problems\n")
    if problems:
        count = f"{len(problems)} problem{'s' if len(problems) > 1 else ''}"
        out.write(f"NOT INTACT: {count}, the first {problems[0]}\n")
        return 1
    out.write("OK: the export is intact\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
