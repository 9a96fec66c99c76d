"""The fleet's clusters for scripts: the cluster list with the page's filters and sorts, one
cluster with its preflight (as its page shows it), and its timeline.

The list selects clusters with the page's own query (fleet.inventory.list_clusters), so a query
string lists the same clusters in the same order here as there; where the page shows all for a
bad value, the API answers 400 with the page's words for it.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Count, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.shortcuts import get_object_or_404
from django.urls import URLPattern, path
from django_filters import rest_framework as filters
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, extend_schema, extend_schema_field
from rest_framework import generics, serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from api.common import PAGING, allowed, known_params, page_url
from api.pagination import Keyset
from audit import access as audit_access
from fleet import inventory, maintenance, timeline
from fleet.access import can_view_fleet
from fleet.choices import AccelerationMode
from fleet.forms import ClusterFilter
from fleet.inventory import ClusterQuery
from fleet.models import Cluster, EventPull, NodePool, PreflightScan, ScanFinding
from preflight import blockers


class SubscriptionOut(serializers.Serializer[Any]):
    id = serializers.IntegerField(help_text="Wavegate's id: the list's `subscription` filter.")
    subscription_id = serializers.CharField(help_text="Azure's subscription id.")
    name = serializers.CharField()


class BlockerOut(serializers.Serializer[Any]):
    field = serializers.CharField()
    reason = serializers.CharField()


class ResultOut(serializers.ModelSerializer[PreflightScan]):
    """A cluster's latest preflight result: the last scan that finished."""

    scan = serializers.IntegerField(source="pk")
    label = serializers.CharField(source="get_status_display")

    class Meta:
        model = PreflightScan
        fields = ["scan", "status", "label", "finished_at"]


class ClusterOut(serializers.ModelSerializer[Cluster]):
    """A row of the cluster list."""

    subscription = SubscriptionOut()
    eligibility_reasons = BlockerOut(many=True, help_text="Why it is not eligible; empty if it is.")
    preflight = ResultOut(source="latest_scan", allow_null=True, help_text="Null: never scanned.")
    removed = serializers.SerializerMethodField()
    url = serializers.SerializerMethodField()

    class Meta:
        model = Cluster
        fields = [
            "id", "name", "subscription", "resource_group", "location", "ring",
            "kubernetes_version", "network_dataplane", "acns_enabled", "acceleration_mode",
            "eligible", "eligibility_reasons", "preflight", "removed", "removed_at", "url",
        ]  # fmt: skip

    @extend_schema_field(OpenApiTypes.BOOL)
    def get_removed(self, cluster: Cluster) -> bool:
        """Azure no longer lists it."""
        return cluster.removed_at is not None

    @extend_schema_field(OpenApiTypes.URI)
    def get_url(self, cluster: Cluster) -> str:
        return page_url("fleet:cluster", pk=cluster.pk)


class ScanOut(serializers.ModelSerializer[PreflightScan]):
    """One preflight scan of one cluster."""

    cluster_name = serializers.CharField(source="cluster.name", read_only=True)
    label = serializers.CharField(source="get_status_display", read_only=True)
    requested_by = serializers.SerializerMethodField()
    finding_count = serializers.SerializerMethodField()
    url = serializers.SerializerMethodField()
    findings_url = serializers.SerializerMethodField()

    class Meta:
        model = PreflightScan
        fields = [
            "id", "cluster", "cluster_name", "status", "label", "requested_by", "queued_at",
            "started_at", "finished_at", "duration_seconds", "nodes_expected", "nodes_read",
            "message", "unread_nodes", "labelled_nodes", "parse_errors", "finding_count", "url",
            "findings_url",
        ]  # fmt: skip

    @extend_schema_field({"type": "string", "nullable": True})
    def get_requested_by(self, scan: PreflightScan) -> str | None:
        """Null: Wavegate itself (a rollout's fresh preflight)."""
        return scan.requested_by.get_username() if scan.requested_by else None

    @extend_schema_field({"type": "integer", "nullable": True})
    def get_finding_count(self, scan: PreflightScan) -> int | None:
        """Blocking rules found; null while the scan is open."""
        return None if scan.is_open else getattr(scan, "finding_count", None)

    @extend_schema_field(OpenApiTypes.URI)
    def get_url(self, scan: PreflightScan) -> str:
        """The cluster's page, whose preflight section shows the scan."""
        return page_url("fleet:cluster", pk=scan.cluster_id)

    @extend_schema_field(OpenApiTypes.URI)
    def get_findings_url(self, scan: PreflightScan) -> str:
        """Every blocking rule the scan found, as plain text."""
        return page_url("preflight:scan_findings", pk=scan.cluster_id, scan_id=scan.pk)


