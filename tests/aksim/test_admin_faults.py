"""The admin API's changes and faults, seen through the real SDK as Wavegate would see them."""

from __future__ import annotations

import time
import urllib.error

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.core.pipeline.policies import RetryPolicy

from aksim.aks import IPTABLES_REFUSAL
from tests.aksim.builders import eligible_clean, mode_update
from tests.aksim.recorders import StatusRecorder


def test_a_version_bump_and_a_tag_change_show_up_in_arm(aksim):
    cluster = aksim.fleet.clusters[3]
    client = aksim.container_service(cluster.subscription_id)
    before = client.managed_clusters.get(cluster.resource_group, cluster.name)

    aksim.admin(
        "POST",
        f"clusters/{cluster.key}/change",
        {"kubernetesVersion": "1.35.0", "tags": {**cluster.tags, "ring": "canary"}},
    )

    after = client.managed_clusters.get(cluster.resource_group, cluster.name)
    assert after.properties.kubernetes_version == "1.35.0"
    assert after.tags["ring"] == "canary"
    assert after.e_tag != before.e_tag


def test_a_deleted_cluster_is_gone_from_arm_and_resource_graph(aksim):
    cluster = aksim.fleet.clusters[5]
    aksim.admin("POST", f"clusters/{cluster.key}/change", {"delete": True})
    client = aksim.container_service(cluster.subscription_id)

    with pytest.raises(ResourceNotFoundError):
        client.managed_clusters.get(cluster.resource_group, cluster.name)
    assert cluster.arm_id not in {c.id for c in client.managed_clusters.list()}


def _monitor_sees(aksim, key: str, nodes: list[str]) -> dict:
    """The truth once azure-iptables-monitor's next check has run (every 300 s / time scale)."""
    deadline = time.monotonic() + 10
    while True:
        truth = aksim.admin("GET", f"clusters/{key}")
        if truth["monitorSeesUserRulesOn"] == sorted(nodes) or time.monotonic() > deadline:
            return truth
        time.sleep(0.05)


def test_user_rules_added_to_a_node_make_aks_refuse_after_the_monitor_sees_them(aksim):
    cluster = aksim.one(eligible_clean, "eligible clean cluster")
    nodes = [n.name for n in cluster.nodes() if n.linux][:2]
    truth = aksim.admin(
        "POST",
        f"clusters/{cluster.key}/change",
        {"userRules": {nodes[0]: ["docker"], nodes[1]: ["fail2ban", "handwritten"]}},
    )
    assert [n["node"] for n in truth["nodesWithUserRules"]] == sorted(nodes)
    assert all(
        rule["rule"].startswith("-A ") for n in truth["nodesWithUserRules"] for rule in n["rules"]
    )
    # AKS refuses on what its monitor saw at its last check, not on the nodes as they are now.
    assert truth["monitorSeesUserRulesOn"] == []
    assert truth["bpfVethAccepted"] is True

    truth = _monitor_sees(aksim, cluster.key, nodes)
    assert truth["bpfVethAccepted"] is False
    client = aksim.container_service(cluster.subscription_id)
    body, _ = mode_update(client, cluster, "BpfVeth")
    with pytest.raises(HttpResponseError) as refused:
        client.managed_clusters.begin_create_or_update(cluster.resource_group, cluster.name, body)
    assert refused.value.error.message == IPTABLES_REFUSAL.format(count=2)


def test_the_iptables_refusal_lingers_until_the_monitor_checks_again(aksim):
    cluster = aksim.one(eligible_clean, "eligible clean cluster")
    node = next(n.name for n in cluster.nodes() if n.linux)
    aksim.admin("POST", f"clusters/{cluster.key}/change", {"userRules": {node: ["docker"]}})
    assert _monitor_sees(aksim, cluster.key, [node])["bpfVethAccepted"] is False

    truth = aksim.admin("POST", f"clusters/{cluster.key}/change", {"userRules": {node: []}})

    assert truth["nodesWithUserRules"] == []
    assert truth["refusal"]["code"] == "UserInstalledIPTablesRulesFound"  # still, for a while
    assert _monitor_sees(aksim, cluster.key, [])["bpfVethAccepted"] is True


def test_injected_server_errors_are_retried_by_the_sdk(aksim):
    cluster = aksim.fleet.clusters[0]
    aksim.admin("PUT", "faults", {"errorRate": 0.5})
    recorder = StatusRecorder()
    client = aksim.container_service(
        cluster.subscription_id,
        per_retry_policies=[recorder],
        retry_policy=RetryPolicy(retry_backoff_factor=0.01, retry_total=20, retry_status=20),
    )

    names = [
        client.managed_clusters.get(cluster.resource_group, cluster.name).name for _ in range(10)
    ]

    assert names == [cluster.name] * 10
    assert {500, 503} & set(recorder.statuses), recorder.statuses


