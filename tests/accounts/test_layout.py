"""Each role signs in and sees the layout: navigation, their name and their role."""

from __future__ import annotations

import pytest
from django.urls import reverse

from accounts.roles import Role

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("role", list(Role))
def test_the_layout_shows_the_signed_in_user_and_role(client_as, role):
    page = client_as(role.value).get(reverse("fleet:overview")).content.decode()

    assert f'data-testid="username">{role.value}-user<' in page
    assert f'data-testid="roles">{role.label}<' in page
    assert ">Fleet</a>" in page
    assert ">Plans</a>" in page
    assert (">Audit</a>" in page) == (role in {Role.AUDITOR, Role.ADMIN})


def test_pages_load_htmx_and_css_from_this_server(client_as):
    page = client_as("viewer").get(reverse("fleet:overview")).content.decode()

    assert "/static/vendor/htmx-2.0.11.min.js" in page
    assert "/static/css/wavegate.css" in page
    assert "https://" not in page


def test_a_refused_page_says_which_role_would_do(client_as):
    response = client_as("operator").get(reverse("audit:events"))

    assert response.status_code == 403
    assert "needs the auditor or admin role" in response.content.decode()
