"""Whatever the query string holds, the cluster list answers: it ignores what it cannot use,
says so, and lists clusters as if that parameter were absent."""

from __future__ import annotations

import pytest
from django.urls import reverse

from tests.factories import make_cluster
from tests.fleet.pages import listed

pytestmark = pytest.mark.django_db


@pytest.fixture
def clusters(db):
    return [make_cluster(name=name) for name in ("alpha", "bravo", "charlie")]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"sort": "password"}, "The list cannot be sorted by “password”; sorted by name."),
        ({"sort": "name; DROP TABLE fleet_cluster"}, "sorted by name."),
        ({"page": "two"}, "The page number must be a whole number; showing the first page."),
        ({"page": "0"}, "Pages start at 1; showing the first page."),
        ({"page": "-3"}, "Pages start at 1; showing the first page."),
        ({"per_page": "lots"}, "Clusters per page must be a whole number; showing 50."),
        ({"per_page": "0"}, "Show at least 1 cluster per page; showing 50."),
        ({"subscription": "abc"}, "There is no subscription “abc” in the inventory; showing all."),
        ({"subscription": "999999"}, "There is no subscription “999999”"),
        ({"region": "moon-1"}, "There is no region “moon-1” in the inventory; showing all."),
        ({"ring": "ring-9"}, "There is no ring “ring-9”"),
        ({"version": "2.0"}, "There is no Kubernetes version “2.0”"),
        ({"eligibility": "maybe"}, "Eligibility is “eligible” or “blocked”, not “maybe”"),
        ({"mode": "Turbo"}, "There is no acceleration mode “Turbo”"),
        ({"q": "x" * 101}, "Search for at most 100 characters; showing all names."),
    ],
)
def test_a_bad_parameter_is_named_and_ignored(client_as, clusters, params, message):
    response = client_as("viewer").get(reverse("fleet:clusters"), params)

    assert listed(response) == ["alpha", "bravo", "charlie"]
    page = response.content.decode()
    assert 'data-testid="problems"' in page
    assert message.replace("“", "&ldquo;") in page or message in page


def test_a_control_character_in_a_parameter_is_named_and_ignored(client_as, clusters):
    response = client_as("viewer").get(reverse("fleet:clusters"), {"q": "a\x00b", "sort": "-name"})

    assert listed(response) == ["charlie", "bravo", "alpha"]  # the rest still applies
    page = response.content.decode()
    assert "The parameter &#x27;q&#x27; held a control character (U+0000) and was ignored" in page


def test_a_page_past_the_end_shows_the_last_page(client_as, clusters):
    response = client_as("viewer").get(reverse("fleet:clusters"), {"page": "99", "per_page": "2"})

    assert listed(response) == ["charlie"]
    assert "Page 2 of 2" in response.content.decode()


def test_good_parameters_still_apply_beside_a_bad_one(client_as, clusters):
    response = client_as("viewer").get(
        reverse("fleet:clusters"), {"q": "a", "sort": "-name", "page": "x", "region": "??"}
    )

    assert listed(response) == ["charlie", "bravo", "alpha"]
    assert "showing the first page" in response.content.decode()


def test_repeated_and_unknown_parameters_do_no_harm(client_as, clusters):
    response = client_as("viewer").get(
        reverse("fleet:clusters") + "?sort=name&sort=-name&utm_source=mail&removed=yes&per_page=2"
    )

    assert listed(response) == ["charlie", "bravo"]
    assert 'data-testid="problems"' not in response.content.decode()
