"""A cluster's Preflight section, as people see it on the cluster's page: the latest result
with its blockers by origin, the scan under way, the recent scans, "Scan now" and the text
download."""

from __future__ import annotations

import datetime
import html
import re

import pytest
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from fleet.choices import ScanStatus
from fleet.models import PreflightScan
from tests.factories import DOCKER_HINT, make_cluster, make_scan
from tests.preflight.pages import (
    CALICO_HINT,
    DOCKER_FILTER,
    DOCKER_NAT,
    calico_on,
    cluster_page,
    copyable,
    docker_on,
    get,
    messages_of,
    origin_block,
    queries_of,
    section,
)

pytestmark = pytest.mark.django_db


def test_a_cluster_never_scanned_says_so(client_as):
    panel = section(cluster_page(client_as("viewer"), make_cluster()), "preflight")

    assert "Never scanned" in panel
    assert 'hx-trigger="every 30s"' in panel  # a scan someone else starts shows up too


def test_blockers_are_grouped_by_origin_with_the_exact_lines_of_each_node(client_as, personas):
    cluster = make_cluster(name="pay-weu-1")
    make_scan(
        cluster,
        requested_by=personas["operator"],
        findings=[*docker_on("aks-pool1-0"), *docker_on("aks-pool1-1"), *calico_on("aks-pool1-2")],
    )

    panel = section(cluster_page(client_as("viewer"), cluster), "preflight")

    assert '<span class="badge blocked">Blocked by rules</span>' in panel
    assert "operator-user" in panel
    assert "3 of 3 Linux nodes" in panel
    assert (
        "5 rules on this cluster's nodes were installed by something AKS does not accept" in panel
    )
    docker = origin_block(panel, "Docker")
    assert html.escape(DOCKER_HINT) in docker
    assert "4 rules on 2 nodes" in docker
    # Two nodes with the same rules share one block, table by table, each line exactly.
    assert copyable(docker) == [
        f"# iptables -t filter\n{DOCKER_FILTER}\n# iptables -t nat\n{DOCKER_NAT}"
    ]
    assert "<code>aks-pool1-0</code>, <code>aks-pool1-1</code>" in docker
    assert docker.count(">Copy</button>") == 1
    calico = origin_block(panel, "Calico")
    assert CALICO_HINT in calico
    assert "Node <code>aks-pool1-2</code>" in calico
    assert copyable(calico) == [
        "# iptables -t filter\n-A cali-INPUT -m mark --mark 0x0/0xffff -j ACCEPT"
    ]
    # The origin on most nodes comes first.
    assert panel.index('data-origin="Docker"') < panel.index('data-origin="Calico"')


def test_the_copy_buttons_script_is_served_from_the_site(client_as):
    page = cluster_page(client_as("viewer"), make_cluster())

    assert '<script src="/static/js/copy.js" defer></script>' in page
    assert "<script>" not in page  # no inline script


def test_each_node_shows_its_first_200_rules_and_the_rest_are_in_the_download(client_as):
    cluster = make_cluster()
    scan = make_scan(cluster, findings=[*calico_on("aks-pool1-0", 250), *docker_on("aks-pool1-1")])
    client = client_as("viewer")

    panel = section(cluster_page(client, cluster), "preflight")

    calico = origin_block(panel, "Calico")
    [shown] = copyable(calico)
    assert len(shown.splitlines()) == 1 + 200
    assert "0xc7/0xffff" in shown  # rule 200
    assert "0xc8/0xffff" not in shown  # rule 201
    assert "and 50 more rules on this node" in calico
    download = reverse("preflight:scan_findings", kwargs={"pk": cluster.pk, "scan_id": scan.pk})
    assert f'href="{download}"' in calico
    response = client.get(download)
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    text = b"".join(response.streaming_content).decode()
    assert text.count("-A cali-INPUT") == 250
    assert "## Calico" in text
    assert "### node aks-pool1-0" in text
    assert DOCKER_NAT in text
    assert DOCKER_HINT in text


