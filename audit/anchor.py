"""Anchor the audit chain outside the database: signed checkpoints of its head.

A checkpoint is the head's sequence number and hash and the time it was taken, signed with
HMAC-SHA256 under a key read from the file WAVEGATE_AUDIT_HMAC_KEY_FILE names (the database
never holds it). Each is appended first to the file WAVEGATE_AUDIT_CHECKPOINT_FILE names (one
JSON object a line, flushed to disk), then optionally posted to WAVEGATE_AUDIT_CHECKPOINT_WEBHOOK,
then stored in the database. Whoever rewrites the whole chain, or cuts its tail, with the
database's superuser password cannot make the signed copies outside agree
(audit/verification.py checks them).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from audit.chain import format_time, key_id, sign_checkpoint
from audit.keys import AnchorProblem, key_configured, load_key
from audit.models import AuditCheckpoint, AuditEvent

__all__ = [
    "AnchorProblem",
    "CheckpointFileDamaged",
    "file_checkpoints",
    "file_missing",
    "key_configured",
    "load_key",
    "make_checkpoint",
]

log = logging.getLogger(__name__)


def _as_line(checkpoint: AuditCheckpoint) -> str:
    return json.dumps(
        {
            "seq": checkpoint.seq,
            "hash": checkpoint.hash,
            "at": format_time(checkpoint.at),
            "signature": checkpoint.signature,
            "key_id": checkpoint.key_id,
        },
        sort_keys=True,
    )


def _append_to_file(line: str) -> None:
    path = settings.WAVEGATE_AUDIT_CHECKPOINT_FILE
    if not path:
        return
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as out:
            out.write(line + "\n")
            out.flush()
            os.fsync(out.fileno())
    except OSError as error:
        raise AnchorProblem(
            f"The checkpoint file {path} (WAVEGATE_AUDIT_CHECKPOINT_FILE) cannot be written: "
            f"{error.strerror or error}. No checkpoint was stored."
        ) from error


def _post_to_webhook(line: str) -> None:
    url = settings.WAVEGATE_AUDIT_CHECKPOINT_WEBHOOK
    if not url:
        return
    try:
        response = requests.post(
            url,
            data=line.encode(),
            headers={"Content-Type": "application/json"},
            timeout=settings.WAVEGATE_WEBHOOK_TIMEOUT_SECONDS,
        )
        response.raise_for_status()
    except requests.RequestException as error:
        # The file copy and the database row still anchor it; the next checkpoint tries again.
        # Only the host: a webhook's path or query is often its secret.
        host = urlsplit(url).hostname or "?"
        log.warning(
            "audit checkpoint webhook at %s refused or unreachable (%s)", host, type(error).__name__
        )


def make_checkpoint(*, only_if_new: bool = True) -> AuditCheckpoint | None:
    """Sign the chain's head and anchor it; None when the log is empty, or (only_if_new) when
    the newest checkpoint already covers the head."""
    key = load_key()
    with transaction.atomic():
        head = AuditEvent.objects.order_by("-seq").values("seq", "hash").first()
        if head is None:
            return None
        newest = AuditCheckpoint.objects.order_by("-seq", "-id").values("seq").first()
        if only_if_new and newest is not None and newest["seq"] >= head["seq"]:
            return None
        checkpoint = AuditCheckpoint(seq=head["seq"], hash=head["hash"], at=timezone.now())
        checkpoint.key_id = key_id(key)
        checkpoint.signature = sign_checkpoint(key, checkpoint.signed_fields())
        line = _as_line(checkpoint)
        checkpoint.save()
        # In the file before the row commits: a checkpoint in the database is always also in
        # the file (a failed append rolls the row back); only a failed commit leaves a line
        # the database lacks, which the checks accept when it is the newest.
        _append_to_file(line)
    _post_to_webhook(line)
    return checkpoint


class CheckpointFileDamaged(AnchorProblem):
    """The checkpoint file holds something that is not a checkpoint: evidence, not a setting."""


def file_missing() -> bool:
    """Is the checkpoint file configured but gone?"""
    path = settings.WAVEGATE_AUDIT_CHECKPOINT_FILE
    return bool(path) and not Path(path).exists()


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def file_checkpoints(*, tail: int | None = None) -> Iterator[dict[str, Any]]:
    """The checkpoints in WAVEGATE_AUDIT_CHECKPOINT_FILE (only the last `tail` lines, read
    from the end, when given), each a dict with seq, hash, at (a datetime), signature, key_id
    and line (its line number; 0 for a tail read). A line that is not a checkpoint raises
    AnchorProblem naming it."""
    path = settings.WAVEGATE_AUDIT_CHECKPOINT_FILE
    if not path or not Path(path).exists():
        return
    try:
        if tail is not None:
            numbered: Iterable[tuple[int, str]] = [(0, line) for line in _last_lines(path, tail)]
            yield from (_checkpoint_from(line, n, path) for n, line in numbered if line.strip())
            return
        with open(path, encoding="utf-8") as lines:
            for number, line in enumerate(lines, start=1):
                if line.strip():
                    yield _checkpoint_from(line, number, path)
    except UnicodeDecodeError as error:
        raise CheckpointFileDamaged(f"The checkpoint file {path} is not text: {error}.") from error
    except OSError as error:
        raise AnchorProblem(f"The checkpoint file {path} cannot be read: {error}.") from error


def _last_lines(path: str, count: int, block: int = 8192) -> list[str]:
    """The file's last `count` non-empty lines, read backwards a block at a time."""
    with open(path, "rb") as data:
        data.seek(0, os.SEEK_END)
        end = data.tell()
        chunk = b""
        while end > 0 and chunk.count(b"\n") <= count:
            start = max(0, end - block)
            data.seek(start)
            chunk = data.read(end - start) + chunk
            end = start
    lines = [line for line in chunk.decode("utf-8").splitlines() if line.strip()]
    return lines[-count:]


def _checkpoint_from(line: str, number: int, path: str) -> dict[str, Any]:
    try:
        data = json.loads(line)
        return {
            "seq": int(data["seq"]),
            "hash": str(data["hash"]),
            "at": _parse_time(str(data["at"])),
            "signature": str(data["signature"]),
            "key_id": str(data.get("key_id", "")),
            "line": number,
        }
    except (ValueError, KeyError, TypeError) as error:
        where = f"line {number}" if number else "a line near its end"
        raise CheckpointFileDamaged(
            f"The checkpoint file {path}, {where}, is not a checkpoint: it was edited."
        ) from error
