"""fleet/azure.py against aksim: each operation Wavegate uses, and Azure's refusals in
Wavegate's own words."""

from __future__ import annotations

import time

import pytest

from aksim.aks import IPTABLES_REFUSAL
from aksim.generate import _eligible
from fleet.azure import AKS_SERVER_SCOPE, Azure, NotFound, PreconditionFailed, Refused
from tests.aksim.builders import eligible_clean


@pytest.fixture
def azure(wavegate_on_aksim):
    gateway = Azure()
    yield gateway
    gateway.close()


def test_it_reads_a_cluster_its_pools_and_its_maintenance_window(wavegate_on_aksim, azure):
    cluster = wavegate_on_aksim.one(
        lambda c: "aksManagedNodeOSUpgradeSchedule" in c.maintenance, "cluster with a window"
    )

    model = azure.get_cluster(cluster.subscription_id, cluster.resource_group, cluster.name)
    pools = azure.agent_pools(cluster.subscription_id, cluster.resource_group, cluster.name)
    window = azure.maintenance_window(cluster.subscription_id, cluster.resource_group, cluster.name)

    assert model.properties.kubernetes_version == cluster.kubernetes_version
    assert sorted((p.name, p.os_sku, p.node_count) for p in pools) == sorted(
        (p.name, p.os_sku, p.count) for p in cluster.pools
    )
    assert window["name"] == "aksManagedNodeOSUpgradeSchedule"
    expected = cluster.maintenance["aksManagedNodeOSUpgradeSchedule"]["maintenanceWindow"]
    assert window["properties"]["maintenanceWindow"]["durationHours"] == expected["durationHours"]


def test_it_gets_kubernetes_credentials_and_an_entra_token(wavegate_on_aksim, azure):
    cluster = wavegate_on_aksim.one(lambda c: c.entra and not c.private, "Entra ID cluster")

    config = azure.user_kubeconfig(cluster.subscription_id, cluster.resource_group, cluster.name)
    token = azure.kubernetes_token()

    assert config["clusters"][0]["cluster"]["server"].endswith(f"/k8s/{cluster.key}")
    assert config["users"][0]["user"]["exec"]["command"] == "kubelogin"
    assert token.count(".") == 2, "a JWT for the AKS server scope " + AKS_SERVER_SCOPE


def test_it_sets_the_mode_and_follows_the_operation_from_its_token(wavegate_on_aksim, azure):
    cluster = wavegate_on_aksim.one(eligible_clean, "eligible clean cluster")
    where = (cluster.subscription_id, cluster.resource_group, cluster.name)

    token = azure.begin_set_acceleration_mode(*where, "BpfVeth", etag=None, request_id="wg-t1-a1")
    reads = [azure.operation_status(*where, token)]
    while reads[-1].running:
        time.sleep(0.2)
        reads.append(Azure().operation_status(*where, token))  # any process can resume

    assert reads[-1].status == "Succeeded"
    # aksim asks for a read about every tenth of the operation, between 1 and 30 s, as Azure
    # does with Retry-After; the engine schedules its next read by it.
    assert all(1 <= read.retry_after <= 30 for read in reads if read.running)
    accepted = wavegate_on_aksim.admin("GET", "puts")["accepted"]
    assert [(p["clientRequestId"], p["mode"]) for p in accepted] == [("wg-t1-a1", "BpfVeth")]
    assert wavegate_on_aksim.truth(cluster)["accelerationMode"] == "BpfVeth"


def test_azure_refusals_become_wavegates_errors(wavegate_on_aksim, azure):
    blocked = wavegate_on_aksim.one(
        lambda c: (
            _eligible(c)
            and c.user_rules
            and c.node_disruption_policy == "Allow"
            and c.power_state == "Running"
            and c.acceleration_mode == "None"
        ),
        "eligible cluster with user rules",
    )
    where = (blocked.subscription_id, blocked.resource_group, blocked.name)

    with pytest.raises(Refused) as refused:
        azure.begin_set_acceleration_mode(*where, "BpfVeth", etag=None, request_id="wg-t2-a1")
    assert IPTABLES_REFUSAL.format(count=len(blocked.user_rules)) in str(refused.value)
    assert refused.value.code == "UserInstalledIPTablesRulesFound"

    with pytest.raises(PreconditionFailed, match="ETag"):
        azure.begin_set_acceleration_mode(*where, "None", etag="stale", request_id="wg-t3-a1")

    with pytest.raises(NotFound):
        azure.get_cluster(blocked.subscription_id, blocked.resource_group, "no-such-cluster")
