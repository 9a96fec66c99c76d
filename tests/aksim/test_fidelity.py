"""aksim's ARM answers compared with Azure's, for every ARM call Wavegate makes: the field names
and JSON types of the public REST API spec examples (Azure/azure-rest-api-specs), and the status
codes and headers of real AKS calls recorded by the Azure CLI's tests (Azure/azure-cli,
src/azure-cli/azure/cli/command_modules/acs/tests/latest/recordings/). The expected shapes are
small literals written here, each naming the example it was read from.

A shape is a JSON type, a dict of field -> shape (every field must be present), or a
one-item list [shape] (every item must have it). Fields of an example that aksim's clusters do
not have (linuxProfile, diskEncryptionSetID, availabilityZones, outbound IP lists) are left out.
"""

from __future__ import annotations

import base64
import re
import time
from typing import Any

import pytest
import requests
import yaml
from azure.core.exceptions import HttpResponseError
from azure.mgmt.resourcegraph.models import QueryRequest
from starlette.requests import Request

from aksim import throttle
from aksim.arm import MODE_TARGET, Arm
from aksim.state import Simulator
from tests.aksim.builders import eligible_clean, mode_update

API = "2026-08-01"
GRAPH_API = "2021-03-01"

# --- shapes read from the examples ------------------------------------------------------------
# aks/stable/2026-08-01/examples/ManagedClustersGet.json (agentPoolProfiles[0], "eTag" included)
POOL_PROFILE = {
    "name": str,
    "count": int,
    "currentOrchestratorVersion": str,
    "eTag": str,
    "maxPods": int,
    "nodeImageVersion": str,
    "orchestratorVersion": str,
    "osType": str,
    "provisioningState": str,
    "upgradeSettings": {"maxSurge": str},
    "vmSize": str,
}
# aks/stable/2026-08-01/examples/ManagedClustersGet.json
CLUSTER = {
    "name": str,
    "type": str,
    "eTag": str,
    "id": str,
    "location": str,
    "tags": dict,
    "properties": {
        "agentPoolProfiles": [POOL_PROFILE],
        "azurePortalFQDN": str,
        "currentKubernetesVersion": str,
        "dnsPrefix": str,
        "enableRBAC": bool,
        "kubernetesVersion": str,
        "maxAgentPools": int,
        "networkProfile": {
            "dnsServiceIP": str,
            "ipFamilies": [str],
            "loadBalancerSku": str,
            "networkPlugin": str,
            "outboundType": str,
            "serviceCidr": str,
            "serviceCidrs": [str],
        },
        "nodeResourceGroup": str,
        "provisioningState": str,
        "servicePrincipalProfile": {"clientId": str},
    },
}
# aks/stable/2026-08-01/examples/AdvancedNetworkingTransitEncryption.json (networkProfile)
ADVANCED_NETWORKING = {
    "enabled": bool,
    "observability": {"enabled": bool},
    "security": {"enabled": bool},
}
# aks/stable/2026-08-01/examples/ManagedClustersList.json and
# aks/stable/2025-10-01/examples/ManagedClustersListByResourceGroup.json: {"value": [cluster]}
CLUSTER_LIST = {"value": [CLUSTER]}
# The recorded operation status bodies (test_aks_abort.yaml; test_aks_azure_cni_overlay_migration
# .yaml): exactly these fields while it runs, plus endTime once it ended.
OPERATION_RUNNING = {"name": str, "status": str, "startTime": str}
OPERATION_ENDED = {**OPERATION_RUNNING, "endTime": str}
# aks/stable/2026-08-01/examples/MaintenanceConfigurationsGet_MaintenanceWindow.json
MAINTENANCE = {
    "name": str,
    "id": str,
    "properties": {
        "maintenanceWindow": {
            "durationHours": int,
            "schedule": dict,
            "startDate": str,
            "startTime": str,
            "utcOffset": str,
        }
    },
}
# aks/stable/2025-10-01/examples/MaintenanceConfigurationsList_MaintenanceWindow.json
MAINTENANCE_LIST = {"value": [MAINTENANCE]}
# aks/stable/2025-10-01/examples/ManagedClustersListClusterUserCredentials.json
CREDENTIALS = {"kubeconfigs": [{"name": str, "value": str}]}
# resourcegraph/stable/2021-03-01/examples/ResourcesBasicQuery.json
GRAPH_RESULT = {
    "totalRecords": int,
    "count": int,
    "resultTruncated": str,
    "facets": list,
    "data": [{"id": str, "name": str, "type": str, "location": str, "tags": dict}],
}
# ARM's error body (the common-types ErrorResponse): code and message, the rest optional.
ERROR_FIELDS = {"code", "message", "target", "details", "additionalInfo"}

