"""aksim's ARM, driven by the real Azure SDKs: every call Wavegate makes, with the values the
SDK models end up holding compared with the fleet file (a misspelt key would come back None)."""

from __future__ import annotations

import base64
import threading
import time
import uuid

import pytest
import yaml
from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceModifiedError
from azure.mgmt.containerservice import models as cs_models
from azure.mgmt.resourcegraph.models import QueryRequest, QueryRequestOptions
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config

from aksim.aks import IPTABLES_REFUSAL
from aksim.fleetfile import Cluster
from aksim.generate import _eligible
from tests.aksim.builders import eligible_clean, mode_update
from tests.aksim.recorders import StatusRecorder

CLUSTERS_QUERY = (
    "resources | where type =~ 'microsoft.containerservice/managedclusters' | order by id asc"
)


def test_it_lists_every_subscription(aksim):
    subs = list(aksim.subscriptions().subscriptions.list())

    assert sorted(s.subscription_id for s in subs) == sorted(
        s.id for s in aksim.fleet.subscriptions
    )
    by_id = {s.id: s for s in aksim.fleet.subscriptions}
    for sub in subs:
        assert sub.display_name == by_id[sub.subscription_id].name
        assert sub.tenant_id == aksim.fleet.tenant_id
        assert sub.state == "Enabled"
        assert sub.id == f"/subscriptions/{sub.subscription_id}"


def assert_matches_fleet(model: cs_models.ManagedCluster, cluster: Cluster) -> None:
    assert model.id == cluster.arm_id
    assert model.name == cluster.name
    assert model.location == cluster.location
    assert model.tags == cluster.tags
    assert model.e_tag
    props = model.properties
    assert props.kubernetes_version == cluster.kubernetes_version
    assert props.current_kubernetes_version == cluster.kubernetes_version
    assert props.provisioning_state == cluster.provisioning_state
    assert props.power_state.code == cluster.power_state
    network = props.network_profile
    assert network.network_plugin == cluster.network_plugin
    assert network.network_plugin_mode == cluster.network_plugin_mode
    assert network.network_dataplane == cluster.network_dataplane
    assert network.network_policy == cluster.network_policy
    advanced = network.advanced_networking
    if cluster.acns or cluster.acceleration_mode != "None":
        assert advanced.enabled is cluster.acns
        assert advanced.performance.acceleration_mode == cluster.acceleration_mode
    else:
        assert advanced is None
    private = props.api_server_access_profile
    assert bool(private and private.enable_private_cluster) is cluster.private
    assert bool(props.aad_profile and props.aad_profile.managed) is cluster.entra
    pools = {p.name: p for p in props.agent_pool_profiles}
    assert sorted(pools) == sorted(p.name for p in cluster.pools)
    for pool in cluster.pools:
        got = pools[pool.name]
        assert (got.mode, got.os_type, got.os_sku, got.count, got.vm_size) == (
            pool.mode,
            pool.os_type,
            pool.os_sku,
            pool.count,
            pool.vm_size,
        )
        assert got.node_image_version == pool.node_image_version
        assert got.orchestrator_version == pool.orchestrator_version


def test_it_lists_every_cluster_of_a_subscription_across_pages(aksim):
    sub = aksim.fleet.subscriptions[0]
    expected = {c.arm_id: c for c in aksim.clusters(lambda c: c.subscription_id == sub.id)}
    pages = list(aksim.container_service(sub.id).managed_clusters.list().by_page())

    assert len(pages) > 1, "the fixture's page size should make the list page"
    listed = [m for page in pages for m in page]
    assert sorted(m.id for m in listed) == sorted(expected)
    for model in listed:
        assert_matches_fleet(model, expected[model.id])


def test_it_lists_clusters_by_resource_group_and_gets_one(aksim):
    cluster = aksim.fleet.clusters[0]
    client = aksim.container_service(cluster.subscription_id)
    in_group = [
        c.arm_id
        for c in aksim.fleet.clusters
        if c.subscription_id == cluster.subscription_id
        and c.resource_group.lower() == cluster.resource_group.lower()
    ]

    listed = client.managed_clusters.list_by_resource_group(cluster.resource_group)
    assert sorted(m.id for m in listed) == sorted(in_group)
    assert_matches_fleet(client.managed_clusters.get(cluster.resource_group, cluster.name), cluster)


