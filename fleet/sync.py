"""The inventory sync: read every subscription's clusters from Azure, then write what changed.

Two phases. `fetch` talks to Azure only (Resource Graph in bulk, maintenance configurations
and node disruption policies only where needed) and keeps everything in memory; `apply` writes
the differences and their audit events in one transaction. A sync that fails while fetching
therefore writes nothing: the last good inventory stays, and the run is marked failed with the
reason. A node disruption policy that cannot be read is the exception: the cluster's policy
becomes unknown, with the reason, and the sync goes on.
"""

from __future__ import annotations

import datetime
import logging
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

import audit
from config.bulk import insert_rows
from fleet import snapshots
from fleet.azure import Azure, AzureError, ClusterInfo, NodeDisruption, SubscriptionInfo
from fleet.choices import FleetEvent, SyncStatus, SyncTrigger
from fleet.eligibility import blockers
from fleet.models import Cluster, NodePool, Subscription, SyncRun

log = logging.getLogger(__name__)

# Cluster columns a sync keeps equal to Azure, in the order an operator reads them.
SYNCED_FIELDS = (
    "name",
    "resource_group",
    "location",
    "kubernetes_version",
    "network_plugin",
    "network_plugin_mode",
    "network_dataplane",
    "network_policy",
    "acns_enabled",
    "acceleration_mode",
    "provisioning_state",
    "power_state",
    "tags",
    "ring",
    "private_api_server",
    "entra_id",
)
POOL_FIELDS = (
    "name",
    "mode",
    "os_type",
    "os_sku",
    "node_count",
    "vm_size",
    "node_image_version",
    "orchestrator_version",
)


class SyncAlreadyRunning(Exception):
    pass


@dataclass
class Fetched:
    subscriptions: list[SubscriptionInfo]
    clusters: list[ClusterInfo]
    maintenance: dict[str, dict[str, Any]]  # arm id -> window, for the clusters re-read
    disruption: dict[str, NodeDisruption] = field(default_factory=dict)  # likewise, policies
    calls: dict[str, int] = field(default_factory=dict)
    # When Resource Graph was asked: its rows show ARM as it was up to its lag before.
    queried_at: datetime.datetime | None = None


@dataclass
class Outcome:
    discovered: int = 0
    changed: int = 0
    removed: int = 0
    unchanged: int = 0

    def counts(self) -> dict[str, int]:
        return asdict(self)


# --- starting and finishing a run ------------------------------------------------------------
def begin_run(trigger: str, requested_by: Any = None) -> SyncRun:
    """Claim the one running slot (a unique constraint), clearing a run abandoned long ago."""
    now = timezone.now()
    abandoned = now - datetime.timedelta(seconds=settings.WAVEGATE_SYNC_TIMEOUT_SECONDS)
    with transaction.atomic():
        for stale in SyncRun.objects.select_for_update().filter(
            status=SyncStatus.RUNNING, started_at__lt=abandoned
        ):
            finish_run(stale, SyncStatus.FAILED, error="Abandoned: the worker running it stopped.")
    try:
        with transaction.atomic():
            run = SyncRun.objects.create(
                trigger=trigger,
                requested_by=requested_by,
                started_at=now,
                status=SyncStatus.RUNNING,
            )
            audit.record(
                FleetEvent.SYNC_STARTED,
                acting_user=requested_by,
                obj=run,
                after={"trigger": trigger},
            )
    except IntegrityError as exc:
        raise SyncAlreadyRunning(
            "An inventory sync is already running; wait for it to finish."
        ) from exc
    return run


@transaction.atomic
def finish_run(
    run: SyncRun, status: str, *, counts: dict[str, Any] | None = None, error: str = ""
) -> None:
    run.status = status
    run.finished_at = timezone.now()
    run.counts = counts or run.counts
    run.error = error
    run.save(update_fields=["status", "finished_at", "counts", "error"])
    audit.record(
        FleetEvent.SYNC_FINISHED if status == SyncStatus.SUCCEEDED else FleetEvent.SYNC_FAILED,
        obj=run,
        after={"status": status, "counts": run.counts, "error": error},
    )