def test_each_origin_shows_its_first_20_nodes_and_names_the_others(client_as):
    cluster = make_cluster()
    make_scan(cluster, findings=[f for n in range(23) for f in docker_on(f"aks-pool1-{n:02d}")])

    docker = origin_block(
        section(cluster_page(client_as("viewer"), cluster), "preflight"), "Docker"
    )

    assert "46 rules on 23 nodes" in docker
    assert docker.count("<pre ") == 1  # 20 identical nodes, one block
    assert "<code>aks-pool1-19</code>" in docker
    assert "<code>aks-pool1-20</code>" not in docker
    assert "and 3 more nodes with rules from Docker" in docker
    assert "aks-pool1-20 (2), aks-pool1-21 (2), aks-pool1-22 (2)</span>" in docker


def test_an_incomplete_scan_names_the_unread_nodes_and_those_aks_labelled(client_as):
    cluster = make_cluster()
    make_scan(
        cluster,
        status=ScanStatus.INCOMPLETE,
        nodes_read=2,
        message="1 of 3 Linux nodes could not be read.",
        unread_nodes=[{"node": "aks-pool1-2", "reason": "its scan pod never started (Pending)"}],
        labelled_nodes=["aks-pool1-0"],
    )

    panel = section(cluster_page(client_as("viewer"), cluster), "preflight")

    assert '<span class="badge incomplete">Incomplete</span>' in panel
    assert "2 of 3 Linux nodes" in panel
    assert "1 of 3 Linux nodes could not be read." in panel
    assert "<li><code>aks-pool1-2</code>: its scan pod never started (Pending)</li>" in panel
    labelled = panel.split('data-testid="labelled-nodes"')[1].split("</p>")[0]
    assert "kubernetes.azure.com/user-iptables-rules=true" in labelled
    assert '<span class="mono">aks-pool1-0</span>' in labelled


def test_the_history_lists_the_last_10_scans_newest_first(client_as):
    cluster = make_cluster()
    now = timezone.now()
    scans = [
        make_scan(cluster, queued_at=now - datetime.timedelta(hours=12 - n)) for n in range(12)
    ]

    panel = section(cluster_page(client_as("viewer"), cluster), "preflight")

    history = panel.split("<caption>Recent scans</caption>")[1]
    listed = [int(n) for n in re.findall(r'<tr>\s*<td class="num">(\d+)</td>', history)]
    assert listed == [s.pk for s in reversed(scans)][:10]


@pytest.mark.parametrize(
    ("role", "shown"),
    [
        ("viewer", False),
        ("approver", False),
        ("auditor", False),
        ("operator", True),
        ("admin", True),
    ],
)
def test_the_scan_now_button_shows_only_to_roles_that_may_scan(client_as, role, shown):
    cluster = make_cluster()

    panel = section(cluster_page(client_as(role), cluster), "preflight")

    action = reverse("preflight:cluster_scan", kwargs={"pk": cluster.pk})
    assert (f'action="{action}"' in panel) is shown
    assert (">Scan now</button>" in panel) is shown


def test_a_viewer_pressing_scan_now_anyway_is_refused_and_nothing_is_queued(
    client_as, django_capture_on_commit_callbacks
):
    cluster = make_cluster()

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client_as("viewer").post(
            reverse("preflight:cluster_scan", kwargs={"pk": cluster.pk})
        )

    assert response.status_code == 403
    assert "needs the operator or admin role" in response.content.decode()
    assert callbacks == []
    assert not PreflightScan.objects.exists()
    assert not AuditEvent.objects.filter(action="preflight.scan_requested").exists()


