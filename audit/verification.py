"""Check the stored chain and its signed checkpoints.

`full_report` walks the whole chain and every checkpoint it can see (the database's and the
checkpoint file's) for `manage.py audit_verify` and the auditor's page; `check_increment` is
beat's minute-by-minute check from the last verified event on, which raises the banner and
records `audit.chain_broken` when something is wrong.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from audit import anchor
from audit.chain import (
    GENESIS,
    HASHED_FIELDS,
    OPTIONAL_HASHED_FIELDS,
    Verdict,
    checkpoint_signed,
    verify,
)
from audit.kinds import AuditAction
from audit.log import record
from audit.models import AuditCheckpoint, AuditEvent, ChainWatch

CHAIN_FIELDS = (*HASHED_FIELDS, *OPTIONAL_HASHED_FIELDS, "hash")
BANNER_CACHE_KEY = "audit:chain-broken"


def _short(digest: str) -> str:
    return digest[:12] + "…"


def verify_stored_chain(batch_size: int = 5000) -> Verdict:
    rows = AuditEvent.objects.order_by("seq").values(*CHAIN_FIELDS)
    return verify(rows.iterator(chunk_size=batch_size))


def describe_break(verdict: Verdict) -> str:
    seq = verdict.first_broken
    if "missing" in verdict.reason:
        return f"event {seq} is missing: events were removed"
    if "previous-hash" in verdict.reason:
        return (
            f"event {seq} does not follow event {(seq or 1) - 1}: its previous-hash does not "
            f"match (the event before it was altered, or events were removed)"
        )
    return f"event {seq} altered: its content does not match its hash"


@dataclass
class Report:
    """What `audit_verify` found, as sentences: `statements` true of the log, `problems`
    wrong with it."""

    events: int = 0
    last_seq: int = 0
    statements: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    checkpoints_checked: int = 0
    anchored_to: int = 0  # the newest event a signed, matching checkpoint covers

    @property
    def intact(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class _Checkpoint:
    seq: int
    hash: str
    signature: str
    where: str  # "the database" or "the checkpoint file, line N"
    data: Mapping[str, Any]


def _seen_checkpoints(report: Report) -> list[_Checkpoint]:
    """Every checkpoint in the database and in the file; what does not agree between them goes
    into the report."""
    stored = [
        _Checkpoint(c.seq, c.hash, c.signature, "the database", c.signed_fields())
        for c in AuditCheckpoint.objects.order_by("seq", "id")
    ]
    filed: list[_Checkpoint] = []
    try:
        filed = [
            _Checkpoint(
                c["seq"], c["hash"], c["signature"], f"the checkpoint file, line {c['line']}", c
            )
            for c in anchor.file_checkpoints()
        ]
    except anchor.AnchorProblem as problem:
        report.problems.append(str(problem))
    if stored and anchor.file_missing():
        report.problems.append(
            "the checkpoint file (WAVEGATE_AUDIT_CHECKPOINT_FILE) is gone: the copies outside "
            "the database were removed"
        )
    in_file = {(c.seq, c.hash, c.signature) for c in filed}
    in_database = {(c.seq, c.hash, c.signature) for c in stored}
    if filed:
        for c in stored:
            if (c.seq, c.hash, c.signature) not in in_file:
                report.problems.append(
                    f"checkpoint at event {c.seq} is in the database but not in the checkpoint "
                    f"file: it was not made by Wavegate, or the file was replaced"
                )
    newest_stored = max((c.seq for c in stored), default=0)
    for c in filed:
        if (c.seq, c.hash, c.signature) in in_database:
            continue
        if c.seq > newest_stored:
            # Written before its row committed: being made now, or its commit failed.
            report.statements.append(
                f"checkpoint at event {c.seq} ({c.where}) is not in the database yet"
            )
        else:
            report.problems.append(
                f"checkpoint at event {c.seq} ({c.where}) is missing from the database: "
                f"checkpoints were deleted there"
            )
    seen = {(c.seq, c.hash, c.signature): c for c in [*stored, *filed]}
    return sorted(seen.values(), key=lambda c: c.seq)


def _hashes_at(seqs: Iterable[int], chunk: int = 5000) -> dict[int, str]:
    wanted = sorted(set(seqs))
    found: dict[int, str] = {}
    for start in range(0, len(wanted), chunk):
        part = wanted[start : start + chunk]
        found.update(AuditEvent.objects.filter(seq__in=part).values_list("seq", "hash"))
    return found


def _table_end() -> int:
    return AuditEvent.objects.order_by("-seq").values_list("seq", flat=True).first() or 0


def full_report(batch_size: int = 5000) -> Report:
    """Walk the chain and every checkpoint; say exactly what holds and what does not.

    Checkpoints are read first: each was made from an event already there, so one that names
    an event past the table's end (read after them) means the tail was cut."""
    report = Report()
    checkpoints = _seen_checkpoints(report)
    table_end = _table_end()
    verdict = verify_stored_chain(batch_size)
    report.events = verdict.count
    report.last_seq = table_end

    key: bytes | None = None
    try:
        key = anchor.load_key()
    except anchor.AnchorProblem as problem:
        if checkpoints or anchor.key_configured():
            report.problems.append(f"checkpoint signatures cannot be checked: {problem}")
    table = _hashes_at(c.seq for c in checkpoints)
    last_matching = 0
    contradicted = False
    for c in checkpoints:
        report.checkpoints_checked += 1
        if key is not None and not checkpoint_signed(key, {**c.data, "signature": c.signature}):
            report.problems.append(
                f"checkpoint at event {c.seq} ({c.where}) is not signed with the audit key: "
                f"forged or altered"
            )
            continue
        if c.seq > table_end:
            report.problems.append(
                f"checkpoint says event {c.seq} exists, the table ends at {table_end}"
            )
        elif table.get(c.seq) != c.hash:
            contradicted = True
            report.problems.append(
                f"events {last_matching + 1} to {c.seq} were altered: the signed checkpoint at "
                f"event {c.seq} says its hash is {_short(c.hash)}, the table has "
                f"{_short(table.get(c.seq) or '(no such event)')}"
            )
        elif key is not None:
            last_matching = max(last_matching, c.seq)

    if not verdict.intact:
        report.problems.insert(0, describe_break(verdict))
        if verdict.count:
            report.statements.insert(0, f"chain intact to event {verdict.count}")
    elif contradicted:
        report.statements.insert(
            0,
            f"hashes link up to event {verdict.count}, but signed checkpoints contradict them: "
            "the chain was rewritten and rehashed",
        )
    elif verdict.count:
        report.statements.insert(0, f"chain intact to event {verdict.count}")
    else:
        report.statements.insert(0, "the log is empty")
    report.anchored_to = last_matching
    if last_matching:
        report.statements.append(f"checkpoint at event {last_matching} signed")
        if verdict.count > last_matching:
            report.statements.append(f"events after {last_matching} not yet anchored")
    elif key is not None and verdict.count:
        report.statements.append("no signed checkpoint yet: nothing anchors the chain")
    return report


