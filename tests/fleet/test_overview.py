"""The fleet overview: how the present fleet divides up, each count a link to those clusters,
and what the inventory sync last did."""

from __future__ import annotations

import datetime
import re

import pytest
from django.urls import reverse
from django.utils import timezone

from fleet.choices import SyncStatus, SyncTrigger
from fleet.models import SyncRun
from tests.factories import make_cluster, make_subscription, make_sync_run

pytestmark = pytest.mark.django_db


def tally(page: str, label: str) -> tuple[str, int]:
    """The link and count of one overview line, e.g. tally(page, "Eligible")."""
    match = re.search(
        rf'<a href="([^"]+)"><span>{re.escape(label)}</span><span class="num">(\d+)</span>', page
    )
    assert match, f"no tally {label!r}"
    return match.group(1).replace("&amp;", "&"), int(match.group(2))


def test_it_counts_present_clusters_each_way_and_links_each_count(client_as):
    payments = make_subscription(name="payments-prod")
    search = make_subscription(name="search-prod")
    make_cluster(subscription=payments, location="westeurope", ring="canary")
    make_cluster(subscription=payments, location="westeurope", ring="broad")
    make_cluster(subscription=search, location="eastus2", ring="broad", acceleration_mode="BpfVeth")
    make_cluster(subscription=search, location="eastus2", ring="", kubernetes_version="1.31.4")
    make_cluster(subscription=search, location="eastus2", removed_at=timezone.now())

    page = client_as("viewer").get(reverse("fleet:overview")).content.decode()

    clusters = reverse("fleet:clusters")
    assert tally(page, "Eligible") == (f"{clusters}?eligibility=eligible", 3)
    assert tally(page, "Not eligible") == (f"{clusters}?eligibility=blocked", 1)
    assert tally(page, "BpfVeth") == (f"{clusters}?mode=BpfVeth", 1)
    assert tally(page, "None") == (f"{clusters}?mode=None", 3)
    assert tally(page, "payments-prod") == (f"{clusters}?subscription={payments.pk}", 2)
    assert tally(page, "search-prod") == (f"{clusters}?subscription={search.pk}", 2)
    assert tally(page, "westeurope") == (f"{clusters}?region=westeurope", 2)
    assert tally(page, "eastus2") == (f"{clusters}?region=eastus2", 2)
    assert tally(page, "canary") == (f"{clusters}?ring=canary", 1)
    assert tally(page, "broad") == (f"{clusters}?ring=broad", 2)
    assert tally(page, "(no ring)") == (f"{clusters}?ring=%28none%29", 1)
    assert "All 4 clusters" in page


def test_each_count_link_lists_exactly_the_clusters_it_counts(client_as):
    make_cluster(name="old", kubernetes_version="1.30.1", ring="")
    make_cluster(name="new", ring="canary")
    client = client_as("viewer")
    page = client.get(reverse("fleet:overview")).content.decode()

    for label, expected in [("Not eligible", "old"), ("(no ring)", "old"), ("canary", "new")]:
        href, count = tally(page, label)
        listed = client.get(href).content.decode()
        assert count == 1
        assert re.findall(r'href="/clusters/\d+/">([^<]+)</a>', listed) == [expected]


def test_the_last_sync_shows_status_start_duration_and_counts(client_as):
    make_cluster()
    older = make_sync_run(
        started_at=timezone.now() - datetime.timedelta(hours=2),
        counts={"discovered": 99, "changed": 0, "removed": 0, "unchanged": 0},
    )
    latest = make_sync_run(
        seconds=42.4,
        trigger=SyncTrigger.BUTTON,
        counts={"discovered": 3, "changed": 2, "removed": 1, "unchanged": 120},
    )

    page = client_as("viewer").get(reverse("fleet:overview")).content.decode()

    assert '<span class="badge succeeded">Succeeded</span>' in page
    assert "42.4 s" in page
    assert "3 discovered, 2 changed, 1 removed, 120 unchanged" in page
    recent = page.split("<caption>Recent syncs</caption>")[1]
    rows = re.findall(r'<td class="num">(\d+)</td>\s*<td><time', recent)
    assert rows == [str(latest.pk), str(older.pk)]  # newest first
    assert '<td class="num">99</td>' in recent
    assert '<td class="num">0</td>' in recent  # a zero is a count, not a blank
    assert 'hx-trigger="every 3s"' not in page


