"""The audit chain's arithmetic: canonical JSON, each event's SHA-256, and verification.

Pure functions over plain dicts, so that an auditor can re-check an export with the same rules:
an event's hash is SHA-256 over the UTF-8 of its canonical JSON (keys sorted, no whitespace,
non-ASCII kept), taken over the fields in HASHED_FIELDS, `prev_hash` included. The first event's
`prev_hash` is GENESIS.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

GENESIS = "0" * 64

HASHED_FIELDS = (
    "seq",
    "at",
    "actor_id",
    "actor_name",
    "actor_ip",
    "action",
    "object_type",
    "object_id",
    "object_label",
    "before",
    "after",
    "request_id",
    "prev_hash",
)


def canonical_json(value: Any) -> bytes:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def format_time(moment: datetime) -> str:
    """Event times are hashed as UTC with microseconds, e.g. 2026-11-25T21:47:43.123456Z."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def hashed_content(event: Mapping[str, Any]) -> dict[str, Any]:
    content = {field: event[field] for field in HASHED_FIELDS}
    if isinstance(content["at"], datetime):
        content["at"] = format_time(content["at"])
    return content


def event_hash(event: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical_json(hashed_content(event))).hexdigest()


@dataclass(frozen=True)
class Verdict:
    count: int
    first_broken: int | None = None
    reason: str = ""

    @property
    def intact(self) -> bool:
        return self.first_broken is None


def verify(events: Iterable[Mapping[str, Any]]) -> Verdict:
    """Walk events in sequence order and name the first one that breaks the chain."""
    expected_prev = GENESIS
    expected_seq = 1
    count = 0
    for event in events:
        seq = event["seq"]
        if seq != expected_seq:
            return Verdict(count, expected_seq, f"event {expected_seq} is missing")
        if event["prev_hash"] != expected_prev:
            return Verdict(count, seq, "its previous-hash does not match the event before it")
        if event_hash(event) != event["hash"]:
            return Verdict(count, seq, "its content does not match its hash")
        expected_prev = event["hash"]
        expected_seq += 1
        count += 1
    return Verdict(count)
