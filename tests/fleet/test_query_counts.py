"""The inventory pages run a fixed number of SQL queries, however many clusters they show."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from tests.factories import make_cluster, make_subscription, make_sync_run
from tests.fleet.pages import listed

pytestmark = pytest.mark.django_db

# Every signed-in page costs 6: the session, the user, the permission check (the user's and
# their groups' permissions), the role names in the layout and an emergency stop in force
# (never cached: each process has its own cache). Both pages then read the inventory version
# (the latest sync and the latest mode snapshot, which the engine's worker rewrites when it
# changes a mode), which keys their cached aggregates (the list's 4 filter choices, the
# overview's 5 tallies: only a cold cache runs those). The list adds the count and the page of
# clusters (subscription joined, node pools counted) and whether a sync runs (how often it
# reads itself again); the overview adds the recent syncs, the
# chart of modes (2), preflight's part (its version: 3; the stale count; the scans under way)
# and the rollouts' part (plans by state, clusters today and in flight, waves waiting and how
# many, paused plans and how many): a fixed number, whatever the fleet's size.
LIST_QUERIES = 11
OVERVIEW_QUERIES = 21


def make_fleet(count: int, subscriptions: int = 3) -> None:
    subs = [make_subscription() for _ in range(subscriptions)]
    for n in range(count):
        make_cluster(
            subscription=subs[n % subscriptions],
            location=("westeurope", "eastus2", "southeastasia")[n % 3],
            ring=("canary", "early", "broad", "")[n % 4],
            kubernetes_version=("1.31.4", "1.33.2", "1.34.1")[n % 3],
            pools=3,
        )


def queries_of(client, url: str, params: dict | None = None) -> list[str]:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url, params or {})
    assert response.status_code == 200
    return [q["sql"] for q in captured.captured_queries]


def test_the_cluster_list_costs_the_same_for_10_or_100_rows(client_as, django_assert_num_queries):
    make_fleet(120)
    client = client_as("viewer")
    url = reverse("fleet:clusters")
    queries_of(client, url)  # the first request of a session may warm caches

    ten = queries_of(client, url, {"per_page": 10})
    with django_assert_num_queries(len(ten)):
        response = client.get(url, {"per_page": 100})

    assert len(listed(response)) == 100
    assert len(ten) == LIST_QUERIES, "\n".join(ten)
    # Filtering and sorting by a related column cost nothing more.
    filtered = {"per_page": 100, "sort": "-subscription", "ring": "early", "version": "1.33"}
    with django_assert_num_queries(len(ten)):
        client.get(url, filtered)


def test_no_query_per_cluster_or_node_pool(client_as):
    make_fleet(30)

    sqls = queries_of(client_as("viewer"), reverse("fleet:clusters"))

    assert not any(
        'FROM "fleet_nodepool"' in sql and "WHERE" in sql and "IN (" in sql for sql in sqls
    )
    assert not any('FROM "fleet_subscription" WHERE' in sql for sql in sqls)


def test_the_overview_costs_the_same_for_10_or_120_clusters(client_as, django_assert_num_queries):
    make_sync_run()
    make_fleet(10)
    client = client_as("viewer")
    url = reverse("fleet:overview")
    queries_of(client, url)

    ten = queries_of(client, url)
    make_fleet(110, subscriptions=7)
    with django_assert_num_queries(len(ten)):
        client.get(url)

    assert len(ten) == OVERVIEW_QUERIES, "\n".join(ten)


def test_a_clusters_page_costs_the_same_with_1_or_12_node_pools(
    client_as, django_assert_num_queries
):
    client = client_as("auditor")
    small, big = make_cluster(pools=1), make_cluster(pools=12)
    queries_of(client, reverse("fleet:cluster", kwargs={"pk": small.pk}))

    one = queries_of(client, reverse("fleet:cluster", kwargs={"pk": small.pk}))
    with django_assert_num_queries(len(one)):
        client.get(reverse("fleet:cluster", kwargs={"pk": big.pk}))
