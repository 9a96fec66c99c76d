"""One rollout plan's evidence pack: a zip an auditor reads and checks without Wavegate — the
plan as approved, every decision and refusal, the preflight each cluster was judged by, each
cluster's timeline, the plan's audit events with their hashes and the checkpoints that cover
them, a summary page, and the SHA-256 of every file (manifest.json, MANIFEST.sha256).

Downloaded from the plan's page or written by `manage.py evidence_pack PLAN`; each export is
itself an audit event (`rollout.evidence_pack_exported`, with the manifest's hash).
"""

from __future__ import annotations

import csv
import dataclasses
import datetime
import hashlib
import io
import json
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from itertools import groupby
from pathlib import Path
from tempfile import SpooledTemporaryFile
from typing import IO, Any
from zipfile import ZIP_DEFLATED, ZipFile, ZipInfo

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Max, Q, QuerySet
from django.urls import reverse
from django.utils import timezone

import audit
from audit.chain import checkpoint_signed
from audit.export import AuditExport
from audit.export_format import to_cell
from audit.keys import AnchorProblem, load_key
from audit.kinds import Outcome
from audit.models import AuditCheckpoint, AuditEvent
from fleet.choices import ScanStatus
from fleet.models import ClusterEvent, PreflightScan, ScanFinding
from rollout.choices import PLAN_FINAL, Goal, RolloutEvent, TargetStatus
from rollout.evidence_summary import summary_html, utc_text
from rollout.models import Approval, PlanAuthor, RolloutPlan, RolloutTarget, Wave

FORMAT = "wavegate-evidence-pack"
VERSION = 1
EXPORTED = RolloutEvent.EVIDENCE_PACK_EXPORTED
# The pack is built in memory up to this size, then in a temporary file.
SPOOL_BYTES = 16 * 1024 * 1024
CHUNK = 2000
FINDINGS_SHOWN = 20  # blocking rules listed per scan in preflight.json; all are counted
FINDING_FIELDS = ("node", "family", "table", "chain", "rule", "origin", "hint")
MANIFEST, SHA256SUMS = "manifest.json", "MANIFEST.sha256"
# The offline verifier's own source (the standard library only), so the pack checks itself.
VERIFIER_FILES = ("__init__.py", "chain.py", "export_format.py", "verify_export.py")
VERIFY_COMMAND = "cd verifier && python3 -m audit.verify_export ../events.jsonl [--key-file KEY]"
_SCAN_NAMED = re.compile(r"Preflight scan #(\d+)")
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]")


class PlanNotFound(Exception):
    """No plan, or more than one, answers to what was given: the message says which."""


class SeveralPlans(PlanNotFound):
    """More than one plan has the name given."""


def find_plan(given: str) -> RolloutPlan:
    """The plan whose id or exact name is `given`."""
    text = given.strip()
    if text.isdigit():
        plan = RolloutPlan.objects.filter(pk=int(text)).first()
        if plan is not None:
            return plan
    named = list(RolloutPlan.objects.filter(name=text).order_by("pk").values_list("pk", flat=True))
    if len(named) == 1:
        return RolloutPlan.objects.get(pk=named[0])
    if named:
        ids = ", ".join(str(pk) for pk in named)
        raise SeveralPlans(f"{len(named)} plans are named {text!r} (ids {ids}): give its id.")
    raise PlanNotFound(f"There is no plan with the id or the exact name {text!r}.")


def _time(moment: datetime.datetime | None) -> str | None:
    """ISO 8601 in UTC, e.g. 2026-12-04T10:15:00.123456Z."""
    if moment is None:
        return None
    return moment.astimezone(datetime.UTC).isoformat().replace("+00:00", "Z")


def _json(value: Any) -> bytes:
    return (json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False) + "\n").encode()


