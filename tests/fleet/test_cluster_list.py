"""The cluster list: what each filter, the search, the sort and the pages show."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse
from django.utils import timezone

from tests.factories import make_cluster, make_subscription
from tests.fleet.pages import listed

pytestmark = pytest.mark.django_db


def row_of(response, name: str) -> str:
    page = response.content.decode()
    match = re.search(rf'<tr[^>]*>\s*<td><a href="/clusters/\d+/">{name}</a>.*?</tr>', page, re.S)
    assert match, f"no row for {name}"
    return match.group(0)


@pytest.fixture
def fleet(db):
    """Four clusters that differ in every way the list filters."""
    payments = make_subscription(name="payments-prod")
    search = make_subscription(name="search-prod")
    make_cluster(
        name="pay-weu-1", subscription=payments, location="westeurope", ring="canary", pools=2
    )
    make_cluster(
        name="pay-eus-1",
        subscription=payments,
        location="eastus2",
        ring="broad",
        kubernetes_version="1.32.7",
    )
    make_cluster(
        name="search-weu-1",
        subscription=search,
        location="westeurope",
        ring="broad",
        kubernetes_version="1.34.1",
        acceleration_mode="BpfVeth",
        pools=3,
    )
    make_cluster(
        name="search-eus-1",
        subscription=search,
        location="eastus2",
        ring="",
        network_dataplane="",
        acns_enabled=False,
        pools=[{"os_sku": "Ubuntu"}],
    )
    return {"payments": payments, "search": search}


def get(client, **params):
    return client.get(reverse("fleet:clusters"), params)


def test_it_lists_present_clusters_by_name_with_their_columns(client_as, fleet):
    response = get(client_as("viewer"))

    assert listed(response) == ["pay-eus-1", "pay-weu-1", "search-eus-1", "search-weu-1"]
    row = row_of(response, "search-weu-1")
    for cell in ["search-prod", "westeurope", "1.34.1", "cilium", "On", "BpfVeth", "broad"]:
        assert f">{cell}<" in row
    assert '<span class="badge ok">Eligible</span>' in row
    assert '<td class="num">3</td>' in row  # node pools
    blocked = row_of(response, "search-eus-1")
    assert ">Off<" in blocked
    assert '<span class="badge bad" title="Uses network plugin' in blocked
    assert ">3 blockers</span>" in blocked  # dataplane, ACNS, the Ubuntu pool
    assert "1 blocker<" in row_of(response, "pay-eus-1")


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"region": "eastus2"}, ["pay-eus-1", "search-eus-1"]),
        ({"ring": "broad"}, ["pay-eus-1", "search-weu-1"]),
        ({"ring": "(none)"}, ["search-eus-1"]),
        ({"version": "1.33"}, ["pay-weu-1", "search-eus-1"]),
        ({"version": "1.32"}, ["pay-eus-1"]),
        ({"eligibility": "eligible"}, ["pay-weu-1", "search-weu-1"]),
        ({"eligibility": "blocked"}, ["pay-eus-1", "search-eus-1"]),
        ({"mode": "BpfVeth"}, ["search-weu-1"]),
        ({"mode": "None"}, ["pay-eus-1", "pay-weu-1", "search-eus-1"]),
        ({"q": "WEU"}, ["pay-weu-1", "search-weu-1"]),
        ({"q": "search", "eligibility": "blocked"}, ["search-eus-1"]),
        ({"region": "westeurope", "ring": "broad", "version": "1.34"}, ["search-weu-1"]),
    ],
)
def test_each_filter_narrows_the_list(client_as, fleet, params, expected):
    response = get(client_as("viewer"), **params)

    assert listed(response) == expected
    assert 'data-testid="problems"' not in response.content.decode()


def test_it_filters_by_subscription(client_as, fleet):
    response = get(client_as("viewer"), subscription=fleet["search"].pk)

    assert listed(response) == ["search-eus-1", "search-weu-1"]
    assert f'<option value="{fleet["search"].pk}" selected>search-prod</option>' in (
        response.content.decode()
    )


def test_the_filter_form_offers_the_values_the_fleet_has(client_as, fleet):
    page = get(client_as("viewer")).content.decode()

    for value in ["eastus2", "westeurope", "broad", "canary", "(none)", "1.32", "1.33", "1.34"]:
        assert f'<option value="{value}">' in page
    versions = re.findall(r'<option value="(1\.\d+)">', page)
    assert versions == ["1.32", "1.33", "1.34"]


def test_nothing_matching_says_so_and_offers_to_clear(client_as, fleet):
    page = get(client_as("viewer"), q="no-such-cluster").content.decode()

    assert "No clusters match these filters." in page
    assert "Show every cluster" in page


def test_an_empty_inventory_says_the_first_sync_fills_it(client_as):
    page = get(client_as("viewer")).content.decode()

    assert "No clusters in the inventory yet: the first inventory sync fills it." in page


def test_removed_clusters_show_only_when_asked_for(client_as, fleet):
    make_cluster(name="pay-gone-1", removed_at=timezone.now())
    client = client_as("viewer")

    assert "pay-gone-1" not in listed(get(client))
    with_removed = get(client, removed="1")
    assert "pay-gone-1" in listed(with_removed)
    assert '<span class="badge removed">removed</span>' in row_of(with_removed, "pay-gone-1")


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        ("name", ["pay-eus-1", "pay-weu-1", "search-eus-1", "search-weu-1"]),
        ("-name", ["search-weu-1", "search-eus-1", "pay-weu-1", "pay-eus-1"]),
        ("subscription", ["pay-eus-1", "pay-weu-1", "search-eus-1", "search-weu-1"]),
        ("-subscription", ["search-eus-1", "search-weu-1", "pay-eus-1", "pay-weu-1"]),
        ("region", ["pay-eus-1", "search-eus-1", "pay-weu-1", "search-weu-1"]),
        ("-region", ["pay-weu-1", "search-weu-1", "pay-eus-1", "search-eus-1"]),
        ("version", ["pay-eus-1", "pay-weu-1", "search-eus-1", "search-weu-1"]),
        ("-version", ["search-weu-1", "pay-weu-1", "search-eus-1", "pay-eus-1"]),
        ("ring", ["search-eus-1", "pay-eus-1", "search-weu-1", "pay-weu-1"]),
        ("-ring", ["pay-weu-1", "pay-eus-1", "search-weu-1", "search-eus-1"]),
        ("eligibility", ["pay-weu-1", "search-weu-1", "pay-eus-1", "search-eus-1"]),
        ("-eligibility", ["pay-eus-1", "search-eus-1", "pay-weu-1", "search-weu-1"]),
    ],
)
def test_it_sorts_by_each_column_both_ways(client_as, fleet, sort, expected):
    assert listed(get(client_as("viewer"), sort=sort)) == expected


def test_a_column_header_sorts_by_it_and_a_second_click_reverses(client_as, fleet):
    client = client_as("viewer")

    first = get(client, region="eastus2").content.decode()
    assert (
        '<th scope="col" aria-sort="ascending"><a href="?region=eastus2&amp;sort=-name">' in first
    )
    assert '<a href="?region=eastus2&amp;sort=version">Version</a>' in first
    second = get(client, region="eastus2", sort="version").content.decode()
    assert 'aria-sort="ascending"><a href="?region=eastus2&amp;sort=-version">Version ▲' in second


def test_it_pages_through_the_list(client_as):
    subscription = make_subscription()
    for n in range(7):
        make_cluster(name=f"aks-{n:02d}", subscription=subscription)
    client = client_as("viewer")

    first = get(client, per_page=3)
    last = get(client, per_page=3, page=3)

    assert listed(first) == ["aks-00", "aks-01", "aks-02"]
    assert "Page 1 of 3" in first.content.decode()
    assert "Clusters 1\N{EN DASH}3 of 7" in first.content.decode()
    assert 'href="?per_page=3&amp;page=2" rel="next"' in first.content.decode()
    assert listed(last) == ["aks-06"]
    assert 'rel="next"' not in last.content.decode()


def test_it_shows_50_a_page_and_at_most_200(client_as):
    subscription = make_subscription()
    for n in range(205):
        make_cluster(name=f"aks-{n:03d}", subscription=subscription, pools=0)
    client = client_as("viewer")

    assert len(listed(get(client))) == 50
    assert len(listed(get(client, per_page=500))) == 200
    assert "Page 1 of 2" in get(client, per_page=500).content.decode()
