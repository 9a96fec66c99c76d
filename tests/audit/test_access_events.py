"""Everything that changes who may do what is in the audit log: failed sign-ins (a storm of
them summarised, not recorded one by one), users and groups created or changed by any path,
and every refused attempt to change something, with its reason."""

from __future__ import annotations

import datetime
import io
import time
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import UserChangeForm, UserCreationForm
from django.contrib.auth.models import Group, Permission
from django.core.management import call_command
from django.db import connection
from django.forms import modelform_factory
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from audit import attempts
from audit.context import Context, acting
from audit.models import AuditEvent
from config.celery_app import app as celery_app
from fleet.choices import SyncStatus
from tests.factories import make_cluster, make_sync_run, make_user, submitted_plan

LIMIT = 10  # individual events a minute, set for these tests


@pytest.fixture(autouse=True)
def limits(settings):
    settings.WAVEGATE_SIGN_IN_FAILURES_RECORDED_PER_MINUTE = LIMIT
    settings.WAVEGATE_REFUSALS_RECORDED_PER_MINUTE = LIMIT


def events(action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action).order_by("seq"))


def a_fresh_minute() -> None:
    """Wait for the next minute when this one is nearly over, so that a test's burst of
    attempts falls in one minute (the unit the log's throttle counts in)."""
    now = timezone.now()
    if now.second >= 40:
        time.sleep(60.2 - now.second - now.microsecond / 1e6)


def a_minute_later() -> int:
    """Beat's summaries once the current minute has passed; how many were written."""
    return attempts.summarise_closed_windows(now=timezone.now() + datetime.timedelta(minutes=1))


def sign_in(username: str, password: str, address: str):
    return Client().post(
        reverse("accounts:login"),
        {"username": username, "password": password},
        REMOTE_ADDR=address,
    )


# --- failed sign-ins ---------------------------------------------------------------------------
@pytest.mark.django_db
def test_a_storm_of_failed_sign_ins_is_recorded_a_few_at_a_time_and_summarised(settings):
    # The storm's own tries cost no real hashing; the throttle is what is under test.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    a_fresh_minute()
    # A spray across names and addresses: no single one is tried often enough to be locked out.
    for n in range(200):
        response = sign_in(f"guess-{n % 50}", "hunter2", f"203.0.113.{n % 100 + 1}")
        assert response.status_code in (200, 429)

    assert len(events("user.sign_in_failed")) == LIMIT
    assert events("user.sign_in_failures") == []  # not before the minute has passed

    assert a_minute_later() == 1
    [summary] = events("user.sign_in_failures")
    assert summary.actor_name == "system"
    assert summary.outcome == "refused"
    assert summary.category == "access"
    assert summary.after["failures"] == 200
    assert summary.after["recorded_one_by_one"] == LIMIT
    assert summary.after["counted_only"] == 200 - LIMIT
    assert len(summary.after["usernames"]) == 10
    assert summary.after["usernames"][0] == {"username": "guess-0", "attempts": 4}
    assert summary.after["more_usernames"] == 40
    assert summary.after["addresses"][0] == {"address": "203.0.113.1", "attempts": 2}
    assert summary.after["more_addresses"] == 90
    assert a_minute_later() == 0  # each minute is summarised once


@pytest.mark.django_db
def test_tries_during_a_lock_out_are_not_recorded_but_counted_in_the_summary(personas):
    a_fresh_minute()
    for n in range(25):
        sign_in("operator-user", f"guess {n}", "198.51.100.9")

    assert len(events("user.sign_in_failed")) == 5  # until the lock-out (AXES_FAILURE_LIMIT)
    assert len(events("user.locked_out")) == 1
    a_minute_later()
    [summary] = events("user.sign_in_failures")
    assert (summary.after["failures"], summary.after["recorded_one_by_one"]) == (25, 5)
    assert summary.after["usernames"] == [{"username": "operator-user", "attempts": 25}]