@dataclass(frozen=True)
class Span:
    """The stretch of time a plan's clusters are followed for: from its submission (the version
    approved) to its end, or to now while it is not finished."""

    start: datetime.datetime
    end: datetime.datetime
    ongoing: bool

    @classmethod
    def of(cls, plan: RolloutPlan, now: datetime.datetime, head: int) -> Span:
        start = plan.submitted_at or plan.created_at
        if plan.status not in PLAN_FINAL:
            return cls(start, now, True)
        # A cluster of a finished plan may still be rolled back: its end is its last event.
        last = AuditEvent.objects.filter(plan_id=plan.pk, seq__lte=head).aggregate(at=Max("at"))
        end = max(t for t in (plan.finished_at, last["at"], start) if t is not None)
        return cls(start, end, False)


@dataclass
class Pack:
    """A built pack: the zip (read from its start), what to call it, and what it holds."""

    file: IO[bytes]
    filename: str
    manifest_sha256: str
    digests: dict[str, str]
    events: int
    first_seq: int | None
    last_seq: int | None


class _Zip:
    """The zip being written, hashing every file as it goes in."""

    def __init__(self, out: IO[bytes], moment: datetime.datetime) -> None:
        self.archive = ZipFile(out, "w", ZIP_DEFLATED, allowZip64=True)
        self.stamp = moment.astimezone(datetime.UTC).timetuple()[:6]
        self.digests: dict[str, str] = {}
        self.sizes: dict[str, int] = {}

    def _info(self, name: str) -> ZipInfo:
        info = ZipInfo(name, date_time=self.stamp)
        info.compress_type = ZIP_DEFLATED
        return info

    def write(self, name: str, data: bytes) -> None:
        self.stream(name, [data])

    def stream(self, name: str, chunks: Iterable[bytes | str]) -> None:
        digest, size = hashlib.sha256(), 0
        with self.archive.open(self._info(name), "w", force_zip64=True) as out:
            for chunk in chunks:
                data = chunk.encode() if isinstance(chunk, str) else chunk
                digest.update(data)
                size += len(data)
                out.write(data)
        self.digests[name], self.sizes[name] = digest.hexdigest(), size


# --- what the pack says -----------------------------------------------------------------------
def _cluster(target: RolloutTarget) -> dict[str, Any]:
    cluster = target.cluster
    return {
        "id": cluster.pk,
        "name": cluster.name,
        "arm_id": cluster.arm_id,
        "subscription": {
            "id": cluster.subscription.subscription_id,
            "name": cluster.subscription.name,
        },
        "resource_group": cluster.resource_group,
        "region": cluster.location,
        "ring": cluster.ring,
        "kubernetes_version": cluster.kubernetes_version,
        "status": target.status,
        "outcome": TargetStatus(target.status).label,
        "error_code": target.error_code,
        "error_message": target.error_message,
        "attempts": target.attempts,
        "azure_request_id": target.request_id,
        "started_at": _time(target.started_at),
        "finished_at": _time(target.finished_at),
        "mode_before": (target.profile_before or {}).get("accelerationMode"),
        "mode_after": (target.profile_after or {}).get("accelerationMode"),
    }