def test_an_operator_queues_a_scan_and_the_section_follows_it_until_it_ends(
    client_as, personas, django_capture_on_commit_callbacks
):
    cluster = make_cluster()
    client = client_as("operator")

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(reverse("preflight:cluster_scan", kwargs={"pk": cluster.pk}))

    assert response.status_code == 302
    assert response["Location"] == reverse("fleet:cluster", kwargs={"pk": cluster.pk})
    assert messages_of(response) == [
        f"Scan of {cluster.name} queued: its preflight section follows it."
    ]
    assert len(callbacks) == 1
    scan = PreflightScan.objects.get(cluster=cluster)
    assert (
        AuditEvent.objects.get(action="preflight.scan_requested").actor_id
        == personas["operator"].pk
    )
    panel = section(client.get(response["Location"]).content.decode(), "preflight")
    fragment = reverse("preflight:cluster_preflight", kwargs={"pk": cluster.pk})
    assert f'hx-get="{fragment}?polling=1" hx-trigger="every 3s"' in panel
    assert f"Scan #{scan.pk} queued" in panel
    assert "disabled" in panel.split(">Scan now</button>")[0].rsplit("<button", 1)[1]

    PreflightScan.objects.filter(pk=scan.pk).update(status=ScanStatus.RUNNING)
    assert "hx-trigger" in get(client, "preflight:cluster_preflight", pk=cluster.pk)

    PreflightScan.objects.filter(pk=scan.pk).delete()
    make_scan(cluster, findings=docker_on("aks-pool1-0"))
    ended = client.get(fragment, {"polling": "1"}).content.decode()
    assert 'hx-trigger="every 30s"' in ended
    assert "polling=1" not in ended
    assert "The scan has ended" in ended
    assert DOCKER_NAT in ended


def test_scan_now_while_a_scan_is_open_says_so_instead_of_failing(client_as):
    cluster = make_cluster()
    make_scan(cluster, status=ScanStatus.RUNNING)

    response = client_as("operator").post(
        reverse("preflight:cluster_scan", kwargs={"pk": cluster.pk}), follow=True
    )

    assert response.status_code == 200
    assert f"A scan of {cluster.name} is already queued or running." in response.content.decode()
    assert PreflightScan.objects.filter(cluster=cluster).count() == 1


def test_a_removed_cluster_has_no_scan_button_and_a_forged_press_is_refused(client_as):
    cluster = make_cluster(removed_at=timezone.now())
    client = client_as("operator")

    assert ">Scan now</button>" not in section(cluster_page(client, cluster), "preflight")
    response = client.post(
        reverse("preflight:cluster_scan", kwargs={"pk": cluster.pk}), follow=True
    )

    assert "is no longer in Azure; there is nothing to scan." in response.content.decode()
    assert not PreflightScan.objects.exists()


def test_a_scan_of_another_cluster_or_an_unknown_one_is_404(client_as):
    cluster, other = make_cluster(), make_cluster()
    scan = make_scan(other, findings=docker_on("n"))
    client = client_as("viewer")

    for pk, scan_id in [(cluster.pk, scan.pk), (cluster.pk, 987654), (987654, scan.pk)]:
        url = reverse("preflight:scan_findings", kwargs={"pk": pk, "scan_id": scan_id})
        assert client.get(url).status_code == 404
    assert (
        client_as("operator")
        .post(reverse("preflight:cluster_scan", kwargs={"pk": 987654}))
        .status_code
        == 404
    )


def test_a_clusters_preflight_costs_the_same_with_1_or_2000_findings(client_as):
    client = client_as("auditor")
    small, big = make_cluster(), make_cluster()
    make_scan(small, findings=docker_on("a"))
    for n in range(11):
        make_scan(big, queued_at=timezone.now() - datetime.timedelta(hours=20 - n))
    findings = []
    for node in range(30):
        custom = f"X{node % 5}"
        findings += [
            *docker_on(f"n{node}"),
            *calico_on(f"n{node}", 60),
            {
                "node": f"n{node}",
                "origin": f"a custom chain ({custom})",
                "rule": f"-A {custom} -j DROP",
            },
        ]
    make_scan(big, findings=findings)
    queries_of(client, reverse("fleet:cluster", kwargs={"pk": small.pk}))

    one = queries_of(client, reverse("fleet:cluster", kwargs={"pk": small.pk}))
    many = queries_of(client, reverse("fleet:cluster", kwargs={"pk": big.pk}))

    assert len(many) == len(one), "\n".join(many)
    assert not any('FROM "auth_user"' in sql and "WHERE" in sql and "IN (" in sql for sql in many)
