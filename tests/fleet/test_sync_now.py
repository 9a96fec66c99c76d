"""The "Sync now" button: who sees it, who may press it, and what pressing it does."""

from __future__ import annotations

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from fleet.choices import SyncStatus
from tests.factories import make_sync_run

pytestmark = pytest.mark.django_db

BUTTON = f'action="{reverse("fleet:sync")}"'


@pytest.mark.parametrize(
    ("role", "shown"),
    [
        ("viewer", False),
        ("approver", False),
        ("auditor", False),
        ("operator", True),
        ("admin", True),
    ],
)
def test_the_button_shows_only_to_roles_that_may_sync(client_as, role, shown):
    page = client_as(role).get(reverse("fleet:overview")).content.decode()

    assert (BUTTON in page) is shown
    assert (">Sync now</button>" in page) is shown


def test_a_viewer_pressing_it_anyway_is_refused_and_nothing_is_queued(
    client_as, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client_as("viewer").post(reverse("fleet:sync"))

    assert response.status_code == 403
    assert "needs the operator or admin role" in response.content.decode()
    assert callbacks == []
    assert not AuditEvent.objects.filter(action="inventory.sync_requested").exists()


def test_an_operator_queues_a_sync_and_comes_back_to_the_overview(
    client_as, personas, django_capture_on_commit_callbacks
):
    client = client_as("operator")

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(reverse("fleet:sync"))

    assert response.status_code == 302
    assert response["Location"] == reverse("fleet:overview") + "?after=0"
    assert [str(m) for m in get_messages(response.wsgi_request)] == [
        "Sync queued: it shows below once a worker starts it."
    ]
    assert len(callbacks) == 1  # the Celery task, sent once the request's transaction commits
    event = AuditEvent.objects.get(action="inventory.sync_requested")
    assert event.actor_id == personas["operator"].pk
    page = client.get(response["Location"]).content.decode()
    assert "Sync queued: it shows below once a worker starts it." in page


def test_pressing_it_while_a_sync_runs_says_so_and_queues_nothing(
    client_as, django_capture_on_commit_callbacks
):
    make_sync_run(status=SyncStatus.RUNNING, started_at=timezone.now())
    client = client_as("admin")

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(reverse("fleet:sync"), follow=True)

    assert response.redirect_chain == [(reverse("fleet:overview"), 302)]
    assert "An inventory sync is already running" in response.content.decode()
    assert callbacks == []
    assert not AuditEvent.objects.filter(action="inventory.sync_requested").exists()


def test_the_button_is_disabled_while_a_sync_runs(client_as):
    make_sync_run(status=SyncStatus.RUNNING, started_at=timezone.now())

    page = client_as("operator").get(reverse("fleet:overview")).content.decode()

    assert 'disabled title="A sync is running">Sync now</button>' in page


def test_the_sync_url_only_takes_post(client_as):
    response = client_as("operator").get(reverse("fleet:sync"))

    assert response.status_code == 405


@pytest.mark.django_db
def test_after_sync_now_the_overview_follows_the_next_sync_even_one_that_ends_at_once(
    client_as,
):
    """A short sync may start and end between two reads of the page: the overview pressed
    into following it polls often until a newer sync has ended, then says so."""
    client = client_as("operator")
    pressed = client.post(reverse("fleet:sync"))
    assert pressed["Location"] == reverse("fleet:overview") + "?after=0"
    waiting = client.get(reverse("fleet:sync_status") + "?after=0").content.decode()
    assert "?after=0" in waiting
    assert 'data-testid="sync-finished"' not in waiting
    make_sync_run(started_at=timezone.now(), seconds=0.3)
    ended = client.get(reverse("fleet:sync_status") + "?after=0").content.decode()
    assert 'data-testid="sync-finished"' in ended
    assert "?after=0" not in ended  # it follows nothing more
