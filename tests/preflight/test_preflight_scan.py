"""Preflight scans against aksim: Wavegate's own path (gateway credentials, the real Kubernetes
client, the DaemonSet, the logs, the analyser, the stored result), checked against aksim's
truth and through the Kubernetes API afterwards."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from aksim.fleetfile import Cluster, Fleet, Subscription
from audit.models import AuditEvent
from fleet.azure import Azure
from fleet.choices import ScanStatus, SyncTrigger
from fleet.models import Cluster as ClusterRow
from fleet.models import PreflightScan
from fleet.sync import run_sync
from preflight import actions
from preflight.scans import run_scan
from tests.aksim.builders import cluster as kube_api_cluster
from tests.aksim.builders import pool
from tests.aksim_server import Aksim, start_aksim

pytestmark = pytest.mark.django_db

TENANT = "3d2c1b0a-9f8e-4d7c-8b6a-5f4e3d2c1b0a"
SUBSCRIPTION = "5e6f7a8b-9c0d-4e1f-a2b3-c4d5e6f7a8b9"


def _cluster(key: str, seed: int, **changes: object) -> Cluster:
    """test_kube_api's cluster, in this module's subscription, with two system nodes."""
    defaults: dict[str, object] = {
        "subscription_id": SUBSCRIPTION,
        "resource_group": "rg-scan",
        "tags": {"ring": "canary"},
        "services": 4,
        "pools": [pool("system", "System", "Linux", "AzureLinux", 2, "44444444")],
    }
    return kube_api_cluster(key, seed, **{**defaults, **changes})


def scan_fleet() -> Fleet:
    twenty = _cluster(
        "twenty",
        21,
        pools=[
            pool("system", "System", "Linux", "AzureLinux", 3, "11111111"),
            pool("user", "User", "Linux", "Ubuntu2404", 17, "22222222"),
            pool("win", "User", "Windows", "Windows2022", 1, "33333333"),
        ],
    )
    return Fleet(
        seed=5,
        profile="demo",
        tenant_id=TENANT,
        subscriptions=[Subscription(id=SUBSCRIPTION, name="sub-scan")],
        clusters=[
            twenty,
            _cluster("clean", 22),
            _cluster("entra", 23, entra=True),
            _cluster("private", 24, private=True),
        ],
    )


@pytest.fixture(scope="module")
def aksim_server(tmp_path_factory) -> Iterator[Aksim]:
    server = start_aksim(tmp_path_factory.mktemp("aksim-scan"), scan_fleet())
    try:
        yield server
    finally:
        server.process.stop()


@pytest.fixture
def fleet(wavegate_on_aksim: Aksim, settings) -> Aksim:
    settings.WAVEGATE_SCAN_POLL_SECONDS = 0.05
    settings.WAVEGATE_SCAN_DEADLINE_SECONDS = 3.0
    settings.WAVEGATE_SCAN_REQUEST_TIMEOUT_SECONDS = 5.0
    run = run_sync(SyncTrigger.COMMAND)
    assert run.status == "succeeded", run.error
    return wavegate_on_aksim


def spec(aksim: Aksim, key: str) -> Cluster:
    return next(c for c in aksim.fleet.clusters if c.key == key)


def linux_nodes(cluster: Cluster) -> list[str]:
    return sorted(n.name for n in cluster.nodes() if n.linux)


def scan_now(aksim: Aksim, key: str, operator) -> PreflightScan:
    row = ClusterRow.objects.get(name=spec(aksim, key).name)
    queued = actions.request_scan(row, acting_user=operator)
    scan = run_scan(queued.pk)
    assert scan is not None
    return scan


def scan_objects_left(aksim: Aksim, key: str) -> tuple[list[str], list[str]]:
    """Namespaces and DaemonSets labelled wavegate.io/scan on the cluster, read through its
    Kubernetes API with the cluster's own kubeconfig."""
    cluster = spec(aksim, key)
    azure = Azure()
    try:
        config = azure.user_kubeconfig(
            cluster.subscription_id, cluster.resource_group, cluster.name
        )
    finally:
        azure.close()
    api = k8s_config.new_client_from_config_dict(config)
    try:
        namespaces = k8s.CoreV1Api(api).list_namespace(label_selector="wavegate.io/scan")
        daemonsets = k8s.AppsV1Api(api).list_daemon_set_for_all_namespaces(
            label_selector="wavegate.io/scan"
        )
        return (
            [n.metadata.name for n in namespaces.items],
            [d.metadata.name for d in daemonsets.items],
        )
    finally:
        api.close()