def _plan_record(
    plan: RolloutPlan,
    waves: list[Wave],
    targets: list[RolloutTarget],
    authors: list[PlanAuthor],
) -> dict[str, Any]:
    by_wave: dict[int, list[RolloutTarget]] = defaultdict(list)
    for target in targets:
        by_wave[target.wave_id].append(target)
    return {
        "format": FORMAT,
        "version": VERSION,
        "plan": {
            "id": plan.pk,
            "name": plan.name,
            "goal": plan.goal,
            "goal_label": Goal(plan.goal).label,
            "status": plan.status,
            "content_hash": plan.content_hash,
            "created_by": plan.created_by.get_username(),
            "created_at": _time(plan.created_at),
            "submitted_at": _time(plan.submitted_at),
            "finished_at": _time(plan.finished_at),
            "paused_reason": plan.paused_reason,
        },
        "settings": {
            "selection": plan.selection,
            "wave_spec": plan.wave_spec,
            "concurrency": plan.concurrency,
            "failure_budget": plan.failure_budget,
            "soak_minutes": plan.soak_minutes,
            "respect_maintenance_windows": plan.respect_maintenance_windows,
            "approvals_needed": plan.approvals_needed,
        },
        "authors": [
            {
                "user": a.user.get_username(),
                "user_id": a.user_id,
                "did": a.did,
                "content_hash": a.content_hash,
                "at": _time(a.at),
            }
            for a in authors
        ],
        "excluded": plan.excluded,
        "waves": [
            {
                "index": wave.index,
                "status": wave.status,
                "approvals_needed": wave.approvals_needed,
                "started_at": _time(wave.started_at),
                "finished_at": _time(wave.finished_at),
                "clusters": [_cluster(t) for t in by_wave.get(wave.pk, [])],
            }
            for wave in waves
        ],
    }


def _reason(after: Any) -> str:
    if not isinstance(after, dict):
        return ""
    for key in ("refusal", "reason", "error", "message"):
        if after.get(key):
            return str(after[key])
    return ""


def _refusals(plan: RolloutPlan, head: int) -> list[AuditEvent]:
    """Refused attempts on the plan: recorded under it, or (a 403 before any view ran) by the
    path of one of its pages."""
    page = reverse("rollout:plan", args=[plan.pk])
    return list(
        AuditEvent.objects.filter(outcome=Outcome.REFUSED, seq__lte=head)
        .filter(Q(plan_id=plan.pk) | Q(plan_id__isnull=True, after__path__startswith=page))
        .order_by("seq")
    )


def _decisions_record(
    plan: RolloutPlan, approvals: list[Approval], refusals: list[AuditEvent]
) -> dict[str, Any]:
    return {
        "plan_hash": plan.content_hash,
        "decisions": [
            {
                "wave": a.wave.index,
                "user": a.user.get_username(),
                "user_id": a.user_id,
                "decision": a.decision,
                "comment": a.comment,
                "at": _time(a.created_at),
                "plan_hash": a.plan_hash,
                "for_this_version": a.plan_hash == plan.content_hash,
            }
            for a in approvals
        ],
        "refusals": [
            {
                "seq": e.seq,
                "at": _time(e.at),
                "actor": e.actor_name,
                "actor_ip": e.actor_ip,
                "action": e.action,
                "object": e.object_label,
                "wave": (e.after or {}).get("wave") if isinstance(e.after, dict) else None,
                "tried": (e.after or {}).get("tried", "") if isinstance(e.after, dict) else "",
                "reason": _reason(e.after),
                "hash": e.hash,
            }
            for e in refusals
        ],
    }


DECISION_COLUMNS = (
    "kind",
    "at",
    "wave",
    "who",
    "what",
    "comment_or_reason",
    "plan_hash",
    "audit_seq",
)


