"""`manage.py set_roles` gives a user exactly the roles named, and the audit log says so."""

from __future__ import annotations

import io

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from accounts.roles import roles_of
from audit.models import AuditEvent

pytestmark = pytest.mark.django_db


def set_roles(*args: str) -> str:
    out = io.StringIO()
    call_command("set_roles", *args, stdout=out)
    return out.getvalue()


def test_it_creates_a_user_with_roles_and_records_the_change():
    assert set_roles("alice", "operator", "approver", "--create") == "alice: operator, approver\n"

    alice = get_user_model().objects.get(username="alice")
    assert roles_of(alice) == ["operator", "approver"]
    event = AuditEvent.objects.order_by("-seq")[0]
    assert event.action == "user.roles_changed"
    assert (event.before, event.after) == ({"roles": []}, {"roles": ["operator", "approver"]})


def test_it_replaces_roles_rather_than_adding_to_them():
    set_roles("bob", "admin", "--create")
    set_roles("bob", "viewer")

    assert roles_of(get_user_model().objects.get(username="bob")) == ["viewer"]


def test_it_refuses_an_unknown_role_or_user_and_changes_nothing():
    events = AuditEvent.objects.count()

    with pytest.raises(CommandError, match="unknown role"):
        set_roles("carol", "superhero", "--create")
    with pytest.raises(CommandError, match="add --create"):
        set_roles("dave", "viewer")

    assert not get_user_model().objects.filter(username__in=["carol", "dave"]).exists()
    assert AuditEvent.objects.count() == events
