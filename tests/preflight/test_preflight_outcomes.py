"""How a scan reads what its pods printed, and what happens to a scan whose worker died."""

from __future__ import annotations

import datetime

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from fleet.choices import ScanStatus
from fleet.models import PreflightScan
from preflight import iptables
from preflight.scanner import analyse_node, read_frames
from preflight.scans import expire_abandoned
from tests.factories import make_cluster

NODE = "aks-system-12345678-vmss000000"
CLEAN_V4 = "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -j KUBE-FIREWALL\nCOMMIT\n"
DOCKER_V4 = "*nat\n:DOCKER - [0:0]\n-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER\nCOMMIT\n"


def framed(v4: str, v6: str = "", rc4: int = 0, rc6: int = 0, done: bool = True) -> str:
    text = (
        f"### wavegate-scan node={NODE} family=ipv4 begin\n{v4}"
        f"### wavegate-scan node={NODE} family=ipv4 end rc={rc4}\n"
        f"### wavegate-scan node={NODE} family=ipv6 begin\n{v6}"
        f"### wavegate-scan node={NODE} family=ipv6 end rc={rc6}\n"
    )
    return text + (f"### wavegate-scan node={NODE} done\n" if done else "")


def test_a_whole_log_gives_each_familys_dump():
    dump = read_frames(framed(CLEAN_V4, "*filter\nCOMMIT\n"), NODE)

    assert dump.done
    assert dump.dumps == {"ipv4": CLEAN_V4, "ipv6": "*filter\nCOMMIT\n"}
    findings, errors, unread = analyse_node(NODE, dump, iptables.OWNERS)
    assert (findings, errors, unread) == ([], [], "")


def test_a_pod_still_printing_is_not_taken_as_read():
    half = framed(DOCKER_V4, done=False)
    cut = half[: half.index("family=ipv6 end")]

    assert not read_frames(half, NODE).done
    assert not read_frames(cut, NODE).done
    assert not read_frames("", NODE).done


def test_another_nodes_frames_are_not_this_nodes():
    assert not read_frames(framed(CLEAN_V4).replace(NODE, "other-node"), NODE).done


def test_user_rules_in_a_dump_are_findings_with_their_family():
    dump = read_frames(framed(CLEAN_V4, DOCKER_V4), NODE)

    findings, _, unread = analyse_node(NODE, dump, iptables.OWNERS)

    assert unread == ""
    assert [(f.node, f.family, f.finding.chain, f.finding.origin) for f in findings] == [
        (NODE, "ipv6", "PREROUTING", "Docker")
    ]


def test_a_failed_iptables_save_leaves_the_node_unread_with_its_message():
    log = framed(CLEAN_V4, "ip6tables-save: command not found\n", rc6=127)

    findings, _, unread = analyse_node(NODE, read_frames(log, NODE), iptables.OWNERS)

    assert findings == []
    assert unread == "ip6tables-save exited 127 on the node: ip6tables-save: command not found"


@pytest.mark.django_db
def test_a_scan_whose_worker_died_ends_as_an_error_and_frees_the_cluster(settings):
    settings.WAVEGATE_SCAN_DEADLINE_SECONDS = 60
    settings.WAVEGATE_SCAN_REQUEST_TIMEOUT_SECONDS = 5
    cluster = make_cluster()
    long_ago = timezone.now() - datetime.timedelta(minutes=10)
    abandoned = PreflightScan.objects.create(
        cluster=cluster, status=ScanStatus.RUNNING, queued_at=long_ago, started_at=long_ago
    )
    fresh = PreflightScan.objects.create(
        cluster=make_cluster(),
        status=ScanStatus.RUNNING,
        queued_at=timezone.now(),
        started_at=timezone.now(),
    )

    assert expire_abandoned() == 1

    abandoned.refresh_from_db()
    fresh.refresh_from_db()
    assert abandoned.status == ScanStatus.ERROR
    assert "worker running this scan stopped" in abandoned.message
    assert f"wavegate-scan-{abandoned.pk}" in abandoned.message
    assert fresh.status == ScanStatus.RUNNING
    cluster.refresh_from_db()
    assert cluster.preflight == "error"
    assert AuditEvent.objects.filter(action="preflight.scan_finished").count() == 1
