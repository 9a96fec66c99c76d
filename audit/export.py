"""Streamed exports of the audit log, as CSV or as JSON lines, that an auditor can check offline
(`python -m audit.verify_export FILE [--key-file K]`, standard library only).

Both formats carry the same records, in this order:

1. a header: what the export is (`format` "wavegate-audit-export", `version` 1), when it was
   made (`exported_at`), the filter as given (`filter`, e.g. {"since": "…", "actor": "alice"}),
   its `scope` and `first_seq`/`last_seq`, and the chain's newest event then (`chain_head`).
   Scope "complete": every event from `first_seq` to `last_seq`, so every link can be checked
   (an export filtered by nothing, or by a time range only; with no `since` it starts at
   event 1, whose previous hash is the chain's GENESIS). Scope "filtered": only the events that
   match, with gaps; each event's own hash can be checked, links only where no event is missing.
2. the signed checkpoints (audit/anchor.py) whose event lies between `first_seq` and
   `last_seq`: `seq`, `hash`, `at`, `signature`, `key_id`. They come before the events, so
   that cutting the export's tail leaves a checkpoint naming an event that is no longer there.
3. the events, oldest first: every field their hash covers (audit/chain.py HASHED_FIELDS and
   OPTIONAL_HASHED_FIELDS: `seq`, `at`, `actor_id`, `actor_name`, `actor_ip`, `action`,
   `object_type`, `object_id`, `object_label`, `before`, `after`, `request_id`, `cluster_id`,
   `plan_id`), then `prev_hash` and `hash`. `at` is written exactly as hashed (UTC,
   microseconds, e.g. 2026-11-25T21:47:43.123456Z).
4. an end record: how many `events` and `checkpoints` were written and the last event's
   `last_seq` and `last_hash`; an export without it was cut off.

JSON lines: one JSON object a line, {"record": "header" | "checkpoint" | "event" | "end", …},
UTF-8; an event's `before` and `after` are JSON values, null fields are null.

CSV (RFC 4180, UTF-8): a first line naming the columns (audit/export_format.py CSV_COLUMNS):
record, seq, at, actor_id, actor_name, actor_ip, action, object_type, object_id, object_label,
before, after, request_id, cluster_id, plan_id, prev_hash, hash, signature, key_id, detail.
An event row fills the event's columns; a checkpoint row seq, at, hash, signature and key_id;
the header and end rows hold their fields as a JSON object in `detail`. `before`, `after` and
`detail` are canonical JSON text (an empty cell is null, "null" is JSON's null); an empty
actor_id, actor_ip, cluster_id or plan_id is null; every other text is as stored, "" included.
A cell a spreadsheet would run as a formula (starting with = + - @ tab, CR or ') is written with
one ' in front: a reader removes one leading ' from any cell that has it.

Exports stream: rows are read through a server-side cursor (`.iterator(chunk_size=…)` on
PostgreSQL) and written a chunk at a time, so a million events take no more memory than a
hundred. The range is fixed when the export starts: events appended meanwhile are left out.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.db import transaction
from django.db.models import Max, Min, QuerySet
from django.http import StreamingHttpResponse
from django.utils import timezone

from audit import log
from audit.chain import format_time
from audit.export_format import (
    CHECKPOINT,
    COMPLETE,
    CSV_COLUMNS,
    END,
    EVENT,
    EVENT_FIELDS,
    FILTERED,
    FORMAT,
    HEADER,
    VERSION,
    csv_cells,
    json_line,
)
from audit.kinds import AuditAction
from audit.models import AuditCheckpoint, AuditEvent

# Rows read from the database (and written out) at a time.
CHUNK_SIZE = 2000

# An export filtered by these alone is complete: a time range is a stretch of the chain.
RANGE_FILTERS = frozenset({"since", "until"})


@dataclass(frozen=True)
class Format:
    name: str
    content_type: str
    extension: str


CSV = Format("csv", "text/csv; charset=utf-8", "csv")
JSONL = Format("jsonl", "application/jsonl; charset=utf-8", "jsonl")
FORMATS = {CSV.name: CSV, JSONL.name: JSONL}


def filename(fmt: Format, at: datetime | None = None) -> str:
    """e.g. wavegate-audit-20261204T101500Z.csv"""
    moment = (at or timezone.now()).astimezone(UTC)
    return f"wavegate-audit-{moment:%Y%m%dT%H%M%SZ}.{fmt.extension}"


class AuditExport:
    """One export of `events` (a queryset of AuditEvent, filtered by the caller as `filters`
    says: the filter as given, by the auditor page's names — since, until, actor, category,
    action, cluster, plan, outcome, q — as plain strings).

    Filtered by nothing but since/until, the export is complete: every event from the first to
    the last of `events` (from event 1 when there is no `since`), whatever `events` holds in
    between. Iterate `csv_lines()` or `jsonl_lines()` once; afterwards `events_written`,
    `checkpoints_written`, `first_seq`, `last_seq` and `scope` say what was written.
    """

    def __init__(self, events: QuerySet[AuditEvent], *, filters: Mapping[str, str]) -> None:
        self.filters = {name: value for name, value in filters.items() if value not in ("", None)}
        self.scope = COMPLETE if set(self.filters) <= RANGE_FILTERS else FILTERED
        self._events = events
        self.first_seq: int | None = None
        self.last_seq: int | None = None
        self.events_written = 0
        self.checkpoints_written = 0
        self.chain_head = 0
        self.exported_at = timezone.now()  # when the range is fixed, as the export starts

    def csv_lines(self) -> Iterator[str]:
        """The CSV text, a chunk of whole lines at a time."""
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(CSV_COLUMNS)
        for record, values in self._records():
            # The header and the end record are a JSON object in the detail column.
            row = values if record in (CHECKPOINT, EVENT) else {"detail": values}
            writer.writerow(csv_cells(record, row))
            if buffer.tell() >= 64 * 1024 or record != EVENT:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
        yield buffer.getvalue()

    def jsonl_lines(self) -> Iterator[str]:
        """The JSON lines, a chunk of whole lines at a time."""
        chunk: list[str] = []
        size = 0
        for record, values in self._records():
            line = json_line(record, values)
            chunk.append(line)
            size += len(line)
            if size >= 64 * 1024 or record != EVENT:
                yield "".join(chunk)
                chunk, size = [], 0
        yield "".join(chunk)

    def lines(self, fmt: Format) -> Iterator[str]:
        return self.csv_lines() if fmt is CSV else self.jsonl_lines()

    # --- what is written ----------------------------------------------------------------------
    def _records(self) -> Iterator[tuple[str, Mapping[str, Any]]]:
        self._fix_range()
        yield HEADER, self._header()
        for checkpoint in self._checkpoints():
            self.checkpoints_written += 1
            yield CHECKPOINT, checkpoint
        last: Mapping[str, Any] = {}
        for event in self._rows():
            self.events_written += 1
            last = event
            yield EVENT, event
        yield (
            END,
            {
                "events": self.events_written,
                "checkpoints": self.checkpoints_written,
                "last_seq": last.get("seq"),
                "last_hash": last.get("hash"),
            },
        )

    def _fix_range(self) -> None:
        """The first and last event of the export, fixed before anything is written."""
        self.exported_at = timezone.now()
        head = AuditEvent.objects.aggregate(head=Max("seq"))["head"]
        self.chain_head = head or 0
        if head is None:
            return
        if self.scope == COMPLETE and not self.filters:
            self.first_seq, self.last_seq = 1, head
            return
        bounds = self._events.order_by().aggregate(first=Min("seq"), last=Max("seq"))
        if bounds["first"] is None:
            return
        self.first_seq, self.last_seq = bounds["first"], bounds["last"]
        if self.scope == COMPLETE and "since" not in self.filters:
            self.first_seq = 1

    def _header(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "exported_at": format_time(self.exported_at),
            "filter": self.filters,
            "scope": self.scope,
            "first_seq": self.first_seq,
            "last_seq": self.last_seq,
            "chain_head": self.chain_head,
        }

    def _checkpoints(self) -> Iterator[dict[str, Any]]:
        if self.first_seq is None:
            return
        checkpoints = AuditCheckpoint.objects.filter(
            seq__gte=self.first_seq, seq__lte=self.last_seq
        ).order_by("seq", "id")
        for seq, digest, at, signature, key in checkpoints.values_list(
            "seq", "hash", "at", "signature", "key_id"
        ).iterator(chunk_size=CHUNK_SIZE):
            yield {
                "seq": seq,
                "hash": digest,
                "at": format_time(at),
                "signature": signature,
                "key_id": key,
            }

    def _rows(self) -> Iterator[dict[str, Any]]:
        if self.first_seq is None:
            return
        # Complete: every event of the range, whatever the time filter's edges say.
        events = AuditEvent.objects.all() if self.scope == COMPLETE else self._events
        events = events.filter(seq__gte=self.first_seq, seq__lte=self.last_seq).order_by("seq")
        for row in events.values_list(*EVENT_FIELDS).iterator(chunk_size=CHUNK_SIZE):
            event = dict(zip(EVENT_FIELDS, row, strict=True))
            event["at"] = format_time(event["at"])
            yield event


def started(events: QuerySet[AuditEvent], fmt: Format, filters: Mapping[str, str]) -> AuditExport:
    """An export of `events`, recorded first (`audit.exported`: who took a copy, of what) by the
    page, the API and the command alike."""
    with transaction.atomic():
        log.record(AuditAction.EXPORTED, after={"format": fmt.name, "filter": dict(filters)})
    return AuditExport(events, filters=filters)


def streamed(
    events: QuerySet[AuditEvent], fmt: Format, filters: Mapping[str, str]
) -> StreamingHttpResponse:
    """The answer to a request for an export: recorded, then streamed as a file download."""
    export = started(events, fmt, filters)
    response = StreamingHttpResponse(export.lines(fmt), content_type=fmt.content_type)
    response["Content-Disposition"] = f'attachment; filename="{filename(fmt)}"'
    return response