# The recorded operation URL: …/locations/{location}/operations/{id}?api-version=2016-03-30
# &t=…&c=…&s=…&h=… (test_aks_abort.yaml).
OPERATION_URL = re.compile(
    r"^https://[^/]+/subscriptions/[0-9a-f-]{36}/providers/Microsoft\.ContainerService"
    r"/locations/[a-z0-9]+/(operations|operationresults)/[0-9a-f-]{36}"
    r"\?api-version=2016-03-30&t=\d+&c=[\w-]+&s=[\w-]+&h=[\w-]+$"
)


def shape_errors(value: Any, shape: Any, path: str = "$") -> list[str]:
    """Where `value` departs from `shape` (empty when it matches)."""
    if isinstance(shape, dict):
        if not isinstance(value, dict):
            return [f"{path}: {type(value).__name__}, not an object"]
        found = []
        for key, inner in shape.items():
            if key not in value:
                found.append(f"{path}.{key}: missing")
            else:
                found += shape_errors(value[key], inner, f"{path}.{key}")
        return found
    if isinstance(shape, list):
        if not isinstance(value, list):
            return [f"{path}: {type(value).__name__}, not an array"]
        return [
            e for i, item in enumerate(value) for e in shape_errors(item, shape[0], f"{path}[{i}]")
        ]
    if shape is int and isinstance(value, bool):
        return [f"{path}: bool, not int"]
    return (
        []
        if isinstance(value, shape)
        else [f"{path}: {type(value).__name__}, not {shape.__name__}"]
    )


def unknown_fields(model: Any, path: str = "$") -> list[str]:
    """Fields of a containerservice SDK model's JSON that its api-version does not define (a
    misspelt key would otherwise reach Wavegate as a silent None)."""
    names = {rf._rest_name: attr for attr, rf in model._attr_to_rest_field.items()}
    found = []
    for key in model:
        if key not in names:
            found.append(f"{path}.{key}")
            continue
        value = getattr(model, names[key])
        items = value if isinstance(value, list) else [value]
        for i, item in enumerate(items):
            if hasattr(item, "_attr_to_rest_field"):
                where = f"{path}.{key}[{i}]" if isinstance(value, list) else f"{path}.{key}"
                found += unknown_fields(item, where)
    return found


class Raw:
    """Plain HTTPS to aksim's ARM, to see status codes and headers the SDK hides."""

    def __init__(self, aksim, token: str = "fidelity-test") -> None:
        self.endpoint = aksim.endpoint
        self.ca = aksim.ca
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"

    def url(self, path_or_url: str, api: str | None = API) -> str:
        url = path_or_url if path_or_url.startswith("https://") else self.endpoint + path_or_url
        if api and "api-version=" not in url:
            url += ("&" if "?" in url else "?") + f"api-version={api}"
        return url

    def call(self, method: str, path: str, body: Any = None, api: str | None = API):
        # verify per request: a session's own gives way to REQUESTS_CA_BUNDLE
        return self.session.request(
            method, self.url(path, api), json=body, timeout=30, verify=self.ca
        )


def cluster_path(cluster) -> str:
    return cluster.arm_id


def wait_ended(raw: Raw, url: str, deadline: float = 30) -> requests.Response:
    until = time.monotonic() + deadline
    while True:
        answer = raw.call("GET", url, api=None)
        if answer.json()["status"] != "InProgress" or time.monotonic() > until:
            return answer
        time.sleep(0.05)


def put_mode(raw: Raw, cluster, mode: str) -> requests.Response:
    body = raw.call("GET", cluster_path(cluster)).json()
    body["properties"]["networkProfile"]["advancedNetworking"] = {
        "enabled": True,
        "performance": {"accelerationMode": mode},
    }
    return raw.call("PUT", cluster_path(cluster), body)


