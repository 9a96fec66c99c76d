"""A cluster's Kubernetes events, pulled into Wavegate for the cluster page's timeline: its
warnings, and what AKS's azure-iptables-monitor reports (shared/reference/
aks-ebpf-host-routing.md). Each event is kept once per uid; read again, its count and last time
are updated. A pull reads at most WAVEGATE_CLUSTER_EVENTS_PER_PULL events, through the
cluster's user kubeconfig as the preflight scan connects (fleet/kubernetes.py; nothing of it is
stored), and a cluster it cannot read gets the reason on its `EventPull`, never an exception.

Pulls are queued by beat for every cluster (fleet/tasks.py) and, more often, for the clusters a
rollout is changing (rollout/tasks.py); `queue_pulls` claims each cluster first, so one queued
twice within the period is pulled once.
"""

from __future__ import annotations

import datetime
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import urllib3
from celery import current_app
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from kombu.exceptions import OperationalError
from kubernetes import client as k8s
from kubernetes.client.rest import ApiException

from fleet.azure import Azure, AzureError, gateway
from fleet.kubernetes import CannotConnect, connect, explain
from fleet.models import Cluster, ClusterEvent, EventPull

log = logging.getLogger(__name__)

PULL_TASK = "fleet.pull_cluster_events"
MONITOR = "azure-iptables-monitor"
# The events kept: every warning, and the iptables monitor's other events. One list call each.
SELECTORS = ("type=Warning", f"source={MONITOR},type!=Warning")


@dataclass
class Reading:
    """What one pull read: the events (as the API gave them), whether it stopped at the bound,
    and why it could not read the cluster ("" when it could)."""

    events: list[dict[str, Any]] = field(default_factory=list)
    truncated: bool = False
    error: str = ""


def read_events(
    kubeconfig: dict[str, Any],
    *,
    limit: int,
    timeout: float,
    token: Callable[[], str] | None = None,
    private: bool = False,
) -> Reading:
    """The cluster's warnings and iptables monitor events, at most `limit` of them."""
    try:
        api = connect(kubeconfig, token)
    except CannotConnect as exc:
        return Reading(error=str(exc))
    try:
        core = k8s.CoreV1Api(api)
        reading = Reading()
        for selector in SELECTORS:
            _read(core, selector, reading, limit, timeout)
        return reading
    except (ApiException, urllib3.exceptions.HTTPError) as exc:
        unreachable = not isinstance(exc, ApiException) or exc.status == 0
        if private and unreachable:
            return Reading(
                error="This is a private cluster: its API server is reachable only from inside "
                "its virtual network, so its events were not read. A Wavegate worker with "
                "network access to it can read them."
            )
        return Reading(error=explain(exc, "Reading the cluster's events"))
    except (ValueError, AttributeError, TypeError) as exc:
        # Not the Kubernetes API's JSON (a proxy's page, a truncated answer): say so, keep
        # what earlier pulls read.
        return Reading(error=f"The cluster's answer to the events list was not readable: {exc}")
    finally:
        api.close()


def _read(core: k8s.CoreV1Api, selector: str, reading: Reading, limit: int, timeout: float) -> None:
    """Page through one list call until it ends or `limit` events are read in all."""
    token = None
    while len(reading.events) < limit:
        answer = core.list_event_for_all_namespaces(
            field_selector=selector,
            limit=min(500, limit - len(reading.events)),
            _continue=token,
            _preload_content=False,
            _request_timeout=timeout,
        )
        page = json.loads(answer.data)
        reading.events.extend(page.get("items") or [])
        token = (page.get("metadata") or {}).get("continue")
        if not token:
            return
    reading.truncated = True


def _time(text: Any) -> datetime.datetime | None:
    if not text or not isinstance(text, str):
        return None
    try:
        return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def _count(value: Any) -> int:
    try:
        return max(1, int(value or 1))
    except (TypeError, ValueError):
        return 1


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def as_row(cluster: Cluster, event: dict[str, Any], now: datetime.datetime) -> ClusterEvent | None:
    """The event as a row to keep; None for one without a uid (nothing to know it again by)."""
    if not isinstance(event, dict):
        return None
    meta = _mapping(event.get("metadata"))
    uid = str(meta.get("uid") or "")
    if not uid:
        return None
    involved = _mapping(event.get("involvedObject"))
    series = _mapping(event.get("series"))  # events.k8s.io's repeats, seen through core/v1
    source = _mapping(event.get("source"))
    first = _time(event.get("firstTimestamp")) or _time(event.get("eventTime"))
    first = first or _time(meta.get("creationTimestamp")) or now
    last = _time(series.get("lastObservedTime")) or _time(event.get("lastTimestamp"))
    last = max(last or _time(event.get("eventTime")) or first, first)
    return ClusterEvent(
        cluster=cluster,
        uid=uid[:64],
        type=str(event.get("type") or "")[:16],
        reason=str(event.get("reason") or "")[:128],
        message=str(event.get("message") or ""),
        object_kind=str(involved.get("kind") or "")[:64],
        object_name=str(involved.get("name") or "")[:253],
        namespace=str(meta.get("namespace") or "")[:253],
        source=str(source.get("component") or event.get("reportingComponent") or "")[:253],
        count=_count(series.get("count") or event.get("count")),
        first_seen=first,
        last_seen=last,
        read_at=now,
    )