def test_it_serves_agent_pools_and_maintenance_configurations(aksim):
    cluster = aksim.one(
        lambda c: len(c.maintenance) >= 1 and len(c.pools) >= 2, "cluster with maintenance"
    )
    client = aksim.container_service(cluster.subscription_id)

    pools = {p.name: p for p in client.agent_pools.list(cluster.resource_group, cluster.name)}
    assert sorted(pools) == sorted(p.name for p in cluster.pools)
    for pool in cluster.pools:
        got = pools[pool.name]
        assert got.properties.os_sku == pool.os_sku
        assert got.properties.mode == pool.mode
        assert got.properties.count == pool.count
        assert got.properties.node_image_version == pool.node_image_version
    configs = {
        m.name: m
        for m in client.maintenance_configurations.list_by_managed_cluster(
            cluster.resource_group, cluster.name
        )
    }
    assert sorted(configs) == sorted(cluster.maintenance)
    schedule = cluster.maintenance.get("aksManagedNodeOSUpgradeSchedule")
    if schedule:
        window = configs["aksManagedNodeOSUpgradeSchedule"].properties.maintenance_window
        expected = schedule["maintenanceWindow"]
        assert window.schedule.weekly.day_of_week == expected["schedule"]["weekly"]["dayOfWeek"]
        assert window.duration_hours == expected["durationHours"]
        assert window.start_time == expected["startTime"]
        assert window.utc_offset == expected["utcOffset"]


def kubeconfig_of(aksim, cluster: Cluster) -> dict:
    client = aksim.container_service(cluster.subscription_id)
    result = client.managed_clusters.list_cluster_user_credentials(
        cluster.resource_group, cluster.name
    )
    value = result.kubeconfigs[0].value
    return yaml.safe_load(value if isinstance(value, bytes) else base64.b64decode(value))


def test_a_user_kubeconfig_reaches_the_clusters_kubernetes_api(aksim):
    cluster = aksim.one(
        lambda c: not c.entra and not c.private, "public cluster with local accounts"
    )
    config = kubeconfig_of(aksim, cluster)

    api = k8s_client.CoreV1Api(k8s_config.new_client_from_config_dict(config))
    nodes = api.list_node().items
    assert sorted(n.metadata.name for n in nodes) == sorted(n.name for n in cluster.nodes())


def test_an_entra_cluster_kubeconfig_uses_kubelogin(aksim):
    cluster = aksim.one(lambda c: c.entra and not c.private, "Entra ID cluster")
    user = kubeconfig_of(aksim, cluster)["users"][0]["user"]

    assert user["exec"]["command"] == "kubelogin"
    assert "6dae42f8-4368-4678-94ff-3960e28e3630" in user["exec"]["args"]
    assert "token" not in user


def test_resource_graph_pages_through_every_cluster(aksim):
    graph = aksim.resource_graph()
    subs = [s.id for s in aksim.fleet.subscriptions]
    rows, token, pages = [], None, 0
    while True:
        answer = graph.resources(
            QueryRequest(
                subscriptions=subs,
                query=CLUSTERS_QUERY,
                options=QueryRequestOptions(skip_token=token, top=25),
            )
        )
        pages += 1
        rows.extend(answer.data)
        assert answer.total_records == len(aksim.fleet.clusters)
        assert answer.count == len(answer.data)
        token = answer.skip_token
        if not token:
            break

    assert pages == 3
    assert [r["id"] for r in rows] == sorted(c.arm_id for c in aksim.fleet.clusters)
    by_id = {c.arm_id: c for c in aksim.fleet.clusters}
    for row in rows:
        cluster = by_id[row["id"]]
        assert row["subscriptionId"] == cluster.subscription_id
        assert row["resourceGroup"] == cluster.resource_group.lower()
        assert row["properties"]["kubernetesVersion"] == cluster.kubernetes_version
        assert (
            row["properties"]["networkProfile"].get("networkDataplane") == cluster.network_dataplane
        )
        assert row["tags"] == cluster.tags


def test_resource_graph_projects_paths_and_refuses_other_queries(aksim):
    graph = aksim.resource_graph()
    subs = [s.id for s in aksim.fleet.subscriptions]
    answer = graph.resources(
        QueryRequest(
            subscriptions=subs,
            query=(CLUSTERS_QUERY + " | project id, version = properties.kubernetesVersion, tags"),
        )
    )
    by_id = {c.arm_id: c for c in aksim.fleet.clusters}
    for row in answer.data:
        assert set(row) == {"id", "version", "tags"}
        assert row["version"] == by_id[row["id"]].kubernetes_version

    with pytest.raises(HttpResponseError) as refused:
        graph.resources(QueryRequest(subscriptions=subs, query="resources | summarize count()"))
    assert refused.value.status_code == 400
    assert refused.value.error.code == "BadRequest"


def test_enabling_an_eligible_cluster_runs_an_operation_to_bpfveth(aksim):
    cluster = aksim.one(eligible_clean, "eligible clean cluster")
    client = aksim.container_service(cluster.subscription_id, polling_interval=0.2)
    body, etag = mode_update(client, cluster, "BpfVeth")
    request_id = str(uuid.uuid4())

    poller = client.managed_clusters.begin_create_or_update(
        cluster.resource_group,
        cluster.name,
        body,
        etag=etag,
        match_condition=MatchConditions.IfNotModified,
        headers={"x-ms-client-request-id": request_id},
    )
    result = poller.result(timeout=60)

    assert result.properties.provisioning_state == "Succeeded"
    after = client.managed_clusters.get(cluster.resource_group, cluster.name)
    assert (
        after.properties.network_profile.advanced_networking.performance.acceleration_mode
        == "BpfVeth"
    )
    assert after.e_tag != etag
    accepted = aksim.admin("GET", "puts")["accepted"]
    assert [(p["clusterId"], p["clientRequestId"], p["mode"]) for p in accepted] == [
        (cluster.arm_id, request_id, "BpfVeth")
    ]
    assert aksim.truth(cluster)["accelerationMode"] == "BpfVeth"


