"""aksim's per-cluster Kubernetes API, driven by the real `kubernetes` client over HTTPS."""

from __future__ import annotations

import base64
import gc
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import uvicorn
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.rest import ApiException

from aksim import kube, tls
from aksim.fleetfile import Fleet, Subscription
from aksim.launch import serve_command, wait_ready
from aksim.server import build_app
from aksim.state import USER_RULES_LABEL, Simulator
from tests.aksim.builders import SUBSCRIPTION, cluster, pool
from tests.processes import Process, wait_until

TENANT = "7e1f0c55-3f0e-4a4e-9a4e-2f3b1c9d0a11"
SYSTEM_NODES = ["aks-system-11111111-vmss000000", "aks-system-11111111-vmss000001"]
USER_NODE = "aks-user-22222222-vmss000000"
WINDOWS_NODE = "win000000"
LINUX_NODES = [*SYSTEM_NODES, USER_NODE]
SCAN_NS = "wavegate-scan"


def make_fleet() -> Fleet:
    cilium = cluster(
        "cilium",
        11,
        pools=[
            pool("system", "System", "Linux", "AzureLinux", 2, "11111111"),
            pool("user", "User", "Linux", "Ubuntu2404", 1, "22222222"),
            pool("win", "User", "Windows", "Windows2022", 1, "33333333"),
        ],
        user_rules={USER_NODE: ["docker"]},
    )
    entra = cluster("entra", 12, entra=True, network_dataplane="azure", network_policy=None)
    kubenet = cluster(
        "kubenet",
        13,
        network_plugin="kubenet",
        network_plugin_mode=None,
        network_dataplane=None,
        network_policy=None,
        acns=False,
        kubernetes_version="1.31.9",
    )
    private = cluster("private", 14, private=True)
    return Fleet(
        seed=1,
        profile="demo",
        tenant_id=TENANT,
        subscriptions=[Subscription(id=SUBSCRIPTION, name="sub-test")],
        clusters=[cilium, entra, kubenet, private],
    )


@dataclass
class Endpoint:
    url: str
    ca_pem: bytes
    sim: Simulator  # the server's own (in-process) or an identical twin (tokens are deterministic)
    clients: list[k8s.ApiClient] = field(default_factory=list)

    def kubeconfig(self, key: str) -> dict:
        return kube.kubeconfig(self.sim, self.sim.clusters[key], self.url, self.ca_pem)

    def api(self, key: str, token: str | None = None) -> k8s.ApiClient:
        config = self.kubeconfig(key)
        if token is not None:
            config["users"][0]["user"] = {"token": token}
        api = k8s_config.new_client_from_config_dict(config)
        self.clients.append(api)
        return api

    def close(self) -> None:
        # A server shutting down waits (TLS close_notify) for clients that keep connections open.
        # ApiClient.close() leaves its connections open, and responses kept alive by
        # reference cycles (tracebacks of caught ApiExceptions) hold theirs.
        gc.collect()
        for api in self.clients:
            api.last_response = None
            api.rest_client.pool_manager.clear()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Endpoint]:
    """`python -m aksim serve` as a real child process."""
    directory = tmp_path_factory.mktemp("aksim")
    fleet = make_fleet()
    fleet_path = directory / "fleet.json"
    fleet_path.write_text(fleet.to_json())
    argv, ready = serve_command(fleet_path, directory, time_scale=100)
    process = Process("aksim", argv, dict(os.environ), directory / "aksim.log").start()
    try:
        try:
            body = wait_ready(ready, process.running, timeout=30)
        except RuntimeError as exc:
            raise AssertionError(process.log()) from exc
        endpoint = Endpoint(body["endpoint"], Path(body["ca"]).read_bytes(), Simulator(fleet))
        yield endpoint
        endpoint.close()
    finally:
        process.stop()