def keep(cluster: Cluster, events: Iterable[dict[str, Any]]) -> int:
    """Store what was read: a new uid is a new row; a known one takes its count, last time
    and message as read now. Returns how many events were kept."""
    now = timezone.now()
    rows: dict[str, ClusterEvent] = {}
    for event in events:
        row = as_row(cluster, event, now)
        if row is not None:
            rows[row.uid] = row
    ClusterEvent.objects.bulk_create(
        list(rows.values()),
        update_conflicts=True,
        unique_fields=["cluster", "uid"],
        update_fields=["count", "last_seen", "message", "read_at"],
    )
    return len(rows)


def pull(cluster_id: int, azure: Azure | None = None) -> EventPull | None:
    """Read one cluster's events and keep them; what happened goes on its EventPull. None when
    the cluster is gone."""
    cluster = (
        Cluster.objects.select_related("subscription")
        .filter(pk=cluster_id, removed_at__isnull=True)
        .first()
    )
    if cluster is None:
        return None
    reading = _reading(cluster, azure or gateway())
    now = timezone.now()
    with transaction.atomic():
        keep(cluster, reading.events)
        done: dict[str, Any] = {
            "finished_at": now,
            "error": reading.error,
            "truncated": reading.truncated,
        }
        if not reading.error:
            done["read_at"] = now
        record, _ = EventPull.objects.update_or_create(cluster=cluster, defaults=done)
    return record


def _reading(cluster: Cluster, azure: Azure) -> Reading:
    if cluster.power_state == "Stopped":
        return Reading(error="The cluster is stopped: it has no API server to read events from.")
    try:
        kubeconfig = azure.user_kubeconfig(
            cluster.subscription.subscription_id, cluster.resource_group, cluster.name
        )
    except AzureError as exc:
        return Reading(error=f"Reading the cluster's credentials: {exc}")
    return read_events(
        kubeconfig,
        limit=settings.WAVEGATE_CLUSTER_EVENTS_PER_PULL,
        timeout=settings.WAVEGATE_SCAN_REQUEST_TIMEOUT_SECONDS,
        token=azure.kubernetes_token,
        private=cluster.private_api_server,
    )


def claim(cluster_ids: Iterable[int], within: datetime.timedelta) -> list[int]:
    """The clusters among `cluster_ids` whose events were not queued for a pull within
    `within`, marked queued now (a conditional update: two callers at once claim each once)."""
    ids = sorted(set(cluster_ids))
    if not ids:
        return []
    EventPull.objects.bulk_create([EventPull(cluster_id=pk) for pk in ids], ignore_conflicts=True)
    now = timezone.now()
    due = Q(queued_at__isnull=True) | Q(queued_at__lt=now - within)
    with transaction.atomic():
        rows = EventPull.objects.filter(due, cluster_id__in=ids).select_for_update(skip_locked=True)
        claimed = list(rows.values_list("cluster_id", flat=True))
        EventPull.objects.filter(cluster_id__in=claimed).update(queued_at=now)
    return claimed


def queue_pulls(cluster_ids: Iterable[int], within: datetime.timedelta) -> int:
    """Queue a pull for each cluster not queued within `within`; how many were queued. A broker
    that is down loses these pulls: the next period queues them again."""
    claimed = claim(cluster_ids, within)
    for sent, pk in enumerate(claimed):
        try:
            current_app.signature(PULL_TASK, args=[pk]).apply_async(
                retry_policy=settings.WAVEGATE_OUTBOX_PUBLISH_RETRY
            )
        except (OperationalError, OSError) as exc:
            log.warning("could not queue event pulls (%s): the next period queues them", exc)
            EventPull.objects.filter(cluster_id__in=claimed[sent:]).update(queued_at=None)
            return sent
    return len(claimed)