def test_a_continuation_token_resumes_the_operation_in_a_new_client(aksim):
    cluster = aksim.one(eligible_clean, "eligible clean cluster")
    first = aksim.container_service(cluster.subscription_id, polling_interval=0.2)
    body, etag = mode_update(first, cluster, "BpfVeth")
    poller = first.managed_clusters.begin_create_or_update(
        cluster.resource_group,
        cluster.name,
        body,
        etag=etag,
        match_condition=MatchConditions.IfNotModified,
    )
    token = poller.continuation_token()

    second = aksim.container_service(cluster.subscription_id, polling_interval=0.2)
    resumed = second.managed_clusters.begin_create_or_update(
        cluster.resource_group, cluster.name, None, continuation_token=token
    )
    result = resumed.result(timeout=60)

    assert (
        result.properties.network_profile.advanced_networking.performance.acceleration_mode
        == "BpfVeth"
    )
    assert len(aksim.admin("GET", "puts")["accepted"]) == 1, "resuming must not send the PUT again"


def test_a_cluster_with_user_rules_is_refused_with_the_node_count(aksim):
    cluster = aksim.one(
        lambda c: (
            _eligible(c)
            and c.user_rules
            and c.acceleration_mode == "None"
            and c.node_disruption_policy == "Allow"
            and c.power_state == "Running"
        ),
        "eligible cluster with user rules",
    )
    client = aksim.container_service(cluster.subscription_id)
    body, etag = mode_update(client, cluster, "BpfVeth")

    with pytest.raises(HttpResponseError) as refused:
        client.managed_clusters.begin_create_or_update(
            cluster.resource_group,
            cluster.name,
            body,
            etag=etag,
            match_condition=MatchConditions.IfNotModified,
        )

    assert refused.value.status_code == 400
    assert refused.value.error.message == IPTABLES_REFUSAL.format(count=len(cluster.user_rules))
    puts = aksim.admin("GET", "puts")
    assert puts["accepted"] == []
    assert puts["refused"][0]["clusterId"] == cluster.arm_id


def test_an_old_cluster_is_refused_with_an_arm_error(aksim):
    cluster = aksim.one(
        lambda c: (
            c.kubernetes_version.startswith(("1.30", "1.31", "1.32"))
            and c.network_dataplane == "cilium"
            and c.power_state == "Running"
        ),
        "old cilium cluster",
    )
    client = aksim.container_service(cluster.subscription_id)
    body, _ = mode_update(client, cluster, "BpfVeth")

    with pytest.raises(HttpResponseError) as refused:
        client.managed_clusters.begin_create_or_update(cluster.resource_group, cluster.name, body)

    assert refused.value.status_code == 400
    assert refused.value.error.code == "K8sVersionNotSupported"
    assert "1.33" in str(refused.value.error.message)


def test_a_stale_etag_gets_412_and_a_second_put_gets_409(aksim):
    cluster = aksim.one(eligible_clean, "eligible clean cluster")
    client = aksim.container_service(cluster.subscription_id)
    body, etag = mode_update(client, cluster, "BpfVeth")
    aksim.admin("POST", f"clusters/{cluster.key}/change", {"tags": {**cluster.tags, "owner": "x"}})

    with pytest.raises(ResourceModifiedError):
        client.managed_clusters.begin_create_or_update(
            cluster.resource_group,
            cluster.name,
            body,
            etag=etag,
            match_condition=MatchConditions.IfNotModified,
        )

    body, _ = mode_update(client, cluster, "BpfVeth")
    client.managed_clusters.begin_create_or_update(cluster.resource_group, cluster.name, body)
    with pytest.raises(HttpResponseError) as busy:
        client.managed_clusters.begin_create_or_update(cluster.resource_group, cluster.name, body)
    assert busy.value.status_code == 409
    assert busy.value.error.code == "OperationNotAllowed"


def test_a_burst_of_reads_meets_429s_and_the_sdk_retries_through_them(aksim):
    cluster = aksim.fleet.clusters[0]
    recorder = StatusRecorder()
    client = aksim.container_service(cluster.subscription_id, per_retry_policies=[recorder])
    results: list[str] = []

    def read(n: int) -> None:
        for _ in range(n):
            results.append(client.managed_clusters.get(cluster.resource_group, cluster.name).name)

    threads = [threading.Thread(target=read, args=(50,)) for _ in range(8)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started

    assert results == [cluster.name] * 400
    # 250 reads in the bucket, refilled at 25 per second while the burst runs.
    first_429 = recorder.statuses.index(429)
    assert 250 <= first_429 <= 250 + 25 * elapsed, (first_429, elapsed)
    assert recorder.statuses.count(200) == 400