@pytest.fixture
def in_process(tmp_path: Path) -> Iterator[Endpoint]:
    """The same app in a thread of this process, so a test can change the simulator's state."""
    sim = Simulator(make_fleet(), time_scale=1000)
    certificates = tls.create(tmp_path)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    url = f"https://127.0.0.1:{sock.getsockname()[1]}"
    server = uvicorn.Server(
        uvicorn.Config(
            build_app(sim, certificates, url),
            ssl_certfile=str(certificates.cert_path),
            ssl_keyfile=str(certificates.key_path),
            log_level="warning",
            lifespan="off",
        )
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started, 10, "the in-process server")
        endpoint = Endpoint(url, certificates.ca_pem(), sim)
        yield endpoint
        endpoint.close()
    finally:
        server.should_exit = True
        thread.join(10)


def _status(error: ApiException) -> dict:
    return json.loads(error.body)


def _scan_daemonset(name: str = "wavegate-scan") -> k8s.V1DaemonSet:
    labels = {"app": name, "wavegate.io/scan": "iptables"}
    return k8s.V1DaemonSet(
        metadata=k8s.V1ObjectMeta(name=name),
        spec=k8s.V1DaemonSetSpec(
            selector=k8s.V1LabelSelector(match_labels={"app": name}),
            template=k8s.V1PodTemplateSpec(
                metadata=k8s.V1ObjectMeta(labels=labels),
                spec=k8s.V1PodSpec(
                    host_network=True,
                    host_pid=True,
                    node_selector={"kubernetes.io/os": "linux"},
                    tolerations=[k8s.V1Toleration(operator="Exists")],
                    containers=[
                        k8s.V1Container(
                            name="scan",
                            image="mcr.microsoft.com/cbl-mariner/base/core@sha256:" + "a" * 64,
                            security_context=k8s.V1SecurityContext(privileged=True),
                        )
                    ],
                ),
            ),
        ),
    )


def _start_scan(api: k8s.ApiClient) -> None:
    core = k8s.CoreV1Api(api)
    core.create_namespace(
        k8s.V1Namespace(
            metadata=k8s.V1ObjectMeta(
                name=SCAN_NS, labels={"pod-security.kubernetes.io/enforce": "privileged"}
            )
        )
    )
    k8s.AppsV1Api(api).create_namespaced_daemon_set(SCAN_NS, _scan_daemonset())


def _wait_ready(api: k8s.ApiClient, ready: int) -> k8s.V1DaemonSet:
    apps = k8s.AppsV1Api(api)
    found: list[k8s.V1DaemonSet] = []

    def settled() -> bool:
        found[:] = [apps.read_namespaced_daemon_set("wavegate-scan", SCAN_NS)]
        return found[0].status.number_ready == ready

    wait_until(settled, 10, f"{ready} ready scan pods")
    return found[0]


def _log(core: k8s.CoreV1Api, pod: str, **options: object) -> tuple[int, str]:
    """(status, text) of a pod's log. kubernetes 36's read_namespaced_pod_log returns the
    repr of the bytes ("b'...'"), so read the raw answer as Wavegate must."""
    answer = core.read_namespaced_pod_log(pod, SCAN_NS, _preload_content=False, **options)
    return answer.status, answer.data.decode()


def _frames(log: str, node: str) -> dict[str, str]:
    """The dumps in a scan pod's log, checking the frame of DESIGN.md §5 line by line."""
    lines = log.splitlines()
    assert lines[-1] == f"### wavegate-scan node={node} done"
    dumps, rest = {}, lines[:-1]
    for family in ("ipv4", "ipv6"):
        assert rest[0] == f"### wavegate-scan node={node} family={family} begin"
        end = rest.index(f"### wavegate-scan node={node} family={family} end rc=0")
        dumps[family] = "\n".join(rest[1:end])
        rest = rest[end + 1 :]
    assert rest == []
    return dumps


