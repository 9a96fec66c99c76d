"""The inventory sync against aksim: what it stores, what it leaves alone, what it records."""

from __future__ import annotations

import time

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from audit.models import AuditEvent
from audit.verification import verify_stored_chain
from fleet.choices import SyncStatus, SyncTrigger
from fleet.models import Cluster, NodePool, Subscription, SyncRun
from fleet.sync import SyncAlreadyRunning, begin_run, run_sync

pytestmark = pytest.mark.django_db


def cluster_events(**filters):
    return AuditEvent.objects.filter(object_type="fleet.cluster", **filters)


def test_a_first_sync_stores_every_cluster_and_node_pool(wavegate_on_aksim):
    fleet = wavegate_on_aksim.fleet

    run = run_sync(SyncTrigger.COMMAND)

    assert run.status == SyncStatus.SUCCEEDED, run.error
    assert run.counts["discovered"] == len(fleet.clusters)
    assert Subscription.objects.count() == len(fleet.subscriptions)
    assert set(Subscription.objects.values_list("state", flat=True)) == {"Enabled"}
    stored = {c.arm_id: c for c in Cluster.objects.prefetch_related("node_pools")}
    assert sorted(stored) == sorted(c.arm_id.lower() for c in fleet.clusters)
    for cluster in fleet.clusters:
        row = stored[cluster.arm_id.lower()]
        assert (row.name, row.resource_group, row.location) == (
            cluster.name,
            cluster.resource_group,
            cluster.location,
        )
        assert row.kubernetes_version == cluster.kubernetes_version
        assert row.network_dataplane == (cluster.network_dataplane or "")
        assert row.acns_enabled is cluster.acns
        assert row.acceleration_mode == cluster.acceleration_mode
        assert row.ring == cluster.tags["ring"]
        assert row.private_api_server is cluster.private
        assert row.entra_id is cluster.entra
        assert row.power_state == cluster.power_state
        expected_window = cluster.maintenance.get("aksManagedNodeOSUpgradeSchedule")
        if expected_window:
            assert row.maintenance_window["name"] == "aksManagedNodeOSUpgradeSchedule"
            assert (
                row.maintenance_window["properties"]["maintenanceWindow"]["startTime"]
                == (expected_window["maintenanceWindow"]["startTime"])
            )
        pools = {p.name: p for p in row.node_pools.all()}
        assert sorted(pools) == sorted(p.name for p in cluster.pools)
        for pool in cluster.pools:
            assert (
                pools[pool.name].os_sku,
                pools[pool.name].node_count,
                pools[pool.name].mode,
            ) == (pool.os_sku, pool.count, pool.mode)
    assert NodePool.objects.count() == sum(len(c.pools) for c in fleet.clusters)
    assert cluster_events(action="cluster.discovered").count() == len(fleet.clusters)
    assert verify_stored_chain().intact


def test_eligibility_follows_the_fleet_and_says_why(wavegate_on_aksim):
    from aksim.generate import _eligible

    run_sync(SyncTrigger.COMMAND)

    for cluster in wavegate_on_aksim.fleet.clusters:
        row = Cluster.objects.get(arm_id=cluster.arm_id.lower())
        expected = (
            _eligible(cluster)
            and cluster.power_state == "Running"
            and cluster.node_disruption_policy != "Block"
        )
        assert row.eligible is expected, (cluster.name, row.eligibility_reasons)
        assert bool(row.eligibility_reasons) is not expected
    ubuntu = Cluster.objects.filter(node_pools__os_sku="Ubuntu").first()
    if ubuntu:
        assert any("does not say 24.04" in r["reason"] for r in ubuntu.eligibility_reasons)


def test_a_second_sync_with_nothing_changed_writes_no_inventory_rows(wavegate_on_aksim):
    run_sync(SyncTrigger.COMMAND)
    events = cluster_events().count()

    with CaptureQueriesContext(connection) as queries:
        run = run_sync(SyncTrigger.COMMAND)

    assert run.counts["unchanged"] == len(wavegate_on_aksim.fleet.clusters)
    writes = [
        q["sql"]
        for q in queries.captured_queries
        if q["sql"].lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE"))
        and ("fleet_cluster" in q["sql"] or "fleet_nodepool" in q["sql"])
    ]
    assert writes == []
    assert cluster_events().count() == events


def test_changes_made_in_azure_show_up_with_matching_audit_events(wavegate_on_aksim):
    aksim = wavegate_on_aksim
    run_sync(SyncTrigger.COMMAND)
    bumped, tagged, deleted = aksim.fleet.clusters[:3]
    aksim.admin("POST", f"clusters/{bumped.key}/change", {"kubernetesVersion": "1.35.1"})
    aksim.admin("POST", f"clusters/{tagged.key}/change", {"tags": {**tagged.tags, "ring": "pilot"}})
    aksim.admin("POST", f"clusters/{deleted.key}/change", {"delete": True})
    time.sleep(0.2)  # Resource Graph indexes a change a while after ARM made it (30 s / 600)

    run = run_sync(SyncTrigger.COMMAND)

    assert (run.counts["changed"], run.counts["removed"]) == (2, 1)
    row = Cluster.objects.get(arm_id=bumped.arm_id.lower())
    assert row.kubernetes_version == "1.35.1"
    event = cluster_events(action="cluster.changed", object_id=str(row.pk)).get()
    assert event.before["kubernetes_version"] == bumped.kubernetes_version
    assert event.after["kubernetes_version"] == "1.35.1"
    row = Cluster.objects.get(arm_id=tagged.arm_id.lower())
    assert row.ring == "pilot"
    event = cluster_events(action="cluster.changed", object_id=str(row.pk)).get()
    assert event.after["ring"] == "pilot"
    assert event.after["tags"]["ring"] == "pilot"
    row = Cluster.objects.get(arm_id=deleted.arm_id.lower())
    assert row.removed_at is not None
    assert cluster_events(action="cluster.removed", object_id=str(row.pk)).exists()
    assert verify_stored_chain().intact


def test_server_errors_slow_the_sync_but_it_completes(wavegate_on_aksim, settings):
    aksim = wavegate_on_aksim
    aksim.admin("PUT", "faults", {"errorRate": 0.05})
    settings.WAVEGATE_MAINTENANCE_REFRESH_HOURS = 0  # every sync re-reads every cluster

    runs = [run_sync(SyncTrigger.COMMAND) for _ in range(3)]

    assert [r.status for r in runs] == [SyncStatus.SUCCEEDED] * 3, [r.error for r in runs]
    assert aksim.admin("GET", "stats")["injected_errors"] > 0
    assert sum(r.counts["calls"].get("server_errors", 0) for r in runs) > 0
    assert Cluster.objects.count() == len(aksim.fleet.clusters)


def test_two_syncs_never_run_at_once():
    begin_run(SyncTrigger.SCHEDULE)

    with pytest.raises(SyncAlreadyRunning):
        begin_run(SyncTrigger.BUTTON)
    assert SyncRun.objects.filter(status=SyncStatus.RUNNING).count() == 1
