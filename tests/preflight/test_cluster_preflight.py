"""Preflight as people see it: the cluster page's Preflight section, the fleet's blockers page,
and the iptables owner table administrators extend."""

from __future__ import annotations

import datetime
import html
import re

import pytest
from django.contrib.messages import get_messages
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from fleet import iptables, preflight, views
from fleet.choices import ScanStatus
from fleet.models import AcceptedOwner, PreflightScan
from tests.factories import (
    DOCKER_HINT,
    make_accepted_owner,
    make_cluster,
    make_scan,
    make_subscription,
)

pytestmark = pytest.mark.django_db

CALICO_HINT = "Calico: remove it, then reimage the node so its cali- chains are gone."
DOCKER_NAT = "-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE"
DOCKER_FILTER = '-A DOCKER-USER -m comment --comment "docker: user" -j RETURN'


def docker_on(node: str) -> list[dict]:
    return [
        {"node": node, "table": "filter", "chain": "DOCKER-USER", "rule": DOCKER_FILTER},
        {"node": node, "table": "nat", "chain": "POSTROUTING", "rule": DOCKER_NAT},
    ]


def calico_on(node: str, count: int = 1) -> list[dict]:
    return [
        {
            "node": node,
            "chain": "cali-INPUT",
            "rule": f"-A cali-INPUT -m mark --mark 0x{n:x}/0xffff -j ACCEPT",
            "origin": "Calico",
            "hint": CALICO_HINT,
        }
        for n in range(count)
    ]


def get(client, name: str, **kwargs) -> str:
    response = client.get(reverse(name, kwargs=kwargs))
    assert response.status_code == 200
    return response.content.decode()


def cluster_page(client, cluster) -> str:
    return get(client, "fleet:cluster", pk=cluster.pk)


def section(page: str, name: str) -> str:
    start = page.index(f'data-section="{name}"')
    return page[start : page.index("</section>", start)]


def origin_block(page: str, origin: str) -> str:
    start = page.index(f'<div class="origin" data-origin="{origin}">')
    end = page.find('<div class="origin"', start + 1)
    return page[start : end if end != -1 else page.index("<caption>Recent scans</caption>")]


def copyable(block: str) -> list[str]:
    """The text each Copy button copies in this part of the page, as the browser reads it."""
    return [
        html.unescape(text)
        for text in re.findall(r"<pre [^>]*><code>(.*?)</code></pre>", block, re.S)
    ]


