"""/metrics: Wavegate for Prometheus, in its text format.

Two halves: what the processes counted (config/metrics.py: Azure requests, Celery tasks, web
requests), added up over web, workers and beat when PROMETHEUS_MULTIPROC_DIR is set; and the
state of the fleet, the rollouts, the audit chain and the inventory sync, read from the database
at each scrape with a few grouped queries. Open to anyone, or to a bearer of
WAVEGATE_METRICS_TOKEN when it is set.
"""

from __future__ import annotations

import hmac
import logging
import math
from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import datetime

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.db import DatabaseError
from django.db.models import Count, Max, Q
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from audit.models import AuditCheckpoint, ChainWatch
from audit.verification import chain_broken
from config.metrics import MULTIPROCESS_DIR
from fleet.choices import SCAN_OPEN, AccelerationMode, ScanStatus, SyncStatus
from fleet.models import Cluster, PreflightScan, SyncRun
from rollout.choices import TARGET_UNSETTLED, PlanStatus, TargetStatus, WaveStatus
from rollout.engine import busy_targets, deadline_of
from rollout.models import RolloutPlan, RolloutTarget, Wave

log = logging.getLogger(__name__)
NEVER_SCANNED = "none"  # the preflight verdict of a cluster no scan has finished on


@login_not_required
@never_cache
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    if not _token_accepted(request):
        refused = HttpResponse(
            "Unauthorized: /metrics needs the bearer token set in WAVEGATE_METRICS_TOKEN.\n",
            status=401,
            content_type="text/plain; charset=utf-8",
        )
        refused["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return refused
    return HttpResponse(generate_latest(_registry()), content_type=CONTENT_TYPE_LATEST)


def _token_accepted(request: HttpRequest) -> bool:
    expected = settings.WAVEGATE_METRICS_TOKEN
    if not expected:
        return True
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode(), expected.encode()
    )


def _registry() -> CollectorRegistry:
    """A registry for one scrape: every process's counts, then the database's state."""
    registry = CollectorRegistry()
    readable = True
    if MULTIPROCESS_DIR:
        try:
            MultiProcessCollector(registry, path=MULTIPROCESS_DIR)
        except ValueError:  # the directory is gone: the database's half still comes through
            log.error("PROMETHEUS_MULTIPROC_DIR %s is not a directory", MULTIPROCESS_DIR)
            readable = False
    else:  # one process (a plain runserver): its own counts, in its memory
        registry.register(_ThisProcess())
    registry.register(_Up(readable))
    registry.register(DatabaseCollector())
    return registry


class _Up(Collector):
    def __init__(self, readable: bool) -> None:
        self.readable = readable

    def collect(self) -> Iterable[Metric]:
        yield _gauge(
            "wavegate_process_counts_up",
            "1 when the processes' counts (Azure requests, tasks, web requests) could be read; "
            "0 when PROMETHEUS_MULTIPROC_DIR is not a directory any more.",
            1 if self.readable else 0,
        )


class _ThisProcess(Collector):
    def collect(self) -> Iterable[Metric]:
        return REGISTRY.collect()


class DatabaseCollector(Collector):
    """The state Wavegate keeps in its database, read when Prometheus scrapes. A database that
    does not answer is `wavegate_database_up 0`, not a failed scrape: the processes' counts
    still come through."""

    def collect(self) -> Iterator[Metric]:
        families: list[Metric] = []
        try:
            for part in (_clusters, _rollouts, _scans, _audit_chain, _inventory_sync):
                families.extend(part())
        except DatabaseError:
            log.exception("/metrics could not read the database")
            families = []
        up = _gauge(
            "wavegate_database_up",
            "1 when /metrics could read Wavegate's state from the database, else 0.",
            1 if families else 0,
        )
        return iter([up, *families])


def _by(
    name: str, documentation: str, label: str, counts: Counter[str], known: Iterable[str]
) -> GaugeMetricFamily:
    """One gauge per value of `label`: every `known` value (0 when none), then any other."""
    family = GaugeMetricFamily(name, documentation, labels=[label])
    for value in dict.fromkeys([*map(str, known), *sorted(counts)]):
        family.add_metric([value], counts.get(value, 0))
    return family


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def _age(moment: datetime | None) -> float:
    """Seconds since `moment`; +Inf when it never happened, so that "older than" alerts fire
    on what never happened too."""
    if moment is None:
        return math.inf
    return max((timezone.now() - moment).total_seconds(), 0.0)


def _clusters() -> Iterator[GaugeMetricFamily]:
    """Present clusters three ways (one query): eligibility, latest preflight, mode."""
    eligible: Counter[str] = Counter()
    verdicts: Counter[str] = Counter()
    modes: Counter[str] = Counter()
    rows = (
        Cluster.objects.filter(removed_at__isnull=True)
        .values_list("eligible", "preflight", "acceleration_mode")
        .annotate(n=Count("id"))
        .order_by()
    )
    for is_eligible, verdict, mode, n in rows:
        eligible["true" if is_eligible else "false"] += n
        verdicts[verdict or NEVER_SCANNED] += n
        modes[mode] += n
    finished = [s for s in ScanStatus.values if s not in SCAN_OPEN]
    yield _by(
        "wavegate_clusters_by_eligibility",
        "Clusters in the inventory, by whether they meet BpfVeth's requirements.",
        "eligible",
        eligible,
        ["true", "false"],
    )
    yield _by(
        "wavegate_clusters_by_preflight",
        "Clusters in the inventory, by the verdict of their latest finished preflight scan "
        f"('{NEVER_SCANNED}': never scanned).",
        "verdict",
        verdicts,
        [*finished, NEVER_SCANNED],
    )
    yield _by(
        "wavegate_clusters_by_acceleration_mode",
        "Clusters in the inventory, by their acceleration mode (BpfVeth: eBPF host routing on).",
        "mode",
        modes,
        AccelerationMode.values,
    )


