"""Plain functions that make users, inventory rows and rollout plans for tests, each with
sensible defaults.

A cluster's eligibility is worked out by fleet.eligibility from what it is made with, exactly
as the sync does, unless the test says otherwise: `make_cluster(kubernetes_version="1.31.4")`
is blocked for the reason an operator would read. Plans go through rollout.actions, as an
operator's would: a builder never writes a plan, wave or approval the actions would refuse.
"""

from __future__ import annotations

import datetime
import itertools
from collections.abc import Sequence
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser, Group
from django.utils import timezone

from fleet.choices import SCAN_OPEN, ScanStatus, SyncStatus, SyncTrigger
from fleet.eligibility import blockers
from fleet.models import (
    AcceptedOwner,
    Cluster,
    NodePool,
    PreflightScan,
    ScanFinding,
    Subscription,
    SyncRun,
)
from rollout import actions
from rollout.models import RolloutPlan, RolloutTarget

_serial = itertools.count(1)
PASSWORD = "correct horse battery staple"


def make_user(
    role: str, *more_roles: str, username: str | None = None, password: str = PASSWORD
) -> AbstractUser:
    """A user holding `role` (and `more_roles`) who signs in with `password`, named `<role>-user`
    as the personas are unless `username` says otherwise."""
    user = get_user_model().objects.create_user(
        username=username or f"{role}-user", password=password
    )
    user.groups.add(*(Group.objects.get(name=name) for name in (role, *more_roles)))
    return user


def make_subscription(**fields: Any) -> Subscription:
    n = next(_serial)
    values: dict[str, Any] = {
        "subscription_id": f"00000000-0000-4000-8000-{n:012d}",
        "name": f"sub-{n:03d}",
        "tenant_id": "11111111-1111-4111-8111-111111111111",
        "state": "Enabled",
        "first_seen": timezone.now(),
    }
    values.update(fields)
    return Subscription.objects.create(**values)


def pool_values(**fields: Any) -> dict[str, Any]:
    """One eligible Linux node pool's fields (name chosen by `make_cluster` when absent)."""
    values: dict[str, Any] = {
        "mode": "System",
        "os_type": "Linux",
        "os_sku": "AzureLinux",
        "node_count": 3,
        "vm_size": "Standard_D4s_v5",
        "node_image_version": "AKSAzureLinux-V3gen2-202510.01.0",
        "orchestrator_version": "1.33.2",
    }
    values.update(fields)
    return values


def make_cluster(
    *,
    subscription: Subscription | None = None,
    pools: int | Sequence[dict[str, Any]] = 1,
    **fields: Any,
) -> Cluster:
    """A present cluster, eligible by default; `pools` is a count of default pools or a list
    of each pool's overrides."""
    n = next(_serial)
    subscription = subscription or make_subscription()
    name = fields.pop("name", f"aks-{n:04d}")
    resource_group = fields.pop("resource_group", f"rg-{name}")
    now = timezone.now()
    values: dict[str, Any] = {
        "arm_id": (
            f"/subscriptions/{subscription.subscription_id}/resourcegroups/{resource_group}"
            f"/providers/microsoft.containerservice/managedclusters/{name}"
        ).lower(),
        "name": name,
        "resource_group": resource_group,
        "location": "westeurope",
        "kubernetes_version": "1.33.2",
        "network_plugin": "azure",
        "network_plugin_mode": "overlay",
        "network_dataplane": "cilium",
        "network_policy": "cilium",
        "acns_enabled": True,
        "provisioning_state": "Succeeded",
        "power_state": "Running",
        "tags": {"ring": "broad"},
        "ring": "broad",
        "first_seen": now,
        "changed_at": now,
    }
    values.update(fields)
    overrides = [{} for _ in range(pools)] if isinstance(pools, int) else list(pools)
    pool_rows = [
        NodePool(**pool_values(**{"name": f"pool{i + 1}", **override}))
        for i, override in enumerate(overrides)
    ]
    if "eligible" not in values:
        found = blockers(Cluster(**values), pool_rows)
        values["eligible"] = not found
        values["eligibility_reasons"] = [b.as_dict() for b in found]
    cluster = Cluster.objects.create(subscription=subscription, **values)
    for pool in pool_rows:
        pool.cluster = cluster
    NodePool.objects.bulk_create(pool_rows)
    return cluster


def make_sync_run(
    *,
    status: str = SyncStatus.SUCCEEDED,
    trigger: str = SyncTrigger.SCHEDULE,
    started_at: datetime.datetime | None = None,
    seconds: float = 12.5,
    **fields: Any,
) -> SyncRun:
    """A sync that ran `seconds` from `started_at` (still running when status is running)."""
    started_at = started_at or timezone.now() - datetime.timedelta(minutes=5)
    values: dict[str, Any] = {
        "trigger": trigger,
        "status": status,
        "started_at": started_at,
        "finished_at": (
            None
            if status == SyncStatus.RUNNING
            else started_at + datetime.timedelta(seconds=seconds)
        ),
        "counts": (
            {"discovered": 4, "changed": 1, "removed": 0, "unchanged": 7}
            if status == SyncStatus.SUCCEEDED
            else {}
        ),
    }
    values.update(fields)
    return SyncRun.objects.create(**values)


DOCKER_HINT = (
    "A Docker Engine on the node: stop and uninstall it (systemctl disable --now docker), "
    "then delete its DOCKER* chains or reimage the node."
)


