"""Preflight scans as Wavegate records them: claim a queued scan, run fleet/kube.py's scan with
the cluster's credentials from the Azure gateway, store the outcome and its findings, and
audit the start and the end. The Celery tasks in fleet/tasks.py call `run_scan` and
`run_next_queued`; the actions in fleet/actions.py queue scans."""

from __future__ import annotations

import datetime
import logging
import threading
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

import audit
from fleet import iptables, kube
from fleet.azure import Azure, AzureError
from fleet.choices import ScanStatus
from fleet.models import AcceptedOwner, Cluster, PreflightScan, ScanFinding

log = logging.getLogger(__name__)


def owners() -> tuple[iptables.Owner, ...]:
    """AKS's allow-list, plus the extensions administrators added (each of them audited).
    An extension that no longer compiles is left out and logged, never a crashed scan."""
    extra = []
    for o in AcceptedOwner.objects.filter(retired_at__isnull=True):
        try:
            extra.append(
                iptables.Owner.from_spec(
                    name=o.name,
                    allows=o.reason,
                    tables=[t.strip() for t in o.tables.split(",") if t.strip()] or None,
                    chain=o.chain or None,
                    chain_prefix=o.chain_prefix or None,
                    comment=o.comment or None,
                    line_regex=o.line_regex or None,
                )
            )
        except ValueError:
            log.exception("accepted owner %s (%s) is not usable; left out", o.pk, o.name)
    return (*iptables.OWNERS, *extra)


def scan_settings() -> kube.Settings:
    image = settings.WAVEGATE_SCAN_IMAGE
    if settings.WAVEGATE_SCAN_IMAGE_DIGEST:
        image = f"{image.split('@')[0]}@{settings.WAVEGATE_SCAN_IMAGE_DIGEST}"
    return kube.Settings(
        image=image,
        deadline_seconds=settings.WAVEGATE_SCAN_DEADLINE_SECONDS,
        poll_seconds=settings.WAVEGATE_SCAN_POLL_SECONDS,
        request_timeout_seconds=settings.WAVEGATE_SCAN_REQUEST_TIMEOUT_SECONDS,
    )


def claim(scan_id: int) -> PreflightScan | None:
    """Move a queued scan to running; None when someone else already did (or it is gone)."""
    now = timezone.now()
    with transaction.atomic():
        claimed = PreflightScan.objects.filter(pk=scan_id, status=ScanStatus.QUEUED).update(
            status=ScanStatus.RUNNING, started_at=now
        )
        if claimed != 1:
            return None
        scan = PreflightScan.objects.select_related("cluster__subscription").get(pk=scan_id)
        audit.record(
            "preflight.scan_started",
            acting_user=scan.requested_by,
            obj=scan.cluster,
            after={"scan": scan.pk},
        )
    return scan


def next_queued() -> int | None:
    """The oldest queued scan nobody is claiming right now."""
    query = PreflightScan.objects.filter(status=ScanStatus.QUEUED).order_by("queued_at", "pk")
    if connection.vendor == "postgresql":
        with transaction.atomic():
            row = query.select_for_update(skip_locked=True).values_list("pk", flat=True).first()
        return row
    return query.values_list("pk", flat=True).first()


_gateways: dict[tuple[Any, ...], Azure] = {}
_gateways_lock = threading.Lock()


def gateway() -> Azure:
    """This process's Azure gateway for scans, shared by its threads: one connection pool to
    ARM instead of a TLS handshake per scanned cluster."""
    key = (settings.AZURE_ARM_ENDPOINT, settings.AZURE_CA_BUNDLE, settings.AZURE_CREDENTIAL)
    with _gateways_lock:
        found = _gateways.get(key)
        if found is None:
            found = _gateways[key] = Azure()
        return found


def run_scan(scan_id: int, azure: Azure | None = None) -> PreflightScan | None:
    """Claim and run one scan; None if it was not queued. Never raises for the cluster's or
    Azure's answers: the scan ends as error with the reason."""
    scan = claim(scan_id)
    if scan is None:
        return None
    cluster = scan.cluster
    try:
        outcome = _scan_cluster(azure or gateway(), cluster, scan.pk)
    except Exception as exc:  # a bug must not leave the scan running forever
        log.exception("scan %s of %s failed", scan.pk, cluster.name)
        outcome = kube.Outcome(
            "error", f"Wavegate failed while scanning ({type(exc).__name__}: {exc})."
        )
    return finish(scan, outcome)