def _counts(rows: Iterable[tuple[str, int]]) -> Counter[str]:
    return Counter(dict(rows))


def _rollouts() -> Iterator[GaugeMetricFamily]:
    plans = RolloutPlan.objects.values_list("status").annotate(n=Count("id")).order_by()
    waves = Wave.objects.values_list("status").annotate(n=Count("id")).order_by()
    targets = list(
        RolloutTarget.objects.values_list("status")
        .annotate(n=Count("id"), queued=Count("id", filter=Q(next_step_at__isnull=False)))
        .order_by()
    )
    yield _by(
        "wavegate_plans", "Rollout plans, by state.", "state", _counts(plans), PlanStatus.values
    )
    yield _by(
        "wavegate_waves", "Rollout waves, by state.", "state", _counts(waves), WaveStatus.values
    )
    yield _by(
        "wavegate_targets",
        "Clusters in rollout plans (targets), by state.",
        "state",
        _counts((status, n) for status, n, _ in targets),
        TargetStatus.values,
    )
    yield _gauge(
        "wavegate_rollout_steps_queued",
        "Rollout engine steps queued for a cluster and not yet taken by a worker.",
        sum(queued for _, _, queued in targets),
    )
    yield _gauge(
        "wavegate_rollout_steps_running",
        "Rollout engine steps a worker is running now (clusters it holds).",
        len(busy_targets()),
    )
    in_flight = RolloutTarget.objects.filter(status__in=TARGET_UNSETTLED).only(
        "status", "status_since", "updated_at"
    )
    now = timezone.now()
    overdue = [t for t in in_flight if (due := deadline_of(t)) is not None and due <= now]
    yield _gauge(
        "wavegate_targets_past_deadline",
        "Clusters still in flight (preflight, changing, verifying, rolling back) past the "
        "deadline of their state (WAVEGATE_DEADLINE_*_MINUTES): the engine fails each at its "
        "next step, so one that stays here has no step coming.",
        len(overdue),
    )


def _scans() -> Iterator[GaugeMetricFamily]:
    open_scans = PreflightScan.objects.filter(status__in=SCAN_OPEN)
    yield _by(
        "wavegate_scans_in_flight",
        "Preflight scans queued or running.",
        "status",
        _counts(open_scans.values_list("status").annotate(n=Count("id")).order_by()),
        SCAN_OPEN,
    )


def _audit_chain() -> Iterator[GaugeMetricFamily]:
    """What beat's minute-by-minute check found (the state the chain banner shows), never a
    walk of the chain: that is `manage.py audit_verify`'s."""
    broken = chain_broken()
    watch = broken or ChainWatch.objects.filter(pk=1).first()
    yield _gauge(
        "wavegate_audit_chain_broken",
        "1 while beat's check has found the audit chain broken (the banner every page shows).",
        1 if broken else 0,
    )
    yield _gauge(
        "wavegate_audit_checkpoints_unchecked",
        "1 when beat's last check could not check the signed checkpoints (an unreadable key "
        "or checkpoint file).",
        1 if watch is not None and watch.unchecked_reason else 0,
    )
    yield _gauge(
        "wavegate_audit_chain_checked_age_seconds",
        "Seconds since beat last checked the audit chain (+Inf: never).",
        _age(watch.checked_at if watch is not None else None),
    )
    yield _gauge(
        "wavegate_audit_last_checkpoint_age_seconds",
        "Seconds since the newest signed checkpoint of the audit chain was taken (+Inf: none).",
        _age(AuditCheckpoint.objects.aggregate(at=Max("at"))["at"]),
    )


def _inventory_sync() -> Iterator[GaugeMetricFamily]:
    latest = SyncRun.objects.order_by("-started_at").only("status", "started_at").first()
    yield _by(
        "wavegate_sync_last_status",
        "1 for the status of the latest inventory sync (running, succeeded, failed), else 0.",
        "status",
        Counter([latest.status] if latest else []),
        SyncStatus.values,
    )
    yield _gauge(
        "wavegate_sync_last_age_seconds",
        "Seconds since the latest inventory sync started (+Inf: none ever did).",
        _age(latest.started_at if latest is not None else None),
    )
    succeeded = SyncRun.objects.filter(status=SyncStatus.SUCCEEDED).aggregate(
        at=Max("finished_at")
    )["at"]
    yield _gauge(
        "wavegate_sync_last_success_age_seconds",
        "Seconds since the latest inventory sync that succeeded ended (+Inf: none has).",
        _age(succeeded),
    )
