"""A whole fleet scanned by a real Celery worker against aksim: Wavegate's verdict for every
cluster matches aksim's truth (GET /_aksim/clusters/<key>, from the generator's labels)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from accounts.roles import Role
from aksim.generate import generate_fleet
from fleet.choices import SCAN_OPEN, SyncTrigger
from fleet.models import Cluster, PreflightScan
from fleet.sync import run_sync
from preflight import actions
from tests.aksim_server import Aksim, start_aksim
from tests.conftest import start_worker, tasks_sent_to
from tests.processes import wait_until

CLUSTERS, SUBSCRIPTIONS, SEED = 500, 5, 29


@pytest.fixture(scope="module")
def aksim_server(tmp_path_factory) -> Iterator[Aksim]:
    fleet = generate_fleet(CLUSTERS, SUBSCRIPTIONS, SEED, "demo")
    server = start_aksim(tmp_path_factory.mktemp("aksim-500"), fleet)
    try:
        yield server
    finally:
        server.process.stop()


def expected_verdict(truth: dict, power_state: str) -> str:
    if truth["private"] or power_state == "Stopped":
        return "incomplete"  # no API server Wavegate can reach
    return "blocked" if truth["nodesWithUserRules"] else "clean"


@pytest.mark.timeout(900)
def test_every_clusters_verdict_matches_aksims_truth(isolated_db, wavegate_on_aksim, tmp_path):
    aksim = wavegate_on_aksim
    assert run_sync(SyncTrigger.COMMAND).status == "succeeded"
    worker = start_worker(
        isolated_db.url,
        tmp_path / "worker.log",
        {
            **aksim.wavegate_env(),
            "WAVEGATE_SCAN_POLL_SECONDS": "0.05",
            "WAVEGATE_SCAN_DEADLINE_SECONDS": "20",
            "WAVEGATE_SCAN_CONCURRENCY": "8",
            "LOG_LEVEL": "WARNING",
        },
        "--pool",
        "threads",
        "--concurrency",
        "8",
    )
    operator = get_user_model().objects.create_user("scan-operator")
    operator.groups.add(Group.objects.get(name=Role.OPERATOR.value))
    try:
        with tasks_sent_to(worker):
            # "Scan all eligible clusters", then the ineligible ones one by one: every cluster.
            queued = actions.request_fleet_scan(acting_user=operator)
            assert queued == Cluster.objects.filter(eligible=True).count()
            for cluster in Cluster.objects.filter(eligible=False):
                actions.request_scan(cluster, acting_user=operator)
            wait_until(
                lambda: not PreflightScan.objects.filter(status__in=SCAN_OPEN).exists(),
                600,
                "every scan to finish",
                interval=1.0,
            )
    finally:
        worker.process.stop()

    verdicts = dict(Cluster.objects.values_list("arm_id", "preflight"))
    assert PreflightScan.objects.count() == CLUSTERS
    mismatches = []
    for spec in aksim.fleet.clusters:
        truth = aksim.truth(spec)
        want = expected_verdict(truth, spec.power_state)
        got = verdicts[spec.arm_id.lower()]
        if got != want:
            scan = Cluster.objects.get(arm_id=spec.arm_id.lower()).latest_scan
            mismatches.append((spec.key, want, got, scan.message if scan else ""))
    assert not mismatches, mismatches[:10]
    # The fleet has every kind of verdict, so the comparison means something.
    assert set(verdicts.values()) == {"clean", "blocked", "incomplete"}