# --- managed clusters: get and list ----------------------------------------------------------
def test_a_cluster_reads_as_the_get_example_with_arm_headers(aksim):
    cluster = aksim.one(lambda c: c.acns and not c.private, "public ACNS cluster")
    raw = Raw(aksim)

    answer = raw.call("GET", cluster_path(cluster))

    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/json")
    body = answer.json()
    assert shape_errors(body, CLUSTER) == []
    assert shape_errors(body["properties"], {"fqdn": str, "powerState": {"code": str}}) == []
    advanced = body["properties"]["networkProfile"]["advancedNetworking"]
    assert shape_errors(advanced, ADVANCED_NETWORKING) == []
    assert isinstance(advanced["performance"]["accelerationMode"], str)
    # As recorded (test_aks_abort.yaml): a read shows the subscription-wide reads left only.
    assert int(answer.headers["x-ms-ratelimit-remaining-subscription-global-reads"]) > 0
    assert "x-ms-ratelimit-remaining-subscription-reads" not in answer.headers
    assert answer.headers["x-ms-request-id"]

    model = aksim.container_service(cluster.subscription_id).managed_clusters.get(
        cluster.resource_group, cluster.name
    )
    assert unknown_fields(model) == []


def test_lists_by_subscription_and_resource_group_read_as_the_list_examples(aksim):
    cluster = aksim.fleet.clusters[0]
    raw = Raw(aksim)
    by_sub = f"/subscriptions/{cluster.subscription_id}/providers/Microsoft.ContainerService/managedClusters"
    by_rg = (
        f"/subscriptions/{cluster.subscription_id}/resourceGroups/{cluster.resource_group}"
        "/providers/Microsoft.ContainerService/managedClusters"
    )

    for path in (by_sub, by_rg):
        answer = raw.call("GET", path)
        assert answer.status_code == 200
        body = answer.json()
        assert shape_errors(body, CLUSTER_LIST) == []
        assert set(body) <= {"value", "nextLink"}
        if "nextLink" in body:  # the fixture's page size makes lists page
            assert raw.call("GET", body["nextLink"], api=None).status_code == 200

    client = aksim.container_service(cluster.subscription_id)
    for model in client.managed_clusters.list():
        assert unknown_fields(model) == [], model.name


# --- PUT, the operation, its result -----------------------------------------------------------
def test_an_accepted_put_answers_as_the_recorded_update_and_its_operation_too(aksim):
    cluster = aksim.one(eligible_clean, "eligible clean cluster")
    aksim.admin("PUT", "faults", {"backgroundOperationRate": 0})
    raw = Raw(aksim)

    put = put_mode(raw, cluster, "BpfVeth")

    # Recorded `az aks update`s (test_aks_create_loadbalancer_then_update.yaml,
    # test_aks_azure_cni_overlay_migration.yaml): 200, the cluster, Azure-AsyncOperation only.
    assert put.status_code == 200
    assert shape_errors(put.json(), CLUSTER) == []
    assert put.json()["properties"]["provisioningState"] == "Updating"
    status_url = put.headers["Azure-AsyncOperation"]
    assert OPERATION_URL.match(status_url), status_url
    assert "/operations/" in status_url
    for absent in ("Location", "Retry-After", "ETag"):
        assert absent not in put.headers, absent
    # A write shows both counts left (test_aks_abort.yaml).
    assert int(put.headers["x-ms-ratelimit-remaining-subscription-global-writes"]) > 0
    assert int(put.headers["x-ms-ratelimit-remaining-subscription-writes"]) > 0

    running = raw.call("GET", status_url, api=None)
    assert running.status_code == 200
    assert running.json()["status"] == "InProgress"
    assert shape_errors(running.json(), OPERATION_RUNNING) == []
    assert set(running.json()) == set(OPERATION_RUNNING)
    assert "Retry-After" not in running.headers

    ended = wait_ended(raw, status_url)
    assert ended.json()["status"] == "Succeeded"
    assert set(ended.json()) == set(OPERATION_ENDED)
    assert shape_errors(ended.json(), OPERATION_ENDED) == []
    assert ended.json()["endTime"] >= ended.json()["startTime"]

    result = raw.call("GET", status_url.replace("/operations/", "/operationresults/"), api=None)
    assert result.status_code == 204
    assert result.content == b""


def test_the_sdk_poller_waits_its_30_s_default_as_aks_sends_no_retry_after(aksim):
    cluster = aksim.one(eligible_clean, "eligible clean cluster")
    client = aksim.container_service(cluster.subscription_id)  # no polling_interval: the default
    body, etag = mode_update(client, cluster, "BpfVeth")

    poller = client.managed_clusters.begin_create_or_update(
        cluster.resource_group, cluster.name, body, etag=etag
    )

    assert poller.polling_method()._extract_delay() == 30
    # The poller's thread sleeps 30 s before its first read; end the operation under it.
    client.managed_clusters.begin_abort_latest_operation(
        cluster.resource_group, cluster.name, polling=False
    )