@pytest.mark.django_db
def test_a_minute_with_every_failure_recorded_needs_no_summary():
    sign_in("nobody", "guess", "198.51.100.10")

    a_minute_later()

    assert len(events("user.sign_in_failed")) == 1
    assert events("user.sign_in_failures") == []


def test_beat_runs_the_summaries_every_minute(settings):
    [entry] = [e for e in settings.CELERY_BEAT_SCHEDULE.values() if "summarise" in e["task"]]

    assert entry["task"] in celery_app.tasks
    assert entry["schedule"] == 60.0


# --- users and groups --------------------------------------------------------------------------
def as_admin(admin) -> Context:
    """What a request by `admin` (the admin site's, say) gives the audit log."""
    return Context(request_id="page-request-1", ip="192.0.2.5", get_user=lambda: admin)


@pytest.mark.django_db
def test_a_user_made_and_changed_through_the_admin_sites_forms_is_recorded_with_its_actor(
    personas,
):
    admin = personas["admin"]
    operator = Group.objects.get(name="operator")
    with acting(as_admin(admin)):
        created: UserCreationForm[Any] = UserCreationForm(
            {
                "username": "erin",
                "password1": "a long passphrase 1",
                "password2": "a long passphrase 1",
            }
        )
        assert created.is_valid(), created.errors
        erin = created.save()
        data = {
            "username": "erin",
            "email": "erin@example.com",
            "is_active": True,
            "is_staff": True,
            "groups": [operator.pk],
            "date_joined": erin.date_joined,
        }
        changed: UserChangeForm[Any] = UserChangeForm(data, instance=erin)
        assert changed.is_valid(), changed.errors
        changed.save()

    made, change, roles = (
        events("user.created")[-1],
        events("user.changed")[-1],
        events("user.roles_changed")[-1],
    )
    for event in (made, change, roles):
        assert (event.actor_name, event.actor_ip, event.request_id) == (
            "admin-user",
            "192.0.2.5",
            "page-request-1",
        )
        assert (event.object_type, event.object_id) == ("auth.user", str(erin.pk))
    assert made.after == {
        "username": "erin",
        "email": "",
        "is_active": True,
        "is_staff": False,
        "is_superuser": False,
    }
    assert (change.before, change.after) == (
        {"email": "", "is_staff": False},
        {"email": "erin@example.com", "is_staff": True},
    )
    assert (roles.before, roles.after) == ({"roles": []}, {"roles": ["operator"]})
    assert "pbkdf2" not in str([e.before for e in AuditEvent.objects.all()])
    assert "pbkdf2" not in str([e.after for e in AuditEvent.objects.all()])


@pytest.mark.django_db
def test_a_groups_creation_permissions_rename_and_deletion_are_each_recorded(personas):
    GroupForm = modelform_factory(Group, fields=["name", "permissions"])
    sync = Permission.objects.get(codename="sync_inventory")
    with acting(as_admin(personas["admin"])):
        form = GroupForm({"name": "night-shift", "permissions": [sync.pk]})
        group = form.save()
        group.user_set.add(personas["viewer"])
        group.name = "night-crew"
        group.save()
        group.permissions.clear()
        group.delete()

    perms = ["fleet.sync_inventory"]
    assert [
        (e.action, e.before, e.after)
        for e in AuditEvent.objects.filter(object_type="auth.group").order_by("seq")
    ] == [
        ("group.created", None, {"name": "night-shift"}),
        ("group.permissions_changed", {"permissions": []}, {"permissions": perms}),
        ("group.changed", {"name": "night-shift"}, {"name": "night-crew"}),
        ("group.permissions_changed", {"permissions": perms}, {"permissions": []}),
        (
            "group.deleted",
            {"name": "night-crew", "members": ["viewer-user"], "permissions": []},
            None,
        ),
    ]
    joined = events("user.roles_changed")[-1]
    assert (joined.object_label, joined.before, joined.after) == (
        "viewer-user",
        {"roles": ["viewer"]},
        {"roles": ["viewer", "night-shift"]},
    )
    assert {e.actor_name for e in AuditEvent.objects.filter(object_type="auth.group")} == {
        "admin-user"
    }