def test_user_rules_on_3_of_20_nodes_block_with_exactly_those_rules(fleet, operator):
    cluster = spec(fleet, "twenty")
    nodes = linux_nodes(cluster)
    assert len(nodes) == 20
    dirty = {nodes[1]: ["docker"], nodes[7]: ["calico", "fail2ban"], nodes[19]: ["handwritten"]}
    fleet.admin("POST", f"clusters/{cluster.key}/change", {"userRules": dirty})
    # AKS's iptables monitor labels them at its next check (300 s of Azure time).
    deadline = time.monotonic() + 10
    while fleet.truth(cluster)["monitorSeesUserRulesOn"] != sorted(dirty):
        assert time.monotonic() < deadline
        time.sleep(0.05)

    scan = scan_now(fleet, "twenty", operator)

    assert scan.status == ScanStatus.BLOCKED, scan.message
    assert (scan.nodes_read, scan.nodes_expected) == (20, 20)
    truth = fleet.truth(cluster)
    expected = sorted(
        (n["node"], r["table"], r["chain"], r["rule"])
        for n in truth["nodesWithUserRules"]
        for r in n["rules"]
    )
    found = sorted((f.node, f.table, f.chain, f.rule) for f in scan.findings.all())
    assert found == expected
    assert {f.node for f in scan.findings.all()} == set(dirty)
    assert scan.labelled_nodes == sorted(dirty)  # AKS's own CiliumNode labels agree
    origins = set(scan.findings.values_list("origin", flat=True))
    assert {"Docker", "Calico", "fail2ban", "hand-written"} <= origins
    row = ClusterRow.objects.get(pk=scan.cluster_id)
    assert (row.preflight, row.latest_scan_id) == ("blocked", scan.pk)
    assert scan_objects_left(fleet, "twenty") == ([], [])


def test_a_clean_cluster_is_clean_and_audited(fleet, operator):
    scan = scan_now(fleet, "clean", operator)

    assert scan.status == ScanStatus.CLEAN, scan.message
    assert scan.nodes_read == scan.nodes_expected == 2
    assert not scan.findings.exists()
    actions_logged = list(
        AuditEvent.objects.filter(object_id=str(scan.cluster_id))
        .order_by("seq")
        .values_list("action", flat=True)
    )
    assert actions_logged[-3:] == [
        "preflight.scan_requested",
        "preflight.scan_started",
        "preflight.scan_finished",
    ]
    finished = AuditEvent.objects.filter(action="preflight.scan_finished").last()
    assert finished.after["status"] == "clean"
    assert scan_objects_left(fleet, "clean") == ([], [])


def test_a_node_whose_pod_never_schedules_makes_the_scan_incomplete_naming_it(fleet, operator):
    cluster = spec(fleet, "twenty")
    stuck = linux_nodes(cluster)[4]
    fleet.admin("POST", f"clusters/{cluster.key}/change", {"unschedulable": [stuck]})

    scan = scan_now(fleet, "twenty", operator)

    assert scan.status == ScanStatus.INCOMPLETE
    assert (scan.nodes_read, scan.nodes_expected) == (19, 20)
    assert [u["node"] for u in scan.unread_nodes] == [stuck]
    assert "never scheduled" in scan.unread_nodes[0]["reason"]
    assert stuck in scan.message
    assert scan_objects_left(fleet, "twenty") == ([], [])


def test_a_not_ready_node_is_unread_but_user_rules_elsewhere_still_block(fleet, operator):
    cluster = spec(fleet, "twenty")
    nodes = linux_nodes(cluster)
    fleet.admin(
        "POST",
        f"clusters/{cluster.key}/change",
        {"notReady": [nodes[0]], "userRules": {nodes[2]: ["istio"]}},
    )

    scan = scan_now(fleet, "twenty", operator)

    assert scan.status == ScanStatus.BLOCKED
    assert [u["node"] for u in scan.unread_nodes] == [nodes[0]]
    assert "ContainerCreating" in scan.unread_nodes[0]["reason"]
    assert {f.node for f in scan.findings.all()} == {nodes[2]}
    assert nodes[0] in scan.message