# --- abort ------------------------------------------------------------------------------------
def test_an_abort_cancels_the_running_operation_and_the_cluster_reads_canceled(aksim):
    cluster = aksim.one(eligible_clean, "eligible clean cluster")
    aksim.admin("PUT", "faults", {"stuckOperations": True, "backgroundOperationRate": 0})
    client = aksim.container_service(cluster.subscription_id, polling_interval=0.05)
    body, _ = mode_update(client, cluster, "BpfVeth")
    update = client.managed_clusters.begin_create_or_update(
        cluster.resource_group, cluster.name, body
    )
    raw = Raw(aksim)
    path = cluster_path(cluster) + "/abort"

    aborted = raw.call("POST", path)

    # ManagedClustersAbortOperation.json: 202 with Azure-AsyncOperation and Location.
    assert aborted.status_code == 202
    assert OPERATION_URL.match(aborted.headers["Azure-AsyncOperation"])
    assert OPERATION_URL.match(aborted.headers["Location"])
    assert "/operationresults/" in aborted.headers["Location"]
    abort_status = raw.call("GET", aborted.headers["Azure-AsyncOperation"], api=None).json()
    assert abort_status["status"] == "Succeeded"
    assert raw.call("GET", aborted.headers["Location"], api=None).status_code == 204

    with pytest.raises(HttpResponseError):
        update.result(timeout=30)
    assert update.status() == "Canceled"
    after = client.managed_clusters.get(cluster.resource_group, cluster.name)
    assert after.properties.provisioning_state == "Canceled"
    assert aksim.truth(cluster)["operation"]["status"] == "Canceled"
    assert aksim.truth(cluster)["accelerationMode"] == "None"
    # Nothing runs any more: 204 (the example's other answer).
    assert raw.call("POST", path).status_code == 204


def test_the_sdk_abort_poller_ends_and_a_new_put_is_accepted(aksim):
    cluster = aksim.one(eligible_clean, "eligible clean cluster")
    aksim.admin("PUT", "faults", {"stuckOperations": True, "backgroundOperationRate": 0})
    client = aksim.container_service(cluster.subscription_id, polling_interval=0.05)
    body, _ = mode_update(client, cluster, "BpfVeth")
    client.managed_clusters.begin_create_or_update(
        cluster.resource_group, cluster.name, body, polling=False
    )

    client.managed_clusters.begin_abort_latest_operation(
        cluster.resource_group, cluster.name
    ).result(timeout=30)

    aksim.admin("PUT", "faults", {"stuckOperations": False})
    body, _ = mode_update(client, cluster, "BpfVeth")
    result = client.managed_clusters.begin_create_or_update(
        cluster.resource_group, cluster.name, body
    ).result(timeout=60)
    assert result.properties.provisioning_state == "Succeeded"


# --- maintenance configurations, credentials, Resource Graph ---------------------------------
def test_maintenance_configurations_read_as_the_list_and_get_examples(aksim):
    cluster = aksim.one(
        lambda c: "aksManagedNodeOSUpgradeSchedule" in c.maintenance, "cluster with a schedule"
    )
    raw = Raw(aksim)
    base = cluster_path(cluster) + "/maintenanceConfigurations"

    listed = raw.call("GET", base)
    one = raw.call("GET", base + "/aksManagedNodeOSUpgradeSchedule")

    assert (listed.status_code, one.status_code) == (200, 200)
    windows = [c for c in listed.json()["value"] if "maintenanceWindow" in c["properties"]]
    assert shape_errors({"value": windows}, MAINTENANCE_LIST) == []
    assert shape_errors(one.json(), MAINTENANCE) == []
    assert one.json()["name"] == "aksManagedNodeOSUpgradeSchedule"
    client = aksim.container_service(cluster.subscription_id)
    for config in client.maintenance_configurations.list_by_managed_cluster(
        cluster.resource_group, cluster.name
    ):
        assert unknown_fields(config) == [], config.name


def test_user_credentials_read_as_the_example(aksim):
    cluster = aksim.fleet.clusters[0]
    raw = Raw(aksim)

    answer = raw.call("POST", cluster_path(cluster) + "/listClusterUserCredential")

    assert answer.status_code == 200
    assert shape_errors(answer.json(), CREDENTIALS) == []
    kubeconfig = yaml.safe_load(base64.b64decode(answer.json()["kubeconfigs"][0]["value"]))
    assert kubeconfig["clusters"]
    assert "x-ms-ratelimit-remaining-subscription-global-writes" in answer.headers
    result = aksim.container_service(cluster.subscription_id).managed_clusters
    credentials = result.list_cluster_user_credentials(cluster.resource_group, cluster.name)
    assert unknown_fields(credentials) == []


