"""A sync that loses Azure half-way writes nothing: the last good inventory stays, and the run
says why it failed. (Its own module: it stops the module's aksim, and commits for real.)"""

from __future__ import annotations

import threading

from django.db import connection

from fleet.choices import SyncStatus, SyncTrigger
from fleet.models import Cluster, SyncRun
from fleet.sync import run_sync
from tests.processes import wait_until


def test_a_sync_cut_off_half_way_keeps_the_last_inventory_and_says_why(
    isolated_db, aksim_server, settings
):
    aksim = aksim_server
    aksim.reset()
    settings.AZURE_ARM_ENDPOINT = aksim.endpoint
    settings.AZURE_CA_BUNDLE = aksim.ca
    settings.AZURE_CREDENTIAL = "static"
    settings.AZURE_STATIC_TOKEN = "wavegate-test"
    settings.WAVEGATE_SYNC_CONCURRENCY = 2
    assert run_sync(SyncTrigger.COMMAND).status == SyncStatus.SUCCEEDED
    bumped = aksim.fleet.clusters[0]
    aksim.admin("POST", f"clusters/{bumped.key}/change", {"kubernetesVersion": "1.35.0"})
    # Slow Azure down and make every maintenance configuration due, so the sync is mid-way
    # through its reads when Azure goes away.
    aksim.admin("PUT", "faults", {"latencyMs": 150})
    Cluster.objects.update(maintenance_checked_at=None)
    before = dict(Cluster.objects.values_list("arm_id", "kubernetes_version"))
    finished: list[SyncRun] = []

    def sync() -> None:
        try:
            finished.append(run_sync(SyncTrigger.COMMAND))
        finally:
            connection.close()

    baseline = _reads_so_far(aksim)
    worker = threading.Thread(target=sync)
    worker.start()
    wait_until(
        lambda: _reads_so_far(aksim) >= baseline + 10,
        60,
        "the sync to be half-way through its reads",
    )
    aksim.process.stop()
    worker.join(timeout=180)

    run = finished[0]
    assert run.status == SyncStatus.FAILED
    assert "could not reach Azure" in run.error
    assert dict(Cluster.objects.values_list("arm_id", "kubernetes_version")) == before
    assert SyncRun.objects.filter(status=SyncStatus.RUNNING).count() == 0


def _reads_so_far(aksim) -> int:
    return int(aksim.admin("GET", "stats").get("reads", 0))
