"""The iptables owner table: AKS's allow-list, read only, and the extensions administrators
propose and retire, each step confirmed by a second person (four eyes)."""

from __future__ import annotations

import html

import pytest
from django.urls import reverse

from audit.models import AuditEvent
from fleet.models import AcceptedOwner
from preflight import iptables, scans
from tests.factories import make_accepted_owner
from tests.preflight.pages import get, messages_of, section

pytestmark = pytest.mark.django_db


NEW_OWNER = {
    "name": "node-exporter",
    "reason": "Our node-exporter DaemonSet opens port 9100; reviewed as safe with BpfVeth.",
    "tables": "filter",
    "chain": "",
    "chain_prefix": "NODE-EXPORTER",
    "comment": "",
    "line_regex": r"-A INPUT -p tcp (?:-m tcp )?--dport 9100 -j ACCEPT",
}


def test_the_owner_table_shows_aks_allow_list_read_only_and_the_warning(client_as):
    make_accepted_owner(name="backup-agent")
    page = get(client_as("operator"), "preflight:owners")

    builtin = section(page, "builtin-owners")
    assert "<td>kube-proxy</td>" in builtin
    assert (
        '<td>Cilium</td><td>comment contains &quot;cilium:&quot;</td><td class="nowrap">every table</td>'
        in builtin
    )
    assert "The owners AKS itself accepts" in builtin
    assert "<form" not in builtin
    extensions = section(page, "extensions")
    assert (
        "An extension makes Wavegate accept rules that AKS itself may still refuse." in extensions
    )
    assert "<td>backup-agent</td>" in extensions
    assert "Retire" not in extensions  # an operator may not
    assert 'data-section="add-owner"' not in page


def test_an_admin_proposes_an_extension_an_approver_confirms_it_each_audited(client_as, personas):
    client = client_as("admin")

    response = client.post(reverse("preflight:owner_add"), NEW_OWNER)

    assert response.status_code == 302
    assert messages_of(response) == [
        "node-exporter proposed: once another person confirms it, scans that start from then "
        "on accept the rules it matches."
    ]
    owner = AcceptedOwner.objects.get()
    assert (owner.added_by, owner.confirmed_at, owner.retired_at) == (personas["admin"], None, None)
    event = AuditEvent.objects.get(action="iptables.owner_proposed")
    assert event.actor_id == personas["admin"].pk
    assert event.object_id == str(owner.pk)
    assert event.after == {k: NEW_OWNER[k] for k in NEW_OWNER}
    extensions = section(client.get(reverse("preflight:owners")).content.decode(), "extensions")
    assert "<td>node-exporter</td>" in extensions
    assert "in or jumping to a chain starting <code>NODE-EXPORTER</code>" in extensions
    assert "Proposed</span> by admin-user" in extensions
    assert 'data-testid="confirm-owner"' not in extensions  # not by the one who proposed it

    approver = client_as("approver")
    page = section(approver.get(reverse("preflight:owners")).content.decode(), "extensions")
    assert 'data-testid="confirm-owner"' in page
    confirmed = approver.post(reverse("preflight:owner_confirm", kwargs={"pk": owner.pk}))

    assert messages_of(confirmed) == [
        "node-exporter confirmed: scans that start from now on accept the rules it matches."
    ]
    owner.refresh_from_db()
    assert owner.confirmed_by == personas["approver"]
    event = AuditEvent.objects.get(action="iptables.owner_added")
    assert event.actor_id == personas["approver"].pk
    assert event.after["proposed_by"] == personas["admin"].pk


def test_scans_from_then_on_accept_the_rules_an_extension_matches(client_as):
    dump = "*filter\n:NODE-EXPORTER-IN - [0:0]\n-A NODE-EXPORTER-IN -p tcp --dport 9100 -j ACCEPT\nCOMMIT\n"
    assert iptables.analyse(dump, scans.owners()).findings

    client_as("admin").post(
        reverse("preflight:owner_add"),
        {**NEW_OWNER, "line_regex": "", "chain_prefix": "NODE-EXPORTER"},
    )
    assert iptables.analyse(dump, scans.owners()).findings  # proposed: not applied yet

    owner = AcceptedOwner.objects.get()
    client_as("approver").post(reverse("preflight:owner_confirm", kwargs={"pk": owner.pk}))

    assert iptables.analyse(dump, scans.owners()).findings == []


