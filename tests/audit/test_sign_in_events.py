"""Signing in, failing to sign in and signing out each leave an audit event."""

from __future__ import annotations

import pytest
from django.urls import reverse

from audit.models import AuditEvent
from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db


def last_event() -> AuditEvent:
    return AuditEvent.objects.order_by("-seq")[0]


def test_signing_in_is_recorded_with_the_user_and_address(client, personas):
    response = client.post(
        reverse("accounts:login"),
        {"username": "operator-user", "password": PASSWORD},
        REMOTE_ADDR="198.51.100.7",
    )

    assert response.status_code == 302
    event = last_event()
    assert event.action == "user.signed_in"
    assert event.actor_name == "operator-user"
    assert event.actor_id == personas["operator"].pk
    assert event.actor_ip == "198.51.100.7"
    assert event.request_id == response["X-Request-ID"]


def test_a_failed_sign_in_is_recorded_with_the_name_tried_and_never_the_password(client, personas):
    response = client.post(
        reverse("accounts:login"),
        {"username": "operator-user", "password": "wrong password!"},
        REMOTE_ADDR="203.0.113.9",
    )

    assert response.status_code == 200
    assert "do not match" in response.content.decode()
    event = last_event()
    assert event.action == "user.sign_in_failed"
    assert event.actor_name == "anonymous"
    assert event.object_label == "operator-user"
    assert event.actor_ip == "203.0.113.9"
    assert "wrong password" not in str(event.before) + str(event.after) + event.object_label


def test_signing_out_is_recorded(client_as):
    client = client_as("viewer")

    response = client.post(reverse("accounts:logout"))

    assert response.status_code == 302
    event = last_event()
    assert (event.action, event.actor_name) == ("user.signed_out", "viewer-user")
