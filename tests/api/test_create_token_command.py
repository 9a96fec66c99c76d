"""`manage.py create_token`: an API token issued from a shell is printed once, alone on its
line (or in the JSON), authenticates as its user, and is in no audit event; what cannot be
issued says why."""

from __future__ import annotations

import json

from api import tokens
from api.choices import TokenEvent
from api.models import ApiToken
from audit.models import AuditEvent
from tests.factories import make_user
from tests.scripting import document, ended, manage, run


def nowhere_in_the_audit_log(raw: str) -> bool:
    return not any(
        raw in json.dumps([e.object_label, e.before, e.after]) for e in AuditEvent.objects.all()
    )


def test_the_token_is_printed_once_on_a_line_of_its_own_and_authenticates(personas):
    ran = run("create_token", "operator-user", "--name", "ci deploy", "--days", "7")

    assert ran.status == 0, ran.error
    lines = ran.out.splitlines()
    token = ApiToken.objects.get()
    assert lines[0] == (
        f"API token 'ci deploy' for operator-user (acts as operator-user), expires "
        f"{token.expires_at:%Y-%m-%d %H:%M} UTC:"
    )
    raw = lines[1]
    assert raw.startswith("wgt_")
    assert lines[2] == "Keep it now: it is not shown again (only its digest is stored)."
    assert tokens.authenticate(raw, None).user == personas["operator"]
    assert (token.expires_at - token.created_at).days == 7
    assert nowhere_in_the_audit_log(raw)
    created = AuditEvent.objects.get(action=TokenEvent.CREATED)
    assert (created.actor_name, created.after["name"]) == ("system", "ci deploy")


def test_json_gives_the_token_with_its_name_expiry_and_the_warning(personas):
    ran = run("create_token", "auditor-user", "--name", "reports", "--read-only", "--json")

    assert ran.status == 0, ran.error
    said = ran.json()
    token = ApiToken.objects.get()
    assert said == {
        "token": said["token"],
        "id": token.pk,
        "user": "auditor-user",
        "name": "reports",
        "read_only": True,
        "expires_at": token.expires_at.isoformat(),
        "warning": "Keep it now: it is not shown again (only its digest is stored).",
    }
    holder = tokens.authenticate(said["token"], None)
    assert (holder.user, holder.token.read_only) == (personas["auditor"], True)
    assert nowhere_in_the_audit_log(said["token"])


def test_what_cannot_be_issued_says_why_with_exit_2(personas, settings):
    settings.WAVEGATE_API_TOKEN_MAX_DAYS = 30
    inactive = make_user("operator", username="gone")
    inactive.is_active = False
    inactive.save()

    too_long = run("create_token", "operator-user", "--name", "x", "--days", "31", "--json")
    unnamed = run("create_token", "operator-user", "--name", "  ")
    deactivated = run("create_token", "gone", "--name", "x", "--days", "7")

    said = ended(too_long, 2)
    assert said == "A token lasts from 1 to 30 days (WAVEGATE_API_TOKEN_MAX_DAYS), not 31."
    assert too_long.json()["code"] == "invalid"
    assert ended(unnamed, 2) == "Give the token a name that says what uses it."
    assert ended(deactivated, 2) == "gone is not an active user."
    assert not ApiToken.objects.exists()


def test_an_unknown_user_is_not_found(db):
    ran = run("create_token", "nobody", "--name", "x", "--json")

    assert ended(ran, 4) == "There is no user 'nobody'."
    assert ran.json() == {
        "code": "not_found",
        "message": "There is no user 'nobody'.",
        "field": "USER",
    }


def test_from_a_shell_the_token_works_and_no_log_holds_it(isolated_db):
    olga = make_user("operator", username="olga")

    done = manage(isolated_db.url, "create_token", "olga", "--name", "nightly", "--json")

    assert done.returncode == 0, done.stderr
    raw = document(done)["token"]
    assert tokens.authenticate(raw, None).user == olga
    assert raw not in done.stderr
    assert done.stdout.count(raw) == 1
    assert nowhere_in_the_audit_log(raw)
