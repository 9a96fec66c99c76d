"""What preflight found, as the pages show it: on one cluster (its page's Preflight section and
the scan's plain-text download) and across the fleet (/blockers/: latest results by status and
by origin, the clusters one origin blocks, the clusters not read, the scans under way).

Each answer is a fixed number of queries however large the fleet and however many rules a scan
found: aggregates, never a query per cluster, node or finding.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from django.db.models import (
    CharField,
    Count,
    F,
    Max,
    Min,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
    Window,
)
from django.db.models.functions import Cast, Coalesce, Concat, RowNumber

from audit.models import AuditEvent
from fleet.choices import SCAN_OPEN, ScanStatus
from fleet.inventory import NEVER_SCANNED, cached, present_clusters, sync_version
from fleet.models import Cluster, PreflightScan, ScanFinding
from preflight import access
from preflight.choices import PreflightEvent

# --- preflight on one cluster ------------------------------------------------------------------
# What a cluster's page shows of one scan: enough lines to act on, however many the scan found.
# The rest is in the scan's plain-text download.
LINES_PER_NODE = 200
NODES_PER_ORIGIN = 20
ORIGINS_SHOWN = 50
SCAN_HISTORY = 10

_COMMANDS = {"ipv4": "iptables", "ipv6": "ip6tables"}


def rule_text(rows: Iterable[tuple[str, str, str]]) -> str:
    """(family, table, rule line) rows as one copyable block: the exact `-A ...` lines, each
    run of one table under a `# iptables -t <table>` comment saying where to delete them."""
    lines: list[str] = []
    where: tuple[str, str] | None = None
    for family, table, rule in rows:
        if (family, table) != where:
            where = (family, table)
            command = _COMMANDS.get(family, family)
            lines.append(
                f"# {command} (table unknown)" if table == "?" else f"# {command} -t {table}"
            )
        lines.append(rule)
    return "\n".join(lines)


@dataclass(frozen=True)
class RuleBlock:
    """The rules of one origin on one node, or on several nodes that have exactly the same."""

    nodes: list[str]
    text: str  # the first LINES_PER_NODE rules, ready to copy (see `rule_text`)
    shown: int
    total: int  # on each node

    @property
    def hidden(self) -> int:
        return self.total - self.shown


@dataclass(frozen=True)
class OriginBlockers:
    """Everything one origin left on the cluster's nodes, per node."""

    origin: str
    hint: str
    rules: int  # on all nodes together
    blocks: list[RuleBlock]  # the first NODES_PER_ORIGIN nodes, identical ones merged
    more_nodes: list[tuple[str, int]]  # the other nodes and their number of rules

    @property
    def node_count(self) -> int:
        return sum(len(b.nodes) for b in self.blocks) + len(self.more_nodes)

    def more_nodes_named(self, limit: int = 100) -> str:
        """The other nodes' names and rule counts, the first `limit` of them, as one line."""
        named = ", ".join(f"{node} ({n})" for node, n in self.more_nodes[:limit])
        rest = len(self.more_nodes) - limit
        return f"{named} and {rest} more" if rest > 0 else named


@dataclass(frozen=True)
class PreflightPanel:
    """A cluster's preflight: its latest result, the scan under way if any, recent scans."""

    latest: PreflightScan | None
    open_scan: PreflightScan | None
    history: Sequence[PreflightScan]  # newest first, each with `finding_count`
    origins: list[OriginBlockers]  # the ORIGINS_SHOWN on most nodes
    more_origins: list[tuple[str, int]]  # the other origins and their number of rules

    @property
    def finding_count(self) -> int:
        return sum(o.rules for o in self.origins) + sum(n for _, n in self.more_origins)


