"""Preflight over the API: scans are started by the pages' actions (refusals in the pages' words,
audited), and the accepted iptables owners take four eyes here as on their page."""

from __future__ import annotations

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from fleet.choices import ScanStatus
from fleet.models import AcceptedOwner, PreflightScan
from tests.api.helpers import Api, token_for
from tests.factories import make_accepted_owner, make_cluster, make_scan

pytestmark = pytest.mark.django_db

OWNER = {
    "name": "node-exporter",
    "reason": "Our node-exporter DaemonSet opens its port; safe with eBPF host routing.",
    "tables": "filter",
    "chain": "NODE-EXPORTER",
}


@pytest.fixture
def apis(personas):
    return {role: Api(token_for(user)) for role, user in personas.items()}


def test_a_viewer_reads_but_may_not_start_a_scan(apis):
    cluster = make_cluster(name="aks-a")

    assert apis["viewer"].get("clusters/").status_code == 200
    assert apis["viewer"].get("scans/").status_code == 200
    refused = apis["viewer"].post(f"clusters/{cluster.pk}/scan/")

    assert refused.status_code == 403
    assert refused.json() == {
        "code": "forbidden",
        "message": "Starting preflight scans needs the operator or admin role.",
        "field": None,
    }
    assert not PreflightScan.objects.exists()
    refusal = AuditEvent.objects.get(action="access.refused")
    assert refusal.actor_name == "viewer-user"
    assert "operator or admin role" in str(refusal.after)
    # The role is said first: a cluster that does not exist answers the same (ids not probed).
    absent = apis["viewer"].post(f"clusters/{cluster.pk + 1000}/scan/")
    assert (absent.status_code, absent.json()) == (refused.status_code, refused.json())


def test_an_operator_starts_a_scan_202_and_it_is_audited(apis):
    cluster = make_cluster(name="aks-a")

    started = apis["operator"].post(f"clusters/{cluster.pk}/scan/")

    assert started.status_code == 202, started.json()
    body = started.json()
    scan = PreflightScan.objects.get()
    assert body["id"] == scan.pk
    assert body["cluster"] == cluster.pk
    assert body["status"] == "queued"
    assert body["requested_by"] == "operator-user"
    assert body["finding_count"] is None
    event = AuditEvent.objects.get(action="preflight.scan_requested")
    assert event.actor_name == "operator-user"
    assert event.object_id == str(cluster.pk)
    again = apis["operator"].post(f"clusters/{cluster.pk}/scan/")
    assert again.status_code == 409
    assert again.json()["message"] == "A scan of aks-a is already queued or running."
    assert AuditEvent.objects.filter(action="preflight.action_refused").count() == 1
    assert PreflightScan.objects.count() == 1


def test_a_removed_cluster_is_not_scanned(apis):
    cluster = make_cluster(name="aks-gone", removed_at=timezone.now())

    refused = apis["operator"].post(f"clusters/{cluster.pk}/scan/")

    assert refused.status_code == 409
    assert refused.json()["message"] == "aks-gone is no longer in Azure; there is nothing to scan."


def test_scan_all_queues_every_eligible_cluster_once(apis):
    for n in range(3):
        make_cluster(name=f"aks-{n}")
    make_cluster(name="aks-old", kubernetes_version="1.31.4")

    queued = apis["operator"].post("scans/scan-all/")

    assert queued.status_code == 202, queued.json()
    assert queued.json()["queued"] == 3
    assert queued.json()["message"].startswith("3 scans queued, up to ")
    assert PreflightScan.objects.filter(status=ScanStatus.QUEUED).count() == 3
    assert AuditEvent.objects.filter(action="preflight.fleet_scan_requested").count() == 1
    nothing_left = apis["operator"].post("scans/scan-all/")
    assert nothing_left.status_code == 409
    assert "No eligible cluster is waiting for a scan" in nothing_left.json()["message"]
    assert apis["approver"].post("scans/scan-all/").status_code == 403


def test_scans_are_listed_newest_first_and_filtered(apis):
    a, b = make_cluster(name="aks-a"), make_cluster(name="aks-b")
    clean = make_scan(a)
    blocked = make_scan(a, findings=[{}, {"node": "aks-pool1-1"}])
    other = make_scan(b, status=ScanStatus.ERROR)
    viewer = apis["viewer"]

    listed = viewer.get("scans/").json()["results"]
    of_a = viewer.get("scans/", cluster=str(a.pk)).json()["results"]
    failed = viewer.get("scans/", status=["error", "blocked"]).json()["results"]

    assert [s["id"] for s in listed] == [other.pk, blocked.pk, clean.pk]
    assert [s["id"] for s in of_a] == [blocked.pk, clean.pk]
    assert [s["id"] for s in failed] == [other.pk, blocked.pk]
    one = viewer.get(f"scans/{blocked.pk}/").json()
    assert one["finding_count"] == 2
    assert one["cluster_name"] == "aks-a"
    assert one["label"] == "Blocked by rules"
    bad = viewer.get("scans/", status="finished")
    assert bad.status_code == 400
    assert bad.json()["field"] == "status"