def run_sync(
    trigger: str = SyncTrigger.SCHEDULE, requested_by: Any = None, azure: Azure | None = None
) -> SyncRun:
    """One whole sync: claim, fetch, apply, record. Raises SyncAlreadyRunning, nothing else."""
    run = begin_run(trigger, requested_by)
    azure = azure or Azure()
    try:
        fetched = fetch(azure, _maintenance_due(), _disruption_due())
        with transaction.atomic():
            outcome = apply(fetched)
            counts = {
                "subscriptions": len(fetched.subscriptions),
                "clusters": len(fetched.clusters),
                **outcome.counts(),
                # Node disruption policies that could not be read (left unknown, with why).
                "policies_unread": sum(1 for r in fetched.disruption.values() if r.error),
                "calls": dict(azure.calls.counts),
            }
            finish_run(run, SyncStatus.SUCCEEDED, counts=counts)
        _refresh_statistics(outcome, len(fetched.clusters))
        snapshots.record_after_change()
    except AzureError as exc:
        finish_run(
            run, SyncStatus.FAILED, counts={"calls": dict(azure.calls.counts)}, error=str(exc)
        )
    except Exception as exc:
        log.exception("inventory sync %s failed", run.pk)
        finish_run(
            run,
            SyncStatus.FAILED,
            counts={"calls": dict(azure.calls.counts)},
            error=f"Wavegate failed while syncing ({type(exc).__name__}: {exc}).",
        )
    finally:
        azure.close()
    return run


