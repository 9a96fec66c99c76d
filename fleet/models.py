"""The fleet inventory: subscriptions, clusters and their node pools as Azure last showed them,
each cluster's eligibility for BpfVeth, and the record of every inventory sync."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q

from config.fields import JSONField
from fleet.choices import SCAN_OPEN, AccelerationMode, ScanStatus, SyncStatus, SyncTrigger


class FleetPermissions(models.Model):
    """Carries the fleet app's permissions, which roles hold; it has no table."""

    class Meta:
        managed = False
        default_permissions = ()
        permissions = [
            ("view_fleet", "Can see the fleet inventory and preflight results"),
            ("sync_inventory", "Can start an inventory sync"),
            ("scan_clusters", "Can start preflight scans"),
            ("manage_iptables_owners", "Can extend the table of accepted iptables owners"),
            (
                "confirm_iptables_owners",
                "Can confirm another person's change to the accepted iptables owners",
            ),
        ]

    def __str__(self) -> str:
        return "fleet permissions"


class Subscription(models.Model):
    subscription_id = models.CharField(max_length=36, unique=True)
    name = models.CharField(max_length=255)
    tenant_id = models.CharField(max_length=36, blank=True)
    state = models.CharField(max_length=32, blank=True)
    first_seen = models.DateTimeField()
    removed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]
        default_permissions = ()

    def __str__(self) -> str:
        return self.name or self.subscription_id


