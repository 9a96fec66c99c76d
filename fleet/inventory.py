"""Questions the inventory pages ask: how the fleet divides up, what the cluster list may be
filtered and sorted by, which clusters one filtering selects, and one cluster's audit trail.

Each answer is a fixed number of queries however large the fleet: aggregates, never a query
per cluster or node pool.
"""

from __future__ import annotations

import html
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlencode

from django.core.cache import cache
from django.core.paginator import Page
from django.db.models import Count, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.urls import reverse
from django.utils.safestring import mark_safe

from accounts.wording import counted
from audit.models import AuditEvent
from fleet.choices import AccelerationMode
from fleet.models import Cluster, ModeSnapshot, NodePool, SyncRun

T = TypeVar("T")

# The ring filter's value for clusters without a ring tag (a tag value cannot be empty).
NO_RING = "(none)"
# The preflight filter's value for clusters no scan has finished on yet.
NEVER_SCANNED = "never"

# Sort key → the columns it orders by, ascending; "-key" reverses the first one.
# Clusters tie-break on name, then id, so pages never shuffle.
SORTS: dict[str, tuple[str, str]] = {
    "name": ("name", "Name"),
    "subscription": ("subscription__name", "Subscription"),
    "region": ("location", "Region"),
    # Text order: right for AKS versions within one minor digit count (1.3x.y), not a semver.
    "version": ("kubernetes_version", "Version"),
    "ring": ("ring", "Ring"),
    # Eligible first when ascending.
    "eligibility": ("-eligible", "Eligibility"),
}
DEFAULT_SORT = "name"

_MINOR = re.compile(r"^(\d+)\.(\d+)(?:\.|$)")


def minor_version(version: str) -> str:
    """ "1.33.2" → "1.33"; a version Wavegate does not understand stays as it is."""
    match = _MINOR.match(version)
    return f"{match.group(1)}.{match.group(2)}" if match else version


def _version_order(minor: str) -> tuple[int, tuple[int, ...], str]:
    match = _MINOR.match(minor)
    return (0, (int(match.group(1)), int(match.group(2))), "") if match else (1, (), minor)


def present_clusters() -> QuerySet[Cluster]:
    return Cluster.objects.filter(removed_at__isnull=True)


# --- the overview ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Tally:
    """So many present clusters share this value; `query` lists them on the cluster list."""

    label: str
    count: int
    query: str


@dataclass(frozen=True)
class FleetCounts:
    total: int
    by_eligibility: list[Tally]
    by_mode: list[Tally]
    by_subscription: list[Tally]
    by_region: list[Tally]
    by_ring: list[Tally]


# Bumped when the rollout engine stores a mode it read from Azure (`modes_changed`).
_MODES_KEY = "fleet:modes-changed"


def modes_changed() -> None:
    """A cluster's mode changed outside a sync (the engine enabled or rolled it back): the
    counts kept for the overview are stale."""
    cache.set(_MODES_KEY, uuid.uuid4().hex, None)


def sync_version() -> str:
    """Changes whenever a sync starts or finishes."""
    last = SyncRun.objects.order_by("-pk").values_list("pk", "status").first()
    return f"{last[0]}:{last[1]}" if last else "empty"


def inventory_version() -> str:
    """Changes whenever a sync starts or finishes, or the engine changes a cluster's mode.
    (Other changes show within CACHE_SECONDS.) The cache is each process's own: a mode the
    engine's worker changed reaches the web's processes through the snapshot the change
    rewrote (fleet/snapshots.py), the cache key through the process that made it."""
    stamp = ModeSnapshot.objects.order_by("-hour").values_list("taken_at", flat=True).first()
    modes = f"{cache.get(_MODES_KEY, '')}:{stamp.timestamp() if stamp else ''}"
    return f"{sync_version()}:{modes}"


CACHE_SECONDS = 30


def cached(name: str, compute: Callable[[], T], version: Callable[[], str] | None = None) -> T:
    """Aggregates over every cluster cost tens of milliseconds at 10,000 clusters; they are
    kept per inventory version (or the `version` given), so pages stay fast and never show
    another sync's figures."""
    key = f"fleet:{name}:{(version or inventory_version)()}"
    value = cache.get(key)
    if value is None:
        value = compute()
        cache.set(key, value, CACHE_SECONDS)
    return value