def test_an_admin_retires_an_extension_with_a_reason_and_it_disappears(client_as, personas):
    owner = make_accepted_owner(name="backup-agent")
    client = client_as("admin")
    url = reverse("preflight:owner_retire", kwargs={"pk": owner.pk})

    refused = client.post(url, {"reason": "  "})
    assert messages_of(refused) == ["Say why you retire it: the reason goes in the audit log."]
    owner.refresh_from_db()
    assert owner.retired_at is None

    asked = client.post(url, {"reason": "The backup agent is gone."}, follow=True)

    owner.refresh_from_db()
    assert owner.retired_at is None  # until a second person confirms it
    assert "Retiring backup-agent asked" in asked.content.decode()
    confirm = reverse("preflight:owner_confirm_retirement", kwargs={"pk": owner.pk})
    response = client_as("approver").post(confirm, follow=True)

    owner.refresh_from_db()
    assert owner.retired_at is not None
    assert "backup-agent retired" in response.content.decode()
    assert "<td>backup-agent</td>" not in section(response.content.decode(), "extensions")
    event = AuditEvent.objects.get(action="iptables.owner_retired")
    assert event.actor_id == personas["approver"].pk
    assert event.before["name"] == "backup-agent"
    assert event.before["chain"] == "NODE-EXPORTER"
    assert event.after["reason"] == "The backup agent is gone."
    assert event.after["asked_by"] == personas["admin"].pk
    again = client.post(url, {"reason": "twice"}, follow=True)
    assert "backup-agent is already retired." in again.content.decode()
    assert AuditEvent.objects.filter(action="iptables.owner_retired").count() == 1


@pytest.mark.parametrize("role", ["viewer", "operator", "approver", "auditor"])
def test_a_non_admins_forged_changes_to_the_owner_table_are_refused(client_as, role):
    owner = make_accepted_owner()
    client = client_as(role)

    added = client.post(reverse("preflight:owner_add"), NEW_OWNER)
    retired = client.post(
        reverse("preflight:owner_retire", kwargs={"pk": owner.pk}), {"reason": "because"}
    )

    assert added.status_code == retired.status_code == 403
    assert "needs the admin role" in added.content.decode()
    assert list(AcceptedOwner.objects.values_list("name", "retired_at")) == [
        ("node-exporter", None)
    ]
    assert not AuditEvent.objects.filter(action__startswith="iptables.").exists()


@pytest.mark.parametrize(
    ("changes", "field", "error"),
    [
        (
            {"line_regex": "-A INPUT (unclosed"},
            "line_regex",
            "This is not a regular expression Python can read: missing ), unterminated subpattern",
        ),
        ({"tables": "filter, nat,bogus"}, "tables", "Not an iptables table: bogus."),
        ({"name": ""}, "name", "This field is required."),
        ({"reason": ""}, "reason", "This field is required."),
    ],
)
def test_a_bad_extension_is_refused_with_a_clear_error(client_as, changes, field, error):
    response = client_as("admin").post(reverse("preflight:owner_add"), {**NEW_OWNER, **changes})

    assert response.status_code == 200
    page = response.content.decode()
    assert f'<p class="error" data-field-error="{field}">{html.escape(error)}' in page
    assert not AcceptedOwner.objects.exists()
    assert not AuditEvent.objects.filter(action="iptables.owner_added").exists()


def test_an_extension_without_a_matcher_is_refused(client_as):
    empty = {**NEW_OWNER, "chain": "", "chain_prefix": "", "comment": "", "line_regex": ""}

    response = client_as("admin").post(reverse("preflight:owner_add"), empty)

    assert (
        "Say which rules to accept: fill in at least one of exact chain"
        in response.content.decode()
    )
    assert not AcceptedOwner.objects.exists()


def test_retiring_an_unknown_extension_is_404(client_as):
    response = client_as("admin").post(
        reverse("preflight:owner_retire", kwargs={"pk": 987654}), {"reason": "x"}
    )

    assert response.status_code == 404