# --- the served process -------------------------------------------------------------------------
def test_it_reports_the_cluster_version(served: Endpoint) -> None:
    version = k8s.VersionApi(served.api("cilium")).get_code()
    assert (version.git_version, version.major, version.minor) == ("v1.33.2", "1", "33")
    assert version.platform == "linux/amd64"
    assert k8s.VersionApi(served.api("kubenet")).get_code().git_version == "v1.31.9"


def test_it_lists_nodes_with_their_labels_and_readiness(served: Endpoint) -> None:
    nodes = k8s.CoreV1Api(served.api("cilium")).list_node()
    assert [n.metadata.name for n in nodes.items] == sorted([*LINUX_NODES, WINDOWS_NODE])
    assert nodes.metadata.resource_version
    by_name = {n.metadata.name: n for n in nodes.items}
    for node in nodes.items:
        ready = [c for c in node.status.conditions if c.type == "Ready"]
        assert [c.status for c in ready] == ["True"]
        assert node.metadata.uid
        assert node.metadata.creation_timestamp
        assert node.status.node_info.kubelet_version == "v1.33.2"
        assert node.status.node_info.container_runtime_version.startswith("containerd://")
    user = by_name[USER_NODE]
    assert user.metadata.labels["kubernetes.azure.com/agentpool"] == "user"
    assert user.metadata.labels["kubernetes.io/os"] == "linux"
    assert user.status.node_info.os_image.startswith("Ubuntu 24.04")
    assert "Azure Linux 3.0" in by_name[SYSTEM_NODES[0]].status.node_info.os_image
    windows = by_name[WINDOWS_NODE]
    assert windows.status.node_info.operating_system == "windows"
    assert windows.status.node_info.os_image == "Windows Server 2022 Datacenter"
    assert [a.type for a in user.status.addresses] == ["InternalIP", "Hostname"]
    assert not user.spec.unschedulable
    one = k8s.CoreV1Api(served.api("cilium")).read_node(USER_NODE)
    assert one.metadata.uid == user.metadata.uid


def test_it_selects_nodes_by_label(served: Endpoint) -> None:
    core = k8s.CoreV1Api(served.api("cilium"))

    def names(selector: str) -> list[str]:
        return [n.metadata.name for n in core.list_node(label_selector=selector).items]

    assert names("kubernetes.io/os=linux") == LINUX_NODES
    assert names("kubernetes.io/os!=linux") == [WINDOWS_NODE]
    assert names("kubernetes.azure.com/mode=system,kubernetes.io/os") == SYSTEM_NODES
    assert names("agentpool in (user,win)") == [USER_NODE, WINDOWS_NODE]
    assert names("!kubernetes.azure.com/ebpf-host-routing") == sorted([*LINUX_NODES, WINDOWS_NODE])
    with pytest.raises(ApiException) as error:
        core.read_node("aks-nope-00000000-vmss000000")
    assert error.value.status == 404
    assert _status(error.value)["reason"] == "NotFound"


def test_it_creates_and_deletes_namespaces(served: Endpoint) -> None:
    core = k8s.CoreV1Api(served.api("kubenet"))
    builtin = {n.metadata.name for n in core.list_namespace().items}
    assert {"default", "kube-system", "kube-public", "kube-node-lease"} <= builtin
    body = k8s.V1Namespace(
        metadata=k8s.V1ObjectMeta(
            name="ns-test", labels={"pod-security.kubernetes.io/enforce": "privileged"}
        )
    )
    created = core.create_namespace(body)
    assert created.status.phase == "Active"
    assert created.metadata.labels["pod-security.kubernetes.io/enforce"] == "privileged"
    with pytest.raises(ApiException) as error:
        core.create_namespace(body)
    assert error.value.status == 409
    assert _status(error.value)["reason"] == "AlreadyExists"
    assert core.read_namespace("ns-test").metadata.uid == created.metadata.uid

    # The client reads the answer as a V1Status, whatever the server sends; look at the JSON.
    answer = core.delete_namespace("ns-test", _preload_content=False)
    assert json.loads(answer.data)["status"]["phase"] == "Terminating"
    with pytest.raises(ApiException) as error:
        core.read_namespace("ns-test")
    assert error.value.status == 404
    with pytest.raises(ApiException) as error:
        core.delete_namespace("kube-system")
    assert error.value.status == 403