def _refresh_statistics(outcome: Outcome, clusters: int) -> None:
    """After a sync that rewrote much of the inventory, let PostgreSQL re-plan at once.

    Autovacuum would analyze the tables eventually; until then, stale statistics turn the
    cluster list's indexed page of 50 into a scan of every row (20 ms instead of 1 ms at
    10,000 clusters).
    """
    touched = outcome.discovered + outcome.changed + outcome.removed
    if connection.vendor == "postgresql" and touched > max(100, clusters // 10):
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {Cluster._meta.db_table}, {NodePool._meta.db_table}")


# --- phase 1: Azure ----------------------------------------------------------------------------
def _maintenance_due() -> dict[str, bool]:
    """Arm id -> whether its maintenance window must be re-read (known clusters only)."""
    stale = timezone.now() - datetime.timedelta(hours=settings.WAVEGATE_MAINTENANCE_REFRESH_HOURS)
    return {
        arm_id: checked is None or checked < stale
        for arm_id, checked in Cluster.objects.filter(removed_at__isnull=True).values_list(
            "arm_id", "maintenance_checked_at"
        )
    }


def _disruption_due() -> dict[str, bool]:
    """Arm id -> whether its node disruption policy must be read: never tried (as for every
    cluster synced before Wavegate read it), or last tried before the refresh period."""
    stale = timezone.now() - datetime.timedelta(hours=settings.WAVEGATE_MAINTENANCE_REFRESH_HOURS)
    return {
        arm_id: checked is None or checked < stale
        for arm_id, checked in Cluster.objects.filter(removed_at__isnull=True).values_list(
            "arm_id", "node_disruption_checked_at"
        )
    }


def _spread(clusters: Iterable[ClusterInfo]) -> list[ClusterInfo]:
    """Order reads so each subscription's are spread evenly over the whole sync.

    ARM's read quota is per subscription (a burst, then a steady rate): a subscription with
    many clusters then never runs ahead of its refill while the small ones are read.
    """
    by_subscription: dict[str, list[ClusterInfo]] = {}
    for cluster in clusters:
        by_subscription.setdefault(cluster.subscription_id, []).append(cluster)
    placed = [
        ((index + 0.5) / len(group), cluster.arm_id, cluster)
        for group in by_subscription.values()
        for index, cluster in enumerate(group)
    ]
    return [cluster for _, _, cluster in sorted(placed, key=lambda p: (p[0], p[1]))]


def fetch(
    azure: Azure, maintenance_due: dict[str, bool], disruption_due: dict[str, bool]
) -> Fetched:
    subscriptions = azure.list_subscriptions()
    queried_at = timezone.now()
    clusters = list(azure.query_clusters([s.subscription_id for s in subscriptions]))
    # Resource Graph has neither maintenance configurations nor the node disruption policy
    # (a preview property), and changing them does not change the cluster: read them for new
    # clusters, and for the rest once their last reading is older than the refresh period
    # (WAVEGATE_MAINTENANCE_REFRESH_HOURS). Both in one batch of concurrent reads.
    windows = _spread(c for c in clusters if maintenance_due.get(c.arm_id, True))
    policies = _spread(c for c in clusters if disruption_due.get(c.arm_id, True))
    maintenance, disruption = azure.cluster_settings(
        windows,
        policies,
        concurrency=settings.WAVEGATE_SYNC_CONCURRENCY,
        deadline=time.monotonic() + settings.WAVEGATE_SYNC_TIMEOUT_SECONDS,
    )
    return Fetched(
        subscriptions, clusters, maintenance, disruption, dict(azure.calls.counts), queried_at
    )


# --- phase 2: the database ---------------------------------------------------------------------
def _insert_pools(pools: Iterable[tuple[int, Any]]) -> None:
    """Insert node pools from (cluster id, PoolInfo) pairs."""
    insert_rows(
        NodePool,
        [NodePool(cluster_id=cid, **{f: getattr(p, f) for f in POOL_FIELDS}) for cid, p in pools],
    )


def _ring(tags: dict[str, str]) -> str:
    return tags.get(settings.WAVEGATE_RING_TAG, "")


def _cluster_values(info: ClusterInfo) -> dict[str, Any]:
    values = {f: getattr(info, f) for f in SYNCED_FIELDS if f != "ring"}
    values["ring"] = _ring(info.tags)
    return values


def _pool_values(info: ClusterInfo) -> list[dict[str, Any]]:
    return sorted(
        ({f: getattr(p, f) for f in POOL_FIELDS} for p in info.pools), key=lambda p: p["name"]
    )


def _stored_clusters() -> dict[str, dict[str, Any]]:
    return {
        row["arm_id"]: row
        for row in Cluster.objects.values(
            "id",
            "arm_id",
            "removed_at",
            "maintenance_window",
            "node_disruption_policy",
            "node_disruption_error",
            "mode_read_at",
            *SYNCED_FIELDS,
        )
    }


def _keep_what_the_engine_read(
    values: dict[str, Any], row: dict[str, Any], queried_at: datetime.datetime | None
) -> None:
    """Resource Graph lags ARM: a row read within WAVEGATE_GRAPH_LAG_MINUTES after the rollout
    engine read the cluster's mode from ARM itself may be older than that reading, so it does
    not overwrite the mode and provisioning state (the next sync after the lag will)."""
    read_at = row.get("mode_read_at")
    if read_at is None or queried_at is None:
        return
    if queried_at - datetime.timedelta(minutes=settings.WAVEGATE_GRAPH_LAG_MINUTES) < read_at:
        for name in ("acceleration_mode", "provisioning_state"):
            values[name] = row[name]


def _stored_pools() -> dict[int, list[dict[str, Any]]]:
    pools: dict[int, list[dict[str, Any]]] = {}
    for row in NodePool.objects.order_by("cluster_id", "name").values("cluster_id", *POOL_FIELDS):
        pools.setdefault(row.pop("cluster_id"), []).append(row)
    return pools


def _eligibility(info: ClusterInfo, policy: str) -> tuple[bool, list[dict[str, str]]]:
    found = blockers(info, info.pools, node_disruption_policy=policy)
    return not found, [b.as_dict() for b in found]


def _disruption_values(read: NodeDisruption | None, now: datetime.datetime) -> dict[str, Any]:
    """A new cluster's node disruption columns: as read, or unknown when not read."""
    if read is None:
        return {}
    return {
        "node_disruption_policy": read.policy,
        "node_disruption_error": read.error,
        "node_disruption_checked_at": now,
    }


def _disruption_summary(cluster: Cluster) -> dict[str, str]:
    if cluster.node_disruption_checked_at is None:
        return {}
    error = {"node_disruption_error": cluster.node_disruption_error}
    return {"node_disruption_policy": cluster.node_disruption_policy} | (
        error if cluster.node_disruption_error else {}
    )


def _summary(values: dict[str, Any], pools: list[dict[str, Any]]) -> dict[str, Any]:
    return {**values, "node_pools": pools}


def _sync_subscriptions(
    infos: list[SubscriptionInfo], now: datetime.datetime, events: list[audit.Entry]
) -> dict[str, Subscription]:
    known = {s.subscription_id: s for s in Subscription.objects.all()}
    seen = set()
    for info in infos:
        seen.add(info.subscription_id)
        sub = known.get(info.subscription_id)
        values = {"name": info.name, "tenant_id": info.tenant_id, "state": info.state}
        if sub is None:
            sub = Subscription.objects.create(
                subscription_id=info.subscription_id, first_seen=now, **values
            )
            known[sub.subscription_id] = sub
            events.append(
                audit.Entry(
                    FleetEvent.SUBSCRIPTION_DISCOVERED,
                    "fleet.subscription",
                    str(sub.pk),
                    sub.name,
                    after=values,
                )
            )
            continue
        before = {k: getattr(sub, k) for k in values}
        if before != values or sub.removed_at is not None:
            for key, value in values.items():
                setattr(sub, key, value)
            sub.removed_at = None
            sub.save()
            events.append(
                audit.Entry(
                    FleetEvent.SUBSCRIPTION_CHANGED,
                    "fleet.subscription",
                    str(sub.pk),
                    sub.name,
                    before=before,
                    after=values,
                )
            )
    for sub in known.values():
        if sub.subscription_id not in seen and sub.removed_at is None:
            sub.removed_at = now
            sub.save(update_fields=["removed_at"])
            events.append(
                audit.Entry(
                    FleetEvent.SUBSCRIPTION_REMOVED, "fleet.subscription", str(sub.pk), sub.name
                )
            )
    return known


def apply(fetched: Fetched) -> Outcome:
    """Write what differs from the stored inventory, with one audit event per change."""
    now = timezone.now()
    outcome = Outcome()
    events: list[audit.Entry] = []
    subscriptions = _sync_subscriptions(fetched.subscriptions, now, events)
    stored = _stored_clusters()
    stored_pools = _stored_pools()
    new_clusters: list[tuple[Cluster, ClusterInfo]] = []
    updates: list[tuple[Cluster, set[str]]] = []
    replace_pools: list[tuple[int, ClusterInfo]] = []
    seen: set[str] = set()

    for info in fetched.clusters:
        seen.add(info.arm_id)
        values = _cluster_values(info)
        pools = _pool_values(info)
        window = fetched.maintenance.get(info.arm_id)
        read = fetched.disruption.get(info.arm_id)
        row = stored.get(info.arm_id)
        if row is None:
            eligible, reasons = _eligibility(info, read.policy if read else "")
            cluster = Cluster(
                arm_id=info.arm_id,
                subscription=subscriptions[info.subscription_id],
                maintenance_window=window or {},
                maintenance_checked_at=now if window is not None else None,
                **_disruption_values(read, now),
                eligible=eligible,
                eligibility_reasons=reasons,
                first_seen=now,
                changed_at=now,
                **values,
            )
            new_clusters.append((cluster, info))
            continue
        _keep_what_the_engine_read(values, row, fetched.queried_at)
        changed = {f: (row[f], values[f]) for f in SYNCED_FIELDS if row[f] != values[f]}
        if window is not None and window != row["maintenance_window"]:
            changed["maintenance_window"] = (row["maintenance_window"], window)
        if read is not None:
            for name, new in (
                ("node_disruption_policy", read.policy),
                ("node_disruption_error", read.error),
            ):
                if row[name] != new:
                    changed[name] = (row[name], new)
        old_pools = stored_pools.get(row["id"], [])
        pools_changed = pools != old_pools
        reappeared = row["removed_at"] is not None
        if not changed and not pools_changed and not reappeared:
            # Only the check times move; no audit event for reading the same settings.
            checked = {"maintenance_checked_at": now} if window is not None else {}
            checked |= {"node_disruption_checked_at": now} if read is not None else {}
            if checked:
                Cluster.objects.filter(pk=row["id"]).update(**checked)
            outcome.unchanged += 1
            continue
        cluster = Cluster(id=row["id"], **{f: row[f] for f in SYNCED_FIELDS})
        for name, (_, new) in changed.items():
            setattr(cluster, name, new)
        policy = read.policy if read is not None else row["node_disruption_policy"]
        eligible, reasons = _eligibility(info, policy)
        cluster.eligible, cluster.eligibility_reasons = eligible, reasons
        cluster.changed_at, cluster.removed_at = now, None
        fields = {*changed, "eligible", "eligibility_reasons", "changed_at", "removed_at"}
        if window is not None:
            cluster.maintenance_window, cluster.maintenance_checked_at = window, now
            fields |= {"maintenance_window", "maintenance_checked_at"}
        if read is not None:
            for name, value in _disruption_values(read, now).items():
                setattr(cluster, name, value)
                fields.add(name)
        updates.append((cluster, fields))
        if pools_changed:
            replace_pools.append((row["id"], info))
            changed["node_pools"] = (old_pools, pools)
        outcome.changed += 1
        events.append(
            audit.Entry(
                FleetEvent.CLUSTER_DISCOVERED if reappeared else FleetEvent.CLUSTER_CHANGED,
                "fleet.cluster",
                str(row["id"]),
                info.name,
                before={k: old for k, (old, _) in changed.items()},
                after={k: new for k, (_, new) in changed.items()},
            )
        )

    # Clusters Azure no longer lists.
    gone = [
        row for arm_id, row in stored.items() if arm_id not in seen and row["removed_at"] is None
    ]
    Cluster.objects.filter(pk__in=[row["id"] for row in gone]).update(removed_at=now)
    for row in gone:
        events.append(
            audit.Entry(
                FleetEvent.CLUSTER_REMOVED,
                "fleet.cluster",
                str(row["id"]),
                row["name"],
                before=_summary({f: row[f] for f in SYNCED_FIELDS}, []),
            )
        )
    outcome.removed = len(gone)

    # bulk_update writes every named field of every row: group rows by what changed in them.
    by_fields: dict[tuple[str, ...], list[Cluster]] = {}
    for cluster, names in updates:
        by_fields.setdefault(tuple(sorted(names)), []).append(cluster)
    for names_written, clusters in by_fields.items():
        Cluster.objects.bulk_update(clusters, names_written, batch_size=500)
    if replace_pools:
        NodePool.objects.filter(cluster_id__in=[cid for cid, _ in replace_pools]).delete()
        _insert_pools((cid, pool) for cid, info in replace_pools for pool in info.pools)
    if new_clusters:
        insert_rows(Cluster, [c for c, _ in new_clusters])
        created = dict(
            Cluster.objects.filter(arm_id__in=[c.arm_id for c, _ in new_clusters]).values_list(
                "arm_id", "id"
            )
        )
        _insert_pools((created[c.arm_id], pool) for c, info in new_clusters for pool in info.pools)
        for cluster, info in new_clusters:
            events.append(
                audit.Entry(
                    FleetEvent.CLUSTER_DISCOVERED,
                    "fleet.cluster",
                    str(created[cluster.arm_id]),
                    info.name,
                    after=_summary(
                        {**_cluster_values(info), **_disruption_summary(cluster)},
                        _pool_values(info),
                    ),
                )
            )
        outcome.discovered = len(new_clusters)
    audit.record_many(events)
    return outcome