def with_finding_counts(scans: QuerySet[PreflightScan]) -> QuerySet[PreflightScan]:
    counts = (
        ScanFinding.objects.filter(scan=OuterRef("pk"))
        .order_by()
        .values("scan")
        .annotate(n=Count("*"))
        .values("n")
    )
    return scans.select_related("cluster", "requested_by").annotate(
        finding_count=Coalesce(Subquery(counts), 0)
    )


class PoolOut(serializers.ModelSerializer[NodePool]):
    class Meta:
        model = NodePool
        fields = [
            "name", "mode", "os_type", "os_sku", "node_count", "vm_size", "node_image_version",
            "orchestrator_version",
        ]  # fmt: skip


class RuleBlockOut(serializers.Serializer[Any]):
    nodes = serializers.ListField(child=serializers.CharField(), help_text="Same rules on each.")
    text = serializers.CharField(help_text="The first rules, ready to copy, by table.")
    shown = serializers.IntegerField()
    total = serializers.IntegerField(help_text="Rules on each of these nodes.")
    hidden = serializers.IntegerField(help_text="In the text download only.")


class NodeRulesOut(serializers.Serializer[Any]):
    node = serializers.CharField()
    rules = serializers.IntegerField()


class OriginOut(serializers.Serializer[Any]):
    origin = serializers.CharField()
    hint = serializers.CharField(help_text="How to remove its rules safely.")
    rules = serializers.IntegerField(help_text="On all nodes together.")
    nodes = serializers.IntegerField(source="node_count")
    blocks = RuleBlockOut(many=True)
    more_nodes = NodeRulesOut(many=True, help_text="Nodes beyond those shown, with their rules.")


class OriginCountOut(serializers.Serializer[Any]):
    origin = serializers.CharField()
    rules = serializers.IntegerField()


class LeftoverOut(serializers.Serializer[Any]):
    namespace = serializers.CharField()
    scan = serializers.IntegerField(allow_null=True)
    created = serializers.CharField(allow_blank=True)
    removed_at = serializers.DateTimeField()


class PreflightOut(serializers.Serializer[Any]):
    """What the cluster page's Preflight section shows."""

    latest = ScanOut(allow_null=True, help_text="The latest result; null: never scanned.")
    open_scan = ScanOut(allow_null=True, help_text="The scan queued or running, if any.")
    history = ScanOut(many=True, help_text="The recent scans, newest first.")
    finding_count = serializers.IntegerField(help_text="Blocking rules in the latest result.")
    origins = OriginOut(many=True, help_text="Blocking rules by origin, most nodes first.")
    more_origins = OriginCountOut(many=True, help_text="Origins beyond those shown.")
    can_scan = serializers.BooleanField(help_text="May you start a scan of it.")
    leftover_removed = LeftoverOut(allow_null=True)


