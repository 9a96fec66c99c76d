"""The new-plan preview's cluster table (issue 17): each cluster with its wave, subscription,
ring, region, preflight verdict and its age, and maintenance window with when it next opens, in
a fixed number of queries; and the form's subscriptions, regions and rings as checkbox groups
that choose what the multiple selects chose."""

from __future__ import annotations

import datetime
import html
import re

import pytest
from django.urls import reverse
from django.utils import timezone

from fleet.choices import ScanStatus
from rollout.models import RolloutPlan
from rollout.preview import CLUSTER_ROWS
from tests.factories import make_cluster, make_scan, make_subscription, plan_form, submitted_plan

pytestmark = pytest.mark.django_db

SCHEDULE = "aksManagedNodeOSUpgradeSchedule"


def daily_window(start: datetime.datetime, hours: int) -> dict:
    return {
        "name": SCHEDULE,
        "properties": {
            "maintenanceWindow": {
                "schedule": {"daily": {"intervalDays": 1}},
                "startTime": start.strftime("%H:%M"),
                "durationHours": hours,
                "utcOffset": "+00:00",
            }
        },
    }


def preview(client, **fields) -> str:
    response = client.post(reverse("rollout:plan_preview"), plan_form(**fields))
    assert response.status_code == 200
    return response.content.decode()