def messages_of(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


# --- the cluster page -------------------------------------------------------------------------


def test_a_cluster_never_scanned_says_so(client_as):
    panel = section(cluster_page(client_as("viewer"), make_cluster()), "preflight")

    assert "Never scanned" in panel
    assert "hx-trigger" not in panel


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
    download = reverse("fleet:scan_findings", kwargs={"pk": cluster.pk, "scan_id": scan.pk})
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

    action = reverse("fleet:cluster_scan", kwargs={"pk": cluster.pk})
    assert (f'action="{action}"' in panel) is shown
    assert (">Scan now</button>" in panel) is shown


def test_a_viewer_pressing_scan_now_anyway_is_refused_and_nothing_is_queued(
    client_as, django_capture_on_commit_callbacks
):
    cluster = make_cluster()

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client_as("viewer").post(
            reverse("fleet:cluster_scan", kwargs={"pk": cluster.pk})
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
        response = client.post(reverse("fleet:cluster_scan", kwargs={"pk": cluster.pk}))

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
    fragment = reverse("fleet:cluster_preflight", kwargs={"pk": cluster.pk})
    assert f'hx-get="{fragment}?polling=1" hx-trigger="every 3s"' in panel
    assert f"Scan #{scan.pk} queued" in panel
    assert "disabled" in panel.split(">Scan now</button>")[0].rsplit("<button", 1)[1]

    PreflightScan.objects.filter(pk=scan.pk).update(status=ScanStatus.RUNNING)
    assert "hx-trigger" in get(client, "fleet:cluster_preflight", pk=cluster.pk)

    PreflightScan.objects.filter(pk=scan.pk).delete()
    make_scan(cluster, findings=docker_on("aks-pool1-0"))
    ended = client.get(fragment, {"polling": "1"}).content.decode()
    assert "hx-trigger" not in ended
    assert "The scan has ended" in ended
    assert DOCKER_NAT in ended


def test_scan_now_while_a_scan_is_open_says_so_instead_of_failing(client_as):
    cluster = make_cluster()
    make_scan(cluster, status=ScanStatus.RUNNING)

    response = client_as("operator").post(
        reverse("fleet:cluster_scan", kwargs={"pk": cluster.pk}), follow=True
    )

    assert response.status_code == 200
    assert f"A scan of {cluster.name} is already queued or running." in response.content.decode()
    assert PreflightScan.objects.filter(cluster=cluster).count() == 1


def test_a_removed_cluster_has_no_scan_button_and_a_forged_press_is_refused(client_as):
    cluster = make_cluster(removed_at=timezone.now())
    client = client_as("operator")

    assert ">Scan now</button>" not in section(cluster_page(client, cluster), "preflight")
    response = client.post(reverse("fleet:cluster_scan", kwargs={"pk": cluster.pk}), follow=True)

    assert "is no longer in Azure; there is nothing to scan." in response.content.decode()
    assert not PreflightScan.objects.exists()


def test_a_scan_of_another_cluster_or_an_unknown_one_is_404(client_as):
    cluster, other = make_cluster(), make_cluster()
    scan = make_scan(other, findings=docker_on("n"))
    client = client_as("viewer")

    for pk, scan_id in [(cluster.pk, scan.pk), (cluster.pk, 987654), (987654, scan.pk)]:
        url = reverse("fleet:scan_findings", kwargs={"pk": pk, "scan_id": scan_id})
        assert client.get(url).status_code == 404
    assert (
        client_as("operator").post(reverse("fleet:cluster_scan", kwargs={"pk": 987654})).status_code
        == 404
    )


# --- the cluster list ---------------------------------------------------------------------------


def test_the_cluster_list_shows_and_filters_by_preflight(client_as):
    blocked, clean, never = (
        make_cluster(name="c-blocked"),
        make_cluster(name="c-clean"),
        make_cluster(name="c-never"),
    )
    make_scan(blocked, findings=docker_on("n"))
    make_scan(clean)
    client = client_as("viewer")

    page = client.get(reverse("fleet:clusters")).content.decode()

    assert '<td data-preflight="blocked"><span class="badge blocked">Blocked</span></td>' in page
    assert '<td data-preflight="clean"><span class="badge clean">Clean</span></td>' in page
    assert '<td data-preflight="never"><span class="small">never scanned</span></td>' in page
    for value, names in [
        ("blocked", ["c-blocked"]),
        ("never", ["c-never"]),
        ("", ["c-blocked", "c-clean", "c-never"]),
    ]:
        listed = re.findall(
            r'<a href="/clusters/\d+/">([^<]+)</a>',
            client.get(reverse("fleet:clusters"), {"preflight": value}).content.decode(),
        )
        assert listed == names
    bad = client.get(reverse("fleet:clusters"), {"preflight": "sideways"}).content.decode()
    assert "There is no preflight result “sideways”; showing every result." in bad
    assert never.name in bad


# --- /blockers/ ---------------------------------------------------------------------------------


@pytest.fixture
def fleet_results(personas):
    """Live clusters with every kind of latest result, an older scan that no longer counts, and
    a removed cluster that does not count at all."""
    sub = make_subscription(name="payments-prod")
    old = timezone.now() - datetime.timedelta(days=2)
    clusters = {}
    for name in [
        "docker-1",
        "docker-2",
        "docker-calico",
        "clean-1",
        "incomplete-1",
        "error-1",
        "never-1",
    ]:
        clusters[name] = make_cluster(name=name, subscription=sub)
    clusters["old-k8s"] = make_cluster(
        name="old-k8s", subscription=sub, kubernetes_version="1.31.4"
    )
    make_scan(clusters["docker-1"], findings=docker_on("a") + docker_on("b"))
    make_scan(clusters["docker-2"], findings=calico_on("a"), queued_at=old)  # superseded:
    make_scan(clusters["docker-2"], findings=docker_on("a"))
    make_scan(clusters["docker-calico"], findings=docker_on("a") + calico_on("b", 3))
    make_scan(clusters["clean-1"])
    make_scan(
        clusters["incomplete-1"],
        status=ScanStatus.INCOMPLETE,
        message="1 of 3 Linux nodes could not be read.",
    )
    make_scan(
        clusters["error-1"], status=ScanStatus.ERROR, message="Azure refused the credentials."
    )
    make_scan(clusters["old-k8s"], findings=calico_on("z"))
    gone = make_cluster(name="gone-1", subscription=sub, removed_at=timezone.now())
    make_scan(gone, findings=docker_on("a"))
    return clusters


def test_blockers_counts_latest_results_of_live_clusters_including_never_scanned(
    client_as, fleet_results
):
    page = get(client_as("viewer"), "fleet:blockers")

    results = section(page, "results")
    rows = {
        status: (int(eligible), int(live))
        for status, eligible, live in re.findall(
            r'<tr data-status="(\w+)">.*?<a href="[^"]+">(\d+)</a></td>\s*<td class="num">(\d+)</td>',
            results,
            re.S,
        )
    }
    assert rows == {
        "clean": (1, 1),
        "blocked": (3, 4),  # old-k8s is blocked too, but not eligible
        "incomplete": (1, 1),
        "error": (1, 1),
        "never": (1, 1),
    }
    assert 'href="/clusters/?eligibility=eligible&amp;preflight=never"' in results


def test_blockers_counts_clusters_and_nodes_per_origin_and_links_to_them(client_as, fleet_results):
    origins = section(get(client_as("viewer"), "fleet:blockers"), "origins")

    table = {
        origin: (int(c), int(n), int(r))
        for origin, c, n, r in re.findall(
            r'<tr data-origin="([^"]+)">.*?<td class="num">(\d+)</td>\s*<td class="num">(\d+)</td>\s*<td class="num">(\d+)</td>',
            origins,
            re.S,
        )
    }
    # Docker: docker-1 (2 nodes), docker-2 (1), docker-calico (1); not the removed cluster.
    # Calico: docker-calico (1 node) and old-k8s (1); not docker-2's superseded scan.
    assert table == {"Docker": (3, 4, 8), "Calico": (2, 2, 4)}
    assert list(table) == ["Docker", "Calico"]
    assert '<a href="/blockers/?origin=Docker">Docker</a>' in origins
    assert html.escape(DOCKER_HINT) in origins


def test_an_origins_clusters_are_listed_with_links_to_their_pages_and_paged(
    client_as, fleet_results, monkeypatch
):
    monkeypatch.setattr(views, "BLOCKERS_PER_PAGE", 2)
    client = client_as("viewer")

    first = client.get(reverse("fleet:blockers"), {"origin": "Docker"}).content.decode()
    second = client.get(
        reverse("fleet:blockers"), {"origin": "Docker", "page": "2"}
    ).content.decode()

    assert "<h1>Clusters blocked by Docker</h1>" in first
    assert html.escape(DOCKER_HINT) in first
    names = re.findall(r'<a href="/clusters/(\d+)/">([^<]+)</a>', first + second)
    assert [n for _, n in names] == ["docker-1", "docker-2", "docker-calico"]
    assert {int(pk) for pk, _ in names} == {
        fleet_results[n].pk for n in ["docker-1", "docker-2", "docker-calico"]
    }
    assert "Clusters 1\N{EN DASH}2 of 3" in first
    assert 'href="?origin=Docker&amp;page=2" rel="next"' in first
    row = re.search(r"docker-1</a></td>.*?</tr>", first, re.S).group(0)
    assert re.findall(r'<td class="num">(\d+)</td>', row) == ["2", "4"]  # nodes, rules


@pytest.mark.parametrize(
    "params",
    [
        {"origin": "Nothing-like-this"},
        {"origin": ""},
        {"origin": "x" * 5000},
        {"origin": "Docker\x00"},
        {"origin": "Docker", "page": "abc"},
        {"origin": "Docker", "page": "-3"},
        {"page": "abc"},
        {"page": "99999"},
    ],
)
def test_bad_input_on_blockers_never_fails_the_page(client_as, fleet_results, params):
    response = client_as("viewer").get(reverse("fleet:blockers"), params)

    assert response.status_code == 200


def test_an_unknown_origin_says_so(client_as, fleet_results):
    page = client_as("viewer").get(reverse("fleet:blockers"), {"origin": "Weave"}).content.decode()

    assert "No live cluster's latest scan found rules from “Weave”." in page


def test_clusters_whose_scan_did_not_read_every_node_are_listed_with_why(client_as, fleet_results):
    listed = section(get(client_as("viewer"), "fleet:blockers"), "not-read")

    assert re.findall(r'<a href="/clusters/\d+/">([^<]+)</a>', listed) == [
        "error-1",
        "incomplete-1",
    ]
    assert "Azure refused the credentials." in listed
    assert "1 of 3 Linux nodes could not be read." in listed


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
def test_the_scan_all_button_shows_only_to_roles_that_may_scan(client_as, role, shown):
    page = get(client_as(role), "fleet:blockers")

    assert (">Scan all eligible clusters</button>" in page) is shown


def test_scan_all_queues_every_eligible_cluster_and_the_page_follows_the_progress(
    client_as, personas, django_capture_on_commit_callbacks
):
    eligible = [make_cluster() for _ in range(3)]
    make_cluster(kubernetes_version="1.31.4")  # not eligible
    make_scan(eligible[0], status=ScanStatus.RUNNING)
    client = client_as("operator")

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(reverse("fleet:scan_all"), follow=True)

    page = response.content.decode()
    assert "2 scans queued, up to 8 at a time (as many as the workers run)" in page
    assert len(callbacks) == 1
    assert PreflightScan.objects.filter(status=ScanStatus.QUEUED).count() == 2
    assert (
        AuditEvent.objects.get(action="preflight.fleet_scan_requested").actor_id
        == personas["operator"].pk
    )
    progress = section(page, "scan-progress")
    assert "2 queued, 1 running, 0 finished of 3 scans" in progress
    assert 'hx-get="/blockers/progress/?polling=1" hx-trigger="every 3s"' in progress

    PreflightScan.objects.filter(status__in=[ScanStatus.QUEUED, ScanStatus.RUNNING]).update(
        status=ScanStatus.CLEAN, finished_at=timezone.now()
    )
    done = client.get(reverse("fleet:scan_progress"), {"polling": "1"}).content.decode()
    assert "hx-trigger" not in done
    assert "Every scan has finished." in done


def test_scan_all_with_nothing_to_scan_says_why(client_as):
    response = client_as("admin").post(reverse("fleet:scan_all"), follow=True)

    assert "No eligible cluster is waiting for a scan" in response.content.decode()


def test_a_viewer_pressing_scan_all_anyway_is_refused(client_as):
    make_cluster()

    response = client_as("viewer").post(reverse("fleet:scan_all"))

    assert response.status_code == 403
    assert not PreflightScan.objects.exists()


def test_blockers_is_in_the_navigation(client_as):
    page = get(client_as("viewer"), "fleet:blockers")

    assert '<a href="/blockers/" aria-current="page">Blockers</a>' in page
    assert '<a href="/" >Fleet</a>' in page


# --- the owner table -----------------------------------------------------------------------------

NEW_OWNER = {
    "name": "node-exporter",
    "reason": "Our node-exporter DaemonSet opens port 9100; reviewed as safe with BpfVeth.",
    "tables": "filter",
    "chain": "",
    "chain_prefix": "NODE-EXPORTER",
    "comment": "",
    "line_regex": r"-A INPUT -p tcp (?:-m tcp )?--dport 9100 -j ACCEPT",
}


def test_the_owner_table_shows_aks_allow_list_read_only_and_the_warning(client_as):
    make_accepted_owner(name="backup-agent")
    page = get(client_as("operator"), "fleet:owners")

    builtin = section(page, "builtin-owners")
    assert "<td>kube-proxy</td>" in builtin
    assert (
        '<td>Cilium</td><td>comment contains &quot;cilium:&quot;</td><td class="nowrap">every table</td>'
        in builtin
    )
    assert "The owners AKS itself accepts" in builtin
    assert "<form" not in builtin
    extensions = section(page, "extensions")
    assert (
        "An extension makes Wavegate accept rules that AKS itself may still refuse." in extensions
    )
    assert "<td>backup-agent</td>" in extensions
    assert "Retire" not in extensions  # an operator may not
    assert 'data-section="add-owner"' not in page


def test_an_admin_adds_an_extension_which_shows_and_is_audited(client_as, personas):
    client = client_as("admin")

    response = client.post(reverse("fleet:owner_add"), NEW_OWNER)

    assert response.status_code == 302
    assert messages_of(response) == [
        "node-exporter added: scans that start from now on accept the rules it matches."
    ]
    owner = AcceptedOwner.objects.get()
    assert (owner.added_by, owner.retired_at) == (personas["admin"], None)
    event = AuditEvent.objects.get(action="iptables.owner_added")
    assert event.actor_id == personas["admin"].pk
    assert event.object_id == str(owner.pk)
    assert event.after == {k: NEW_OWNER[k] for k in NEW_OWNER}
    extensions = section(client.get(reverse("fleet:owners")).content.decode(), "extensions")
    assert "<td>node-exporter</td>" in extensions
    assert "in or jumping to a chain starting <code>NODE-EXPORTER</code>" in extensions
    assert "admin-user" in extensions


def test_scans_from_then_on_accept_the_rules_an_extension_matches(client_as):
    dump = "*filter\n:NODE-EXPORTER-IN - [0:0]\n-A NODE-EXPORTER-IN -p tcp --dport 9100 -j ACCEPT\nCOMMIT\n"
    assert iptables.analyse(dump, preflight.owners()).findings

    client_as("admin").post(
        reverse("fleet:owner_add"), {**NEW_OWNER, "line_regex": "", "chain_prefix": "NODE-EXPORTER"}
    )

    assert iptables.analyse(dump, preflight.owners()).findings == []


def test_an_admin_retires_an_extension_with_a_reason_and_it_disappears(client_as, personas):
    owner = make_accepted_owner(name="backup-agent")
    client = client_as("admin")
    url = reverse("fleet:owner_retire", kwargs={"pk": owner.pk})

    refused = client.post(url, {"reason": "  "})
    assert messages_of(refused) == ["Say why you retire it: the reason goes in the audit log."]
    owner.refresh_from_db()
    assert owner.retired_at is None

    response = client.post(url, {"reason": "The backup agent is gone."}, follow=True)

    owner.refresh_from_db()
    assert owner.retired_at is not None
    assert "backup-agent retired" in response.content.decode()
    assert "<td>backup-agent</td>" not in section(response.content.decode(), "extensions")
    event = AuditEvent.objects.get(action="iptables.owner_retired")
    assert event.actor_id == personas["admin"].pk
    assert event.before["name"] == "backup-agent"
    assert event.before["chain"] == "NODE-EXPORTER"
    assert event.after["reason"] == "The backup agent is gone."
    again = client.post(url, {"reason": "twice"}, follow=True)
    assert "backup-agent is already retired." in again.content.decode()
    assert AuditEvent.objects.filter(action="iptables.owner_retired").count() == 1


@pytest.mark.parametrize("role", ["viewer", "operator", "approver", "auditor"])
def test_a_non_admins_forged_changes_to_the_owner_table_are_refused(client_as, role):
    owner = make_accepted_owner()
    client = client_as(role)

    added = client.post(reverse("fleet:owner_add"), NEW_OWNER)
    retired = client.post(
        reverse("fleet:owner_retire", kwargs={"pk": owner.pk}), {"reason": "because"}
    )

    assert added.status_code == retired.status_code == 403
    assert "needs the admin role" in added.content.decode()
    assert list(AcceptedOwner.objects.values_list("name", "retired_at")) == [
        ("node-exporter", None)
    ]
    assert not AuditEvent.objects.filter(action__startswith="iptables.").exists()


@pytest.mark.parametrize(
    ("changes", "field", "error"),
    [
        (
            {"line_regex": "-A INPUT (unclosed"},
            "line_regex",
            "This is not a regular expression Python can read: missing ), unterminated subpattern",
        ),
        ({"tables": "filter, nat,bogus"}, "tables", "Not an iptables table: bogus."),
        ({"name": ""}, "name", "This field is required."),
        ({"reason": ""}, "reason", "This field is required."),
    ],
)
def test_a_bad_extension_is_refused_with_a_clear_error(client_as, changes, field, error):
    response = client_as("admin").post(reverse("fleet:owner_add"), {**NEW_OWNER, **changes})

    assert response.status_code == 200
    page = response.content.decode()
    assert f'<p class="error" data-field-error="{field}">{html.escape(error)}' in page
    assert not AcceptedOwner.objects.exists()
    assert not AuditEvent.objects.filter(action="iptables.owner_added").exists()


def test_an_extension_without_a_matcher_is_refused(client_as):
    empty = {**NEW_OWNER, "chain": "", "chain_prefix": "", "comment": "", "line_regex": ""}

    response = client_as("admin").post(reverse("fleet:owner_add"), empty)

    assert (
        "Say which rules to accept: fill in at least one of exact chain"
        in response.content.decode()
    )
    assert not AcceptedOwner.objects.exists()


def test_retiring_an_unknown_extension_is_404(client_as):
    response = client_as("admin").post(
        reverse("fleet:owner_retire", kwargs={"pk": 987654}), {"reason": "x"}
    )

    assert response.status_code == 404


# --- cost ---------------------------------------------------------------------------------------


def queries_of(client, url: str, params: dict | None = None) -> list[str]:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url, params or {})
    assert response.status_code == 200
    return [q["sql"] for q in captured.captured_queries]


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


def test_blockers_costs_the_same_for_3_or_60_clusters(client_as):
    client = client_as("viewer")
    url = reverse("fleet:blockers")

    def make_results(count: int) -> None:
        statuses = [ScanStatus.BLOCKED, ScanStatus.CLEAN, ScanStatus.INCOMPLETE, ScanStatus.ERROR]
        for n in range(count):
            status = statuses[n % 4]
            findings = docker_on("a") + calico_on("b") if status == ScanStatus.BLOCKED else ()
            make_scan(make_cluster(), status=status, findings=findings, message="why")

    def costs() -> tuple[int, int, int]:
        cache.clear()
        cold = len(queries_of(client, url))
        warm = len(queries_of(client, url))
        return cold, warm, len(queries_of(client, url, {"origin": "Docker"}))

    make_results(3)
    make_scan(make_cluster(), status=ScanStatus.QUEUED)
    queries_of(client, url)
    few = costs()
    make_results(57)
    many = costs()

    assert many == few
    # Five for any signed-in page; three for the version the aggregates are kept under (the
    # latest scan, the open ones, the latest sync); the two aggregates when not kept yet; the
    # page of clusters not read (count and rows); the scans under way (since when, counts);
    # the rollout banner's paused plans while its cache is cold.
    assert few[:2] == (5 + 3 + 2 + 2 + 2 + 1, 5 + 3 + 2 + 2)