class ClusterDetailOut(ClusterOut):
    """One cluster, as its page shows it."""

    tags = serializers.DictField(child=serializers.CharField())
    maintenance = serializers.SerializerMethodField()
    node_pools = serializers.SerializerMethodField()
    preflight_section = serializers.SerializerMethodField()

    class Meta(ClusterOut.Meta):
        fields = [
            *ClusterOut.Meta.fields, "arm_id", "network_plugin", "network_plugin_mode",
            "network_policy", "provisioning_state", "power_state", "private_api_server",
            "entra_id", "tags", "maintenance", "maintenance_checked_at", "node_disruption_policy",
            "node_disruption_error", "node_disruption_checked_at", "first_seen", "changed_at",
            "node_pools", "preflight_section",
        ]  # fmt: skip

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_maintenance(self, cluster: Cluster) -> list[str]:
        """The maintenance window in sentences."""
        return maintenance.describe(cluster.maintenance_window)

    @extend_schema_field(PoolOut(many=True))
    def get_node_pools(self, cluster: Cluster) -> Any:
        return PoolOut(cluster.node_pools.order_by("name"), many=True).data

    @extend_schema_field(PreflightOut)
    def get_preflight_section(self, cluster: Cluster) -> dict[str, Any]:
        return preflight_data(self.context["request"], cluster)


def preflight_data(request: Request, cluster: Cluster) -> dict[str, Any]:
    """blockers.cluster_section, the page's own, as data."""
    section = blockers.cluster_section(request.user, cluster)
    panel: blockers.PreflightPanel = section["preflight"]
    for scan in [*panel.history, panel.latest, panel.open_scan]:
        if scan is not None:
            scan.cluster = cluster  # all of its own: no query per scan for its name
    counts = {scan.pk: scan.finding_count for scan in panel.history}  # type: ignore[attr-defined]
    latest = ScanOut(panel.latest).data if panel.latest else None
    if latest is not None:
        latest["finding_count"] = counts.get(latest["id"], panel.finding_count)
    leftover = section["leftover"]
    after = leftover.after if leftover is not None and isinstance(leftover.after, dict) else {}
    return {
        "latest": latest,
        "open_scan": ScanOut(panel.open_scan).data if panel.open_scan else None,
        "history": ScanOut(panel.history, many=True).data,
        "finding_count": panel.finding_count,
        "origins": OriginOut(panel.origins, many=True).data,
        "more_origins": [{"origin": o, "rules": n} for o, n in panel.more_origins],
        "can_scan": section["can_scan"],
        "leftover_removed": {
            "namespace": str(after.get("namespace", "")),
            "scan": after.get("scan"),
            "created": str(after.get("created", "")),
            "removed_at": leftover.at,
        }
        if leftover is not None
        else None,
    }


# --- the cluster list ---------------------------------------------------------------------------
def _page_words(name: str, code: str = "invalid_choice") -> str:
    """The cluster list page's message for a bad value, without what the page then does
    instead (it shows all; the API refuses)."""
    message = str(ClusterFilter.base_fields[name].error_messages[code])
    return message.split(";")[0].rstrip(".") + "."


def _page_choices(name: str) -> list[tuple[str, str]]:
    field: Any = ClusterFilter.base_fields[name]
    return [(str(value), str(label)) for value, label in field.choices if value != ""]


def _subscriptions() -> list[tuple[int, str]]:
    return inventory.filter_choices().subscriptions


def _regions() -> list[tuple[str, str]]:
    return [(r, r) for r in inventory.filter_choices().regions]


def _rings() -> list[tuple[str, str]]:
    return [(r, r) for r in inventory.filter_choices().rings]


def _versions() -> list[tuple[str, str]]:
    return [(v, v) for v in inventory.filter_choices().versions]


YES, NO = ("true", "1", "on", "yes"), ("false", "0", "off", "no")