def test_it_runs_a_scan_daemonset_with_one_pod_per_linux_node(served: Endpoint) -> None:
    api = served.api("cilium")
    core, apps = k8s.CoreV1Api(api), k8s.AppsV1Api(api)
    _start_scan(api)
    daemonset = _wait_ready(api, len(LINUX_NODES))
    status = daemonset.status
    assert status.desired_number_scheduled == status.current_number_scheduled == 3
    assert (status.number_available, status.updated_number_scheduled) == (3, 3)
    assert status.observed_generation == daemonset.metadata.generation == 1

    pods = core.list_namespaced_pod(SCAN_NS, label_selector="wavegate.io/scan=iptables").items
    assert sorted(p.spec.node_name for p in pods) == LINUX_NODES
    for pod in pods:
        assert pod.metadata.name.startswith("wavegate-scan-")
        assert len(pod.metadata.name) == len("wavegate-scan-") + 5
        assert pod.status.phase == "Running"
        assert pod.status.container_statuses[0].ready
        assert pod.metadata.owner_references[0].kind == "DaemonSet"
        assert pod.metadata.owner_references[0].uid == daemonset.metadata.uid
    again = core.list_pod_for_all_namespaces(label_selector="app=wavegate-scan").items
    assert [p.metadata.name for p in again] == sorted(p.metadata.name for p in pods)

    for pod in pods:
        status, log = _log(core, pod.metadata.name, container="scan")
        assert status == 200
        dumps = _frames(log, pod.spec.node_name)
        assert "*filter" in dumps["ipv4"]
        assert "COMMIT" in dumps["ipv4"]
        _, tail = _log(core, pod.metadata.name, tail_lines=1)
        assert tail == f"### wavegate-scan node={pod.spec.node_name} done\n"

    apps.delete_namespaced_daemon_set("wavegate-scan", SCAN_NS, propagation_policy="Foreground")
    with pytest.raises(ApiException) as error:
        apps.read_namespaced_daemon_set("wavegate-scan", SCAN_NS)
    assert error.value.status == 404
    assert core.list_namespaced_pod(SCAN_NS).items == []
    core.delete_namespace(SCAN_NS)
    with pytest.raises(ApiException) as error:
        core.read_namespace(SCAN_NS)
    assert error.value.status == 404


def test_it_refuses_a_daemonset_in_a_missing_namespace(served: Endpoint) -> None:
    apps = k8s.AppsV1Api(served.api("kubenet"))
    with pytest.raises(ApiException) as error:
        apps.create_namespaced_daemon_set("nowhere", _scan_daemonset())
    assert error.value.status == 404
    assert _status(error.value)["message"] == 'namespaces "nowhere" not found'


def test_it_labels_cilium_nodes_with_user_rules(served: Endpoint) -> None:
    custom = k8s.CustomObjectsApi(served.api("cilium"))
    listed = custom.list_cluster_custom_object("cilium.io", "v2", "ciliumnodes")
    labels = {
        i["metadata"]["name"]: i["metadata"]["labels"][USER_RULES_LABEL] for i in listed["items"]
    }
    assert labels == {SYSTEM_NODES[0]: "false", SYSTEM_NODES[1]: "false", USER_NODE: "true"}
    one = custom.get_cluster_custom_object("cilium.io", "v2", "ciliumnodes", USER_NODE)
    assert one["spec"]["addresses"][0]["type"] == "InternalIP"

    without_cilium = k8s.CustomObjectsApi(served.api("kubenet"))
    with pytest.raises(ApiException) as error:
        without_cilium.list_cluster_custom_object("cilium.io", "v2", "ciliumnodes")
    assert error.value.status == 404
    assert _status(error.value)["message"] == "the server could not find the requested resource"


