"""The scan a rollout judges a cluster by (`scans.scan_for_rollout`): a queued scan left behind
is run first, nothing while a scan is under way, a recent finished scan reused unless it ended in
error, else a fresh scan run there and then."""

from __future__ import annotations

import datetime

import pytest
from django.utils import timezone

from fleet.azure import AzureError
from fleet.choices import ScanStatus
from fleet.models import PreflightScan
from preflight.scans import scan_for_rollout
from tests.factories import make_cluster, make_scan

pytestmark = pytest.mark.django_db


class UnreachableAzure:
    """An Azure gateway that cannot hand out any cluster's credentials: a scan run through it
    ends as an error without calling any cluster."""

    calls = 0

    def user_kubeconfig(self, subscription_id: str, resource_group: str, name: str) -> dict:
        self.calls += 1
        raise AzureError(f"Azure refused the credentials of {name}.")


def test_it_reuses_a_recent_scan_without_scanning_again(personas, settings):
    settings.WAVEGATE_PREFLIGHT_MAX_AGE_MINUTES = 60
    cluster = make_cluster()
    make_scan(cluster, queued_at=timezone.now() - datetime.timedelta(hours=3))
    recent = make_scan(cluster, findings=[{"node": "n"}])
    azure = UnreachableAzure()

    scan = scan_for_rollout(cluster, requested_by=personas["operator"], azure=azure)

    assert scan == recent
    assert azure.calls == 0
    assert PreflightScan.objects.filter(cluster=cluster).count() == 2


def test_it_gives_nothing_while_a_scan_is_running(personas):
    cluster = make_cluster()
    make_scan(cluster)
    make_scan(cluster, status=ScanStatus.RUNNING)
    azure = UnreachableAzure()

    assert scan_for_rollout(cluster, requested_by=personas["operator"], azure=azure) is None
    assert azure.calls == 0


@pytest.mark.parametrize(
    ("age", "status"),
    [(datetime.timedelta(hours=2), ScanStatus.CLEAN), (datetime.timedelta(0), ScanStatus.ERROR)],
)
def test_an_old_or_failed_scan_is_not_reused_a_fresh_one_runs(personas, settings, age, status):
    settings.WAVEGATE_PREFLIGHT_MAX_AGE_MINUTES = 60
    cluster = make_cluster()
    old = make_scan(cluster, status=status, queued_at=timezone.now() - age)
    azure = UnreachableAzure()

    scan = scan_for_rollout(cluster, requested_by=personas["operator"], azure=azure)

    assert scan is not None
    assert scan != old
    assert (scan.status, scan.requested_by) == (ScanStatus.ERROR, personas["operator"])
    assert scan.message == f"Azure refused the credentials of {cluster.name}."
    assert azure.calls == 1


def test_a_queued_scan_left_behind_is_run_first_and_its_result_used(personas):
    cluster = make_cluster()
    left = make_scan(cluster, status=ScanStatus.QUEUED)
    azure = UnreachableAzure()

    scan = scan_for_rollout(cluster, requested_by=personas["operator"], azure=azure)

    # It ended in error, which says nothing about the cluster: a fresh scan followed it.
    left.refresh_from_db()
    assert left.status == ScanStatus.ERROR
    assert scan is not None
    assert scan != left
    assert azure.calls == 2
