"""Preflight scans as Wavegate records them: claim a queued scan, run preflight/scanner.py's scan
with the cluster's credentials from the Azure gateway, store the outcome and its findings, and
audit the start and the end. The Celery tasks in preflight/tasks.py call `run_scan` and
`next_queued`; the actions in preflight/actions.py queue scans; a rollout asks
`scan_for_rollout` for the scan it judges a cluster by."""

from __future__ import annotations

import datetime
import logging
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

import audit
from fleet.azure import Azure, AzureError, gateway
from fleet.choices import SCAN_OPEN, ScanStatus
from fleet.models import AcceptedOwner, Cluster, PreflightScan, ScanFinding
from preflight import iptables, scanner
from preflight.choices import PreflightEvent

log = logging.getLogger(__name__)


def owners() -> tuple[iptables.Owner, ...]:
    """AKS's allow-list, plus the extensions administrators added (each of them audited).
    An extension that no longer compiles is left out and logged, never a crashed scan."""
    extra = []
    for o in AcceptedOwner.objects.active():
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


def scan_settings() -> scanner.Settings:
    image = settings.WAVEGATE_SCAN_IMAGE
    if settings.WAVEGATE_SCAN_IMAGE_DIGEST:
        image = f"{image.split('@')[0]}@{settings.WAVEGATE_SCAN_IMAGE_DIGEST}"
    return scanner.Settings(
        image=image,
        deadline_seconds=settings.WAVEGATE_SCAN_DEADLINE_SECONDS,
        poll_seconds=settings.WAVEGATE_SCAN_POLL_SECONDS,
        request_timeout_seconds=settings.WAVEGATE_SCAN_REQUEST_TIMEOUT_SECONDS,
        installation=settings.WAVEGATE_INSTALLATION_ID,
        pod_sleep_seconds=settings.WAVEGATE_SCAN_POD_SLEEP_SECONDS,
        max_dump_bytes=settings.WAVEGATE_SCAN_MAX_DUMP_BYTES,
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
            PreflightEvent.SCAN_STARTED,
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
        outcome = scanner.Outcome(
            "error", f"Wavegate failed while scanning ({type(exc).__name__}: {exc})."
        )
    return finish(scan, outcome)


def _scan_cluster(azure: Azure, cluster: Cluster, scan_id: int) -> scanner.Outcome:
    if cluster.power_state == "Stopped":
        return scanner.Outcome(
            "incomplete",
            "The cluster is stopped: it has no API server and no nodes to read. Start it "
            "(az aks start) and scan again.",
        )
    try:
        config = azure.user_kubeconfig(
            cluster.subscription.subscription_id, cluster.resource_group, cluster.name
        )
    except AzureError as exc:
        return scanner.Outcome("error", str(exc))
    return scanner.scan(
        config,
        name=scanner.unique_name(scan_id),
        settings=scan_settings(),
        owners=owners(),
        token=azure.kubernetes_token,
        private=cluster.private_api_server,
    )


EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)


def scan_for_rollout(
    cluster: Cluster,
    *,
    requested_by: Any,
    azure: Azure,
    newer_than: datetime.datetime | None = None,
) -> PreflightScan | None:
    """The scan a rollout judges `cluster` by, right before it changes it; None while a scan of
    it is under way (its result will do) or when a fresh one could not finish now.

    A scan left queued is run here first: its task (or its rollout step) was lost with a
    worker, and its claim is conditional, so it runs once whoever gets there first. Then the
    latest scan that finished within WAVEGATE_PREFLIGHT_MAX_AGE_MINUTES is reused, unless it
    ended in error or finished before `newer_than`; else a fresh scan is made and run now, for
    `requested_by`.
    """
    queued = PreflightScan.objects.filter(cluster=cluster, status=ScanStatus.QUEUED).first()
    if queued is not None:
        run_scan(queued.pk, azure)
    if PreflightScan.objects.filter(cluster=cluster, status__in=SCAN_OPEN).exists():
        return None
    max_age = datetime.timedelta(minutes=settings.WAVEGATE_PREFLIGHT_MAX_AGE_MINUTES)
    scan = (
        PreflightScan.objects.filter(cluster=cluster, finished_at__gte=timezone.now() - max_age)
        # A scan that failed (a worker died under it, the API answered oddly) says nothing
        # about the cluster: scan again; a fresh scan's own error does block the cluster.
        .exclude(status=ScanStatus.ERROR)
        .exclude(finished_at__lte=newer_than or EPOCH)
        .order_by("-finished_at")
        .first()
    )
    if scan is not None:
        return scan
    fresh = PreflightScan.objects.create(
        cluster=cluster, requested_by=requested_by, queued_at=timezone.now()
    )
    return run_scan(fresh.pk, azure)


def finish(scan: PreflightScan, outcome: scanner.Outcome) -> PreflightScan:
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
            PreflightEvent.SCAN_FINISHED,
            acting_user=scan.requested_by,
            obj=scan.cluster,
            after=summary(scan, outcome),
        )
    return scan


def summary(scan: PreflightScan, outcome: scanner.Outcome) -> dict[str, Any]:
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
    # By then the task that ran it was killed at its hard time limit (preflight/tasks.py, and
    # a rollout step's, which may run a scan inline: rollout/tasks.py).
    limit = settings.WAVEGATE_SCAN_TIME_LIMIT_SECONDS + 60
    cutoff = timezone.now() - datetime.timedelta(seconds=limit)
    expired = 0
    for scan in PreflightScan.objects.filter(status=ScanStatus.RUNNING, started_at__lt=cutoff):
        outcome = scanner.Outcome(
            "error",
            "The worker running this scan stopped before it finished. Scan again; beat "
            f"deletes the namespace {scanner.unique_name(scan.pk)} it left on the cluster.",
        )
        if finish(scan, outcome).status == ScanStatus.ERROR:
            expired += 1
    return expired


def fail_never_started() -> int:
    """Queued scans that no worker took (their message never reached the broker, or was lost
    with it): once no scan at all has started for WAVEGATE_OUTBOX_GIVE_UP_MINUTES, those queued
    before then end as error with the reason, so that nothing stays queued for ever and the
    cluster can be scanned again. The cluster keeps its last verdict. Returns how many."""
    now = timezone.now()
    cutoff = now - datetime.timedelta(minutes=settings.WAVEGATE_OUTBOX_GIVE_UP_MINUTES)
    if PreflightScan.objects.filter(started_at__gte=cutoff).exists():
        return 0  # the workers are taking scans: the queue is long, not lost
    message = (
        f"Never started: no worker took it within {settings.WAVEGATE_OUTBOX_GIVE_UP_MINUTES:g} "
        "minutes (the broker or the workers could not be reached). Scan again."
    )
    failed = 0
    stale = PreflightScan.objects.filter(status=ScanStatus.QUEUED, queued_at__lt=cutoff)
    for scan in stale.select_related("cluster", "requested_by"):
        with transaction.atomic():
            if PreflightScan.objects.filter(pk=scan.pk, status=ScanStatus.QUEUED).update(
                status=ScanStatus.ERROR, finished_at=now, message=message
            ):
                audit.record(
                    PreflightEvent.SCAN_FINISHED,
                    acting_user=scan.requested_by,
                    obj=scan.cluster,
                    after={"scan": scan.pk, "status": ScanStatus.ERROR, "message": message},
                )
                failed += 1
    return failed