def _decisions_csv(record: Mapping[str, Any]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(DECISION_COLUMNS)
    rows = [
        ("decision", d["at"], d["wave"], d["user"], d["decision"], d["comment"], d["plan_hash"], "")
        for d in record["decisions"]
    ] + [
        ("refusal", r["at"], r["wave"], r["actor"], r["action"], r["reason"], "", r["seq"])
        for r in record["refusals"]
    ]
    for row in rows:
        # A spreadsheet would run a comment starting with "=" as a formula: quoted as exports are.
        writer.writerow(
            [to_cell(value, column) for value, column in zip(row, DECISION_COLUMNS, strict=True)]
        )
    return buffer.getvalue().encode()


def _scan_summary(scan: PreflightScan, by_origin: Mapping[str, int]) -> dict[str, Any]:
    return {
        "scan": scan.pk,
        "verdict": scan.status,
        "verdict_label": ScanStatus(scan.status).label,
        "queued_at": _time(scan.queued_at),
        "finished_at": _time(scan.finished_at),
        "nodes_expected": scan.nodes_expected,
        "nodes_read": scan.nodes_read,
        "message": scan.message,
        "unread_nodes": scan.unread_nodes,
        "labelled_nodes": scan.labelled_nodes,
        "parse_errors": len(scan.parse_errors or []),
        "findings": sum(by_origin.values()),
        "findings_by_origin": dict(sorted(by_origin.items())),
    }


def _preflight_record(
    plan: RolloutPlan, targets: list[RolloutTarget], span: Span, head: int
) -> list[dict[str, Any]]:
    """For each cluster, the scan the engine judged it by: the one its step named (a cluster it
    blocked), else the latest finished before the cluster left preflight — the scan the engine
    reuses (preflight/scans.py scan_for_rollout)."""
    if plan.goal == Goal.NONE:
        why = "A roll back is the safe direction: the engine takes no preflight scan."
        return [
            {"cluster": t.cluster.name, "cluster_id": t.cluster_id, "note": why} for t in targets
        ]
    left: dict[int, AuditEvent] = {}
    for event in (
        AuditEvent.objects.filter(
            plan_id=plan.pk, object_type="fleet.cluster", before__status=TargetStatus.PREFLIGHT
        )
        .filter(seq__lte=head)
        .order_by("seq")
    ):
        if event.cluster_id is not None:
            left[event.cluster_id] = event  # the last time it left preflight counts
    oldest = span.start - datetime.timedelta(minutes=settings.WAVEGATE_PREFLIGHT_MAX_AGE_MINUTES)
    scans: dict[int, list[PreflightScan]] = defaultdict(list)
    for scan in PreflightScan.objects.filter(
        cluster_id__in=[t.cluster_id for t in targets],
        finished_at__gte=oldest,
        finished_at__lte=span.end,
    ).order_by("cluster_id", "-finished_at"):
        scans[scan.cluster_id].append(scan)
    chosen: dict[int, PreflightScan] = {}
    for cluster_id, left_at in left.items():
        used = _scan_used(left_at, scans.get(cluster_id, []))
        if used is not None:
            chosen[cluster_id] = used
    origins: dict[int, Counter[str]] = defaultdict(Counter)
    for scan_id, origin, n in (
        ScanFinding.objects.filter(scan_id__in=[s.pk for s in chosen.values()])
        .order_by()
        .values_list("scan_id", "origin")
        .annotate(n=Count("pk"))
    ):
        origins[scan_id][origin] = n
    # The first rules of each blocked scan: one query each, for the few scans that block.
    rules = {
        scan_id: list(
            ScanFinding.objects.filter(scan_id=scan_id).values(*FINDING_FIELDS)[:FINDINGS_SHOWN]
        )
        for scan_id in origins
    }
    found = []
    for target in targets:
        entry: dict[str, Any] = {"cluster": target.cluster.name, "cluster_id": target.cluster_id}
        step = left.get(target.cluster_id)
        used = chosen.get(target.cluster_id)
        if step is None:
            entry["note"] = "It has not been through preflight in this plan."
        else:
            entry["engine_step"] = {
                "seq": step.seq,
                "action": step.action,
                "at": _time(step.at),
                "to": (step.after or {}).get("status"),
            }
        if used is not None:
            entry.update(_scan_summary(used, origins.get(used.pk, Counter())))
            entry["blocking_rules"] = rules.get(used.pk, [])
        elif step is not None:
            entry["note"] = "No finished scan of it before it left preflight was found."
        found.append(entry)
    return found


def _scan_used(step: AuditEvent, scans: list[PreflightScan]) -> PreflightScan | None:
    """Of a cluster's scans (newest first), the one the engine judged it by when it took
    `step` out of preflight: the scan its message names (it blocked the cluster), else the
    newest finished before, not in error (preflight/scans.py never reuses one in error)."""
    named = _SCAN_NAMED.search(str((step.after or {}).get("error", "")))
    if named is not None:
        return next((scan for scan in scans if scan.pk == int(named.group(1))), None)
    finished = (s for s in scans if s.finished_at is not None and s.finished_at <= step.at)
    return next((scan for scan in finished if scan.status != ScanStatus.ERROR), None)


def _timeline_lines(
    events: list[dict[str, Any]], scans: list[PreflightScan], kube: list[ClusterEvent]
) -> Iterator[str]:
    entries: list[tuple[str, dict[str, Any]]] = [(e["at"], e) for e in events]
    for scan in scans:
        at = _time(scan.finished_at or scan.queued_at) or ""
        entries.append(
            (
                at,
                {
                    "at": at,
                    "source": "preflight",
                    "scan": scan.pk,
                    "verdict": scan.status,
                    "nodes_read": scan.nodes_read,
                    "nodes_expected": scan.nodes_expected,
                    "message": scan.message,
                },
            )
        )
    for event in kube:
        at = _time(event.last_seen) or ""
        entries.append(
            (
                at,
                {
                    "at": at,
                    "source": "kubernetes",
                    "type": event.type,
                    "reason": event.reason,
                    "message": event.message,
                    "object": f"{event.object_kind}/{event.object_name}",
                    "namespace": event.namespace,
                    "reported_by": event.source,
                    "count": event.count,
                    "first_seen": _time(event.first_seen),
                    "last_seen": at,
                },
            )
        )
    entries.sort(key=lambda pair: pair[0])
    for _, entry in entries:
        yield json.dumps(entry, ensure_ascii=False, separators=(",", ":")) + "\n"


def _timeline_names(targets: list[RolloutTarget]) -> dict[int, str]:
    """timelines/<cluster>.jsonl; the cluster's id is added to a name two clusters share."""
    names = Counter(t.cluster.name for t in targets)
    files = {}
    for target in targets:
        name = _UNSAFE_NAME.sub("_", target.cluster.name) or "cluster"
        if names[target.cluster.name] > 1:
            name = f"{name}-{target.cluster_id}"
        files[target.cluster_id] = f"timelines/{name}.jsonl"
    return files


def _write_timelines(pack: _Zip, targets: list[RolloutTarget], span: Span, head: int) -> None:
    """Each cluster's audit events, scans and Kubernetes events while the plan ran, oldest
    first: read a cluster at a time from one ordered query, so a plan of thousands of clusters
    is never all in memory."""
    files = _timeline_names(targets)
    ids = sorted(files)
    scans: dict[int, list[PreflightScan]] = defaultdict(list)
    for scan in PreflightScan.objects.filter(
        cluster_id__in=ids, queued_at__gte=span.start, queued_at__lte=span.end
    ).order_by("queued_at"):
        scans[scan.cluster_id].append(scan)
    kube: dict[int, list[ClusterEvent]] = defaultdict(list)
    for event in ClusterEvent.objects.filter(
        cluster_id__in=ids, last_seen__gte=span.start, first_seen__lte=span.end
    ).order_by("last_seen"):
        kube[event.cluster_id].append(event)
    rows = (
        AuditEvent.objects.filter(
            cluster_id__in=ids, at__gte=span.start, at__lte=span.end, seq__lte=head
        )
        .order_by("cluster_id", "seq")
        .values(
            "cluster_id", "seq", "at", "actor_name", "action", "object_label", "before", "after"
        )
        .iterator(chunk_size=CHUNK)
    )
    grouped = groupby(rows, key=lambda row: row["cluster_id"])
    pending = next(grouped, None)
    for cluster_id in ids:
        events: list[dict[str, Any]] = []
        if pending is not None and pending[0] == cluster_id:
            events = [
                {
                    "at": _time(row["at"]),
                    "source": "audit",
                    "seq": row["seq"],
                    "action": row["action"],
                    "actor": row["actor_name"],
                    "object": row["object_label"],
                    "before": row["before"],
                    "after": row["after"],
                }
                for row in pending[1]
            ]
            pending = next(grouped, None)
        pack.stream(files[cluster_id], _timeline_lines(events, scans[cluster_id], kube[cluster_id]))


def plan_events(plan: RolloutPlan, cluster_ids: list[int], span: Span) -> QuerySet[AuditEvent]:
    """The plan's audit events: those recorded under it, and its clusters' within its span."""
    return AuditEvent.objects.filter(
        Q(plan_id=plan.pk) | Q(cluster_id__in=cluster_ids, at__gte=span.start, at__lte=span.end)
    )


@dataclass
class Coverage:
    """Which signed checkpoints vouch for the pack's events (checkpoints.json): those among
    them, the first at or after the last (which vouches for all), whether their signatures
    held when the pack was made (valid, invalid, or unchecked: no key here), in words."""

    within: list[dict[str, Any]] = field(default_factory=list)
    covering: dict[str, Any] | None = None
    signatures: str = "unchecked"
    statement: str = ""


def _checkpoint(checkpoint: AuditCheckpoint) -> dict[str, Any]:
    return {
        "seq": checkpoint.seq,
        "hash": checkpoint.hash,
        "at": _time(checkpoint.at),
        "signature": checkpoint.signature,
        "key_id": checkpoint.key_id,
    }


def _coverage(first: int | None, last: int | None) -> Coverage:
    if first is None or last is None:
        return Coverage(statement="The pack holds no audit event.")
    within = list(AuditCheckpoint.objects.filter(seq__gte=first, seq__lte=last))
    covering = AuditCheckpoint.objects.filter(seq__gte=last).order_by("seq", "id").first()
    every = within + ([covering] if covering is not None and covering not in within else [])
    signatures = "unchecked"
    try:
        key = load_key()
    except AnchorProblem:
        key = None
    if key is not None and every:
        signed = all(checkpoint_signed(key, c.signed_fields()) for c in every)
        # A signature proves the checkpoint; only the table still holding the hash it signed
        # proves the events.
        held = dict(
            AuditEvent.objects.filter(seq__in={c.seq for c in every}).values_list("seq", "hash")
        )
        matching = all(held.get(c.seq) == c.hash for c in every)
        signatures = (
            "invalid (not signed with the audit key)"
            if not signed
            else "valid, and the log still holds the hashes they signed"
            if matching
            else "signed, but the log's hashes differ from them: history was rewritten"
        )
    if covering is None:
        newest = within[-1].seq if within else None
        statement = (
            f"No signed checkpoint covers the pack's last event ({last}) yet"
            + (f"; events up to {newest} are anchored." if newest else ".")
            + " A checkpoint is made every minute in which events were added."
        )
    else:
        statement = (
            f"Every event of the pack (events {first} to {last}) is at or before the signed "
            f"checkpoint at event {covering.seq}, made {utc_text(covering.at)}."
        )
    return Coverage(
        within=[_checkpoint(c) for c in within],
        covering=_checkpoint(covering) if covering is not None else None,
        signatures=signatures,
        statement=statement,
    )


def _sha256sums(digests: Mapping[str, str]) -> bytes:
    return "".join(f"{digest}  {name}\n" for name, digest in sorted(digests.items())).encode()


def filename(plan: RolloutPlan, moment: datetime.datetime) -> str:
    """e.g. wavegate-evidence-plan-12-20261204T101500Z.zip"""
    return f"wavegate-evidence-plan-{plan.pk}-{moment.astimezone(datetime.UTC):%Y%m%dT%H%M%SZ}.zip"


def build(plan: RolloutPlan, *, made_by: str = "") -> Pack:
    """The plan's evidence pack as it stands now. Every part is read up to the audit log's
    head when the build starts, so events appended meanwhile are left out of all of them."""
    now = timezone.now()
    head = AuditEvent.objects.aggregate(head=Max("seq"))["head"] or 0
    span = Span.of(plan, now, head)
    waves = list(plan.waves.order_by("index"))
    targets = list(
        plan.targets.select_related("cluster", "cluster__subscription").order_by("position")
    )
    authors = list(plan.authors.select_related("user").order_by("at", "pk"))
    approvals = list(
        Approval.objects.filter(wave__plan=plan)
        .select_related("user", "wave")
        .order_by("created_at", "pk")
    )
    refusals = _refusals(plan, head)
    spool: IO[bytes] = SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115 (returned)
    pack = _Zip(spool, now)

    plan_record = _plan_record(plan, waves, targets, authors)
    pack.write("plan.json", _json(plan_record))
    decisions = _decisions_record(plan, approvals, refusals)
    pack.write("decisions.json", _json(decisions))
    pack.write("decisions.csv", _decisions_csv(decisions))
    preflight = _preflight_record(plan, targets, span, head)
    pack.write("preflight.json", _json({"clusters": preflight}))
    _write_timelines(pack, targets, span, head)

    cluster_ids = [t.cluster_id for t in targets]
    export = AuditExport(
        plan_events(plan, cluster_ids, span).filter(seq__lte=head),
        filters={
            "plan": str(plan.pk),
            "clusters_of_plan_since": _time(span.start) or "",
            "clusters_of_plan_until": _time(span.end) or "",
        },
    )
    pack.stream("events.jsonl", export.jsonl_lines())
    source = Path(audit.__file__).parent
    for name in VERIFIER_FILES:
        pack.write(f"verifier/audit/{name}", (source / name).read_bytes())
    coverage = _coverage(export.first_seq, export.last_seq)
    events = {
        "count": export.events_written,
        "first_seq": export.first_seq,
        "last_seq": export.last_seq,
    }
    anchoring = {"events": events, **dataclasses.asdict(coverage)}
    pack.write("checkpoints.json", _json(anchoring))
    summary = summary_html(
        plan=plan,
        plan_record=plan_record,
        decisions=decisions,
        preflight=preflight,
        span=(span.start, span.end, span.ongoing),
        events=events,
        coverage=anchoring,
        files=sorted([*pack.digests, "summary.html", SHA256SUMS, MANIFEST]),
        now=now,
        made_by=made_by,
        verify_command=VERIFY_COMMAND,
    )
    pack.write("summary.html", summary)
    pack.write(SHA256SUMS, _sha256sums(pack.digests))
    manifest = _json(
        {
            "format": FORMAT,
            "version": VERSION,
            "plan": {"id": plan.pk, "name": plan.name, "content_hash": plan.content_hash},
            "generated_at": _time(now),
            "generated_by": made_by,
            "algorithm": "sha256",
            "files": {
                name: {"sha256": pack.digests[name], "bytes": pack.sizes[name]}
                for name in sorted(pack.digests)
            },
        }
    )
    pack.write(MANIFEST, manifest)
    pack.archive.close()
    spool.seek(0)
    return Pack(
        file=spool,
        filename=filename(plan, now),
        manifest_sha256=hashlib.sha256(manifest).hexdigest(),
        digests=dict(pack.digests),
        events=export.events_written,
        first_seq=export.first_seq,
        last_seq=export.last_seq,
    )


def record_export(
    plan: RolloutPlan, pack: Pack, *, acting_user: Any = None, via: str
) -> AuditEvent:
    """Record that the pack was handed out (`via` "page" or "command"), in a transaction of its
    own: reading changes nothing else."""
    with transaction.atomic():
        return audit.record(
            EXPORTED,
            acting_user=acting_user,
            obj=plan,
            after={
                "via": via,
                "filename": pack.filename,
                "manifest_sha256": pack.manifest_sha256,
                "files": len(pack.digests) + 1,
                "events": pack.events,
                "first_seq": pack.first_seq,
                "last_seq": pack.last_seq,
            },
        )