def preflight_panel(cluster: Cluster) -> PreflightPanel:
    """Three queries, whatever the number of scans, nodes and findings: the recent scans, the
    latest scan's rules counted per origin and node, and the lines shown. The cluster must
    come with `latest_scan__requested_by` selected."""
    findings = (
        ScanFinding.objects.filter(scan=OuterRef("pk"))
        .order_by()
        .values("scan")
        .annotate(n=Count("*"))
        .values("n")
    )
    history = list(
        PreflightScan.objects.filter(cluster=cluster)
        .select_related("requested_by")
        .annotate(finding_count=Coalesce(Subquery(findings), 0))
        .order_by("-queued_at", "-pk")[:SCAN_HISTORY]
    )
    # At most one scan of a cluster is open, and none can be queued after it.
    open_scan = history[0] if history and history[0].is_open else None
    latest = cluster.latest_scan
    origins, more_origins = _origins_of(latest) if latest is not None else ([], [])
    return PreflightPanel(latest, open_scan, history, origins, more_origins)


def cluster_section(user: Any, cluster: Cluster) -> dict[str, Any]:
    """What templates/preflight/_preflight.html shows of one cluster to `user`: its panel, and
    whether they may press "Scan now". The cluster must come with `latest_scan__requested_by`
    selected."""
    return {
        "cluster": cluster,
        "preflight": preflight_panel(cluster),
        "can_scan": access.can_scan_clusters(user),
        "lines_per_node": LINES_PER_NODE,
        "leftover": last_leftover_removed(cluster),
    }


def last_leftover_removed(cluster: Cluster) -> AuditEvent | None:
    """The latest scan namespace beat's reaper found left behind on `cluster` and deleted."""
    return (
        AuditEvent.objects.filter(
            action=PreflightEvent.LEFTOVER_REMOVED,
            object_type=cluster._meta.label_lower,
            object_id=str(cluster.pk),
        )
        .order_by("-seq")
        .first()
    )


def _origins_of(scan: PreflightScan) -> tuple[list[OriginBlockers], list[tuple[str, int]]]:
    """The origins to show, with their blocks of rules, and the others' names and counts."""
    counts = (
        ScanFinding.objects.filter(scan=scan)
        .values_list("origin", "node")
        .annotate(n=Count("*"), hint=Max("hint"))
        .order_by("origin", "node")
    )
    per_origin: dict[str, list[tuple[str, int]]] = {}
    hints: dict[str, str] = {}
    for origin, node, n, hint in counts:
        per_origin.setdefault(origin, []).append((node, n))
        hints[origin] = hint
    # The origin on most nodes first: removing it unblocks the most.
    ranked = sorted(per_origin.items(), key=lambda o: (-len(o[1]), -sum(n for _, n in o[1]), o[0]))
    shown_origins = ranked[:ORIGINS_SHOWN]
    lines = _lines_of(
        scan, {o: [node for node, _ in nodes[:NODES_PER_ORIGIN]] for o, nodes in shown_origins}
    )
    result = []
    for origin, nodes in shown_origins:
        blocks: dict[tuple[str, int], RuleBlock] = {}
        for node, total in nodes[:NODES_PER_ORIGIN]:
            rows = lines.get((origin, node), [])
            text = rule_text(rows)
            block = blocks.get((text, total))
            if block is None:
                blocks[(text, total)] = RuleBlock([node], text, len(rows), total)
            else:
                block.nodes.append(node)
        result.append(
            OriginBlockers(
                origin=origin,
                hint=hints[origin],
                rules=sum(n for _, n in nodes),
                blocks=list(blocks.values()),
                more_nodes=nodes[NODES_PER_ORIGIN:],
            )
        )
    more = [(origin, sum(n for _, n in nodes)) for origin, nodes in ranked[ORIGINS_SHOWN:]]
    return result, more


def _lines_of(
    scan: PreflightScan, nodes: dict[str, list[str]]
) -> dict[tuple[str, str], list[tuple[str, str, str]]]:
    """(origin, node) → its first LINES_PER_NODE rules as (family, table, rule), for the
    nodes given of each origin: one windowed query that reads only those nodes' rules."""
    if not nodes:
        return {}
    # One hashed lookup per finding: an OR of (origin, nodes) pairs costs three times as much.
    places = [f"{origin}\n{node}" for origin, names in nodes.items() for node in names]
    rows = (
        ScanFinding.objects.filter(scan=scan)
        .alias(place=Concat("origin", Value("\n"), "node"))
        .filter(place__in=places)
        .annotate(
            nth=Window(
                RowNumber(),
                partition_by=[F("origin"), F("node")],
                order_by=[F("family"), F("line"), F("pk")],
            )
        )
        .filter(nth__lte=LINES_PER_NODE)
        .order_by("origin", "node", "family", "line", "pk")
        .values_list("origin", "node", "family", "table", "rule")
    )
    lines: dict[tuple[str, str], list[tuple[str, str, str]]] = {}
    for origin, node, family, table, rule in rows:
        lines.setdefault((origin, node), []).append((family, table, rule))
    return lines