def _jwt(claims: dict) -> str:
    def part(value: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    return f"{part({'alg': 'RS256', 'typ': 'JWT'})}.{part(claims)}.c2lnbmF0dXJl"


def test_it_refuses_a_wrong_token(served: Endpoint) -> None:
    with pytest.raises(ApiException) as error:
        k8s.CoreV1Api(served.api("cilium", token="not-the-token")).list_node()
    assert error.value.status == 401
    assert _status(error.value) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "Unauthorized",
        "reason": "Unauthorized",
        "code": 401,
    }
    other_cluster = served.sim.clusters["kubenet"].token
    with pytest.raises(ApiException) as error:
        k8s.CoreV1Api(served.api("cilium", token=other_cluster)).list_node()
    assert error.value.status == 401


def test_it_accepts_entra_tokens_for_the_aks_audience_only(served: Endpoint) -> None:
    config = served.kubeconfig("entra")
    user = config["users"][0]
    assert user["name"] == "clusterUser_rg-test_aks-entra"
    assert user["user"]["exec"]["command"] == "kubelogin"
    assert user["user"]["exec"]["args"] == [
        "get-token", "--environment", "AzurePublicCloud",
        "--server-id", "6dae42f8-4368-4678-94ff-3960e28e3630",
        "--client-id", "80faf920-1908-4b52-b5ef-a8e7bedfc67a",
        "--tenant-id", TENANT, "--login", "devicecode",
    ]  # fmt: skip

    good = _jwt({"aud": kube.AKS_SERVER_APP_ID, "tid": TENANT, "exp": time.time() + 3600})
    assert k8s.CoreV1Api(served.api("entra", token=good)).list_node().items
    for claims in (
        {"aud": "https://management.azure.com", "tid": TENANT},
        {"aud": kube.AKS_SERVER_APP_ID, "exp": time.time() - 60},
    ):
        with pytest.raises(ApiException) as error:
            k8s.CoreV1Api(served.api("entra", token=_jwt(claims))).list_node()
        assert error.value.status == 401
    # A cluster without Entra ID integration takes no Entra token.
    with pytest.raises(ApiException) as error:
        k8s.CoreV1Api(served.api("kubenet", token=good)).list_node()
    assert error.value.status == 401


def test_it_gives_kubeconfigs_as_aks_does(served: Endpoint) -> None:
    config = served.kubeconfig("cilium")
    assert config["current-context"] == "aks-cilium"
    assert config["clusters"][0]["cluster"]["server"] == f"{served.url}/k8s/cilium"
    assert config["users"][0]["user"] == {"token": served.sim.clusters["cilium"].token}
    ca = base64.b64decode(config["clusters"][0]["cluster"]["certificate-authority-data"])
    assert ca == served.ca_pem
    private = served.kubeconfig("private")["clusters"][0]["cluster"]["server"]
    assert private.startswith("https://aks-private-dns-")
    assert private.endswith(".privatelink.westeurope.azmk8s.io:443")


def test_it_never_serves_private_or_unknown_clusters(served: Endpoint) -> None:
    token = served.sim.clusters["private"].token
    direct = kube.kubeconfig(served.sim, served.sim.clusters["private"], served.url, served.ca_pem)
    direct["clusters"][0]["cluster"]["server"] = f"{served.url}/k8s/private"
    with pytest.raises(ApiException) as error:
        k8s.VersionApi(k8s_config.new_client_from_config_dict(direct)).get_code()
    assert error.value.status == 404
    direct["clusters"][0]["cluster"]["server"] = f"{served.url}/k8s/no-such-cluster"
    with pytest.raises(ApiException) as error:
        k8s.VersionApi(k8s_config.new_client_from_config_dict(direct)).get_code()
    assert error.value.status == 404
    assert token  # the private cluster has a token; it simply cannot be reached