def fleet_counts() -> FleetCounts:
    """Present clusters by eligibility, acceleration mode, subscription, region and ring."""
    return cached("counts", _fleet_counts)


def _fleet_counts() -> FleetCounts:
    present = present_clusters()
    totals = present.aggregate(total=Count("id"), eligible=Count("id", filter=Q(eligible=True)))
    total, eligible = totals["total"], totals["eligible"]
    modes = dict(present.values_list("acceleration_mode").annotate(n=Count("id")).order_by())
    subscriptions = (
        present.values_list("subscription_id", "subscription__name")
        .annotate(n=Count("id"))
        .order_by("subscription__name")
    )
    regions = present.values_list("location").annotate(n=Count("id")).order_by("location")
    rings = present.values_list("ring").annotate(n=Count("id")).order_by("ring")
    return FleetCounts(
        total=total,
        by_eligibility=[
            Tally("Eligible", eligible, urlencode({"eligibility": "eligible"})),
            Tally("Not eligible", total - eligible, urlencode({"eligibility": "blocked"})),
        ],
        # Every mode, even at zero: "BpfVeth 0" is the news before a rollout.
        by_mode=[
            Tally(str(label), modes.get(value, 0), urlencode({"mode": value}))
            for value, label in AccelerationMode.choices
        ],
        by_subscription=[
            Tally(name, n, urlencode({"subscription": pk})) for pk, name, n in subscriptions
        ],
        by_region=[Tally(region, n, urlencode({"region": region})) for region, n in regions],
        by_ring=[
            Tally(ring or "(no ring)", n, urlencode({"ring": ring or NO_RING})) for ring, n in rings
        ],
    )


def recent_syncs(limit: int = 5) -> list[SyncRun]:
    return list(SyncRun.objects.select_related("requested_by").order_by("-started_at")[:limit])


# --- the cluster list --------------------------------------------------------------------------
@dataclass(frozen=True)
class FilterChoices:
    """The values the cluster list offers to filter by: those some cluster has."""

    subscriptions: list[tuple[int, str]]
    regions: list[str]
    rings: list[str]
    versions: list[str]  # minor versions, "1.33"


def filter_choices() -> FilterChoices:
    return cached("choices", _filter_choices)


def _filter_choices() -> FilterChoices:
    """Four small aggregate queries over every cluster, removed ones included (they can be
    listed too, with removed=1)."""
    clusters = Cluster.objects.order_by()
    subscriptions = list(
        clusters.values_list("subscription_id", "subscription__name")
        .distinct()
        .order_by("subscription__name", "subscription_id")
    )
    regions = list(clusters.values_list("location", flat=True).distinct().order_by("location"))
    rings = list(clusters.values_list("ring", flat=True).distinct().order_by("ring"))
    versions = {
        minor_version(v) for v in clusters.values_list("kubernetes_version", flat=True).distinct()
    }
    return FilterChoices(
        subscriptions=subscriptions,
        regions=regions,
        rings=[ring or NO_RING for ring in rings],
        versions=sorted(versions, key=_version_order),
    )


@dataclass(frozen=True)
class ClusterQuery:
    """One selection of the cluster list; every field already checked (fleet.forms)."""

    search: str = ""
    subscription: int | None = None
    region: str = ""
    ring: str = ""
    version: str = ""  # a minor version, "1.33"
    eligibility: str = ""  # "eligible", "blocked" or "" for both
    mode: str = ""
    preflight: str = ""  # a finished ScanStatus, NEVER_SCANNED, or "" for any
    include_removed: bool = False
    sort: str = DEFAULT_SORT  # a key of SORTS, "-" in front for descending


# What the cluster list shows of a cluster. Its rows are read as dicts of these alone: a page of
# 200 whole clusters (tags, maintenance windows, ARM ids) cost more to read than to select, and
# a template finds a dict's key at once where a model instance costs it a failed item lookup
# per attribute.
LIST_COLUMNS = (
    "pk", "name", "removed_at", "subscription__name", "location", "kubernetes_version",
    "network_dataplane", "acns_enabled", "acceleration_mode", "ring", "eligible",
    "eligibility_reasons", "node_disruption_policy", "preflight", "pool_count",
)  # fmt: skip
_MODE_LABELS = dict(AccelerationMode.choices)
_ANY_PK = "987654321"  # stands for a row's id in the one link reversed a page
# The badge's title lists a blocked cluster's reasons one a line.
_REASON_BREAK = " &#10;"


