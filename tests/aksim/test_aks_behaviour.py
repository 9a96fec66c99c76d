"""aksim behaves as real AKS does where it is unkind (issue 15): ARM shows the target mode from
the PUT on, AKS's own operations answer a PUT 409, user rules under eBPF host routing keep the
Cilium agent from starting and taint the node, the iptables monitor creates a new event per
check, the node disruption policy follows its schedule, and Resource Graph lags ARM. Driven
through the real SDKs and kubernetes client, as Wavegate drives them."""

from __future__ import annotations

import base64
import datetime
import time

import pytest
import requests
import yaml
from azure.core.exceptions import HttpResponseError
from azure.mgmt.resourcegraph.models import QueryRequest
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config

from aksim import aks
from aksim.fleetfile import Cluster
from tests.aksim.builders import cluster as built_cluster
from tests.aksim.builders import eligible_clean, mode_update

MODE_QUERY = (
    "resources | where type =~ 'microsoft.containerservice/managedclusters'"
    " | project id, mode = properties.networkProfile.advancedNetworking.performance"
    ".accelerationMode, state = properties.provisioningState"
)


def change(aksim, spec: Cluster, **what) -> dict:
    return aksim.admin("POST", f"clusters/{spec.key}/change", what)


def wait_for(condition, what: str, seconds: float = 15) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"never {what}"
        time.sleep(0.05)


def enable(aksim, spec: Cluster) -> None:
    client = aksim.container_service(spec.subscription_id, polling_interval=0.05)
    body, _ = mode_update(client, spec, "BpfVeth")
    client.managed_clusters.begin_create_or_update(spec.resource_group, spec.name, body).result(
        timeout=60
    )


def core_api(aksim, spec: Cluster) -> k8s_client.CoreV1Api:
    client = aksim.container_service(spec.subscription_id)
    value = (
        client.managed_clusters.list_cluster_user_credentials(spec.resource_group, spec.name)
        .kubeconfigs[0]
        .value
    )
    config = yaml.safe_load(value if isinstance(value, bytes) else base64.b64decode(value))
    return k8s_client.CoreV1Api(k8s_config.new_client_from_config_dict(config))


@pytest.fixture
def quiet(aksim):
    """No operations of AKS's own, so that each PUT here is taken."""
    aksim.admin("PUT", "faults", {"backgroundOperationRate": 0})
    return aksim


def test_arm_shows_the_target_mode_while_the_operation_runs(quiet):
    spec = quiet.one(eligible_clean, "eligible clean cluster")
    client = quiet.container_service(spec.subscription_id)
    body, _ = mode_update(client, spec, "BpfVeth")
    client.managed_clusters.begin_create_or_update(spec.resource_group, spec.name, body)

    during = client.managed_clusters.get(spec.resource_group, spec.name).properties
    assert during.provisioning_state == "Updating"
    assert during.network_profile.advanced_networking.performance.acceleration_mode == "BpfVeth"
    assert quiet.truth(spec)["accelerationMode"] == "None"  # the nodes have not changed yet


def test_aks_own_operation_refuses_a_put_with_409_until_it_ends(aksim):
    spec = aksim.one(eligible_clean, "eligible clean cluster")
    aksim.admin("PUT", "faults", {"backgroundOperationRate": 1.0})
    client = aksim.container_service(spec.subscription_id)
    body, _ = mode_update(client, spec, "BpfVeth")

    with pytest.raises(HttpResponseError) as refused:
        client.managed_clusters.begin_create_or_update(spec.resource_group, spec.name, body)

    assert refused.value.status_code == 409
    assert refused.value.error.code == "OperationNotAllowed"
    assert "in progress update managed cluster operation" in str(refused.value.error.message)
    state = client.managed_clusters.get(spec.resource_group, spec.name).properties
    assert state.provisioning_state == "Upgrading"
    aksim.admin("PUT", "faults", {"backgroundOperationRate": 0})
    wait_for(
        lambda: client.managed_clusters.get(spec.resource_group, spec.name).properties.
        provisioning_state == "Succeeded",
        "done upgrading",
    )  # fmt: skip
    body, _ = mode_update(client, spec, "BpfVeth")
    client.managed_clusters.begin_create_or_update(spec.resource_group, spec.name, body)