def test_resource_graph_answers_as_the_basic_query_example(aksim):
    subs = [s.id for s in aksim.fleet.subscriptions]
    query = (
        "resources | where type =~ 'microsoft.containerservice/managedclusters'"
        " | project id, name, type, location, tags | take 3"
    )
    raw = Raw(aksim)

    answer = raw.call(
        "POST",
        "/providers/Microsoft.ResourceGraph/resources",
        {"subscriptions": subs, "query": query},
        api=GRAPH_API,
    )

    assert answer.status_code == 200
    body = answer.json()
    assert shape_errors(body, GRAPH_RESULT) == []
    assert body["resultTruncated"] in {"true", "false"}
    assert {row["type"] for row in body["data"]} == {"microsoft.containerservice/managedclusters"}
    assert int(answer.headers["x-ms-user-quota-remaining"]) >= 0
    assert re.fullmatch(r"\d\d:\d\d:\d\d", answer.headers["x-ms-user-quota-resets-after"])

    sdk = aksim.resource_graph().resources(QueryRequest(subscriptions=subs, query=query))
    assert (sdk.count, sdk.total_records) == (body["count"], body["totalRecords"])


# --- errors -----------------------------------------------------------------------------------
def test_errors_carry_arm_error_bodies_and_a_refusal_names_its_target(aksim):
    cluster = aksim.one(
        lambda c: (
            c.kubernetes_version.startswith(("1.30", "1.31", "1.32"))
            and c.network_dataplane == "cilium"
            and c.power_state == "Running"
        ),
        "old cilium cluster",
    )
    raw = Raw(aksim)

    refused = put_mode(raw, cluster, "BpfVeth")
    missing = raw.call("GET", cluster_path(cluster) + "-nope")

    assert refused.status_code == 400
    error = refused.json()["error"]
    assert set(error) <= ERROR_FIELDS
    assert error["target"] == MODE_TARGET
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "ResourceNotFound"
    assert set(missing.json()["error"]) <= ERROR_FIELDS
    client = aksim.container_service(cluster.subscription_id)
    body, _ = mode_update(client, cluster, "BpfVeth")
    with pytest.raises(HttpResponseError) as sdk_refused:
        client.managed_clusters.begin_create_or_update(cluster.resource_group, cluster.name, body)
    assert sdk_refused.value.error.target == MODE_TARGET


# --- throttling -------------------------------------------------------------------------------
def _request(subscription: str, token: str) -> Request:
    return Request(
        {
            "type": "http",
            "method": "GET",
            "path": f"/subscriptions/{subscription}",
            "query_string": f"api-version={API}".encode(),
            "headers": [(b"authorization", f"Bearer {token}".encode())],
        }
    )


def test_the_subscription_wide_bucket_is_15_times_a_callers_and_throttles_all(
    test_fleet, monkeypatch
):
    sim = Simulator(test_fleet)
    sim.buckets.clock = lambda: 0.0  # no refill while the test runs
    monkeypatch.setitem(throttle.ARM_LIMITS, "reads", throttle.Limit(2, 1))
    arm = Arm(sim, None, "https://aksim.invalid")
    sub = test_fleet.subscriptions[0].id
    assert throttle.global_limit("reads").burst == 30

    left = []
    for caller in range(15):  # 15 callers, each within its own 2
        for _ in range(2):
            request = _request(sub, f"caller-{caller}")
            assert arm.guard(request, "reads", sub) is None
            headers = arm.reply(request, {}).headers
            left.append(int(headers["x-ms-ratelimit-remaining-subscription-global-reads"]))
    refused = arm.guard(_request(sub, "caller-15"), "reads", sub)

    assert left == list(range(29, -1, -1))
    assert refused is not None
    assert refused.status_code == 429
    assert b'"SubscriptionRequestsThrottled"' in bytes(refused.body)
    assert refused.headers["x-ms-ratelimit-remaining-subscription-global-reads"] == "0"
    assert int(refused.headers["Retry-After"]) >= 1
    other = test_fleet.subscriptions[1].id
    assert arm.guard(_request(other, "caller-15"), "reads", other) is None