def list_clusters(query: ClusterQuery) -> QuerySet[Cluster]:
    """The clusters `query` selects, in its order. The list pages through it and counts it
    (one table, no join); `list_rows` reads one page of it."""
    clusters = Cluster.objects.all()
    if not query.include_removed:
        clusters = clusters.filter(removed_at__isnull=True)
    if query.search:
        clusters = clusters.filter(name__icontains=query.search)
    if query.subscription is not None:
        clusters = clusters.filter(subscription_id=query.subscription)
    if query.region:
        clusters = clusters.filter(location=query.region)
    if query.ring:
        clusters = clusters.filter(ring="" if query.ring == NO_RING else query.ring)
    if query.version:
        clusters = clusters.filter(
            Q(kubernetes_version=query.version)
            | Q(kubernetes_version__startswith=query.version + ".")
        )
    if query.eligibility:
        clusters = clusters.filter(eligible=query.eligibility == "eligible")
    if query.mode:
        clusters = clusters.filter(acceleration_mode=query.mode)
    if query.preflight:
        clusters = clusters.filter(
            preflight="" if query.preflight == NEVER_SCANNED else query.preflight
        )
    return clusters.order_by(*ordering(query.sort))


def list_rows(clusters: QuerySet[Cluster], page: Page[Cluster]) -> list[dict[str, Any]]:
    """The rows of `page` of `clusters` (`list_clusters`) as the list shows them, in one
    query: their LIST_COLUMNS with `pool_count`, and what each row shows worked out here once
    rather than by template tags per row (the link's {% url %} and the loop over the reasons
    were half the table's time at 200 rows): its link, its mode's name, and a blocked
    cluster's count of blockers and their reasons."""
    total = page.paginator.count
    if not total:
        return []
    start, stop = page.start_index() - 1, page.end_index()
    # PostgreSQL reads, sorts and counts the pools of every row it skips to reach an OFFSET:
    # a page past the middle is read from the end, backwards, so the last page costs what the
    # first does.
    backwards = start > total - stop
    chosen = clusters.reverse()[total - stop : total - start] if backwards else clusters[start:stop]
    # A correlated subquery, not a JOIN + GROUP BY: PostgreSQL then counts pools only for the
    # page's rows (and those it skips), and the paginator's COUNT(*) needs no join at all.
    pools = (
        NodePool.objects.filter(cluster=OuterRef("pk"))
        .order_by()
        .values("cluster")
        .annotate(n=Count("*"))
        .values("n")
    )
    found = chosen.annotate(pool_count=Coalesce(Subquery(pools), 0)).values(*LIST_COLUMNS)
    # Reversed once a page, not once a row.
    before, after = reverse("fleet:cluster", args=[_ANY_PK]).split(_ANY_PK)
    rows = []
    for row in found:
        mode = row["acceleration_mode"]
        row["href"] = f"{before}{row['pk']}{after}"
        row["mode"] = _MODE_LABELS.get(mode, mode)
        if not row["eligible"]:
            reasons = row["eligibility_reasons"]
            reasons = reasons if isinstance(reasons, list) else []
            row["blockers"] = counted(len(reasons), "blocker")
            # Each reason escaped as the template would (format_html_join took a third of
            # this loop's time).
            row["reasons"] = mark_safe(  # noqa: S308
                _REASON_BREAK.join(
                    html.escape(str(r.get("reason", ""))) if isinstance(r, dict) else ""
                    for r in reasons
                )
            )
        rows.append(row)
    return rows[::-1] if backwards else rows


def ordering(sort: str) -> list[str]:
    key = sort.removeprefix("-")
    column = SORTS.get(key, SORTS[DEFAULT_SORT])[0]
    if sort.startswith("-"):
        column = column.removeprefix("-") if column.startswith("-") else f"-{column}"
    return [column, "name", "pk"] if key != "name" else [column, "pk"]


# --- one cluster -------------------------------------------------------------------------------
def audit_trail(cluster: Cluster, limit: int = 20) -> list[AuditEvent]:
    """The cluster's latest audit events, newest first."""
    events = AuditEvent.objects.filter(object_type="fleet.cluster", object_id=str(cluster.pk))
    return list(events.order_by("-seq")[:limit])
