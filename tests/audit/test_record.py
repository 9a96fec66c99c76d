"""audit.record: one event per call, in the caller's transaction, chained to the one before."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.db import transaction

import audit
from audit.chain import GENESIS, event_hash
from audit.context import Context, acting
from audit.models import AuditEvent
from audit.verification import verify_stored_chain

pytestmark = pytest.mark.django_db


def test_it_leaves_no_event_when_the_callers_transaction_rolls_back():
    before = AuditEvent.objects.count()

    class Refused(Exception):
        pass

    def change_then_fail() -> None:
        with transaction.atomic():
            audit.record("plan.created", object_type="rollout.plan", object_id="7")
            raise Refused

    with pytest.raises(Refused):
        change_then_fail()

    assert AuditEvent.objects.count() == before


def test_it_chains_each_event_to_the_one_before():
    first = audit.record("test.first")
    second = audit.record("test.second", before={"mode": "None"}, after={"mode": "BpfVeth"})

    assert second.seq == first.seq + 1
    assert second.prev_hash == first.hash
    assert second.hash == event_hash(second.chain_fields())
    assert AuditEvent.objects.get(seq=1).prev_hash == GENESIS
    assert verify_stored_chain().intact


def test_it_names_the_system_when_no_person_acts():
    event = audit.record("cluster.discovered", object_type="fleet.cluster", object_id="abc")
    assert event.actor_id is None
    assert event.actor_name == "system"


def test_it_takes_the_person_and_address_from_the_request_context():
    user = get_user_model().objects.create_user("olga")
    context = Context(request_id="req-12345678", ip="2001:db8::1", get_user=lambda: user)
    with acting(context):
        event = audit.record("plan.submitted", obj=user)

    stored = AuditEvent.objects.get(seq=event.seq)
    assert (stored.actor_id, stored.actor_name) == (user.pk, "olga")
    assert stored.actor_ip == "2001:db8::1"
    assert stored.request_id == "req-12345678"
    assert (stored.object_type, stored.object_id, stored.object_label) == (
        "auth.user",
        str(user.pk),
        "olga",
    )
    # What came back from the database hashes to what was written.
    assert verify_stored_chain().intact


def test_it_keeps_values_that_json_cannot_hold_natively_in_a_form_that_verifies():
    import datetime
    import decimal
    import uuid

    audit.record(
        "test.types",
        after={
            "when": datetime.datetime(2026, 11, 25, 12, 0, tzinfo=datetime.UTC),
            "ratio": decimal.Decimal("0.25"),
            "id": uuid.UUID(int=7),
            "name": "Zürich — ünïcode",
        },
    )
    assert verify_stored_chain().intact


def test_deleting_a_user_leaves_their_events_untouched():
    user = get_user_model().objects.create_user("leaver")
    event = audit.record("test.by_leaver", acting_user=user)

    user.delete()

    stored = AuditEvent.objects.get(seq=event.seq)
    assert stored.actor_name == "leaver"
    assert stored.actor_id == event.actor_id
    assert verify_stored_chain().intact


def test_a_batch_is_chained_as_if_recorded_one_by_one_and_rolls_back_whole():
    first = audit.record("test.before_batch")
    events = audit.record_many(
        [
            audit.Entry("test.batch", "test.thing", str(n), f"thing {n}", after={"n": n})
            for n in range(5)
        ]
    )

    assert [e.seq for e in events] == list(range(first.seq + 1, first.seq + 6))
    assert events[0].prev_hash == first.hash
    assert verify_stored_chain().intact

    class Refused(Exception):
        pass

    def batch_then_fail() -> None:
        with transaction.atomic():
            audit.record_many([audit.Entry("test.doomed")] * 3)
            raise Refused

    with pytest.raises(Refused):
        batch_then_fail()
    assert not AuditEvent.objects.filter(action="test.doomed").exists()
