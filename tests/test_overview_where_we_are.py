"""The overview answers "where are we" (issue 17): the inventory by eligibility and mode with
clusters at BpfVeth over time, preflight verdicts with the stale ones and what blocks by
origin (each chart with its table), plans by state, what waits for approval and for whom,
what is paused and why; in a fixed number of queries however large the fleet."""

from __future__ import annotations

import datetime
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from fleet import snapshots
from fleet.models import ModeSnapshot
from rollout import actions
from tests.factories import make_cluster, make_scan, submitted_plan

pytestmark = pytest.mark.django_db


def cell(html: str, testid: str) -> str:
    found = re.search(rf'data-testid="{testid}"[^>]*>(.*?)</', html, re.S)
    assert found, f"no {testid} on the page"
    return re.sub(r"<[^>]+>", "", found.group(1)).strip()


def row(html: str, table: str, key: str) -> list[str]:
    """The cells of the row `key` (its data-status or data-origin) in the table `table`."""
    part = html.split(f'data-testid="{table}"', 1)[1].split("</table>", 1)[0]
    found = re.search(rf'<tr data-(?:status|origin)="{re.escape(key)}">(.*?)</tr>', part, re.S)
    assert found, f"no row {key} in {table}"
    return [
        re.sub(r"<[^>]+>", "", c).strip()
        for c in re.findall(r"<td[^>]*>(.*?)</td>", found.group(1), re.S)
    ]


def fleet_of_eight() -> None:
    old = timezone.now() - datetime.timedelta(hours=5)
    for i in range(3):
        make_scan(make_cluster(name=f"aks-clean-{i}"))
    make_scan(make_cluster(name="aks-stale"), queued_at=old)
    for i in range(2):
        make_scan(make_cluster(name=f"aks-cilium-{i}"), findings=[{"origin": "cilium"}])
    make_cluster(name="aks-enabled", acceleration_mode="BpfVeth")
    make_cluster(name="aks-never")


def test_the_overview_shows_inventory_preflight_and_rollouts(client_as, personas):
    fleet_of_eight()
    snapshots.record()
    waiting = submitted_plan(
        personas["operator"], name="first", selection={"names": ["aks-clean-0"]}, wave_spec="100%"
    )
    paused = submitted_plan(
        personas["operator"], name="second", selection={"names": ["aks-clean-1"]}, wave_spec="100%"
    )
    actions.pause_plan(paused, acting_user=personas["operator"], reason="change freeze")

    html = client_as("viewer").get(reverse("fleet:overview")).content.decode()

    # Preflight: 6 scanned (one stale), 2 never scanned; blocked clusters by origin, charted.
    assert cell(html, "overview-stale") == "1"
    assert "6 live clusters scanned, 2 never scanned" in cell(html, "overview-scanned")
    assert row(html, "overview-verdicts", "blocked")[1:] == ["2", "2"]
    assert row(html, "overview-verdicts", "never")[1:] == ["2", "2"]
    assert row(html, "origins-table", "cilium")[:2] == ["cilium", "2"]
    assert "Blocked clusters by origin: cilium 2" in html  # the chart's own title
    # Rollouts: one plan waiting for its first approval, by anyone but its writer.
    assert row(html, "plans-by-state", "submitted")[1] == "1"
    assert row(html, "plans-by-state", "paused")[1] == "1"
    awaiting = cell(html, "awaiting-approval")
    assert f"Wave 1 of {waiting.name}" in awaiting
    listed = html.split('data-testid="awaiting-approval"')[1].split("</ul>")[0]
    assert "admin-user" in listed
    assert "approver-user" in listed
    assert "operator-user" not in listed
    assert (
        "second</a>: Paused by operator-user: change freeze"
        in html.split('data-testid="paused-plans"')[1]
    )
    # Clusters at BpfVeth over time: the chart and its table.
    assert "Clusters at BpfVeth over time: 1 of 8 now" in html
    table = html.split('data-testid="mode-table"')[1].split("</table>")[0]
    assert re.search(r'<td class="num">1</td><td class="num">8</td>', table)


def test_the_mode_chart_follows_the_snapshots_hour_by_hour(client_as):
    make_cluster(name="aks-a")
    make_cluster(name="aks-b", acceleration_mode="BpfVeth")
    now = timezone.now()
    snapshots.record(now - datetime.timedelta(days=2))
    make_cluster(name="aks-c", acceleration_mode="BpfVeth")
    snapshots.record(now)
    snapshots.record(now)  # the same hour again: one row, rewritten

    html = client_as("viewer").get(reverse("fleet:overview")).content.decode()

    assert ModeSnapshot.objects.count() == 2
    rows = re.findall(
        r'<td class="num">(\d+)</td><td class="num">(\d+)</td></tr>',
        html.split('data-testid="mode-table"')[1].split("</table>")[0],
    )
    assert rows == [("2", "3"), ("1", "2")]  # newest first
    path = re.search(r'<path d="(M [^"]+)" class="chart-line"', html).group(1)
    assert path.count("V ") == 1  # one step up, from 1 to 2


def test_the_overview_costs_the_same_for_a_small_and_a_larger_fleet(client_as, personas):
    client = client_as("operator")

    def queries() -> int:
        with CaptureQueriesContext(connection) as seen:
            assert client.get(reverse("fleet:overview")).status_code == 200
        return len(seen)

    fleet_of_eight()
    small = queries()
    for i in range(30):
        findings = [{"origin": f"o{i % 4}"}] if i >= 3 else []
        make_scan(make_cluster(name=f"aks-more-{i}"), findings=findings)
    for i in range(3):
        submitted_plan(
            personas["operator"],
            name=f"p{i}",
            selection={"names": [f"aks-more-{i}"]},
            wave_spec="100%",
        )
    larger = queries()

    assert larger <= small + 12  # a few per wave waiting (at most 10 shown), none per cluster
