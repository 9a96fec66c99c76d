"""The accepted iptables owners change what a scan calls clean, so they take four eyes: the
person who proposed a change never confirms it; a pattern is checked when proposed (it
compiles, is short, does not accept everything) and is matched in linear time."""

from __future__ import annotations

import threading

import pytest
from django.core.exceptions import PermissionDenied

from audit.models import AuditEvent
from fleet.models import AcceptedOwner
from preflight import actions, iptables, scans
from preflight.choices import PreflightEvent
from tests.factories import make_accepted_owner, make_user

pytestmark = pytest.mark.django_db

SAFE = {
    "name": "node-exporter",
    "reason": "Our node-exporter opens port 9100; reviewed as safe with BpfVeth.",
    "chain_prefix": "NODE-EXPORTER",
}


def test_the_person_who_proposed_an_extension_cannot_confirm_it_and_the_attempt_is_recorded():
    ada = make_user("admin", username="ada")
    owner = actions.add_accepted_owner(**SAFE, acting_user=ada)

    with pytest.raises(PermissionDenied, match="You proposed node-exporter"):
        actions.confirm_accepted_owner(owner, acting_user=ada)

    owner.refresh_from_db()
    assert owner.confirmed_at is None
    assert list(AcceptedOwner.objects.active()) == []
    refused = AuditEvent.objects.get(action=PreflightEvent.OWNER_CONFIRMATION_REFUSED)
    assert refused.actor_name == "ada"
    assert "another person must confirm it" in refused.after["refusal"]


def test_the_person_who_asked_to_retire_an_extension_cannot_confirm_the_retirement():
    ada = make_user("admin", username="ada")
    owner = make_accepted_owner(name="backup-agent")
    actions.retire_accepted_owner(owner, reason="gone", acting_user=ada)

    with pytest.raises(PermissionDenied, match="You asked to retire backup-agent"):
        actions.confirm_retirement(owner, acting_user=ada)

    assert [o.name for o in AcceptedOwner.objects.active()] == ["backup-agent"]


def test_a_proposal_does_not_change_what_a_scan_calls_clean_until_confirmed():
    dump = "*filter\n:NODE-EXPORTER-IN - [0:0]\n-A NODE-EXPORTER-IN -j ACCEPT\nCOMMIT\n"
    owner = actions.add_accepted_owner(**SAFE, acting_user=make_user("admin", username="ada"))

    assert iptables.analyse(dump, scans.owners()).findings

    actions.confirm_accepted_owner(owner, acting_user=make_user("approver", username="arun"))
    assert iptables.analyse(dump, scans.owners()).findings == []


@pytest.mark.parametrize(
    ("pattern", "refusal"),
    [
        (".*", "matches ''"),
        (".+", "matches ' '"),
        ("^.*$", "matches ''"),
        ("-A .*", "rules of unrelated origins"),
        (r"-A \S+ .*ACCEPT", "rules of unrelated origins"),
        ("-A X " + "a" * 300, "at most 300"),
        (r"-A (X)\1", "does not compile for RE2"),
    ],
)
def test_a_pattern_that_accepts_too_much_or_cannot_be_matched_safely_is_refused(pattern, refusal):
    with pytest.raises(actions.ActionRefused, match="cannot be used") as refused:
        actions.add_accepted_owner(
            name="too-broad",
            reason="testing",
            line_regex=pattern,
            acting_user=make_user("admin", username="ada"),
        )

    assert refusal in str(refused.value)
    assert not AcceptedOwner.objects.exists()


def test_a_catastrophic_pattern_cannot_hang_a_scan():
    """(a|aa)*c backtracks exponentially in Python's re on a long run of a's; RE2 does not."""
    owner = iptables.Owner.from_spec(name="x", allows="x", line_regex="-A SLOW (a|aa)*c")
    dump = "*filter\n:SLOW - [0:0]\n-A SLOW " + "a" * 60 + "\nCOMMIT\n"
    done: list[iptables.Analysis] = []
    worker = threading.Thread(target=lambda: done.append(iptables.analyse(dump, (owner,))))

    worker.start()
    worker.join(timeout=30)  # Python's re would need centuries here

    assert done, "the analysis did not finish"
    assert len(done[0].findings) == 1  # the rule does not end in c: not claimed