@pytest.mark.django_db
def test_set_roles_records_the_change_once_as_the_system():
    call_command("set_roles", "frank", "operator", "--create", stdout=io.StringIO())
    call_command("set_roles", "frank", "operator", stdout=io.StringIO())  # no change

    [change] = events("user.roles_changed")
    assert (change.actor_name, change.object_label) == ("system", "frank")
    assert (change.before, change.after) == ({"roles": []}, {"roles": ["operator"]})
    assert [e.object_label for e in events("user.created")] == ["frank"]


@pytest.mark.django_db
def test_a_users_own_permissions_and_deletion_are_recorded(personas):
    viewer = personas["viewer"]
    viewer.user_permissions.add(Permission.objects.get(codename="sync_inventory"))
    viewer.delete()

    granted = events("user.permissions_changed")[-1]
    assert (granted.before, granted.after) == (
        {"permissions": []},
        {"permissions": ["fleet.sync_inventory"]},
    )
    [deleted] = events("user.deleted")
    assert deleted.object_label == "viewer-user"
    assert deleted.before["roles"] == ["viewer"]
    assert deleted.before["username"] == "viewer-user"


@pytest.mark.django_db
def test_signing_in_changes_no_user_in_the_log(personas):
    before = AuditEvent.objects.count()

    sign_in("viewer-user", "correct horse battery staple", "198.51.100.11")

    assert list(AuditEvent.objects.filter(seq__gt=before).values_list("action", flat=True)) == [
        "user.signed_in"
    ]


def test_createsuperuser_and_changepassword_are_recorded_outside_any_transaction(
    isolated_db, monkeypatch
):
    # As on a real command line: no transaction around the commands' saves.
    assert not connection.in_atomic_block
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "a long first passphrase")
    call_command(
        "createsuperuser",
        "--noinput",
        "--username",
        "root",
        "--email",
        "root@example.com",
        stdout=io.StringIO(),
    )
    # changepassword asks twice at the terminal; these are the person's answers.
    answers = iter(["a long second passphrase"] * 2)
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
    call_command("changepassword", "root", stdout=io.StringIO())

    [made] = events("user.created")
    assert made.actor_name == "system"
    assert made.after["is_superuser"] is True
    assert made.after["email"] == "root@example.com"
    [changed] = events("user.password_changed")
    assert (changed.actor_name, changed.object_label, changed.after) == (
        "system",
        "root",
        {"usable": True},
    )
    assert get_user_model().objects.get(username="root").check_password("a long second passphrase")


# --- refusals ----------------------------------------------------------------------------------
@pytest.mark.django_db
def test_an_auditor_posting_a_change_is_refused_and_the_refusal_recorded(client_as):
    response = client_as("auditor").post(reverse("fleet:sync"), HTTP_X_REQUEST_ID="audit-me-123")

    assert response.status_code == 403
    assert "needs the operator or admin role" in response.content.decode()
    [refused] = events("access.refused")
    assert (refused.actor_name, refused.outcome, refused.category) == (
        "auditor-user",
        "refused",
        "access",
    )
    assert refused.after == {
        "method": "POST",
        "path": "/sync/",
        "view": "fleet:sync",
        "refusal": "Starting an inventory sync needs the operator or admin role.",
    }
    assert refused.request_id == response["X-Request-ID"] == "client:audit-me-123"


@pytest.mark.django_db
def test_a_page_a_role_may_not_read_is_refused_but_not_recorded(client_as):
    response = client_as("auditor").get(reverse("accounts:lockouts"))

    assert response.status_code == 403
    assert events("access.refused") == []


@pytest.mark.django_db
def test_a_post_without_its_form_token_is_recorded_as_refused(personas):
    client = Client(enforce_csrf_checks=True)
    client.force_login(personas["operator"])

    response = client.post(reverse("fleet:sync"))

    assert response.status_code == 403
    [refused] = events("access.refused")
    assert refused.actor_name == "operator-user"
    assert "form token" in refused.after["refusal"]