def _scan_cluster(azure: Azure, cluster: Cluster, scan_id: int) -> kube.Outcome:
    if cluster.power_state == "Stopped":
        return kube.Outcome(
            "incomplete",
            "The cluster is stopped: it has no API server and no nodes to read. Start it "
            "(az aks start) and scan again.",
        )
    try:
        config = azure.user_kubeconfig(
            cluster.subscription.subscription_id, cluster.resource_group, cluster.name
        )
    except AzureError as exc:
        return kube.Outcome("error", str(exc))
    return kube.scan(
        config,
        name=kube.unique_name(scan_id),
        settings=scan_settings(),
        owners=owners(),
        token=azure.kubernetes_token,
        private=cluster.private_api_server,
    )


def finish(scan: PreflightScan, outcome: kube.Outcome) -> PreflightScan:
    """Record how a running scan ended, once: a scan already finished (by the reconciler, say)
    is left as it is."""
    message = " ".join(m for m in (outcome.message, outcome.cleanup_error) if m)
    with transaction.atomic():
        ended = PreflightScan.objects.filter(pk=scan.pk, status=ScanStatus.RUNNING).update(
            status=outcome.status,
            finished_at=timezone.now(),
            nodes_expected=len(outcome.nodes_expected),
            nodes_read=len(outcome.nodes_read),
            message=message,
            unread_nodes=[{"node": n, "reason": r} for n, r in sorted(outcome.unread.items())],
            labelled_nodes=outcome.labelled,
            parse_errors=outcome.parse_errors[:200],
        )
        scan.refresh_from_db()
        if ended != 1:
            return scan
        ScanFinding.objects.bulk_create(
            [
                ScanFinding(
                    scan=scan,
                    node=f.node,
                    family=f.family,
                    table=f.finding.table,
                    chain=f.finding.chain,
                    rule=f.finding.rule,
                    origin=f.finding.origin,
                    hint=f.finding.hint,
                    line=f.finding.line,
                )
                for f in outcome.findings
            ],
            batch_size=1000,
        )
        Cluster.objects.filter(pk=scan.cluster_id).update(
            latest_scan=scan, preflight=outcome.status
        )
        audit.record(
            "preflight.scan_finished",
            acting_user=scan.requested_by,
            obj=scan.cluster,
            after=summary(scan, outcome),
        )
    return scan


def summary(scan: PreflightScan, outcome: kube.Outcome) -> dict[str, Any]:
    origins: dict[str, int] = {}
    for f in outcome.findings:
        origins[f.finding.origin] = origins.get(f.finding.origin, 0) + 1
    return {
        "scan": scan.pk,
        "status": scan.status,
        "nodes_read": scan.nodes_read,
        "nodes_expected": scan.nodes_expected,
        "findings": len(outcome.findings),
        "origins": origins,
        "nodes_blocked": sorted({f.node for f in outcome.findings}),
        "nodes_unread": sorted(outcome.unread),
        "message": scan.message,
    }


def expire_abandoned() -> int:
    """Scans left running by a worker that died end as error, so the cluster can be scanned
    again. Returns how many."""
    limit = (
        settings.WAVEGATE_SCAN_DEADLINE_SECONDS + 4 * settings.WAVEGATE_SCAN_REQUEST_TIMEOUT_SECONDS
    )
    cutoff = timezone.now() - datetime.timedelta(seconds=limit + 60)
    expired = 0
    for scan in PreflightScan.objects.filter(status=ScanStatus.RUNNING, started_at__lt=cutoff):
        outcome = kube.Outcome(
            "error",
            "The worker running this scan stopped before it finished. Scan again; if the "
            f"namespace {kube.unique_name(scan.pk)} is still on the cluster, delete it.",
        )
        if finish(scan, outcome).status == ScanStatus.ERROR:
            expired += 1
    return expired
