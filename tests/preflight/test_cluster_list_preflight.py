"""The cluster list's preflight column and filter."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from tests.factories import make_cluster, make_scan
from tests.preflight.pages import docker_on

pytestmark = pytest.mark.django_db


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