@pytest.mark.django_db
def test_an_action_refused_for_the_state_things_are_in_is_recorded_with_its_reason(client_as):
    make_sync_run(status=SyncStatus.RUNNING)

    response = client_as("operator").post(reverse("fleet:sync"), follow=True)

    assert "already running" in response.content.decode()
    [refused] = events("fleet.action_refused")
    assert refused.actor_name == "operator-user"
    assert refused.outcome == "refused"
    assert refused.category == "fleet"
    assert refused.after["refusal"] == (
        "An inventory sync is already running; its result will show here."
    )


@pytest.mark.django_db
def test_a_refused_plan_action_names_the_plan(personas, client_as):
    make_cluster()
    plan = submitted_plan(personas["operator"])

    client_as("operator").post(reverse("rollout:plan_resume", kwargs={"pk": plan.pk}))

    [refused] = events("rollout.action_refused")
    assert refused.plan_id == plan.pk
    assert refused.after["refusal"] == f"Plan {plan.name!r} is not paused."


@pytest.mark.django_db
def test_a_refused_approval_is_recorded_once_as_the_four_eyes_refusal(personas, client_as):
    author = make_user("operator", "approver", username="olga")
    make_cluster()
    plan = submitted_plan(author)
    client = Client()
    client.force_login(author)
    wave = plan.waves.get(index=1)

    client.post(
        reverse("rollout:wave_approve", kwargs={"pk": plan.pk, "wave_id": wave.pk}),
        {"comment": "lgtm", "plan_hash": plan.content_hash},
    )

    assert len(events("rollout.decision_refused")) == 1
    assert events("rollout.action_refused") + events("access.refused") == []


@pytest.mark.django_db
def test_a_script_hammering_a_refused_button_is_recorded_a_few_times_and_summarised(client_as):
    auditor = client_as("auditor")
    a_fresh_minute()
    for _ in range(LIMIT + 15):
        assert auditor.post(reverse("fleet:sync")).status_code == 403

    assert len(events("access.refused")) == LIMIT
    assert a_minute_later() == 1
    [summary] = events("access.repeatedly_refused")
    assert (summary.outcome, summary.category) == ("refused", "access")
    assert summary.after["refusals"] == LIMIT + 15
    assert summary.after["counted_only"] == 15
    assert summary.after["usernames"] == [{"username": "auditor-user", "attempts": LIMIT + 15}]


@pytest.mark.django_db
def test_one_persons_refusals_leave_room_for_anothers(client_as):
    a_fresh_minute()
    for _ in range(LIMIT + 5):
        client_as("auditor").post(reverse("fleet:sync"))

    client_as("viewer").post(reverse("fleet:sync"))

    assert events("access.refused")[-1].actor_name == "viewer-user"


# --- request ids -------------------------------------------------------------------------------
@pytest.mark.django_db
def test_a_client_cannot_pass_its_request_off_as_a_system_task(personas):
    response = Client().post(
        reverse("accounts:login"),
        {"username": "operator-user", "password": "correct horse battery staple"},
        HTTP_X_REQUEST_ID="task:0f8e0b2a-6c39-4d3c-9c7e-4f1b2a3c4d5e",
    )

    [signed_in] = events("user.signed_in")
    assert signed_in.request_id == "client:task:0f8e0b2a-6c39-4d3c-9c7e-4f1b2a3c4d5e"
    assert not signed_in.request_id.startswith("task:")
    assert response["X-Request-ID"] == signed_in.request_id


@pytest.mark.django_db
def test_an_unusable_request_id_is_replaced_by_one_of_ours(client_as):
    response = client_as("viewer").get(reverse("fleet:overview"), HTTP_X_REQUEST_ID="bad id <x>")

    assert len(response["X-Request-ID"]) == 32
    assert ":" not in response["X-Request-ID"]