class ClusterFilterSet(filters.FilterSet):
    """The cluster list page's query string (fleet.forms.ClusterFilter), checked: a value the
    page would ignore is refused with the page's words."""

    q = filters.CharFilter(
        max_length=100,
        help_text="Name contains (case-insensitive).",
        error_messages={"max_length": _page_words("q", "max_length")},
    )
    subscription = filters.TypedChoiceFilter(
        choices=_subscriptions,
        coerce=int,
        help_text="A subscription's id (SubscriptionOut.id) some cluster has.",
        error_messages={"invalid_choice": _page_words("subscription")},
    )
    region = filters.ChoiceFilter(
        field_name="location",
        choices=_regions,
        help_text="A region some cluster is in.",
        error_messages={"invalid_choice": _page_words("region")},
    )
    ring = filters.ChoiceFilter(
        choices=_rings,
        help_text=f"A ring some cluster has; {inventory.NO_RING} for clusters without one.",
        error_messages={"invalid_choice": _page_words("ring")},
    )
    version = filters.ChoiceFilter(
        field_name="kubernetes_version",
        choices=_versions,
        help_text="A Kubernetes minor version, as 1.33.",
        error_messages={"invalid_choice": _page_words("version")},
    )
    eligibility = filters.ChoiceFilter(
        choices=_page_choices("eligibility"),
        error_messages={"invalid_choice": _page_words("eligibility")},
    )
    mode = filters.ChoiceFilter(
        choices=AccelerationMode.choices,
        help_text="The acceleration mode.",
        error_messages={"invalid_choice": _page_words("mode")},
    )
    preflight = filters.ChoiceFilter(
        choices=_page_choices("preflight"),
        help_text=f"The latest preflight result; {inventory.NEVER_SCANNED}: never scanned.",
        error_messages={"invalid_choice": _page_words("preflight")},
    )
    removed = filters.ChoiceFilter(
        choices=[(v, v) for v in YES + NO],
        help_text="Include clusters Azure no longer lists (default false).",
        error_messages={
            "invalid_choice": "Include removed clusters is “true” or “false”, not “%(value)s”."
        },
    )
    sort = filters.ChoiceFilter(
        choices=_page_choices("sort"),
        help_text="A column, - in front for descending (default name). Ties by name, then id.",
        error_messages={"invalid_choice": _page_words("sort")},
    )

    class Meta:
        model = Cluster
        fields: list[str] = []

    def query(self) -> ClusterQuery:
        data = self.form.cleaned_data
        return ClusterQuery(
            search=data.get("q") or "",
            subscription=data.get("subscription") or None,
            region=data.get("region") or "",
            ring=data.get("ring") or "",
            version=data.get("version") or "",
            eligibility=data.get("eligibility") or "",
            mode=data.get("mode") or "",
            preflight=data.get("preflight") or "",
            include_removed=data.get("removed") in YES,
            sort=data.get("sort") or inventory.DEFAULT_SORT,
        )

    def filter_queryset(self, queryset: QuerySet[Cluster]) -> QuerySet[Cluster]:
        # The page's own selection and order, whatever the queryset given.
        return inventory.list_clusters(self.query()).select_related("subscription", "latest_scan")


CLUSTER_EXAMPLE = OpenApiExample(
    "A blocked cluster",
    value={
        "id": 42,
        "name": "aks-prod-weu-07",
        "subscription": {
            "id": 3,
            "subscription_id": "00000000-0000-4000-8000-000000000003",
            "name": "prod-europe",
        },
        "resource_group": "rg-aks-prod-weu-07",
        "location": "westeurope",
        "ring": "broad",
        "kubernetes_version": "1.33.2",
        "network_dataplane": "cilium",
        "acns_enabled": True,
        "acceleration_mode": "None",
        "eligible": True,
        "eligibility_reasons": [],
        "preflight": {
            "scan": 1187,
            "status": "blocked",
            "label": "Blocked by rules",
            "finished_at": "2026-12-03T09:14:05Z",
        },
        "removed": False,
        "removed_at": None,
        "url": "https://wavegate.example.com/clusters/42/",
    },
    response_only=True,
)


