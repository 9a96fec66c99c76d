"""Every URL in the URLconf, tried anonymously and as each role, against one table of who may.

A URL added without a row here fails `test_every_url_has_a_row`, so no page ships unguarded.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.db import transaction
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

import audit
from accounts.roles import Role
from api import tokens
from fleet.models import Cluster
from rollout.models import RolloutTarget, Wave
from tests.factories import (
    make_accepted_owner,
    make_cluster,
    make_scan,
    make_user,
    submitted_plan,
)

EVERYONE = frozenset(r.value for r in Role)
OPERATORS = frozenset({"operator", "admin"})
PUBLIC = "public"  # open without signing in


def existing_cluster() -> int:
    return make_cluster().pk


def scan_of_that_cluster() -> int:
    """A finished scan of the cluster `existing_cluster` has just made (kwargs are called in
    order)."""
    return make_scan(Cluster.objects.latest("pk")).pk


def existing_owner_extension() -> int:
    return make_accepted_owner().pk


def existing_plan() -> int:
    """A submitted plan over one cluster, made by an operator of its own (no persona's plan, so
    the four-eyes rule refuses no approver with a 403)."""
    make_cluster()
    creator = make_user("operator", username="plan-creator")
    return submitted_plan(creator, name="access", wave_spec="100%").pk


def wave_of_that_plan() -> int:
    return Wave.objects.latest("pk").pk


def an_audit_event() -> int:
    with transaction.atomic():
        return audit.record("test.event").seq


def someone_elses_token() -> int:
    """Only its own user may revoke a token: others are sent back to their own list."""
    with transaction.atomic():
        token, _ = tokens.issue(
            make_user("viewer", username="token-owner"), name="t", acting_user=None
        )
    return token.pk


def target_of_that_plan() -> int:
    return RolloutTarget.objects.latest("pk").pk


# url name → (method, kwargs for reverse, roles allowed or PUBLIC). A kwarg given as a
# function is called when the test runs, in its database: a page about an object needs one.
ACCESS: dict[str, tuple[str, dict, frozenset[str] | str]] = {
    "fleet:overview": ("GET", {}, EVERYONE),
    "fleet:sync": ("POST", {}, OPERATORS),
    "fleet:sync_status": ("GET", {}, EVERYONE),
    "fleet:clusters": ("GET", {}, EVERYONE),
    "fleet:cluster": ("GET", {"pk": existing_cluster}, EVERYONE),
    "preflight:cluster_scan": ("POST", {"pk": existing_cluster}, OPERATORS),
    "preflight:cluster_preflight": ("GET", {"pk": existing_cluster}, EVERYONE),
    "preflight:scan_findings": (
        "GET",
        {"pk": existing_cluster, "scan_id": scan_of_that_cluster},
        EVERYONE,
    ),
    "preflight:blockers": ("GET", {}, EVERYONE),
    "preflight:scan_all": ("POST", {}, OPERATORS),
    "preflight:scan_progress": ("GET", {}, EVERYONE),
    "preflight:owners": ("GET", {}, EVERYONE),
    "preflight:owner_add": ("POST", {}, frozenset({"admin"})),
    "preflight:owner_retire": ("POST", {"pk": existing_owner_extension}, frozenset({"admin"})),
    "preflight:owner_confirm": (
        "POST",
        {"pk": existing_owner_extension},
        frozenset({"approver", "admin"}),
    ),
    "preflight:owner_confirm_retirement": (
        "POST",
        {"pk": existing_owner_extension},
        frozenset({"approver", "admin"}),
    ),
    "rollout:plans": ("GET", {}, EVERYONE),
    "rollout:plan_new": ("GET", {}, OPERATORS),
    "rollout:plan_preview": ("POST", {}, OPERATORS),
    "rollout:plan": ("GET", {"pk": existing_plan}, EVERYONE),
    "rollout:plan_cards": ("GET", {"pk": existing_plan}, EVERYONE),
    "rollout:plan_edit": ("GET", {"pk": existing_plan}, OPERATORS),
    "rollout:wave": ("GET", {"pk": existing_plan, "index": 1}, EVERYONE),
    "rollout:wave_panel": ("GET", {"pk": existing_plan, "index": 1}, EVERYONE),
    "rollout:plan_pause": ("POST", {"pk": existing_plan}, OPERATORS),
    "rollout:emergency_stop": ("GET", {}, OPERATORS),
    "rollout:emergency_lift": ("GET", {}, OPERATORS),
    "rollout:plan_resume": ("POST", {"pk": existing_plan}, OPERATORS),
    "rollout:plan_abort": ("POST", {"pk": existing_plan}, OPERATORS),
    "rollout:wave_approve": (
        "POST",
        {"pk": existing_plan, "wave_id": wave_of_that_plan},
        frozenset({"approver", "admin"}),
    ),
    "rollout:wave_reject": (
        "POST",
        {"pk": existing_plan, "wave_id": wave_of_that_plan},
        frozenset({"approver", "admin"}),
    ),
    "rollout:wave_roll_back": (
        "POST",
        {"pk": existing_plan, "wave_id": wave_of_that_plan},
        OPERATORS,
    ),
    "rollout:target_retry": (
        "POST",
        {"pk": existing_plan, "target_id": target_of_that_plan},
        OPERATORS,
    ),
    "rollout:target_skip": (
        "POST",
        {"pk": existing_plan, "target_id": target_of_that_plan},
        OPERATORS,
    ),
    "rollout:target_roll_back": (
        "POST",
        {"pk": existing_plan, "target_id": target_of_that_plan},
        OPERATORS,
    ),
    "rollout:target_mark_done": (
        "POST",
        {"pk": existing_plan, "target_id": target_of_that_plan},
        OPERATORS,
    ),
    "rollout:evidence_pack": ("GET", {"pk": existing_plan}, frozenset({"auditor", "admin"})),
    "fleet:cluster_timeline": ("GET", {"pk": existing_cluster}, EVERYONE),
    "audit:events": ("GET", {}, frozenset({"auditor", "admin"})),
    "audit:verify": ("GET", {}, frozenset({"auditor", "admin"})),
    "audit:export": ("GET", {"fmt": "csv"}, frozenset({"auditor", "admin"})),
    "audit:event": ("GET", {"seq": an_audit_event}, frozenset({"auditor", "admin"})),
    "accounts:login": ("GET", {}, PUBLIC),
    "accounts:logout": ("POST", {}, EVERYONE),
    "accounts:lockouts": ("GET", {}, frozenset({"admin"})),
    "accounts:lift_lockout": ("POST", {}, frozenset({"admin"})),
    "tokens:list": ("GET", {}, EVERYONE),
    "tokens:revoke": ("POST", {"pk": someone_elses_token}, EVERYONE),
    "api:schema": ("GET", {}, EVERYONE),
    "api:docs": ("GET", {}, EVERYONE),
    "api:not_found": ("GET", {"rest": "v1/nothing-here/"}, PUBLIC),
    "api:plans": ("GET", {}, EVERYONE),
    "api:plan_preview": ("POST", {}, EVERYONE),
    "api:plan": ("GET", {"pk": existing_plan}, EVERYONE),
    "api:plan_status": ("GET", {"pk": existing_plan}, EVERYONE),
    "api:plan_saved_preview": ("GET", {"pk": existing_plan}, EVERYONE),
    "api:plan_submit": ("POST", {"pk": existing_plan}, OPERATORS),
    "api:plan_pause": ("POST", {"pk": existing_plan}, OPERATORS),
    "api:plan_resume": ("POST", {"pk": existing_plan}, OPERATORS),
    "api:plan_abort": ("POST", {"pk": existing_plan}, OPERATORS),
    "api:waves": ("GET", {"pk": existing_plan}, EVERYONE),
    "api:wave": ("GET", {"pk": existing_plan, "index": 1}, EVERYONE),
    "api:wave_approve": (
        "POST",
        {"pk": existing_plan, "index": 1},
        frozenset({"approver", "admin"}),
    ),
    "api:wave_reject": (
        "POST",
        {"pk": existing_plan, "index": 1},
        frozenset({"approver", "admin"}),
    ),
    "api:wave_roll_back": ("POST", {"pk": existing_plan, "index": 1}, OPERATORS),
    "api:targets": ("GET", {"pk": existing_plan}, EVERYONE),
    "api:target_retry": (
        "POST",
        {"pk": existing_plan, "target_id": target_of_that_plan},
        OPERATORS,
    ),
    "api:target_skip": (
        "POST",
        {"pk": existing_plan, "target_id": target_of_that_plan},
        OPERATORS,
    ),
    "api:target_roll_back": (
        "POST",
        {"pk": existing_plan, "target_id": target_of_that_plan},
        OPERATORS,
    ),
    "api:target_mark_done": (
        "POST",
        {"pk": existing_plan, "target_id": target_of_that_plan},
        OPERATORS,
    ),
    "api:emergency_stop": ("GET", {}, EVERYONE),
    "api:emergency_lift": ("POST", {}, OPERATORS),
    "api:audit_events": ("GET", {}, frozenset({"auditor", "admin"})),
    "api:audit_event": ("GET", {"seq": an_audit_event}, frozenset({"auditor", "admin"})),
    "api:audit_export": ("GET", {"fmt": "csv"}, frozenset({"auditor", "admin"})),
    "api:audit_verify": ("GET", {}, frozenset({"auditor", "admin"})),
    "api:plan_evidence": ("GET", {"pk": existing_plan}, frozenset({"auditor", "admin"})),
    "api:clusters": ("GET", {}, EVERYONE),
    "api:cluster": ("GET", {"pk": existing_cluster}, EVERYONE),
    "api:cluster_timeline": ("GET", {"pk": existing_cluster}, EVERYONE),
    "api:cluster_scan": ("POST", {"pk": existing_cluster}, OPERATORS),
    "api:scans": ("GET", {}, EVERYONE),
    "api:scan": ("GET", {"pk": lambda: make_scan(make_cluster()).pk}, EVERYONE),
    "api:scan_all": ("POST", {}, OPERATORS),
    "api:owners": ("GET", {}, EVERYONE),
    "api:owner_confirm": (
        "POST",
        {"pk": existing_owner_extension},
        frozenset({"approver", "admin"}),
    ),
    "api:owner_retire": ("POST", {"pk": existing_owner_extension}, frozenset({"admin"})),
    "api:owner_confirm_retirement": (
        "POST",
        {"pk": existing_owner_extension},
        frozenset({"approver", "admin"}),
    ),
    "healthz": ("GET", {}, PUBLIC),
    "metrics": ("GET", {}, PUBLIC),
    "favicon": ("GET", {}, PUBLIC),
}


def url_names(patterns=None, namespace: str = "") -> Iterator[str]:
    for entry in patterns if patterns is not None else get_resolver().url_patterns:
        if isinstance(entry, URLResolver):
            inner = ":".join(p for p in (namespace, entry.namespace or "") if p)
            yield from url_names(entry.url_patterns, inner)
        elif isinstance(entry, URLPattern):
            name = entry.name or f"<unnamed {entry.pattern}>"
            yield f"{namespace}:{name}" if namespace else name


def test_every_url_has_a_row():
    assert sorted(set(url_names())) == sorted(ACCESS)


def is_api(name: str) -> bool:
    """/api/ (not its documentation page, which is a page like any other)."""
    return name.startswith("api:") and name != "api:docs"


def fetch(client: Client, name: str):
    method, kwargs, _ = ACCESS[name]
    url = reverse(name, kwargs={k: v() if callable(v) else v for k, v in kwargs.items()})
    return client.post(url) if method == "POST" else client.get(url)


@pytest.mark.django_db
@pytest.mark.parametrize("name", sorted(ACCESS))
def test_anonymous_visitors_are_sent_to_sign_in_except_on_public_urls(client, name):
    response = fetch(client, name)

    if is_api(name):
        # The API answers for itself, in JSON: 401 until a token (or a session) says who asks.
        if ACCESS[name][2] == PUBLIC:
            assert response.status_code not in {401, 403}
        else:
            assert response.status_code == 401, response.content[:300]
            assert response.json()["code"] == "not_authenticated"
    elif ACCESS[name][2] == PUBLIC:
        assert response.status_code in {200, 302, 503}
        if response.status_code == 302:
            assert reverse("accounts:login") in response["Location"]
            assert "?next=" not in response["Location"]
    else:
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("accounts:login") + "?next=")


@pytest.mark.django_db
@pytest.mark.parametrize("role", sorted(EVERYONE))
@pytest.mark.parametrize("name", sorted(ACCESS))
def test_each_role_reaches_exactly_the_urls_it_may(client_as, role, name):
    allowed = ACCESS[name][2]
    response = fetch(client_as(role), name)

    if is_api(name):
        # Allowed: anything but a refusal (an empty body may well be a 400 or a 409).
        if allowed == PUBLIC or role in allowed:
            assert response.status_code not in {401, 403}, response.content[:300]
        else:
            assert response.status_code == 403, response.content[:300]
            assert "role" in response.json()["message"]
    elif allowed == PUBLIC or role in allowed:
        assert response.status_code in {200, 302, 503}, response.status_code
    else:
        assert response.status_code == 403
        assert "role" in response.content.decode()