def test_an_admission_denial_is_a_clear_error_and_leaves_nothing_behind(fleet, operator):
    cluster = spec(fleet, "clean")
    fleet.admin("POST", f"clusters/{cluster.key}/change", {"denyPrivileged": True})

    scan = scan_now(fleet, "clean", operator)

    assert scan.status == ScanStatus.ERROR
    assert "admission policy denied the scan" in scan.message
    assert "excludedNamespaces" in scan.message
    assert scan_objects_left(fleet, "clean") == ([], [])


def test_an_entra_id_cluster_is_scanned_with_a_token_from_wavegates_credential(fleet, operator):
    scan = scan_now(fleet, "entra", operator)

    assert scan.status == ScanStatus.CLEAN, scan.message
    assert scan.nodes_read == 2


def test_a_private_cluster_is_incomplete_with_the_reason(fleet, operator):
    scan = scan_now(fleet, "private", operator)

    assert scan.status == ScanStatus.INCOMPLETE
    assert "private cluster" in scan.message
    assert scan.nodes_read == 0


def test_a_hanging_api_server_ends_the_scan_as_an_error_not_a_hang(fleet, operator, settings):
    cluster = spec(fleet, "clean")
    settings.WAVEGATE_SCAN_REQUEST_TIMEOUT_SECONDS = 1.0
    fleet.admin("PUT", "faults", {"kubeTimeoutSeconds": 3})
    fleet.admin("POST", f"clusters/{cluster.key}/change", {"apiDown": True})

    scan = scan_now(fleet, "clean", operator)

    assert scan.status == ScanStatus.ERROR
    assert "could not reach the API server" in scan.message or "timed out" in scan.message


def test_a_second_scan_of_the_same_cluster_is_refused_while_one_is_open(fleet, operator):
    row = ClusterRow.objects.get(name=spec(fleet, "clean").name)
    actions.request_scan(row, acting_user=operator)

    with pytest.raises(actions.ActionRefused, match="already queued or running"):
        actions.request_scan(row, acting_user=operator)


def test_a_viewer_cannot_start_a_scan(fleet, viewer):
    from django.core.exceptions import PermissionDenied

    row = ClusterRow.objects.get(name=spec(fleet, "clean").name)
    with pytest.raises(PermissionDenied):
        actions.request_scan(row, acting_user=viewer)
    assert not PreflightScan.objects.exists()


@pytest.fixture
def operator(personas):
    return personas["operator"]


@pytest.fixture
def viewer(personas):
    return personas["viewer"]


def test_a_rule_whose_comment_holds_a_byte_that_is_no_utf8_blocks_its_node(fleet, operator):
    cluster = spec(fleet, "clean")
    node = linux_nodes(cluster)[1]
    fleet.admin("POST", f"clusters/{cluster.key}/change", {"userRules": {node: ["odd-comment"]}})

    scan = scan_now(fleet, "clean", operator)

    assert scan.status == ScanStatus.BLOCKED, scan.message
    finding = scan.findings.get()
    assert finding.node == node
    assert finding.chain == "INPUT"
    # Every byte survives, shown escaped: the 0xff and the control character.
    assert "held by ops \\xff\\x01 ticket 4711" in finding.rule
    assert finding.rule.endswith("-j DROP")


def test_a_node_whose_log_is_over_the_size_limit_is_unread_and_the_scan_incomplete(
    fleet, operator, settings
):
    cluster = spec(fleet, "clean")
    node = linux_nodes(cluster)[0]
    fleet.admin("POST", f"clusters/{cluster.key}/change", {"userRules": {node: ["blocklist"]}})
    settings.WAVEGATE_SCAN_MAX_DUMP_BYTES = 300_000  # the block list alone is ~750 kB

    scan = scan_now(fleet, "clean", operator)

    assert scan.status == ScanStatus.INCOMPLETE, scan.message
    assert [u["node"] for u in scan.unread_nodes] == [node]
    assert "300000" in scan.unread_nodes[0]["reason"].replace(",", "")
    assert not scan.findings.exists()  # nothing of a cut dump is judged