class ClusterList(generics.ListAPIView[Cluster]):
    serializer_class = ClusterOut
    filterset_class = ClusterFilterSet
    pagination_class = Keyset
    queryset = Cluster.objects.none()  # the schema's model; requests read the filterset's

    @extend_schema(
        summary="The clusters, filtered and sorted as on the cluster list page",
        description="The page's query string works here: `?eligibility=blocked&sort=-ring`. A "
        "value the page would ignore (showing all) is refused here, 400 with the page's words. "
        "Pages follow `next` (`limit` rows each, 100 unless told, at most 1000).",
        examples=[CLUSTER_EXAMPLE],
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        allowed(request, can_view_fleet)
        known_params(request, [*ClusterFilterSet.base_filters, *PAGING])
        return super().get(request, *args, **kwargs)

    def get_queryset(self) -> QuerySet[Cluster]:
        return Cluster.objects.all()


# --- one cluster --------------------------------------------------------------------------------
def _cluster(request: Request, pk: int) -> Cluster:
    allowed(request, can_view_fleet)
    # The latest scan and who asked for it come along for the preflight section.
    clusters = Cluster.objects.select_related("subscription", "latest_scan__requested_by")
    return get_object_or_404(clusters, pk=pk)


class ClusterDetail(APIView):
    @extend_schema(
        summary="One cluster, with its preflight (what its page shows)",
        responses=ClusterDetailOut,
    )
    def get(self, request: Request, pk: int) -> Response:
        cluster = _cluster(request, pk)
        return Response(ClusterDetailOut(cluster, context={"request": request}).data)


# --- its timeline -------------------------------------------------------------------------------
TIMELINE_DEPTH = 1000  # entries a client may page back through


class TimelineQuery(serializers.Serializer[Any]):
    page = serializers.IntegerField(min_value=1, default=1)
    per_page = serializers.IntegerField(min_value=1, max_value=timeline.LIMIT, default=50)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs["page"] * attrs["per_page"] > TIMELINE_DEPTH:
            raise serializers.ValidationError(
                {"page": f"The timeline goes back {TIMELINE_DEPTH} entries at most."}
            )
        return attrs


class KubernetesEventOut(serializers.Serializer[Any]):
    type = serializers.CharField()
    reason = serializers.CharField()
    message = serializers.CharField(allow_blank=True)
    object_kind = serializers.CharField(allow_blank=True)
    object_name = serializers.CharField(allow_blank=True)
    namespace = serializers.CharField(allow_blank=True)
    source = serializers.CharField(allow_blank=True, help_text="The component that reported it.")
    count = serializers.IntegerField(help_text="Times Kubernetes saw it in this run.")
    first_seen = serializers.DateTimeField()
    events = serializers.IntegerField(help_text="Kubernetes events folded into this entry.")


class AuditStepOut(serializers.Serializer[Any]):
    seq = serializers.IntegerField()
    action = serializers.CharField()
    step = serializers.CharField(help_text="The action in words, as the page says it.")
    status = serializers.CharField(allow_blank=True)
    error = serializers.CharField(allow_blank=True)
    actor = serializers.CharField()
    plan = serializers.IntegerField(allow_null=True)
    plan_url = serializers.URLField(allow_null=True)
    url = serializers.URLField(allow_null=True, help_text="The audit event's page, for auditors.")


class EntryOut(serializers.Serializer[Any]):
    at = serializers.DateTimeField()
    kind = serializers.ChoiceField(choices=["kubernetes", "scan", "rollout", "audit"])
    kubernetes = KubernetesEventOut(allow_null=True)
    scan = ScanOut(allow_null=True)
    audit = AuditStepOut(allow_null=True, help_text="A rollout step or another audit event.")


class PullOut(serializers.Serializer[Any]):
    """How Wavegate last pulled the cluster's Kubernetes events."""

    read_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    error = serializers.CharField(allow_blank=True, help_text="Why it could not read them.")
    truncated = serializers.BooleanField()


class TimelineOut(serializers.Serializer[Any]):
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    event_pull = PullOut(allow_null=True, help_text="Null: its events were never pulled.")
    results = EntryOut(many=True)


EVENT_FIELDS = ("type", "reason", "message", "object_kind", "object_name", "namespace", "source")


def _entry(entry: timeline.Entry, *, can_view_audit: bool) -> dict[str, Any]:
    found: dict[str, Any] = {"at": entry.at, "kind": entry.kind}
    found["kubernetes"] = (
        {
            **{name: getattr(entry.event, name) for name in EVENT_FIELDS},
            "count": entry.count,
            "first_seen": entry.first_seen,
            "events": len(entry.events),
        }
        if entry.kind == "kubernetes"
        else None
    )
    found["scan"] = ScanOut(entry.scan).data if entry.scan is not None else None
    event = entry.audit
    after = event.after if event is not None and isinstance(event.after, dict) else {}
    found["audit"] = (
        {
            "seq": event.seq,
            "action": event.action,
            "step": entry.step,
            "status": str(after.get("status") or ""),
            "error": str(after.get("error") or ""),
            "actor": event.actor_name,
            "plan": event.plan_id,
            "plan_url": page_url("rollout:plan", pk=event.plan_id) if event.plan_id else None,
            "url": page_url("audit:event", seq=event.seq) if can_view_audit else None,
        }
        if event is not None
        else None
    )
    return found


def _pull(pull: EventPull | None) -> dict[str, Any] | None:
    if pull is None:
        return None
    return {
        "read_at": pull.read_at,
        "finished_at": pull.finished_at,
        "error": pull.error,
        "truncated": pull.truncated,
    }


class ClusterTimeline(APIView):
    @extend_schema(
        summary="A cluster's timeline, newest first (what its page shows)",
        description="Its Kubernetes events (a run of the same event is one entry), preflight "
        "scans, rollout steps and, for auditors and administrators, its other audit events. "
        "Page n lists entries of the latest n * per_page; the page shows the latest "
        f"{timeline.LIMIT}.",
        parameters=[TimelineQuery],
        responses=TimelineOut,
    )
    def get(self, request: Request, pk: int) -> Response:
        known_params(request, ["page", "per_page"])
        cluster = _cluster(request, pk)
        asked = TimelineQuery(data=request.query_params)
        asked.is_valid(raise_exception=True)
        page, per_page = asked.validated_data["page"], asked.validated_data["per_page"]
        can_view_audit = audit_access.can_view_audit(request.user)
        depth = page * per_page
        found = timeline.of(cluster, all_audit=can_view_audit, limit=depth + 1)
        scans = [entry.scan for entry in found.entries if entry.scan is not None]
        # Each scan's blocking rules, counted in one query as the scan endpoints count them.
        counted_scans = with_finding_counts(
            PreflightScan.objects.filter(pk__in=[s.pk for s in scans])
        )
        counts = {scan.pk: scan.finding_count for scan in counted_scans}  # type: ignore[attr-defined]
        for scan in scans:
            scan.cluster = cluster
            scan.finding_count = counts.get(scan.pk, 0)  # type: ignore[attr-defined]
        here = request.build_absolute_uri(request.path)

        def link(number: int) -> str:
            return f"{here}?page={number}&per_page={per_page}"

        return Response(
            {
                "next": link(page + 1)
                if len(found.entries) > depth and depth < TIMELINE_DEPTH
                else None,
                "previous": link(page - 1) if page > 1 else None,
                "event_pull": _pull(found.pull),
                "results": [
                    _entry(e, can_view_audit=can_view_audit)
                    for e in found.entries[depth - per_page : depth]
                ],
            }
        )


urlpatterns: list[URLPattern] = [
    path("clusters/", ClusterList.as_view(), name="clusters"),
    path("clusters/<int:pk>/", ClusterDetail.as_view(), name="cluster"),
    path("clusters/<int:pk>/timeline/", ClusterTimeline.as_view(), name="cluster_timeline"),
]