class Cluster(models.Model):
    # The ARM id, lower-cased: ARM ids are case-insensitive and Azure is not consistent.
    arm_id = models.CharField(max_length=400, unique=True)
    subscription = models.ForeignKey(
        Subscription, on_delete=models.PROTECT, related_name="clusters"
    )
    name = models.CharField(max_length=63, db_index=True)
    resource_group = models.CharField(max_length=90)
    location = models.CharField(max_length=64, db_index=True)
    kubernetes_version = models.CharField(max_length=32, db_index=True)
    network_plugin = models.CharField(max_length=32, blank=True)
    network_plugin_mode = models.CharField(max_length=32, blank=True)
    network_dataplane = models.CharField(max_length=32, blank=True)
    network_policy = models.CharField(max_length=32, blank=True)
    acns_enabled = models.BooleanField(default=False)
    acceleration_mode = models.CharField(
        max_length=16,
        choices=AccelerationMode.choices,
        default=AccelerationMode.NONE,
        db_index=True,
    )
    provisioning_state = models.CharField(max_length=32, blank=True)
    power_state = models.CharField(max_length=32, blank=True)
    tags = JSONField(default=dict, blank=True)
    ring = models.CharField(max_length=64, blank=True, db_index=True)
    # The maintenance window that governs node reimages: the aksManagedNodeOSUpgradeSchedule
    # configuration when present, else the `default` one, else none ({}).
    maintenance_window = JSONField(default=dict, blank=True)
    maintenance_checked_at = models.DateTimeField(null=True, blank=True)
    # AKS's node disruption policy (Allow, AllowDuringMaintenanceWindow, Block), read with a
    # preview api-version; "" while unknown, with why in node_disruption_error.
    node_disruption_policy = models.CharField(max_length=32, blank=True, default="")
    node_disruption_error = models.TextField(blank=True, default="")
    node_disruption_checked_at = models.DateTimeField(null=True, blank=True)
    # When the rollout engine last read this cluster's mode from ARM itself (a change
    # verified, rolled back or failed): Resource Graph, seconds to minutes behind ARM, does not
    # overwrite that mode and provisioning state with an older row for a while after
    # (WAVEGATE_GRAPH_LAG_MINUTES).
    mode_read_at = models.DateTimeField(null=True, blank=True)
    private_api_server = models.BooleanField(default=False)
    entra_id = models.BooleanField(default=False)
    etag = models.CharField(max_length=64, blank=True)
    eligible = models.BooleanField(default=False, db_index=True)
    # [{"field": ..., "reason": ...}] — why BpfVeth cannot be enabled; empty when eligible.
    eligibility_reasons = JSONField(default=list, blank=True)
    first_seen = models.DateTimeField()
    changed_at = models.DateTimeField()
    removed_at = models.DateTimeField(null=True, blank=True, db_index=True)
    # The cluster's most recent finished preflight scan, and its status (for lists and counts).
    latest_scan = models.ForeignKey(
        "PreflightScan", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    preflight = models.CharField(max_length=16, blank=True, db_index=True)

    class Meta:
        ordering = ["name"]
        default_permissions = ()
        indexes = [
            models.Index(fields=["subscription", "name"], name="fleet_cluster_sub_name"),
            models.Index(
                fields=["eligible", "name"],
                name="fleet_cluster_live",
                condition=Q(removed_at__isnull=True),
            ),
            # The cluster list's sorts by eligibility (eligible first) and by ring read a
            # page from these instead of sorting every present cluster.
            models.Index(
                fields=["-eligible", "name"],
                name="fleet_cluster_eligible_first",
                condition=Q(removed_at__isnull=True),
            ),
            models.Index(
                fields=["ring", "name"],
                name="fleet_cluster_ring_name",
                condition=Q(removed_at__isnull=True),
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def present(self) -> bool:
        return self.removed_at is None

    def eligibility_summary(self) -> str:
        if self.eligible:
            return "Eligible"
        count = len(self.eligibility_reasons)
        return f"{count} blocker{'s' if count != 1 else ''}"


class NodePool(models.Model):
    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="node_pools")
    name = models.CharField(max_length=12)
    mode = models.CharField(max_length=16)
    os_type = models.CharField(max_length=16)
    os_sku = models.CharField(max_length=32, blank=True)
    node_count = models.PositiveIntegerField(default=0)
    vm_size = models.CharField(max_length=64, blank=True)
    node_image_version = models.CharField(max_length=128, blank=True)
    orchestrator_version = models.CharField(max_length=32, blank=True)

    class Meta:
        ordering = ["cluster", "name"]
        default_permissions = ()
        constraints = [
            models.UniqueConstraint(fields=["cluster", "name"], name="fleet_nodepool_unique")
        ]

    def __str__(self) -> str:
        return f"{self.cluster.name}/{self.name}"


class SyncRun(models.Model):
    """One inventory sync: when, who or what started it, what it found, how it ended."""

    trigger = models.CharField(max_length=16, choices=SyncTrigger.choices)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    status = models.CharField(max_length=16, choices=SyncStatus.choices, default=SyncStatus.RUNNING)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    # {"subscriptions", "clusters", "discovered", "changed", "removed", "unchanged", "calls"}
    counts = JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at"]
        default_permissions = ()
        constraints = [
            # Two syncs never run at once: at most one row may be running.
            models.UniqueConstraint(
                fields=["status"],
                condition=Q(status=SyncStatus.RUNNING),
                name="fleet_one_running_sync",
            )
        ]

    def __str__(self) -> str:
        return f"sync {self.pk} ({self.status})"

    @property
    def duration_seconds(self) -> float | None:
        if self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()

    def summary(self) -> dict[str, Any]:
        return {"status": self.status, "counts": self.counts, "error": self.error}


class PreflightScan(models.Model):
    """One iptables scan of one cluster's nodes: what was read, what blocks, what could not be
    read and why. A scan is `clean` only when every Linux node was read and nothing blocks."""

    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="scans")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    status = models.CharField(
        max_length=16, choices=ScanStatus.choices, default=ScanStatus.QUEUED, db_index=True
    )
    queued_at = models.DateTimeField()
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    nodes_expected = models.PositiveIntegerField(default=0)
    nodes_read = models.PositiveIntegerField(default=0)
    # Why the scan is incomplete or failed, in words an operator can act on.
    message = models.TextField(blank=True)
    # [{"node": name, "reason": why its dump was not read}]
    unread_nodes = JSONField(default=list, blank=True)
    # Linux nodes whose CiliumNode carries kubernetes.azure.com/user-iptables-rules=true.
    labelled_nodes = JSONField(default=list, blank=True)
    # Lines the parser could not read: [{"node", "family", "line", "message"}].
    parse_errors = JSONField(default=list, blank=True)

    class Meta:
        ordering = ["-queued_at", "-pk"]
        default_permissions = ()
        indexes = [
            # A cluster's history, and the progress of a fleet scan (scans since a time).
            models.Index(fields=["cluster", "-queued_at"], name="fleet_scan_cluster_queued"),
            models.Index(fields=["queued_at"], name="fleet_scan_queued"),
        ]
        constraints = [
            # A cluster has at most one scan queued or running.
            models.UniqueConstraint(
                fields=["cluster"],
                condition=Q(status__in=SCAN_OPEN),
                name="fleet_one_open_scan_per_cluster",
            )
        ]

    def __str__(self) -> str:
        return f"scan {self.pk} of {self.cluster_id} ({self.status})"

    @property
    def is_open(self) -> bool:
        return self.status in SCAN_OPEN

    @property
    def duration_seconds(self) -> float | None:
        if self.finished_at is None or self.started_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()


class ScanFinding(models.Model):
    """One rule on one node that no owner AKS accepts claims: it blocks BpfVeth."""

    scan = models.ForeignKey(PreflightScan, on_delete=models.CASCADE, related_name="findings")
    node = models.CharField(max_length=253)
    family = models.CharField(max_length=8)  # ipv4 | ipv6
    table = models.CharField(max_length=32)
    chain = models.CharField(max_length=64)
    rule = models.TextField()
    origin = models.CharField(max_length=128, db_index=True)
    hint = models.TextField()
    line = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["scan", "node", "family", "line"]
        default_permissions = ()
        # A scan's findings by origin and node: the cluster page and /blockers/ group so.
        indexes = [models.Index(fields=["scan", "origin", "node"], name="fleet_finding_origin")]

    def __str__(self) -> str:
        return f"{self.node}: {self.rule}"


class AcceptedOwnerQuerySet(models.QuerySet["AcceptedOwner"]):
    def active(self) -> AcceptedOwnerQuerySet:
        """Confirmed by a second person and not retired: what scans accept."""
        return self.filter(confirmed_at__isnull=False, retired_at__isnull=True)


class AcceptedOwner(models.Model):
    """An administrator's extension of the iptables owner table (preflight/iptables OWNERS):
    rules it matches count as owned, not user-installed. It changes what a scan calls clean,
    so it takes four eyes: proposed by one person (`added_by`), active once another confirms it;
    retired once a second person confirms the retirement another asked for. Each step is
    audited."""

    name = models.CharField(max_length=100)
    reason = models.TextField()  # why these rules are safe to accept: shown and audited
    tables = models.CharField(max_length=100, blank=True)  # comma-separated; blank: every table
    chain = models.CharField(max_length=64, blank=True)
    chain_prefix = models.CharField(max_length=64, blank=True)
    comment = models.CharField(max_length=200, blank=True)
    line_regex = models.CharField(max_length=500, blank=True)
    added_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    added_at = models.DateTimeField()
    confirmed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    confirmed_at = models.DateTimeField(null=True, blank=True)
    retire_requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    retire_requested_at = models.DateTimeField(null=True, blank=True)
    retire_reason = models.TextField(blank=True)
    retired_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    retired_at = models.DateTimeField(null=True, blank=True)

    objects = AcceptedOwnerQuerySet.as_manager()

    class Meta:
        ordering = ["name", "pk"]
        default_permissions = ()

    def __str__(self) -> str:
        return self.name

    @property
    def proposed(self) -> bool:
        """Waiting for a second person to confirm it; not yet accepted by scans."""
        return self.confirmed_at is None and self.retired_at is None

    @property
    def retiring(self) -> bool:
        """Active, with a retirement waiting for a second person."""
        return (
            self.confirmed_at is not None
            and self.retired_at is None
            and self.retire_requested_at is not None
        )


class OutboxMessage(models.Model):
    """Work to do after a commit (a task by name and its arguments), written in the same
    transaction as the change that wants it and sent to the broker once that commits
    (fleet/outbox.py). A row not sent (the broker down) is sent again by beat."""

    task = models.CharField(max_length=100)
    args = JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    sent_at = models.DateTimeField(null=True, blank=True, db_index=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    given_up_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["pk"]
        default_permissions = ()

    def __str__(self) -> str:
        return f"{self.task}{tuple(self.args)}"


class ClusterEvent(models.Model):
    """One Kubernetes event read from a cluster (a warning, or what AKS's iptables monitor
    says), kept once per uid: read again, it updates its count and last time (fleet/events.py).
    An observation of the cluster, not a change Wavegate made: not audited."""

    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="events")
    uid = models.CharField(max_length=64)
    type = models.CharField(max_length=16)  # Warning | Normal
    reason = models.CharField(max_length=128)
    message = models.TextField(blank=True)
    object_kind = models.CharField(max_length=64, blank=True)
    object_name = models.CharField(max_length=253, blank=True)
    namespace = models.CharField(max_length=253, blank=True)
    source = models.CharField(max_length=253, blank=True)  # the component that reported it
    count = models.PositiveIntegerField(default=1)
    first_seen = models.DateTimeField()
    last_seen = models.DateTimeField()
    read_at = models.DateTimeField()  # when Wavegate last read it

    class Meta:
        ordering = ["-last_seen", "-pk"]
        default_permissions = ()
        constraints = [
            models.UniqueConstraint(fields=["cluster", "uid"], name="fleet_event_once_per_uid")
        ]
        # The cluster page's timeline: a cluster's latest events.
        indexes = [models.Index(fields=["cluster", "-last_seen"], name="fleet_event_latest")]

    def __str__(self) -> str:
        return f"{self.type} {self.reason} on {self.object_kind}/{self.object_name}"


class EventPull(models.Model):
    """How Wavegate last pulled a cluster's Kubernetes events: when one was queued (a claim,
    so a cluster is not pulled twice at once), when it ended, and why it could not read them."""

    cluster = models.OneToOneField(
        Cluster, on_delete=models.CASCADE, primary_key=True, related_name="event_pull"
    )
    queued_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    read_at = models.DateTimeField(null=True, blank=True)  # the last pull that read the cluster
    # Why the last pull could not read the cluster's events, in words an operator can act on.
    error = models.TextField(blank=True)
    # The last pull stopped at WAVEGATE_CLUSTER_EVENTS_PER_PULL events.
    truncated = models.BooleanField(default=False)

    class Meta:
        default_permissions = ()

    def __str__(self) -> str:
        return f"event pull of {self.cluster_id}"


class ModeSnapshot(models.Model):
    """How many present clusters ran each acceleration mode, per hour: the overview's chart of
    clusters at BpfVeth over time. Written after a sync and after the engine changes a mode;
    an hour with no row kept the counts of the one before it."""

    hour = models.DateTimeField(unique=True)  # the hour's start, UTC
    total = models.PositiveIntegerField()
    by_mode = models.JSONField(default=dict)  # mode → clusters
    taken_at = models.DateTimeField()

    class Meta:
        default_permissions = ()

    def __str__(self) -> str:
        return f"modes at {self.hour:%Y-%m-%d %H}:00"
