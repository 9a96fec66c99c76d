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


def _seen_checkpoints() -> tuple[list[_Checkpoint], list[str]]:
    problems: list[str] = []
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
        problems.append(str(problem))
    in_file = {(c.seq, c.hash, c.signature) for c in filed}
    in_database = {(c.seq, c.hash, c.signature) for c in stored}
    if filed or problems:
        for c in stored:
            if (c.seq, c.hash, c.signature) not in in_file:
                problems.append(
                    f"checkpoint at event {c.seq} is in the database but not in the checkpoint "
                    f"file: it was not made by Wavegate, or the file was replaced"
                )
    for c in filed:
        if (c.seq, c.hash, c.signature) not in in_database:
            problems.append(
                f"checkpoint at event {c.seq} ({c.where}) is missing from the database: "
                f"checkpoints were deleted there"
            )
    seen = {(c.seq, c.hash, c.signature): c for c in [*stored, *filed]}
    return sorted(seen.values(), key=lambda c: c.seq), problems


def _hashes_at(seqs: Iterable[int], chunk: int = 5000) -> dict[int, str]:
    wanted = sorted(set(seqs))
    found: dict[int, str] = {}
    for start in range(0, len(wanted), chunk):
        part = wanted[start : start + chunk]
        found.update(AuditEvent.objects.filter(seq__in=part).values_list("seq", "hash"))
    return found


def full_report(batch_size: int = 5000) -> Report:
    """Walk the chain and every checkpoint; say exactly what holds and what does not."""
    report = Report()
    verdict = verify_stored_chain(batch_size)
    report.events = AuditEvent.objects.count()
    report.last_seq = AuditEvent.objects.order_by("-seq").values_list("seq", flat=True).first() or 0
    if verdict.intact:
        report.statements.append(
            f"chain intact to event {report.last_seq}" if report.last_seq else "the log is empty"
        )
    else:
        report.problems.append(describe_break(verdict))
        if verdict.count:
            report.statements.append(f"chain intact to event {verdict.count}")

    checkpoints, problems = _seen_checkpoints()
    report.problems.extend(problems)
    key: bytes | None = None
    try:
        key = anchor.load_key()
    except anchor.AnchorProblem as problem:
        if checkpoints or anchor.key_configured():
            report.problems.append(f"checkpoint signatures cannot be checked: {problem}")
    table = _hashes_at(c.seq for c in checkpoints)
    last_matching = 0
    for c in checkpoints:
        report.checkpoints_checked += 1
        if key is not None and not checkpoint_signed(key, {**c.data, "signature": c.signature}):
            report.problems.append(
                f"checkpoint at event {c.seq} ({c.where}) is not signed with the audit key: "
                f"forged or altered"
            )
            continue
        if c.seq > report.last_seq:
            report.problems.append(
                f"checkpoint says event {c.seq} exists, the table ends at {report.last_seq}"
            )
        elif table.get(c.seq) != c.hash:
            report.problems.append(
                f"events {last_matching + 1} to {c.seq} were altered: the signed checkpoint at "
                f"event {c.seq} says its hash is {_short(c.hash)}, the table has "
                f"{_short(table.get(c.seq) or '(no such event)')}"
            )
        elif key is not None:
            last_matching = max(last_matching, c.seq)
    report.anchored_to = last_matching
    if last_matching:
        report.statements.append(f"checkpoint at event {last_matching} signed")
        if report.last_seq > last_matching:
            report.statements.append(f"events after {last_matching} not yet anchored")
    elif key is not None and report.last_seq:
        report.statements.append("no signed checkpoint yet: nothing anchors the chain")
    return report


# --- beat's incremental check ------------------------------------------------------------------
def _rows_after(seq: int, batch_size: int) -> Iterator[Mapping[str, Any]]:
    rows = AuditEvent.objects.filter(seq__gt=seq).order_by("seq").values(*CHAIN_FIELDS)
    return rows.iterator(chunk_size=batch_size)


def _newest_checkpoints() -> tuple[list[dict[str, Any]], list[str]]:
    newest: list[dict[str, Any]] = []
    problems: list[str] = []
    stored = AuditCheckpoint.objects.order_by("-seq", "-id").first()
    if stored is not None:
        newest.append({**stored.signed_fields(), "where": "the database"})
    try:
        for c in anchor.file_checkpoints(tail=1):
            newest.append({**c, "where": "the checkpoint file's last line"})
    except anchor.AnchorProblem as problem:
        problems.append(str(problem))
    return newest, problems


def _checkpoint_problems(head: int) -> list[str]:
    newest, problems = _newest_checkpoints()
    if not newest:
        return problems
    key = anchor.load_key() if anchor.key_configured() else None
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
    broken and record `audit.chain_broken` (once, in the same transaction)."""
    with transaction.atomic():
        watch, _ = ChainWatch.objects.select_for_update().get_or_create(pk=1)
        problems: list[str] = []
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
            if verdict.intact:
                seq += verdict.count
            else:
                problems.append(describe_break(verdict))
                seq += verdict.count
            if seq != watch.verified_seq:
                digest = AuditEvent.objects.values_list("hash", flat=True).get(seq=seq)
        head = AuditEvent.objects.order_by("-seq").values_list("seq", flat=True).first() or 0
        try:
            problems.extend(_checkpoint_problems(head))
        except anchor.AnchorProblem as problem:
            problems.append(str(problem))
        if not problems or watch.broken_seq is None:
            watch.verified_seq, watch.verified_hash = seq, digest if seq else ""
        watch.checked_at = timezone.now()
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