# --- in-process, with the simulator's state in hand ---------------------------------------------
def test_it_leaves_pods_pending_where_they_cannot_run(in_process: Endpoint) -> None:
    state = in_process.sim.clusters["cilium"]
    state.unschedulable.add(SYSTEM_NODES[0])
    state.not_ready.add(SYSTEM_NODES[1])
    api = in_process.api("cilium")
    core = k8s.CoreV1Api(api)
    _start_scan(api)
    status = _wait_ready(api, 1).status
    assert (status.desired_number_scheduled, status.number_ready) == (3, 1)
    assert status.number_unavailable == 2

    pods = {
        p.metadata.name: p
        for p in core.list_namespaced_pod(SCAN_NS, label_selector="wavegate.io/scan").items
    }
    unscheduled = [p for p in pods.values() if p.spec.node_name is None]
    assert len(unscheduled) == 1
    scheduled = unscheduled[0].status.conditions[0]
    assert (scheduled.type, scheduled.status, scheduled.reason) == (
        "PodScheduled",
        "False",
        "Unschedulable",
    )
    pinned = unscheduled[0].spec.affinity.node_affinity
    term = pinned.required_during_scheduling_ignored_during_execution.node_selector_terms[0]
    assert term.match_fields[0].values == [SYSTEM_NODES[0]]
    # The API server has no kubelet to ask for an unscheduled pod's log: an empty answer.
    assert _log(core, unscheduled[0].metadata.name) == (204, "")

    waiting = next(p for p in pods.values() if p.spec.node_name == SYSTEM_NODES[1])
    assert waiting.status.phase == "Pending"
    with pytest.raises(ApiException) as error:
        _log(core, waiting.metadata.name)
    assert error.value.status == 400
    assert _status(error.value)["message"] == (
        f'container "scan" in pod "{waiting.metadata.name}" is waiting to start: ContainerCreating'
    )
    node = core.read_node(SYSTEM_NODES[1])
    assert [c.status for c in node.status.conditions if c.type == "Ready"] == ["False"]
    running = next(p for p in pods.values() if p.spec.node_name == USER_NODE)
    assert running.status.phase == "Running"


def test_it_reports_a_new_warning_event_per_check(in_process: Endpoint) -> None:
    sim = in_process.sim
    state = sim.clusters["cilium"]
    first = sim.emit_warning(state, USER_NODE, "BlockedIPTablesRule", sim.now())
    sim.emit_warning(state, SYSTEM_NODES[0], "UnexpectedIPTablesRules", sim.now())
    core = k8s.CoreV1Api(in_process.api("cilium"))

    def events(selector: str) -> list[k8s.CoreV1Event]:
        return core.list_event_for_all_namespaces(field_selector=selector).items

    blocked = events("involvedObject.kind=Node,reason=BlockedIPTablesRule")
    assert [(e.involved_object.name, e.type, e.count) for e in blocked] == [
        (USER_NODE, "Warning", 1)
    ]
    assert blocked[0].source.component == "azure-iptables-monitor"
    assert blocked[0].metadata.uid == first.uid
    assert blocked[0].message.startswith("A process attempted to add iptables rules")
    assert len(events("involvedObject.kind=Node,type==Warning")) == 2
    assert events("type!=Warning") == []
    assert [e.reason for e in events(f"involvedObject.name={SYSTEM_NODES[0]}")] == [
        "UnexpectedIPTablesRules"
    ]
    assert len(core.list_namespaced_event("default").items) == 2
    assert core.list_namespaced_event("kube-system").items == []

    # The monitor creates a new event at each check (count 1), it never raises a count.
    second = sim.emit_warning(state, USER_NODE, "BlockedIPTablesRule", sim.now() + 300)
    again = events("reason=BlockedIPTablesRule")
    assert sorted((e.metadata.uid, e.count) for e in again) == sorted(
        [(first.uid, 1), (second.uid, 1)]
    )
    assert second.name == f"{USER_NODE}.{int(second.first)}"
    with pytest.raises(ApiException) as error:
        events("spec.nonsense=1")
    assert error.value.status == 400