# --- beat's incremental check ------------------------------------------------------------------
# One run verifies at most this many new events (the first run on a large log takes several).
INCREMENT_LIMIT = 200_000


def _rows_after(seq: int, batch_size: int) -> Iterator[Mapping[str, Any]]:
    rows = AuditEvent.objects.filter(seq__gt=seq).order_by("seq").values(*CHAIN_FIELDS)
    return rows[:INCREMENT_LIMIT].iterator(chunk_size=batch_size)


def _newest_checkpoints() -> list[dict[str, Any]]:
    newest: list[dict[str, Any]] = []
    stored = AuditCheckpoint.objects.order_by("-seq", "-id").first()
    if stored is not None:
        newest.append({**stored.signed_fields(), "where": "the database"})
    for c in anchor.file_checkpoints(tail=1):
        newest.append({**c, "where": "the checkpoint file's last line"})
    return newest


def _checkpoint_problems(newest: list[dict[str, Any]], head: int, key: bytes | None) -> list[str]:
    problems = []
    table = _hashes_at(c["seq"] for c in newest)
    for c in newest:
        if key is not None and not checkpoint_signed(key, c):
            problems.append(
                f"checkpoint at event {c['seq']} ({c['where']}) is not signed with the audit key"
            )
        elif c["seq"] > head:
            problems.append(f"checkpoint says event {c['seq']} exists, the table ends at {head}")
        elif table.get(c["seq"]) != c["hash"]:
            problems.append(
                f"event {c['seq']} no longer has the hash its signed checkpoint "
                f"({c['where']}) holds: events up to it were altered"
            )
    return problems


def check_increment(batch_size: int = 5000) -> ChainWatch:
    """Verify the events added since the last check, that the last verified event is still
    there unchanged, and that the newest checkpoints still match; on a problem, mark the chain
    broken and record `audit.chain_broken` (once, in the same transaction). A key or file that
    cannot be read is a fault of the setup: noted on the watch, not called tampering."""
    with transaction.atomic():
        watch, _ = ChainWatch.objects.select_for_update().get_or_create(pk=1)
        problems: list[str] = []
        unchecked = ""
        newest: list[dict[str, Any]] = []
        key: bytes | None = None
        # The checkpoints before the head: each was made from an event already there.
        try:
            if anchor.file_missing() and AuditCheckpoint.objects.exists():
                problems.append("the checkpoint file (WAVEGATE_AUDIT_CHECKPOINT_FILE) is gone")
            newest = _newest_checkpoints()
            key = anchor.load_key() if anchor.key_configured() else None
        except anchor.CheckpointFileDamaged as damage:
            problems.append(str(damage))
        except anchor.AnchorProblem as fault:
            unchecked = str(fault)
            newest = []
        head = _table_end()
        seq, digest = watch.verified_seq, watch.verified_hash or GENESIS
        if seq:
            still = AuditEvent.objects.filter(seq=seq).values_list("hash", flat=True).first()
            if still != digest:
                problems.append(
                    f"event {seq}, verified before, is "
                    + ("gone: events were removed" if still is None else "altered")
                )
        if not problems:
            verdict = verify(_rows_after(seq, batch_size), after_seq=seq, after_hash=digest)
            if not verdict.intact:
                problems.append(describe_break(verdict))
            if verdict.count:
                seq += verdict.count
                digest = AuditEvent.objects.values_list("hash", flat=True).get(seq=seq)
        problems.extend(_checkpoint_problems(newest, head, key))
        if not problems or watch.broken_seq is None:
            watch.verified_seq, watch.verified_hash = seq, digest if seq else ""
        watch.checked_at = timezone.now()
        watch.unchecked_reason = unchecked
        if problems and watch.broken_seq is None:
            watch.broken_seq = seq + 1
            watch.broken_reason = "; ".join(problems)
            watch.broken_since = watch.checked_at
            record(
                AuditAction.CHAIN_BROKEN,
                object_type="audit.auditevent",
                object_id=str(seq + 1),
                object_label=f"event {seq + 1}",
                after={"problems": problems, "verified_to": seq},
            )
        watch.save()
        transaction.on_commit(lambda: cache.delete(BANNER_CACHE_KEY))
    return watch


def chain_broken() -> ChainWatch | None:
    """The break beat found, for the banner; None while the chain checks out."""
    return ChainWatch.objects.filter(pk=1, broken_seq__isnull=False).first()