def test_user_rules_under_bpfveth_block_the_cilium_agent_and_taint_the_node(quiet):
    spec = quiet.one(
        lambda c: eligible_clean(c) and not c.entra and not c.private, "public clean cluster"
    )
    enable(quiet, spec)
    node = next(n.name for n in spec.nodes() if n.linux)
    change(quiet, spec, userRules={node: ["docker"]})
    wait_for(lambda: quiet.truth(spec)["monitorSeesUserRulesOn"] == [node], "seen by the monitor")
    core = core_api(quiet, spec)

    taints = core.read_node(node).spec.taints or []
    assert ("node.cilium.io/agent-not-ready", "NoSchedule") in {(t.key, t.effect) for t in taints}
    agent = next(
        p
        for p in core.list_namespaced_pod("kube-system", label_selector="k8s-app=cilium").items
        if p.spec.node_name == node
    )
    conditions = {c.type: c.status for c in agent.status.conditions}
    assert agent.status.phase == "Pending"
    assert conditions["Initialized"] == conditions["Ready"] == "False"
    custom = k8s_client.CustomObjectsApi(core.api_client)
    labelled = custom.list_cluster_custom_object(
        "cilium.io",
        "v2",
        "ciliumnodes",
        label_selector="kubernetes.azure.com/user-iptables-rules=true",
    )
    assert [i["metadata"]["name"] for i in labelled["items"]] == [node]
    # Each check of the monitor creates an event of its own, named <node>.<unix seconds>.
    wait_for(
        lambda: len(core.list_event_for_all_namespaces(field_selector=f"involvedObject.name={node}").items) >= 2,
        "a second check",
    )  # fmt: skip
    events = core.list_event_for_all_namespaces(field_selector=f"involvedObject.name={node}").items
    assert {e.count for e in events} == {1}
    assert len({e.metadata.name for e in events}) == len(events)
    assert all(e.metadata.name.startswith(f"{node}.") for e in events)


def _window(**schedule) -> dict:
    return {
        "maintenanceWindow": {
            "schedule": schedule,
            "durationHours": 4,
            "utcOffset": "+00:00",
            "startDate": "2026-11-02",  # a Monday
            "startTime": "02:00",
        }
    }


def test_the_node_disruption_policy_follows_its_window_and_interval():
    biweekly = built_cluster(
        "c1",
        1,
        node_disruption_policy="AllowDuringMaintenanceWindow",
        maintenance={
            "aksManagedNodeOSUpgradeSchedule": _window(
                weekly={"dayOfWeek": "Monday", "intervalWeeks": 2}
            )
        },
    )
    on_week = datetime.datetime(2026, 11, 16, 3, 0, tzinfo=datetime.UTC)  # two weeks on
    off_week = datetime.datetime(2026, 11, 23, 3, 0, tzinfo=datetime.UTC)
    outside = datetime.datetime(2026, 11, 16, 7, 0, tzinfo=datetime.UTC)

    assert aks.disruption_refusal(biweekly, on_week) is None
    assert aks.disruption_refusal(biweekly, off_week).code == "OperationOutsideNodeDisruptionWindow"
    assert aks.disruption_refusal(biweekly, outside).code == "OperationOutsideNodeDisruptionWindow"
    # Without an aksManagedNodeOSUpgradeSchedule the policy allows the change at any time.
    unscheduled = built_cluster("c2", 2, node_disruption_policy="AllowDuringMaintenanceWindow")
    assert aks.disruption_refusal(unscheduled, off_week) is None
    blocked = built_cluster("c3", 3, node_disruption_policy="Block")
    assert aks.disruption_refusal(blocked, on_week).code == "OperationBlockedByNodeDisruptionPolicy"


def test_the_node_disruption_profile_shows_only_in_preview_api_versions(quiet):
    spec = quiet.one(eligible_clean, "eligible clean cluster")
    change(quiet, spec, nodeDisruptionPolicy="Block")
    url = f"{quiet.endpoint}{spec.arm_id}"
    headers = {"Authorization": "Bearer test"}

    stable = requests.get(url, params={"api-version": "2026-08-01"}, headers=headers,
                          verify=quiet.ca, timeout=10).json()  # fmt: skip
    preview = requests.get(url, params={"api-version": "2026-02-02-preview"}, headers=headers,
                           verify=quiet.ca, timeout=10).json()  # fmt: skip

    assert "nodeDisruptionProfile" not in stable["properties"]
    assert preview["properties"]["nodeDisruptionProfile"] == {"nodeDisruptionPolicy": "Block"}
    client = quiet.container_service(spec.subscription_id)
    body, _ = mode_update(client, spec, "BpfVeth")
    with pytest.raises(HttpResponseError) as refused:
        client.managed_clusters.begin_create_or_update(spec.resource_group, spec.name, body)
    assert refused.value.error.code == "OperationBlockedByNodeDisruptionPolicy"


def test_resource_graph_lags_arm(quiet):
    spec = quiet.one(eligible_clean, "eligible clean cluster")
    quiet.admin("PUT", "faults", {"graphLagSeconds": 600})  # one real second at time scale 600
    graph = quiet.resource_graph()

    def row() -> dict:
        answer = graph.resources(
            QueryRequest(subscriptions=[spec.subscription_id], query=MODE_QUERY)
        )
        return next(r for r in answer.data if r["id"] == spec.arm_id)

    assert row()["state"] == "Succeeded"
    client = quiet.container_service(spec.subscription_id)
    body, _ = mode_update(client, spec, "BpfVeth")
    client.managed_clusters.begin_create_or_update(spec.resource_group, spec.name, body)

    assert (
        client.managed_clusters.get(spec.resource_group, spec.name).properties.provisioning_state
        == "Updating"
    )
    assert row() == {"id": spec.arm_id, "mode": "None", "state": "Succeeded"}  # not yet indexed
    time.sleep(1.5)  # the lag, and the operation's 0.3 s
    assert row() == {"id": spec.arm_id, "mode": "BpfVeth", "state": "Succeeded"}
