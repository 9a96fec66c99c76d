"""One cluster's page: its properties as Azure last showed them, its node pools, why it is or
is not eligible, and (for auditors) what the audit log holds about it."""

from __future__ import annotations

import datetime

import pytest
from django.urls import reverse
from django.utils import timezone

import audit
from tests.factories import make_cluster, make_subscription

pytestmark = pytest.mark.django_db

WINDOW = {
    "name": "aksManagedNodeOSUpgradeSchedule",
    "properties": {
        "maintenanceWindow": {
            "schedule": {"weekly": {"intervalWeeks": 1, "dayOfWeek": "Tuesday"}},
            "durationHours": 6,
            "utcOffset": "+01:00",
            "startDate": "2025-06-01",
            "startTime": "22:00",
        }
    },
}


def page_of(client, cluster) -> str:
    response = client.get(reverse("fleet:cluster", kwargs={"pk": cluster.pk}))
    assert response.status_code == 200
    return response.content.decode()


def section(page: str, name: str) -> str:
    start = page.index(f'data-section="{name}"')
    return page[start : page.index("</section>", start)]


def test_it_shows_the_clusters_properties(client_as):
    cluster = make_cluster(
        name="pay-weu-1",
        subscription=make_subscription(name="payments-prod"),
        resource_group="rg-payments",
        location="westeurope",
        kubernetes_version="1.33.2",
        private_api_server=True,
        entra_id=True,
        tags={"ring": "canary", "team": "payments"},
        ring="canary",
        maintenance_window=WINDOW,
    )

    page = page_of(client_as("viewer"), cluster)

    assert "<h1>pay-weu-1</h1>" in page
    for term, value in [
        ("ARM id", cluster.arm_id),
        ("Resource group", "rg-payments"),
        ("Region", "westeurope"),
        ("Kubernetes version", "1.33.2"),
        ("Network plugin", "azure"),
        ("Network plugin mode", "overlay"),
        ("Network dataplane", "cilium"),
        ("Network policy", "cilium"),
        ("Advanced Container Networking Services", "Enabled"),
        ("Acceleration mode", "None"),
        ("Provisioning state", "Succeeded"),
        ("Power state", "Running"),
        ("Private API server", "Yes"),
        ("Entra ID", "Enabled"),
        ("Ring", "canary"),
    ]:
        assert f"<dt>{term}</dt><dd" in page
        assert f">{value}</dd>" in page.split(f"<dt>{term}</dt>", 1)[1].split("<dt>", 1)[0]
    assert ">payments-prod</a>" in page
    assert '<code class="tag">team=payments</code>' in page
    assert "Every week on Tuesday at 22:00 (UTC+01:00) for 6 hours, starting 2025-06-01." in page
    assert f"{cluster.first_seen:%Y-%m-%d %H:%M:%S} UTC" in page


def test_it_lists_the_node_pools(client_as):
    cluster = make_cluster(
        pools=[{"mode": "System", "node_count": 3}, {"mode": "User", "node_count": 12}]
    )

    page = page_of(client_as("viewer"), cluster)

    pools = page.split('id="pools"')[1].split("</section>")[0]
    assert "<td>pool1</td><td>System</td><td>Linux</td><td>AzureLinux</td>" in pools
    assert (
        '<td>pool2</td><td>User</td><td>Linux</td><td>AzureLinux</td>\n      <td class="num">12</td>'
        in pools
    )


def test_a_blocked_cluster_says_why_in_plain_sentences(client_as):
    cluster = make_cluster(
        kubernetes_version="1.31.4", pools=[{}, {"os_type": "Windows", "os_sku": "Windows2022"}]
    )

    page = page_of(client_as("viewer"), cluster)

    assert "Not eligible for eBPF host routing yet:" in page
    assert (
        '<li data-field="kubernetes_version">Runs Kubernetes 1.31.4; eBPF host routing needs '
        "1.33 or later. Upgrade the cluster first.</li>"
    ) in page
    assert "Node pool &#x27;pool2&#x27; runs Windows" in page
    assert '<span class="badge bad">2 blockers</span>' in page


def test_an_eligible_cluster_says_so(client_as):
    page = page_of(client_as("viewer"), make_cluster())

    assert "Eligible for eBPF host routing." in page
    assert "Not eligible" not in page


def test_no_maintenance_window_is_said_plainly(client_as):
    page = page_of(client_as("viewer"), make_cluster(maintenance_window={}))

    assert "No maintenance window: Azure may reimage nodes at any time." in page
    assert "Not read from Azure yet." in page


def test_a_removed_cluster_still_shows_with_a_warning(client_as):
    cluster = make_cluster(removed_at=timezone.now() - datetime.timedelta(days=1))

    page = page_of(client_as("viewer"), cluster)

    assert "Azure no longer lists this cluster" in page


@pytest.mark.parametrize(
    ("role", "shown"),
    [
        ("viewer", False),
        ("operator", False),
        ("approver", False),
        ("auditor", True),
        ("admin", True),
    ],
)
def test_the_audit_trail_shows_only_to_those_who_may_read_the_audit_log(client_as, role, shown):
    page = page_of(client_as(role), make_cluster())

    assert ("Audit trail" in page) is shown


def test_the_audit_trail_lists_this_clusters_events_newest_first_up_to_20(client_as):
    cluster = make_cluster()
    other = make_cluster()
    for n in range(22):
        audit.record(
            "cluster.changed", obj=cluster, before={"power_state": "x"}, after={f"f{n}": n}
        )
    audit.record("cluster.changed", obj=other, after={"someone_else": 1})

    trail = section(page_of(client_as("auditor"), cluster), "audit-trail")

    assert trail.count("<code>cluster.changed</code>") == 20
    assert trail.index(">f21<") < trail.index(">f20<")
    assert ">f1<" not in trail
    assert ">f0<" not in trail
    assert "someone_else" not in trail
    assert "The latest 20 events" in trail


def test_an_auditor_sees_an_empty_trail_said_plainly(client_as):
    trail = section(page_of(client_as("auditor"), make_cluster()), "audit-trail")

    assert "No audit events for this cluster yet." in trail


def test_an_unknown_cluster_is_404(client_as):
    response = client_as("viewer").get(reverse("fleet:cluster", kwargs={"pk": 987654}))

    assert response.status_code == 404