def finding_values(**fields: Any) -> dict[str, Any]:
    """One blocking rule's fields: a Docker rule on node aks-pool1-0 unless told otherwise."""
    values: dict[str, Any] = {
        "node": "aks-pool1-0",
        "family": "ipv4",
        "table": "filter",
        "chain": "DOCKER-USER",
        "rule": "-A DOCKER-USER -j RETURN",
        "origin": "Docker",
        "hint": DOCKER_HINT,
    }
    values.update(fields)
    return values


def make_scan(
    cluster: Cluster,
    *,
    status: str | None = None,
    findings: Sequence[dict[str, Any]] = (),
    latest: bool | None = None,
    **fields: Any,
) -> PreflightScan:
    """A scan of `cluster`: blocked when it has `findings` (each a dict of `finding_values`
    overrides), else clean, unless `status` says otherwise. A finished scan becomes the
    cluster's latest result, as `fleet.preflight.finish` makes it, unless latest=False."""
    status = status or (ScanStatus.BLOCKED if findings else ScanStatus.CLEAN)
    is_open = status in SCAN_OPEN
    queued_at = fields.pop("queued_at", timezone.now() - datetime.timedelta(minutes=2))
    values: dict[str, Any] = {
        "status": status,
        "queued_at": queued_at,
        "started_at": None if status == ScanStatus.QUEUED else queued_at,
        "finished_at": None if is_open else queued_at + datetime.timedelta(seconds=40),
        "nodes_expected": 0 if is_open else 3,
        "nodes_read": 0 if is_open else 3,
    }
    values.update(fields)
    scan = PreflightScan.objects.create(cluster=cluster, **values)
    ScanFinding.objects.bulk_create(
        [
            ScanFinding(scan=scan, **finding_values(**{"line": n + 1, **finding}))
            for n, finding in enumerate(findings)
        ],
        batch_size=1000,
    )
    if latest is None:
        latest = not is_open
    if latest:
        Cluster.objects.filter(pk=cluster.pk).update(latest_scan=scan, preflight=status)
        cluster.latest_scan, cluster.preflight = scan, status
    return scan


def make_accepted_owner(**fields: Any) -> AcceptedOwner:
    """An administrator's extension of the owner table (by nobody, unless `added_by`), active:
    confirmed by a second person, unless `confirmed_at=None` (a proposal)."""
    values: dict[str, Any] = {
        "name": "node-exporter",
        "reason": "Our node-exporter DaemonSet opens its port; safe with eBPF host routing.",
        "chain": "NODE-EXPORTER",
        "added_at": timezone.now(),
        "confirmed_at": timezone.now(),
    }
    values.update(fields)
    return AcceptedOwner.objects.create(**values)


def make_plan(creator: Any, **fields: Any) -> RolloutPlan:
    """A draft plan by `creator` (rollout.actions.create_plan): over every cluster, with the
    model's defaults for waves, concurrency, budget and soak, unless `fields` say otherwise."""
    fields.setdefault("name", f"plan-{next(_serial)}")
    return actions.create_plan(acting_user=creator, **fields)


def submitted_plan(creator: Any, **fields: Any) -> RolloutPlan:
    """`make_plan`'s draft, submitted by its creator: waves cut and frozen over the clusters
    there are now, those clusters claimed, the first wave awaiting approval."""
    return actions.submit_plan(make_plan(creator, **fields), acting_user=creator)


def approved_plan(creator: Any, approver: Any, **fields: Any) -> RolloutPlan:
    """`submitted_plan`'s plan with its first wave approved by `approver` (another person: four
    eyes); the reconciler starts it at its next tick."""
    plan = submitted_plan(creator, **fields)
    actions.approve_wave(plan.waves.get(index=1), acting_user=approver, comment="ok")
    return plan


def plan_over_a_new_cluster(creator: Any, name: str, **fields: Any) -> RolloutPlan:
    """A submitted plan named `name` over a new cluster of its own (aks-<name>), in one wave:
    such plans never claim one another's clusters."""
    cluster = make_cluster(name=f"aks-{name}")
    values: dict[str, Any] = {
        "name": name,
        "wave_spec": "100%",
        "selection": {"names": [cluster.name]},
    }
    values.update(fields)
    return submitted_plan(creator, **values)


def lone_target(creator: Any, cluster: str, **fields: Any) -> RolloutTarget:
    """The one target of a submitted plan over the cluster named `cluster` alone (plan
    "one-<cluster>", one wave), maintenance windows ignored unless `fields` say otherwise."""
    values: dict[str, Any] = {
        "name": f"one-{cluster}",
        "wave_spec": "100%",
        "selection": {"names": [cluster]},
        "respect_maintenance_windows": False,
    }
    values.update(fields)
    return submitted_plan(creator, **values).targets.get()


def plan_form(**fields: Any) -> dict[str, Any]:
    """The new-plan form's fields as a browser posts them: waves "1, 50%, 100%" over every
    cluster, unless `fields` say otherwise."""
    values: dict[str, Any] = {
        "name": "eBPF everywhere",
        "goal": "BpfVeth",
        "tags": "",
        "names": "",
        "wave_spec": "1, 50%, 100%",
        "concurrency": "2",
        "failure_budget": "0",
        "soak_minutes": "30",
        "respect_maintenance_windows": "on",
        "approvals_needed": "1",
    }
    values.update(fields)
    return values