def scan_findings_text(scan: PreflightScan, chunk_lines: int = 2000) -> Iterator[str]:
    """Every finding of a scan as plain text, by origin and node, `chunk_lines` at a time:
    each origin with its hint, then each node's rules as `rule_text` shows them."""
    cluster = scan.cluster
    finished = (
        scan.finished_at.strftime("; finished %Y-%m-%d %H:%M:%S UTC") if scan.finished_at else ""
    )
    head = [
        f"# Wavegate preflight scan {scan.pk} of {cluster.name} ({cluster.arm_id})",
        f"# {scan.status}; nodes read: {scan.nodes_read} of {scan.nodes_expected}{finished}",
    ]
    if scan.message:
        head.append(f"# {scan.message}")
    rows = (
        ScanFinding.objects.filter(scan=scan)
        .order_by("origin", "node", "family", "line", "pk")
        .values_list("origin", "hint", "node", "family", "table", "rule")
        .iterator(chunk_size=chunk_lines)
    )
    lines = head
    found = False
    where: tuple[str, str, str, str] | None = None
    for origin, hint, node, family, table, rule in rows:
        found = True
        if where is None or where[0] != origin:
            lines += ["", f"## {origin}", f"# {hint}"]
        if where is None or where[:2] != (origin, node):
            lines += ["", f"### node {node}"]
            where = None
        if where is None or where[2:] != (family, table):
            command = _COMMANDS.get(family, family)
            lines.append(
                f"# {command} (table unknown)" if table == "?" else f"# {command} -t {table}"
            )
        where = (origin, node, family, table)
        lines.append(rule)
        if len(lines) >= chunk_lines:
            yield "\n".join(lines) + "\n"
            lines = []
    if not found:
        lines += ["", "# No blocking rules."]
    yield "\n".join(lines) + "\n"


# --- preflight across the fleet ----------------------------------------------------------------
@dataclass(frozen=True)
class PreflightTally:
    """Live clusters whose latest result is `status` ("" for none yet)."""

    status: str
    label: str
    eligible: int
    live: int
    query: str  # the cluster list's query string for these clusters (eligible ones)


def _preflight_version() -> str:
    """Changes whenever a sync starts or ends and whenever a scan is queued or ends: latest
    results change only when a scan ends. (A new scan's pk is higher than any before it;
    between two new scans the number of open ones only falls.)"""
    last = PreflightScan.objects.order_by("-pk").values_list("pk", flat=True).first()
    still_open = PreflightScan.objects.filter(status__in=SCAN_OPEN).count()
    return f"{sync_version()}:{last}:{still_open}"


def _preflight_counts() -> list[PreflightTally]:
    """Live clusters by their latest preflight result, eligible ones and all."""
    rows = present_clusters().values_list("eligible", "preflight").annotate(n=Count("*")).order_by()
    eligible: dict[str, int] = {}
    live: dict[str, int] = {}
    for is_eligible, status, n in rows:
        live[status] = live.get(status, 0) + n
        if is_eligible:
            eligible[status] = eligible.get(status, 0) + n
    statuses = [
        (str(value), str(label))
        for value, label in ScanStatus.choices
        if value not in SCAN_OPEN  # only a finished scan is a result
    ]
    return [
        PreflightTally(
            status,
            label,
            eligible.get(status, 0),
            live.get(status, 0),
            urlencode({"eligibility": "eligible", "preflight": status or NEVER_SCANNED}),
        )
        for status, label in [*statuses, ("", "Never scanned")]
    ]