def test_an_owner_takes_two_people_to_propose_and_confirm(apis):
    proposed = apis["admin"].post("owners/", OWNER)
    assert proposed.status_code == 201, proposed.json()
    owner = proposed.json()["owner"]
    assert owner["state"] == "proposed"
    assert owner["added_by"] == "admin-user"
    assert proposed.json()["message"].startswith("node-exporter proposed: once another person")

    own = apis["admin"].post(f"owners/{owner['id']}/confirm/")

    assert own.status_code == 403
    assert own.json()["message"] == (
        "You proposed node-exporter: another person must confirm it (four eyes)."
    )
    assert AcceptedOwner.objects.get().confirmed_at is None
    assert AuditEvent.objects.filter(action="iptables.owner_confirmation_refused").count() == 1
    assert not AuditEvent.objects.filter(action="access.refused").exists()  # recorded once

    confirmed = apis["approver"].post(f"owners/{owner['id']}/confirm/")

    assert confirmed.status_code == 200, confirmed.json()
    assert confirmed.json()["owner"]["state"] == "active"
    assert confirmed.json()["owner"]["confirmed_by"] == "approver-user"
    assert AuditEvent.objects.filter(action="iptables.owner_added").count() == 1
    again = apis["approver"].post(f"owners/{owner['id']}/confirm/")
    assert again.status_code == 409
    assert again.json()["message"] == "node-exporter is not waiting for a confirmation."
    assert AuditEvent.objects.filter(action="preflight.action_refused").count() == 1


def test_retiring_an_owner_takes_two_people_too(apis):
    owner = make_accepted_owner()

    no_reason = apis["admin"].post(f"owners/{owner.pk}/retire/", {"reason": " "})
    assert no_reason.status_code == 400
    assert no_reason.json()["field"] == "reason"
    assert "Say why you retire it" in no_reason.json()["message"]
    asked = apis["admin"].post(f"owners/{owner.pk}/retire/", {"reason": "Exporter gone."})
    assert asked.status_code == 200, asked.json()
    assert asked.json()["owner"]["state"] == "retirement_proposed"
    own = apis["admin"].post(f"owners/{owner.pk}/confirm-retirement/")
    assert own.status_code == 403
    assert own.json()["message"] == (
        "You asked to retire node-exporter: another person must confirm it (four eyes)."
    )
    done = apis["approver"].post(f"owners/{owner.pk}/confirm-retirement/")
    assert done.status_code == 200, done.json()
    assert done.json()["owner"]["state"] == "retired"
    assert done.json()["message"].startswith("node-exporter retired")


def test_a_proposal_retired_is_declined_at_once(apis):
    proposal = make_accepted_owner(name="stray", confirmed_at=None)

    declined = apis["admin"].post(f"owners/{proposal.pk}/retire/", {"reason": "Typo."})

    assert declined.json()["message"] == "stray declined: it never applied."
    assert declined.json()["owner"]["state"] == "declined"


def test_owners_are_listed_by_state(apis):
    make_accepted_owner(name="active-one")
    make_accepted_owner(name="proposal", confirmed_at=None)
    viewer = apis["viewer"]

    every = viewer.get("owners/").json()["results"]
    proposals = viewer.get("owners/", state="proposed").json()["results"]

    assert [(o["name"], o["state"]) for o in every] == [
        ("active-one", "active"),
        ("proposal", "proposed"),
    ]
    assert [o["name"] for o in proposals] == ["proposal"]


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"chain": ""}, None, "Say which rules to accept: fill in at least one of exact chain"),
        ({"tables": "filter, bogus"}, "tables", "Not an iptables table: bogus."),
        ({"line_regex": "(unclosed"}, "line_regex", "not a regular expression Python can read"),
        ({"reason": ""}, "reason", "This field may not be blank."),
        ({"colour": "red"}, "colour", "Unknown field(s): colour."),
    ],
)
def test_an_owner_is_checked_by_the_pages_form(apis, change, field, message):
    refused = apis["admin"].post("owners/", {**OWNER, **change})

    assert refused.status_code == 400
    assert refused.json()["field"] == field
    assert message in refused.json()["message"]
    assert not AcceptedOwner.objects.exists()


def test_only_an_admin_proposes_and_only_an_approver_or_admin_confirms(apis):
    owner = make_accepted_owner(confirmed_at=None)

    proposed = apis["operator"].post("owners/", OWNER)
    confirmed = apis["operator"].post(f"owners/{owner.pk}/confirm/")

    assert proposed.status_code == 403
    assert proposed.json()["message"] == (
        "Changing the accepted iptables owners needs the admin role."
    )
    assert confirmed.status_code == 403
    assert confirmed.json()["message"] == (
        "Confirming a change to the accepted iptables owners needs the approver or admin role."
    )


def test_a_read_only_token_is_refused_every_change(personas):
    cluster = make_cluster()
    owner = make_accepted_owner(confirmed_at=None)
    reader = Api(token_for(personas["admin"], read_only=True))

    for path, body in [
        (f"clusters/{cluster.pk}/scan/", None),
        ("scans/scan-all/", None),
        ("owners/", OWNER),
        (f"owners/{owner.pk}/confirm/", None),
        (f"owners/{owner.pk}/retire/", {"reason": "no"}),
        (f"owners/{owner.pk}/confirm-retirement/", None),
    ]:
        refused = reader.post(path, body)
        assert refused.status_code == 403, path
        assert refused.json()["code"] == "read_only_token", path
    assert reader.get(f"clusters/{cluster.pk}/").status_code == 200
    assert not PreflightScan.objects.exists()
    assert AcceptedOwner.objects.get().confirmed_at is None
