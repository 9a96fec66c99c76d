"""Guessing passwords locks the user name and the address out; the lock-out is audited once,
tries during it write nothing, and an admin lifts it from a page or a command."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse

from audit.models import AuditEvent
from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db

LIMIT = 5  # settings.AXES_FAILURE_LIMIT's default


def sign_in(username: str, password: str, address: str = "203.0.113.9"):
    return Client().post(
        reverse("accounts:login"),
        {"username": username, "password": password},
        REMOTE_ADDR=address,
    )


def guess(username: str, times: int = LIMIT, address: str = "203.0.113.9") -> None:
    for n in range(times):
        sign_in(username, f"guess {n}", address)


def actions() -> list[str]:
    """The events but those of making the personas (their creation is recorded too)."""
    made = ["user.created", "user.roles_changed"]
    events = AuditEvent.objects.exclude(action__in=made).order_by("seq")
    return list(events.values_list("action", flat=True))


def test_it_refuses_even_the_right_password_once_a_user_is_locked_out(personas):
    guess("operator-user")

    response = sign_in("operator-user", PASSWORD, address="198.51.100.20")

    assert response.status_code == 429
    assert "Too many failed sign-ins" in response.content.decode()
    assert "_auth_user_id" not in Client().session


def test_it_locks_out_an_address_that_guesses_across_user_names(personas):
    for n in range(LIMIT):
        sign_in(f"nobody-{n}", "guess", address="203.0.113.50")

    assert sign_in("viewer-user", PASSWORD, address="203.0.113.50").status_code == 429
    assert sign_in("viewer-user", PASSWORD, address="198.51.100.20").status_code == 302


def test_it_lets_a_user_sign_in_below_the_limit(personas):
    guess("operator-user", times=LIMIT - 1)

    assert sign_in("operator-user", PASSWORD).status_code == 302


def test_a_lock_out_is_one_audit_event_and_tries_during_it_write_none(personas):
    guess("operator-user")
    after_lock_out = actions()

    guess("operator-user", times=50)
    sign_in("operator-user", PASSWORD)

    assert after_lock_out == ["user.sign_in_failed"] * LIMIT + ["user.locked_out"]
    assert actions() == after_lock_out
    event = AuditEvent.objects.get(action="user.locked_out")
    assert event.object_label == "operator-user"
    assert event.actor_ip == "203.0.113.9"
    assert event.after == {"user": "operator-user", "address": "203.0.113.9", "failures": LIMIT}


def test_an_admin_sees_the_lock_out_and_lifts_it(personas, client_as):
    guess("operator-user")
    admin = client_as("admin")

    page = admin.get(reverse("accounts:lockouts"))
    assert page.status_code == 200
    assert "operator-user" in page.content.decode()

    response = admin.post(
        reverse("accounts:lift_lockout"), {"kind": "user", "value": "operator-user"}
    )

    assert response.status_code == 302
    assert 'data-testid="no-lockouts"' in admin.get(reverse("accounts:lockouts")).content.decode()
    assert sign_in("operator-user", PASSWORD, address="198.51.100.20").status_code == 302
    lifted = AuditEvent.objects.get(action="user.lockout_lifted")
    assert (lifted.actor_name, lifted.object_label) == ("admin-user", "operator-user")
    assert lifted.before == {"user": "operator-user", "failures": LIMIT}


@pytest.mark.parametrize("role", ["viewer", "operator", "approver", "auditor"])
def test_only_an_admin_may_see_or_lift_lock_outs(personas, client_as, role):
    guess("operator-user")
    client = client_as(role)

    assert client.get(reverse("accounts:lockouts")).status_code == 403
    response = client.post(
        reverse("accounts:lift_lockout"), {"kind": "user", "value": "operator-user"}
    )
    assert response.status_code == 403
    assert sign_in("operator-user", PASSWORD, address="198.51.100.20").status_code == 429
    assert "user.lockout_lifted" not in actions()


def test_the_command_lists_and_lifts_a_lock_out_by_address(personas):
    for n in range(LIMIT):
        sign_in(f"nobody-{n}", "guess", address="203.0.113.50")
    out = io.StringIO()

    call_command("lift_lockout", stdout=out)
    assert "address 203.0.113.50: 5 failed sign-ins" in out.getvalue()
    call_command("lift_lockout", "--address", "203.0.113.50", stdout=out)

    assert sign_in("viewer-user", PASSWORD, address="203.0.113.50").status_code == 302
    lifted = AuditEvent.objects.get(action="user.lockout_lifted")
    assert (lifted.actor_name, lifted.object_label) == ("system", "203.0.113.50")


def test_the_command_refuses_to_lift_what_is_not_locked(personas):
    with pytest.raises(CommandError, match="not locked out"):
        call_command("lift_lockout", "--user", "operator-user", stdout=io.StringIO())
    assert "user.lockout_lifted" not in actions()