def test_a_failing_operation_ends_failed_and_leaves_the_mode(aksim):
    cluster = aksim.one(eligible_clean, "eligible clean cluster")
    aksim.admin("PUT", "faults", {"lroFailureRate": 1.0, "backgroundOperationRate": 0})
    client = aksim.container_service(cluster.subscription_id, polling_interval=0.2)
    body, _ = mode_update(client, cluster, "BpfVeth")

    poller = client.managed_clusters.begin_create_or_update(
        cluster.resource_group, cluster.name, body
    )
    with pytest.raises(HttpResponseError):
        poller.result(timeout=60)

    # ARM keeps the target in the resource: a failed enable reads BpfVeth with Failed, while
    # the nodes never changed.
    after = client.managed_clusters.get(cluster.resource_group, cluster.name)
    assert after.properties.provisioning_state == "Failed"
    performance = after.properties.network_profile.advanced_networking.performance
    assert performance.acceleration_mode == "BpfVeth"
    assert aksim.admin("GET", f"clusters/{cluster.key}")["accelerationMode"] == "None"


def test_a_failure_rate_fails_exactly_that_share_of_operations(aksim):
    cluster = aksim.one(eligible_clean, "eligible clean cluster")
    client = aksim.container_service(cluster.subscription_id, polling_interval=0.2)
    aksim.admin("PUT", "faults", {"lroFailureRate": 0.2, "backgroundOperationRate": 0})
    outcomes = []
    for _ in range(10):  # back and forth: every PUT changes the mode (a failure leaves it)
        current = client.managed_clusters.get(cluster.resource_group, cluster.name)
        mode = current.properties.network_profile.advanced_networking
        wanted = "None" if mode and mode.performance.acceleration_mode == "BpfVeth" else "BpfVeth"
        body, _ = mode_update(client, cluster, wanted)
        poller = client.managed_clusters.begin_create_or_update(
            cluster.resource_group, cluster.name, body
        )
        try:
            poller.result(timeout=60)
            outcomes.append("Succeeded")
        except HttpResponseError:
            outcomes.append("Failed")

    assert outcomes == (["Succeeded"] * 4 + ["Failed"]) * 2


def test_a_stuck_operation_stays_in_progress_until_the_fault_is_cleared(aksim):
    cluster = aksim.one(eligible_clean, "eligible clean cluster")
    aksim.admin("PUT", "faults", {"stuckOperations": True})
    client = aksim.container_service(cluster.subscription_id, polling_interval=0.2)
    body, _ = mode_update(client, cluster, "BpfVeth")
    poller = client.managed_clusters.begin_create_or_update(
        cluster.resource_group, cluster.name, body
    )

    time.sleep(3)  # several times the operation's length at the fixture's time scale
    assert poller.status() == "InProgress"
    assert aksim.truth(cluster)["operation"]["status"] == "InProgress"

    aksim.admin("PUT", "faults", {"stuckOperations": False})
    assert poller.result(timeout=60).properties.provisioning_state == "Succeeded"


def test_bad_admin_input_is_refused_with_a_message(aksim):
    cluster = aksim.fleet.clusters[0]
    for path, body in (
        (f"clusters/{cluster.key}/change", {"userRules": {"no-such-node": ["docker"]}}),
        (f"clusters/{cluster.key}/change", {"colour": "blue"}),
        ("faults", {"errorRate": "lots"}),
    ):
        with pytest.raises(urllib.error.HTTPError) as refused:
            aksim.admin("PUT" if path == "faults" else "POST", path, body)
        assert refused.value.code == 400
        assert "error" in refused.value.read().decode()


def test_reset_brings_back_the_fleet_file(aksim):
    cluster = aksim.fleet.clusters[2]
    aksim.admin("POST", f"clusters/{cluster.key}/change", {"delete": True})
    aksim.admin("PUT", "faults", {"latencyMs": 5})

    aksim.reset()

    assert aksim.truth(cluster)["deleted"] is False
    assert aksim.admin("GET", "faults")["latencyMs"] == 0


def test_retry_after_is_sent_only_when_the_fault_asks_for_it(aksim):
    cluster = aksim.one(eligible_clean, "eligible clean cluster")
    aksim.admin("PUT", "faults", {"retryAfter": True, "backgroundOperationRate": 0})
    client = aksim.container_service(cluster.subscription_id, polling_interval=0.2)
    body, _ = mode_update(client, cluster, "BpfVeth")

    poller = client.managed_clusters.begin_create_or_update(
        cluster.resource_group, cluster.name, body
    )

    # AKS sends none (the SDK then waits 30 s); with the fault, about a tenth of the operation.
    delay = poller.polling_method()._extract_delay()
    assert 1 <= delay < 30
    assert aksim.admin("GET", "faults")["retryAfter"] is True
    assert poller.result(timeout=60).properties.provisioning_state == "Succeeded"
    aksim.reset()
    assert aksim.admin("GET", "faults")["retryAfter"] is False
