"""No scan left behind (issue 14 §3): a real Celery worker killed with SIGKILL in the middle of a
scan against aksim leaves the scan's namespace and privileged DaemonSet on the cluster; beat's
reaper (preflight.reap_leftovers) deletes it once it is older than a scan may take, records the
deletion in the audit log, and the cluster's page says so. Another installation's scan
namespace, and one still young, are left alone; the scan pods sleep a finite time."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator

import pytest
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse
from kubernetes import client as k8s
from kubernetes.client.rest import ApiException

from accounts.roles import Role
from audit.models import AuditEvent
from audit.verification import verify_stored_chain
from fleet.azure import gateway
from fleet.choices import ScanStatus, SyncTrigger
from fleet.kubernetes import connect
from fleet.models import Cluster, PreflightScan
from fleet.sync import run_sync
from preflight import actions, scanner, tasks
from preflight.choices import PreflightEvent
from tests.aksim_server import Aksim, clean_fleet, start_aksim
from tests.conftest import start_worker, tasks_sent_to
from tests.processes import wait_until

INSTALLATION = "wg-test-leftovers"
OTHERS = "wg-someone-else"


@pytest.fixture(scope="module")
def aksim_server(tmp_path_factory) -> Iterator[Aksim]:
    server = start_aksim(tmp_path_factory.mktemp("aksim-leftovers"), clean_fleet(2, 1, 14))
    try:
        yield server
    finally:
        server.process.stop()


def _kube(cluster: Cluster) -> k8s.ApiClient:
    azure = gateway()
    config = azure.user_kubeconfig(
        cluster.subscription.subscription_id, cluster.resource_group, cluster.name
    )
    return connect(config, azure.kubernetes_token)


def _scan_namespaces(core: k8s.CoreV1Api) -> dict[str, dict[str, str]]:
    listed = core.list_namespace(label_selector=f"{scanner.SCAN_LABEL}={scanner.SCAN_LABEL_VALUE}")
    return {ns.metadata.name: ns.metadata.labels for ns in listed.items}


def test_scan_bodies_label_the_installation_and_sleep_a_finite_time():
    namespace = scanner.namespace_body("wavegate-scan-7", INSTALLATION)
    assert namespace["metadata"]["labels"][scanner.INSTALLATION_LABEL] == INSTALLATION
    body = scanner.daemonset_body("wavegate-scan-7", "busybox@sha256:" + "0" * 64, 540)
    pod = body["spec"]["template"]["spec"]
    assert "activeDeadlineSeconds" not in pod  # the API server refuses it in a DaemonSet
    container = pod["containers"][0]
    assert {"name": "SLEEP_SECONDS", "value": "540"} in container["env"]
    script = container["command"][-1]
    assert "2147483647" not in script
    assert script.rstrip().endswith('exec sleep "${SLEEP_SECONDS:?}"')
    assert django_settings.WAVEGATE_SCAN_POD_SLEEP_SECONDS > (
        django_settings.WAVEGATE_SCAN_TIME_LIMIT_SECONDS
    )
    entry = django_settings.CELERY_BEAT_SCHEDULE["reap-scan-leftovers"]
    assert entry["task"] == "preflight.reap_leftovers"
    assert entry["schedule"] <= 600


@pytest.mark.timeout(300)
def test_the_reaper_removes_what_a_killed_worker_left(
    isolated_db, wavegate_on_aksim, settings, tmp_path
):
    aksim = wavegate_on_aksim
    settings.WAVEGATE_INSTALLATION_ID = INSTALLATION
    assert run_sync(SyncTrigger.COMMAND).status == "succeeded"
    spec = aksim.fleet.clusters[0]
    cluster = Cluster.objects.select_related("subscription").get(name=spec.name)
    # One node whose scan pod never schedules: the scan waits for it until its deadline, so
    # the worker is surely in the middle of the scan when it is killed.
    stuck = spec.nodes()[0].name
    aksim.admin("POST", f"clusters/{spec.key}/change", {"unschedulable": [stuck]})
    api = _kube(cluster)
    core = k8s.CoreV1Api(api)
    apps = k8s.AppsV1Api(api)
    # Another Wavegate's scan on the same cluster, long past any time limit: not ours to delete.
    labels = {scanner.SCAN_LABEL: scanner.SCAN_LABEL_VALUE, "wavegate.io/installation": OTHERS}
    core.create_namespace(
        k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name="wavegate-scan-999999", labels=labels))
    )

    operator = get_user_model().objects.create_user("leftover-operator")
    operator.groups.add(Group.objects.get(name=Role.OPERATOR.value))
    worker = start_worker(
        isolated_db.url,
        tmp_path / "worker.log",
        {
            **aksim.wavegate_env(),
            "WAVEGATE_INSTALLATION_ID": INSTALLATION,
            "WAVEGATE_SCAN_DEADLINE_SECONDS": "120",
            "WAVEGATE_SCAN_POLL_SECONDS": "0.2",
        },
    )
    try:
        with tasks_sent_to(worker):
            scan = actions.request_scan(cluster, acting_user=operator)
        name = scanner.unique_name(scan.pk)
        wait_until(
            lambda: (
                name in _scan_namespaces(core)
                and apps.list_namespaced_daemon_set(name).items
                and PreflightScan.objects.get(pk=scan.pk).status == ScanStatus.RUNNING
            ),
            90,
            "the worker to be in the middle of the scan",
        )
        worker.process.stop(signal.SIGKILL)
    finally:
        worker.process.stop()

    # The worker's `finally` never ran: the namespace and the privileged DaemonSet stay.
    time.sleep(1.0)
    assert name in _scan_namespaces(core)
    (daemonset,) = apps.list_namespaced_daemon_set(name).items
    assert PreflightScan.objects.get(pk=scan.pk).status == ScanStatus.RUNNING
    assert _scan_namespaces(core)[name]["wavegate.io/installation"] == INSTALLATION
    env = {e.name: e.value for e in daemonset.spec.template.spec.containers[0].env}
    # The worker's scan time limit (a 120 s deadline and six 20 s API calls), and two minutes.
    assert env["SLEEP_SECONDS"] == str(120 + 6 * 20 + 120)

    # While it may still be a scan in progress (younger than a scan's time limit and the
    # grace), the reaper leaves it.
    assert tasks.reap_leftovers() == 0
    assert name in _scan_namespaces(core)
    assert not AuditEvent.objects.filter(action=PreflightEvent.LEFTOVER_REMOVED).exists()

    # Once it is older than that, the reaper deletes it, DaemonSet and all, and audits it.
    settings.WAVEGATE_SCAN_TIME_LIMIT_SECONDS = 1
    settings.WAVEGATE_SCAN_LEFTOVER_GRACE_SECONDS = 1
    created = _created(core, name)
    wait_until(lambda: time.time() - created > 3.5, 10, "the namespace to age")
    assert tasks.reap_leftovers() == 1
    remaining = _scan_namespaces(core)
    assert name not in remaining
    assert remaining["wavegate-scan-999999"]["wavegate.io/installation"] == OTHERS
    with pytest.raises(ApiException) as error:
        apps.read_namespaced_daemon_set(name, name)
    assert error.value.status == 404
    assert core.list_namespaced_pod(name).items == []

    (event,) = AuditEvent.objects.filter(action=PreflightEvent.LEFTOVER_REMOVED)
    assert (event.object_type, event.object_id) == ("fleet.cluster", str(cluster.pk))
    assert event.actor_name == "system"
    assert event.after["namespace"] == name
    assert event.after["scan"] == scan.pk
    assert event.after["installation"] == INSTALLATION
    assert event.after["age_seconds"] >= 3
    assert verify_stored_chain().intact

    # Nothing left to reap: the next run removes nothing and records nothing.
    assert tasks.reap_leftovers() == 0
    assert AuditEvent.objects.filter(action=PreflightEvent.LEFTOVER_REMOVED).count() == 1

    # The cluster's page says a leftover was found and removed.
    browser = Client()
    browser.force_login(operator)
    page = browser.get(reverse("fleet:cluster", kwargs={"pk": cluster.pk}))
    assert page.status_code == 200
    text = page.content.decode()
    assert 'data-testid="leftover-removed"' in text
    assert "A scan left behind on this cluster was found and removed" in text
    assert f"<code>{name}</code>" in text
    api.close()


def _created(core: k8s.CoreV1Api, name: str) -> float:
    return core.read_namespace(name).metadata.creation_timestamp.timestamp()
