"""The client address (audit log, sign-in throttle) and HTTPS come from X-Forwarded-For and
X-Forwarded-Proto only when a configured proxy sent the request."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from audit.models import AuditEvent
from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db

PROXY = "10.0.0.2"


def failed_sign_in_address(**headers: str) -> str | None:
    Client().post(
        reverse("accounts:login"), {"username": "someone", "password": "guess"}, **headers
    )
    return AuditEvent.objects.order_by("-seq")[0].actor_ip


def test_a_forwarded_address_from_anyone_but_a_proxy_is_ignored(settings):
    settings.WAVEGATE_TRUSTED_PROXY_COUNT = 1
    settings.WAVEGATE_TRUSTED_PROXIES = []

    address = failed_sign_in_address(REMOTE_ADDR="198.51.100.7", HTTP_X_FORWARDED_FOR="1.2.3.4")

    assert address == "198.51.100.7"


def test_a_configured_proxy_names_the_client(settings):
    settings.WAVEGATE_TRUSTED_PROXY_COUNT = 1
    settings.WAVEGATE_TRUSTED_PROXIES = ["10.0.0.0/24"]

    address = failed_sign_in_address(REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR="1.2.3.4, 203.0.113.9")

    assert address == "203.0.113.9"


def test_forged_addresses_do_not_dodge_the_lock_out(settings, personas):
    settings.WAVEGATE_TRUSTED_PROXY_COUNT = 1
    for n in range(settings.AXES_FAILURE_LIMIT):
        failed_sign_in_address(REMOTE_ADDR="198.51.100.7", HTTP_X_FORWARDED_FOR=f"192.0.2.{n}")

    response = Client().post(
        reverse("accounts:login"),
        {"username": "viewer-user", "password": PASSWORD},
        REMOTE_ADDR="198.51.100.7",
        HTTP_X_FORWARDED_FOR="192.0.2.200",
    )

    assert response.status_code == 429


def test_only_a_proxy_may_say_a_request_came_over_https(settings):
    settings.WAVEGATE_TRUSTED_PROXIES = [PROXY]
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.SECURE_SSL_REDIRECT = True

    direct = Client().get("/healthz/x", REMOTE_ADDR="198.51.100.7", HTTP_X_FORWARDED_PROTO="https")
    proxied = Client().get("/healthz/x", REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_PROTO="https")

    assert direct.status_code == 301
    assert direct["Location"].startswith("https://")
    assert proxied.status_code != 301