def test_a_failed_sync_shows_its_error(client_as):
    make_sync_run(status=SyncStatus.FAILED, error="Azure refused the token (AADSTS7000215).")

    page = client_as("viewer").get(reverse("fleet:overview")).content.decode()

    assert '<span class="badge failed">Failed</span>' in page
    assert "Azure refused the token (AADSTS7000215)." in page
    assert "discovered," not in page  # no counts for a sync that wrote nothing


def test_a_running_sync_is_shown_and_its_panel_polls_every_3_seconds(client_as):
    make_sync_run()
    make_sync_run(status=SyncStatus.RUNNING, started_at=timezone.now())

    page = client_as("viewer").get(reverse("fleet:overview")).content.decode()

    assert 'data-testid="sync-running"' in page
    running = SyncRun.objects.get(status=SyncStatus.RUNNING)
    assert f'hx-get="{reverse("fleet:sync_status")}?following={running.pk}"' in page
    assert 'hx-trigger="every 3s"' in page
    assert 'hx-swap="outerHTML"' in page


def test_the_polled_overview_shows_what_the_sync_found_and_slows_down_once_it_ends(client_as):
    run = make_sync_run(status=SyncStatus.RUNNING, started_at=timezone.now())
    client = client_as("viewer")
    url = reverse("fleet:sync_status") + f"?following={run.pk}"

    while_running = client.get(url).content.decode()
    make_cluster(name="aks-found")
    run.status, run.finished_at = SyncStatus.SUCCEEDED, timezone.now()
    run.counts = {"discovered": 5, "changed": 0, "removed": 0, "unchanged": 0}
    run.save()
    after = client.get(url).content.decode()

    assert 'hx-trigger="every 3s"' in while_running
    assert "<html" not in while_running  # the live part alone
    assert "A sync is reading the subscriptions now" in while_running
    # Scheduled syncs and rollouts change the fleet at any time: it keeps following, slower.
    assert 'hx-trigger="every 15s"' in after
    assert "5 discovered" in after
    assert "The sync has finished: this page shows the inventory it found." in after
    # Only the copy that followed that sync says so; the page's later copies do not.
    assert f"?following={run.pk}" not in after
    idle = client.get(reverse("fleet:sync_status")).content.decode()
    assert "The sync has finished" not in idle
    assert 'data-testid="tally-eligibility"' in after  # the cluster it found is counted
    assert re.search(r'data-testid="updated">Updated <time datetime="[^"]+">\d\d:\d\d:\d\d', after)


def test_an_empty_inventory_says_the_first_sync_fills_it(client_as):
    viewer_page = client_as("viewer").get(reverse("fleet:overview")).content.decode()
    operator_page = client_as("operator").get(reverse("fleet:overview")).content.decode()

    for page in (viewer_page, operator_page):
        assert "No clusters in the inventory yet" in page
        assert "The first inventory sync fills this page." in page
        assert "No inventory sync has run yet." in page
    assert "an operator can start one sooner" in viewer_page
    assert "press <strong>Sync now</strong>" in operator_page


@pytest.mark.parametrize("page", ["overview", "clusters", "cluster"])
def test_fleet_is_the_current_section_on_every_fleet_page(client_as, page):
    kwargs = {"pk": make_cluster().pk} if page == "cluster" else {}

    html = client_as("viewer").get(reverse(f"fleet:{page}", kwargs=kwargs)).content.decode()

    assert re.search(r'<a href="/" aria-current="page">Fleet</a>', html)
    assert 'aria-current="page">Plans' not in html


def test_the_cluster_list_follows_a_running_sync_with_its_filters_and_page(client_as):
    for i in range(3):
        make_cluster(name=f"aks-live-{i}")
    make_sync_run(status=SyncStatus.RUNNING, started_at=timezone.now())
    client = client_as("viewer")

    page = client.get(reverse("fleet:clusters"), {"q": "live", "per_page": 10}).content.decode()
    live = client.get(reverse("fleet:clusters"), {"q": "live", "live": "1"}).content.decode()

    assert 'hx-get="/clusters/?q=live&amp;per_page=10&amp;live=1" hx-trigger="every 3s"' in page
    assert "<html" not in live
    assert "aks-live-2" in live
    # Its links lead to pages, never to the live part alone.
    assert "live=1" not in live.split('id="cluster-table"')[1].split("hx-get")[0]
    assert "live=1" not in "".join(re.findall(r'<a href="([^"]*)"', live))
