"""`manage.py create_demo_users` prints one working login per role, new passwords each run."""

from __future__ import annotations

import io
import re

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from accounts.roles import Role

pytestmark = pytest.mark.django_db


def demo_logins() -> dict[str, str]:
    out = io.StringIO()
    call_command("create_demo_users", stdout=out)
    return dict(re.findall(r"^\s+(\w+)\s+(\S+)$", out.getvalue(), re.MULTILINE))


def test_each_printed_login_signs_in_with_its_role():
    logins = demo_logins()

    assert set(logins) == {r.value for r in Role}
    for role in Role:
        client = Client()
        response = client.post(
            reverse("accounts:login"),
            {"username": role.value, "password": logins[role.value]},
            follow=True,
        )
        assert f'data-testid="roles">{role.label}<' in response.content.decode()


def test_running_it_again_replaces_the_passwords():
    first = demo_logins()
    second = demo_logins()

    assert all(first[name] != second[name] for name in first)
    assert not Client().login(username="viewer", password=first["viewer"])
    assert Client().login(username="viewer", password=second["viewer"])