def _latest_scans() -> QuerySet[Cluster, Any]:
    return present_clusters().filter(latest_scan__isnull=False).values("latest_scan_id")


@dataclass(frozen=True)
class OriginTally:
    """One origin of blocking rules across the fleet's latest results."""

    origin: str
    hint: str
    clusters: int
    nodes: int
    rules: int


def _blocking_origins() -> list[OriginTally]:
    """Each origin with the live clusters whose latest scan found its rules, most first."""
    rows = (
        ScanFinding.objects.filter(scan_id__in=_latest_scans())
        .values_list("origin")
        .annotate(
            clusters=Count("scan_id", distinct=True),
            nodes=Count(Concat(Cast("scan_id", CharField()), Value(" "), "node"), distinct=True),
            rules=Count("*"),
            hint=Max("hint"),
        )
        .order_by("-clusters", "-nodes", "origin")
    )
    return [
        OriginTally(origin, hint, clusters, nodes, rules)
        for origin, clusters, nodes, rules, hint in rows
    ]


@dataclass(frozen=True)
class FleetPreflight:
    counts: list[PreflightTally]
    origins: list[OriginTally]


def fleet_preflight() -> FleetPreflight:
    """The fleet's latest results by status, and by origin of what blocks. The origins read
    every finding of every latest scan (a few hundred milliseconds at 10,000 clusters, many of
    them blocked), so both are kept until a scan or a sync changes them."""
    return cached(
        "preflight",
        lambda: FleetPreflight(_preflight_counts(), _blocking_origins()),
        _preflight_version,
    )


def origin_hint(origin: str) -> str | None:
    """The hint the fleet's latest results give for `origin`; None when none has it."""
    hints = ScanFinding.objects.filter(scan_id__in=_latest_scans(), origin=origin).order_by()
    return next(iter(hints.values_list("hint", flat=True)[:1]), None)


def clusters_blocked_by(origin: str) -> QuerySet[Cluster]:
    """Live clusters whose latest scan found rules from `origin`, by name."""
    scans = ScanFinding.objects.filter(origin=origin, scan_id__in=_latest_scans()).values("scan_id")
    return (
        present_clusters()
        .filter(latest_scan_id__in=scans)
        .select_related("subscription", "latest_scan")
        .order_by("name", "pk")
    )


def origin_counts(origin: str, scan_ids: Iterable[int]) -> dict[int, tuple[int, int]]:
    """scan id → (nodes, rules) of `origin` in these scans: one query for a page of clusters
    (counted for that page only, never for the clusters an OFFSET skips)."""
    rows = (
        ScanFinding.objects.filter(scan_id__in=list(scan_ids), origin=origin)
        .values_list("scan_id")
        .annotate(nodes=Count("node", distinct=True), rules=Count("*"))
        .order_by()
    )
    return {scan_id: (nodes, rules) for scan_id, nodes, rules in rows}


def clusters_not_read() -> QuerySet[Cluster]:
    """Live clusters whose latest scan could not read every node, or failed."""
    return (
        present_clusters()
        .filter(preflight__in=[ScanStatus.INCOMPLETE, ScanStatus.ERROR])
        .select_related("subscription", "latest_scan")
        .order_by("name", "pk")
    )


@dataclass(frozen=True)
class ScanProgress:
    """The scans under way, and those finished since the oldest of them was queued."""

    queued: int
    running: int
    finished: int
    since: datetime.datetime

    @property
    def total(self) -> int:
        return self.queued + self.running + self.finished


def scan_progress() -> ScanProgress | None:
    """None when no scan is queued or running (one query); else two."""
    since = PreflightScan.objects.filter(status__in=SCAN_OPEN).aggregate(t=Min("queued_at"))["t"]
    if since is None:
        return None
    counts = PreflightScan.objects.filter(queued_at__gte=since).aggregate(
        queued=Count("pk", filter=Q(status=ScanStatus.QUEUED)),
        running=Count("pk", filter=Q(status=ScanStatus.RUNNING)),
        finished=Count("pk", filter=~Q(status__in=SCAN_OPEN)),
    )
    return ScanProgress(counts["queued"], counts["running"], counts["finished"], since)
