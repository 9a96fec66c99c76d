"""The audit chain's arithmetic: canonical JSON, each event's SHA-256, and verification.

Pure functions over plain dicts, so that an auditor can re-check an export with the same rules:
an event's hash is SHA-256 over the UTF-8 of its canonical JSON (keys sorted, no whitespace,
non-ASCII kept), taken over the fields in HASHED_FIELDS, `prev_hash` included, and over those of
OPTIONAL_HASHED_FIELDS whose value is not null (fields added later: events written before them
hash as they always did). The first event's `prev_hash` is GENESIS.

A checkpoint anchors the chain's head outside the database: HMAC-SHA256, under a key the
database never holds, of the canonical JSON of {"seq", "hash", "at"} (CHECKPOINT_FIELDS).
"""

from __future__ import annotations

import hashlib
import hmac
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
# The cluster and plan an event concerns (for the auditor's filters), hashed when set.
OPTIONAL_HASHED_FIELDS = ("cluster_id", "plan_id")

CHECKPOINT_FIELDS = ("seq", "hash", "at")


def canonical_json(value: Any) -> bytes:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def format_time(moment: datetime) -> str:
    """Event times are hashed as UTC with microseconds, e.g. 2026-11-25T21:47:43.123456Z."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def hashed_content(event: Mapping[str, Any]) -> dict[str, Any]:
    content = {field: event[field] for field in HASHED_FIELDS}
    for field in OPTIONAL_HASHED_FIELDS:
        if event.get(field) is not None:
            content[field] = event[field]
    if isinstance(content["at"], datetime):
        content["at"] = format_time(content["at"])
    return content


def event_hash(event: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical_json(hashed_content(event))).hexdigest()


def checkpoint_message(checkpoint: Mapping[str, Any]) -> bytes:
    content = {field: checkpoint[field] for field in CHECKPOINT_FIELDS}
    if isinstance(content["at"], datetime):
        content["at"] = format_time(content["at"])
    return canonical_json(content)


def sign_checkpoint(key: bytes, checkpoint: Mapping[str, Any]) -> str:
    return hmac.new(key, checkpoint_message(checkpoint), hashlib.sha256).hexdigest()


def checkpoint_signed(key: bytes, checkpoint: Mapping[str, Any]) -> bool:
    """Was this checkpoint signed with `key` (and left as it was signed)?"""
    expected = sign_checkpoint(key, checkpoint)
    return hmac.compare_digest(expected, str(checkpoint.get("signature", "")))


def key_id(key: bytes) -> str:
    """A short name for a key that gives nothing of it away: which key signed a checkpoint."""
    return hashlib.sha256(b"wavegate-audit-key:" + key).hexdigest()[:12]


@dataclass(frozen=True)
class Verdict:
    count: int
    first_broken: int | None = None
    reason: str = ""

    @property
    def intact(self) -> bool:
        return self.first_broken is None


def verify(
    events: Iterable[Mapping[str, Any]], *, after_seq: int = 0, after_hash: str = GENESIS
) -> Verdict:
    """Walk events in sequence order and name the first one that breaks the chain: the whole
    chain, or (after_seq, after_hash) the part after an event already verified."""
    expected_prev = after_hash
    expected_seq = after_seq + 1
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