def text(fragment: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", fragment)).split())


def cluster_rows(page: str) -> dict[str, list[str]]:
    """name → the text of each cell of its row in the preview's cluster table."""
    table = page.split('data-testid="preview-clusters">', 1)[1].split("</table>", 1)[0]
    rows = {}
    for row in re.findall(r'<tr data-testid="preview-cluster".*?</tr>', table, re.S):
        cells = [text(c) for c in re.findall(r"<t[dh]\b[^>]*>(.*?)</t[dh]>", row, re.S)]
        rows[cells[1]] = cells
    return rows


def test_each_cluster_shows_its_wave_subscription_ring_and_region_and_links_to_its_page(
    client_as, settings
):
    settings.WAVEGATE_RING_ORDER = ["canary", "broad"]
    payments = make_subscription(name="payments-prod")
    canary = make_cluster(name="aks-canary", ring="canary", location="northeurope",
                          subscription=payments)  # fmt: skip
    make_cluster(name="aks-broad-1", ring="broad", subscription=payments)
    make_cluster(name="aks-broad-2", ring="broad", location="eastus", subscription=payments)

    page = preview(client_as("operator"), wave_spec="1, 100%")
    rows = cluster_rows(page)

    assert list(rows) == ["aks-canary", "aks-broad-2", "aks-broad-1"]  # ring, region, name
    assert rows["aks-canary"][:5] == ["1", "aks-canary", "payments-prod", "canary", "northeurope"]
    assert rows["aks-broad-2"][:5] == ["2", "aks-broad-2", "payments-prod", "broad", "eastus"]
    assert f'<a href="{reverse("fleet:cluster", args=[canary.pk])}">aks-canary</a>' in page
    # The per-wave table stays.
    assert len(re.findall(r'data-testid="preview-wave-size">', page)) == 2


def test_the_preflight_column_says_the_verdict_its_age_and_stale_or_never_scanned(
    client_as, settings
):
    settings.WAVEGATE_PREFLIGHT_MAX_AGE_MINUTES = 6 * 60
    now = timezone.now()
    fresh = make_cluster(name="aks-fresh")
    # make_scan finishes a scan 40 s after it was queued.
    make_scan(fresh, queued_at=now - datetime.timedelta(hours=3, seconds=40))
    old = make_cluster(name="aks-old")
    make_scan(old, queued_at=now - datetime.timedelta(days=2, seconds=40))
    partial = make_cluster(name="aks-partial")
    make_scan(partial, status=ScanStatus.INCOMPLETE, queued_at=now - datetime.timedelta(minutes=20))
    make_cluster(name="aks-unscanned")

    page = preview(client_as("operator"))
    preflight = {name: cells[5] for name, cells in cluster_rows(page).items()}

    assert preflight == {
        "aks-fresh": "Clean · 3 h ago",
        "aks-old": "Clean · 2 d ago · stale",
        "aks-partial": "Incomplete · 19 min ago",
        "aks-unscanned": "never scanned",
    }
    assert "more than 360 min ago; the rollout scans the cluster again" in text(page)


def test_the_window_columns_say_the_window_in_words_and_when_it_next_opens(client_as):
    now = timezone.now()
    later = now + datetime.timedelta(hours=5)
    make_cluster(name="aks-closed", maintenance_window=daily_window(later, 2))
    make_cluster(name="aks-open", maintenance_window=daily_window(now - datetime.timedelta(hours=1), 3))  # fmt: skip
    make_cluster(name="aks-none", maintenance_window={})
    make_cluster(
        name="aks-odd",
        maintenance_window={"name": SCHEDULE, "properties": {"maintenanceWindow": {"schedule": {"hourly": {}}}}},
    )  # fmt: skip

    rows = cluster_rows(preview(client_as("operator")))

    opens = later.astimezone(datetime.UTC)
    assert rows["aks-closed"][6:] == [
        f"Every day at {opens:%H:%M} (UTC+00:00) for 2 hours.",
        f"opens {opens:%a %H:%M} UTC (in 5 h)",
    ]
    assert rows["aks-open"][7] == "open now"
    assert rows["aks-none"][6:] == ["none", "no window"]
    assert rows["aks-odd"][6].startswith("A window Wavegate cannot describe")
    assert rows["aks-odd"][7] == "cannot tell"


def test_a_large_selection_shows_the_first_clusters_and_how_many_more(client_as):
    subscription = make_subscription()
    for i in range(CLUSTER_ROWS + 3):
        make_cluster(name=f"aks-{i:04d}", subscription=subscription)

    page = preview(client_as("operator"), wave_spec="100%")

    assert len(cluster_rows(page)) == CLUSTER_ROWS
    assert f"Clusters: the first {CLUSTER_ROWS} of {CLUSTER_ROWS + 3}" in text(page)
    assert 'data-testid="preview-more-clusters">and 3 more clusters' in page
    assert 'data-testid="preview-wave-size">203<' in page


def test_the_preview_reads_a_fixed_number_of_queries_however_many_clusters(
    client_as, django_assert_max_num_queries
):
    now = timezone.now()

    def add(count: int, start: int) -> None:
        for i in range(start, start + count):
            cluster = make_cluster(
                name=f"aks-{i:03d}",
                ring=f"ring-{i % 3}",
                maintenance_window=daily_window(now + datetime.timedelta(hours=i % 5), 1),
            )
            make_scan(cluster, queued_at=now - datetime.timedelta(hours=i))

    add(3, 0)
    client = client_as("operator")
    with django_assert_max_num_queries(20) as few:
        preview(client)
    add(30, 3)
    with django_assert_max_num_queries(len(few.captured_queries)):
        page = preview(client)
    assert len(cluster_rows(page)) == 33


# --- the checkbox groups -------------------------------------------------------------------------
def test_the_form_offers_subscriptions_regions_and_rings_as_checkbox_groups(client_as):
    make_cluster(name="aks-a", ring="canary", location="northeurope",
                 subscription=make_subscription(name="payments-prod"))  # fmt: skip
    make_cluster(name="aks-b", ring="", location="westeurope")

    page = client_as("operator").get(reverse("rollout:plan_new")).content.decode()

    assert not re.search(r"<select[^>]*\bmultiple", page)  # no Ctrl-click
    for field, legend in (("subscriptions", "Subscriptions"), ("regions", "Regions"),
                          ("rings", "Rings")):  # fmt: skip
        group = page.split(f'data-testid="choices-{field}"', 1)[1].split("</fieldset>", 1)[0]
        assert f"<legend>{legend}</legend>" in group
        assert f'type="checkbox" name="{field}"' in group
    assert (
        '<label for="id_rings_0"><input type="checkbox" name="rings" value="" id="id_rings_0">'
        " (no ring)</label>" in page
    )
    assert '<input type="checkbox" name="rings" value="canary" id="id_rings_1"> canary' in page


def test_checked_boxes_choose_the_clusters_the_plan_covers(client_as, personas):
    make_cluster(name="aks-canary-weu", ring="canary")
    make_cluster(name="aks-canary-neu", ring="canary", location="northeurope")
    make_cluster(name="aks-broad-weu", ring="broad")
    client = client_as("operator")

    page = preview(client, rings=["canary"], regions=["westeurope", "northeurope"])
    both = preview(client, rings=["canary", "broad"], regions=["westeurope"])

    assert sorted(cluster_rows(page)) == ["aks-canary-neu", "aks-canary-weu"]
    assert sorted(cluster_rows(both)) == ["aks-broad-weu", "aks-canary-weu"]
    response = client.post(
        reverse("rollout:plan_new"), plan_form(name="canaries", rings=["canary"], wave_spec="100%")
    )
    plan = RolloutPlan.objects.get(name="canaries")
    assert response.status_code == 302
    assert plan.selection["rings"] == ["canary"]
    assert sorted(plan.targets.values_list("cluster__name", flat=True)) == [
        "aks-canary-neu",
        "aks-canary-weu",
    ]


def test_the_edit_form_checks_the_plans_own_choices(client_as, personas):
    make_cluster(name="aks-canary", ring="canary")
    make_cluster(name="aks-broad", ring="broad")
    plan = submitted_plan(personas["operator"], name="p", wave_spec="100%",
                          selection={"rings": ["canary"]})  # fmt: skip

    page = client_as("operator").get(reverse("rollout:plan_edit", args=[plan.pk])).content.decode()

    assert 'value="canary" id="id_rings_1" checked>' in page
    assert 'value="broad" id="id_rings_0">' in page