def test_it_times_out_while_the_api_is_down(in_process: Endpoint) -> None:
    sim = in_process.sim
    sim.faults.kube_timeout_seconds = 0.5
    sim.clusters["cilium"].api_down = True
    core = k8s.CoreV1Api(in_process.api("cilium"))
    started = time.monotonic()
    with pytest.raises(ApiException) as error:
        core.list_node(_request_timeout=10)
    assert error.value.status == 504
    assert _status(error.value)["reason"] == "Timeout"
    assert time.monotonic() - started >= 0.5
    # Other clusters answer meanwhile, and this one again once it is back.
    assert k8s.CoreV1Api(in_process.api("kubenet")).list_node().items
    sim.clusters["cilium"].api_down = False
    assert core.list_node().items


def test_it_forgets_deleted_clusters(in_process: Endpoint) -> None:
    core = k8s.CoreV1Api(in_process.api("kubenet"))
    assert core.list_node().items
    in_process.sim.clusters["kubenet"].deleted = True
    with pytest.raises(ApiException) as error:
        core.list_node()
    assert error.value.status == 404


def test_it_runs_aks_cilium_agents_that_are_ready_with_their_nodes(in_process: Endpoint) -> None:
    state = in_process.sim.clusters["cilium"]
    state.not_ready.add(SYSTEM_NODES[1])
    core = k8s.CoreV1Api(in_process.api("cilium"))
    agents = core.list_namespaced_pod("kube-system", label_selector="k8s-app=cilium").items
    linux = core.list_node(label_selector="kubernetes.io/os=linux").items
    assert sorted(p.spec.node_name for p in agents) == sorted(n.metadata.name for n in linux)

    def ready(pod: k8s.V1Pod) -> bool:
        return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])

    assert {p.spec.node_name: ready(p) for p in agents} == {
        n.metadata.name: n.metadata.name != SYSTEM_NODES[1] for n in linux
    }
    # It is AKS's: deleting it does not make it go away.
    k8s.AppsV1Api(in_process.api("cilium")).delete_namespaced_daemon_set("cilium", "kube-system")
    assert core.list_namespaced_pod("kube-system", label_selector="k8s-app=cilium").items


def test_it_refuses_a_deadline_or_a_restart_policy_on_daemonset_pods(served: Endpoint) -> None:
    """As the API server's DaemonSet validation: its pods restart always and have no
    activeDeadlineSeconds, so a scan pod cannot be given a deadline that way (issue 14 §3)."""
    apps = k8s.AppsV1Api(served.api("kubenet"))
    core = k8s.CoreV1Api(served.api("kubenet"))
    core.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name="deadline-scan")))
    with_deadline = _scan_daemonset()
    with_deadline.spec.template.spec.active_deadline_seconds = 600
    with pytest.raises(ApiException) as error:
        apps.create_namespaced_daemon_set("deadline-scan", with_deadline)
    assert error.value.status == 422
    status = _status(error.value)
    assert status["reason"] == "Invalid"
    assert status["message"] == (
        'DaemonSet.apps "wavegate-scan" is invalid: spec.template.spec.activeDeadlineSeconds: '
        "Forbidden: activeDeadlineSeconds in DaemonSet is not Supported"
    )
    assert status["details"]["causes"] == [
        {
            "reason": "FieldValueForbidden",
            "message": "Forbidden: activeDeadlineSeconds in DaemonSet is not Supported",
            "field": "spec.template.spec.activeDeadlineSeconds",
        }
    ]
    never = _scan_daemonset()
    never.spec.template.spec.restart_policy = "Never"
    with pytest.raises(ApiException) as error:
        apps.create_namespaced_daemon_set("deadline-scan", never)
    assert error.value.status == 422
    assert _status(error.value)["details"]["causes"][0]["field"] == (
        "spec.template.spec.restartPolicy"
    )
    assert apps.list_namespaced_daemon_set("deadline-scan").items == []
