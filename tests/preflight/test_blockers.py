"""/blockers/: the fleet's latest preflight results by status and by origin, the clusters one
origin blocks, the clusters not read, and "Scan all eligible clusters" with its progress."""

from __future__ import annotations

import datetime
import html
import re

import pytest
from django.core.cache import cache
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from fleet.choices import ScanStatus
from fleet.models import PreflightScan
from preflight import views
from tests.factories import DOCKER_HINT, make_cluster, make_scan, make_subscription
from tests.preflight.pages import calico_on, docker_on, get, queries_of, section

pytestmark = pytest.mark.django_db


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
    page = get(client_as("viewer"), "preflight:blockers")

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
    origins = section(get(client_as("viewer"), "preflight:blockers"), "origins")

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

    first = client.get(reverse("preflight:blockers"), {"origin": "Docker"}).content.decode()
    second = client.get(
        reverse("preflight:blockers"), {"origin": "Docker", "page": "2"}
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
    response = client_as("viewer").get(reverse("preflight:blockers"), params)

    assert response.status_code == 200


def test_an_unknown_origin_says_so(client_as, fleet_results):
    page = (
        client_as("viewer").get(reverse("preflight:blockers"), {"origin": "Weave"}).content.decode()
    )

    assert "No live cluster's latest scan found rules from “Weave”." in page


def test_clusters_whose_scan_did_not_read_every_node_are_listed_with_why(client_as, fleet_results):
    listed = section(get(client_as("viewer"), "preflight:blockers"), "not-read")

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
    page = get(client_as(role), "preflight:blockers")

    assert (">Scan all eligible clusters</button>" in page) is shown


def test_scan_all_queues_every_eligible_cluster_and_the_page_follows_the_progress(
    client_as, personas, django_capture_on_commit_callbacks
):
    eligible = [make_cluster() for _ in range(3)]
    make_cluster(kubernetes_version="1.31.4")  # not eligible
    make_scan(eligible[0], status=ScanStatus.RUNNING)
    client = client_as("operator")

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(reverse("preflight:scan_all"), follow=True)

    page = response.content.decode()
    assert "2 scans queued, up to 8 at a time (as many as the workers run)" in page
    assert len(callbacks) == 2  # one chain of scans per scan queued, up to 8
    assert PreflightScan.objects.filter(status=ScanStatus.QUEUED).count() == 2
    assert (
        AuditEvent.objects.get(action="preflight.fleet_scan_requested").actor_id
        == personas["operator"].pk
    )
    progress = section(page, "scan-progress")
    assert "2 queued, 1 running, 0 finished of 3 scans" in progress
    assert 'hx-get="/blockers/progress/?polling=1&amp;page=1" hx-trigger="every 3s"' in page

    PreflightScan.objects.filter(status__in=[ScanStatus.QUEUED, ScanStatus.RUNNING]).update(
        status=ScanStatus.CLEAN, finished_at=timezone.now()
    )
    done = client.get(reverse("preflight:scan_progress"), {"polling": "1"}).content.decode()
    # Once none runs it keeps looking, slower: a scan someone else starts shows up too.
    assert 'hx-trigger="every 30s"' in done
    assert "polling=1" not in done
    assert "Every scan has finished: the results below are theirs." in done
    # The last copy brings the results themselves, so the page needs no reload.
    assert 'data-status="clean"' in done
    assert "these are the latest results" in done


def test_scan_all_with_nothing_to_scan_says_why(client_as):
    response = client_as("admin").post(reverse("preflight:scan_all"), follow=True)

    assert "No eligible cluster is waiting for a scan" in response.content.decode()


def test_a_viewer_pressing_scan_all_anyway_is_refused(client_as):
    make_cluster()

    response = client_as("viewer").post(reverse("preflight:scan_all"))

    assert response.status_code == 403
    assert not PreflightScan.objects.exists()


def test_blockers_is_in_the_navigation(client_as):
    page = get(client_as("viewer"), "preflight:blockers")

    assert '<a href="/blockers/" aria-current="page">Preflight</a>' in page
    assert '<a href="/" >Fleet</a>' in page


def test_blockers_costs_the_same_for_3_or_60_clusters(client_as):
    client = client_as("viewer")
    url = reverse("preflight:blockers")

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
    # Five for any signed-in page and the emergency stop in force (never cached); three for
    # the version the aggregates are kept under (the latest scan, the open ones, the latest
    # sync); the two aggregates when not kept yet; the page of clusters not read (count and
    # rows); the scans under way (since when, counts); the rollout banner's paused plans and
    # the audit chain's state while their caches are cold.
    assert few[:2] == (5 + 1 + 3 + 2 + 2 + 2 + 1 + 1, 5 + 1 + 3 + 2 + 2)
