"""No scan left behind: beat's reaper of scan namespaces that a worker killed mid-scan left on a
cluster (its `finally` never ran, so its privileged DaemonSet stayed).

Every scan namespace carries this installation's id (WAVEGATE_INSTALLATION_ID, label
wavegate.io/installation). On each cluster that had a scan start within the look-back, the
reaper lists this installation's scan namespaces and deletes those older than a scan's time
limit plus a grace: by then the task that made it has been killed at its hard time limit, so
nothing is reading it. Each deletion is an audit event (preflight.leftover_removed) on the
cluster, which its page shows. One cluster's failure (unreachable, stopped, Azure refusing the
credentials) is logged and the others go on.
"""

from __future__ import annotations

import datetime
import logging
import time
from dataclasses import dataclass, field

import urllib3
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from kubernetes.client.rest import ApiException

import audit
from fleet.azure import Azure, AzureError, gateway
from fleet.kubernetes import CannotConnect, explain
from fleet.models import Cluster
from preflight import scanner
from preflight.choices import PreflightEvent

log = logging.getLogger(__name__)


@dataclass
class Reaped:
    clusters: int = 0  # clusters looked at
    removed: list[tuple[str, str]] = field(default_factory=list)  # (cluster, namespace)
    failed: dict[str, str] = field(default_factory=dict)  # cluster -> why


def max_age_seconds() -> float:
    """A scan namespace older than this was left behind: no scan may still be reading it."""
    return float(
        settings.WAVEGATE_SCAN_TIME_LIMIT_SECONDS + settings.WAVEGATE_SCAN_LEFTOVER_GRACE_SECONDS
    )


def recently_scanned() -> list[Cluster]:
    """The clusters a scan started on within the look-back, most recently scanned first (a run
    cut short by its budget does these first)."""
    since = timezone.now() - datetime.timedelta(
        hours=settings.WAVEGATE_SCAN_LEFTOVER_LOOKBACK_HOURS
    )
    ids = (
        Cluster.objects.filter(scans__started_at__gte=since)
        .exclude(power_state="Stopped")
        .exclude(private_api_server=True)
        .values_list("pk", flat=True)
        .distinct()
    )
    return list(Cluster.objects.filter(pk__in=ids).select_related("subscription").order_by("-pk"))


def reap(azure: Azure | None = None, budget_seconds: float | None = None) -> Reaped:
    """Delete this installation's leftover scan namespaces on recently scanned clusters."""
    azure = azure or gateway()
    budget = (
        budget_seconds if budget_seconds is not None else settings.WAVEGATE_SCAN_REAP_BUDGET_SECONDS
    )
    ends = time.monotonic() + budget
    result = Reaped()
    for cluster in recently_scanned():
        if time.monotonic() >= ends:
            log.warning("scan reaper: out of time; the other clusters wait for the next run")
            break
        result.clusters += 1
        try:
            config = azure.user_kubeconfig(
                cluster.subscription.subscription_id, cluster.resource_group, cluster.name
            )
            leftovers = scanner.reap_leftovers(
                config,
                installation=settings.WAVEGATE_INSTALLATION_ID,
                max_age_seconds=max_age_seconds(),
                token=azure.kubernetes_token,
                timeout=settings.WAVEGATE_SCAN_REQUEST_TIMEOUT_SECONDS,
            )
        except (AzureError, CannotConnect) as exc:
            result.failed[cluster.name] = str(exc)
            continue
        except (ApiException, urllib3.exceptions.HTTPError) as exc:
            result.failed[cluster.name] = explain(exc, "Listing the scan namespaces")
            continue
        for leftover in leftovers:
            if leftover.problem:
                log.warning("scan reaper: %s on %s: %s", leftover.namespace, cluster, leftover)
                result.failed[cluster.name] = leftover.problem
                continue
            _record(cluster, leftover)
            result.removed.append((cluster.name, leftover.namespace))
    for name, why in result.failed.items():
        log.warning("scan reaper: %s not reaped: %s", name, why)
    return result


def _record(cluster: Cluster, leftover: scanner.Leftover) -> None:
    scan = leftover.namespace.removeprefix(scanner.NAMESPACE_PREFIX)
    with transaction.atomic():
        audit.record(
            PreflightEvent.LEFTOVER_REMOVED,
            obj=cluster,
            after={
                "namespace": leftover.namespace,
                "scan": int(scan) if scan.isdigit() else None,
                "created": leftover.created,
                "age_seconds": leftover.age_seconds,
                "installation": settings.WAVEGATE_INSTALLATION_ID,
            },
        )
