"""A cluster's story for its page: its Kubernetes events (fleet/events.py), Wavegate's preflight
scans of it, and the audit events that concern it (a rollout's steps among them), merged newest
first. The same Kubernetes event seen again is one entry, at its latest time, saying how many
times: AKS's iptables monitor raises a new event on each node at every check (shared/reference/
aks-ebpf-host-routing.md: told apart by node, reason and message), which would otherwise bury
everything else."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field

from django.db.models import Q

from audit.kinds import Category
from audit.models import AuditEvent
from fleet.models import Cluster, ClusterEvent, EventPull, PreflightScan

LIMIT = 100


@dataclass
class Entry:
    at: datetime.datetime
    kind: str  # kubernetes | scan | rollout | audit
    scan: PreflightScan | None = None
    audit: AuditEvent | None = None
    # kubernetes: the event, newest first, and the older ones of its run folded into it
    events: list[ClusterEvent] = field(default_factory=list)

    @property
    def event(self) -> ClusterEvent:
        return self.events[0]

    @property
    def count(self) -> int:
        """How many times Kubernetes saw the event in this run (each event's own count)."""
        return sum(e.count for e in self.events)

    @property
    def first_seen(self) -> datetime.datetime:
        return min(e.first_seen for e in self.events)

    @property
    def step(self) -> str:
        """An audit event's action in words: `rollout.target_done` is "cluster done" (the
        page is the cluster's; a plan's target is the cluster in it)."""
        action = self.audit.action if self.audit else ""
        words = action.partition(".")[2].replace("target_", "cluster_").replace("_", " ")
        return words or action


@dataclass
class Timeline:
    entries: list[Entry]
    pull: EventPull | None  # how its events were last pulled; None: never
    limit: int


def _fold_key(event: ClusterEvent) -> tuple[str, ...]:
    return (
        event.type,
        event.reason,
        event.message,
        event.object_kind,
        event.object_name,
        event.source,
    )


def _fold(entries: list[Entry]) -> list[Entry]:
    """Newest first: a Kubernetes event joins the newer entry of the same event (object,
    reason, message, reporter), which then says how many times and since when."""
    folded: list[Entry] = []
    newest: dict[tuple[str, ...], Entry] = {}
    for entry in entries:
        if entry.kind == "kubernetes":
            key = _fold_key(entry.event)
            if key in newest:
                newest[key].events.append(entry.event)
                continue
            newest[key] = entry
        folded.append(entry)
    return folded


def _scan_time(scan: PreflightScan) -> datetime.datetime:
    return scan.finished_at or scan.started_at or scan.queued_at


def _audited(cluster: Cluster, all_audit: bool, limit: int) -> list[AuditEvent]:
    """The cluster's latest audit events: those filed with its id, and those written before
    events carried one (filed under the cluster as their object). Two queries, each along its
    index, rather than one OR the planner may read the whole log for."""
    found: dict[int, AuditEvent] = {}
    for concerning in (
        Q(cluster_id=cluster.pk),
        Q(object_type="fleet.cluster", object_id=str(cluster.pk), cluster_id__isnull=True),
    ):
        events = AuditEvent.objects.filter(concerning)
        if not all_audit:
            events = events.filter(category=Category.ROLLOUT)
        found.update((e.seq, e) for e in events.order_by("-seq")[:limit])
    return sorted(found.values(), key=lambda e: e.seq, reverse=True)[:limit]


def of(cluster: Cluster, *, all_audit: bool, limit: int = LIMIT) -> Timeline:
    """The cluster's latest `limit` entries. Rollout steps are for everyone who sees the
    cluster; its other audit events only for those who may read the audit log (`all_audit`)."""
    k8s = ClusterEvent.objects.filter(cluster=cluster).order_by("-last_seen", "-pk")[:limit]
    scans = (
        PreflightScan.objects.filter(cluster=cluster)
        .select_related("requested_by")
        .order_by("-queued_at", "-pk")[:limit]
    )
    entries = [Entry(e.last_seen, "kubernetes", events=[e]) for e in k8s]
    entries += [Entry(_scan_time(s), "scan", scan=s) for s in scans]
    entries += [
        Entry(a.at, "rollout" if a.category == Category.ROLLOUT else "audit", audit=a)
        for a in _audited(cluster, all_audit, limit)
    ]
    entries.sort(key=lambda e: e.at, reverse=True)
    pull = EventPull.objects.filter(cluster=cluster).first()
    return Timeline(_fold(entries)[:limit], pull, limit)
