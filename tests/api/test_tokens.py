"""Personal API tokens: shown once, kept only as a digest, refused at once when revoked or
expired, read-only when asked, and audited (created, first use from an address, revoked)."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from api.choices import TokenEvent
from api.models import ApiToken
from audit.models import AuditEvent
from tests.api.helpers import Api, token_for
from tests.factories import make_cluster

pytestmark = pytest.mark.django_db


def _created_on_page(client: Client, **fields) -> tuple[str, str]:
    page = client.post("/accounts/tokens/", {"name": "ci", "days": "30", **fields})
    assert page.status_code == 200
    html = page.content.decode()
    found = re.search(r'value="(wgt_[A-Za-z0-9_-]+)"', html)
    assert found, html
    return found.group(1), html


def test_the_page_shows_a_new_token_once_and_keeps_only_its_digest(client_as, personas):
    client = client_as("operator")
    raw, html = _created_on_page(client)
    assert "not shown again" in html
    assert (
        "no-store" in client.post("/accounts/tokens/", {"name": "x", "days": "1"})["Cache-Control"]
    )
    token = ApiToken.objects.get(name="ci")
    assert token.digest == hashlib.sha256(raw.encode()).hexdigest()
    assert raw not in str(ApiToken.objects.filter(pk=token.pk).values().get())
    listing = client.get("/accounts/tokens/").content.decode()
    assert "ci" in listing
    assert raw not in listing
    assert (token.expires_at - token.created_at).days == 30
    assert Api(raw).get("plans/").status_code == 200


def test_expiry_has_a_default_and_a_maximum(client_as, settings):
    settings.WAVEGATE_API_TOKEN_MAX_DAYS = 60
    client = client_as("operator")
    page = client.post("/accounts/tokens/", {"name": "long", "days": "61"})
    assert page.status_code == 400
    assert "less than or equal to 60" in page.content.decode()
    assert not ApiToken.objects.exists()
    settings.WAVEGATE_API_TOKEN_MAX_DAYS = 365
    assert 'value="90"' in client.get("/accounts/tokens/").content.decode()


def test_a_revoked_token_is_refused_at_once(client_as, personas):
    client = client_as("operator")
    raw, _ = _created_on_page(client)
    api = Api(raw)
    assert api.get("plans/").status_code == 200
    token = ApiToken.objects.get()
    assert client.post(f"/accounts/tokens/{token.pk}/revoke").status_code == 302
    refused = api.get("plans/")
    assert refused.status_code == 401
    assert refused.json()["code"] == "token_revoked"
    assert "revoked" in refused.json()["message"]
    events = list(AuditEvent.objects.filter(action=TokenEvent.REVOKED))
    assert len(events) == 1
    assert events[0].actor_name == "operator-user"


def test_someone_elses_token_cannot_be_revoked(client_as, personas):
    raw = token_for(personas["operator"])
    token = ApiToken.objects.get()
    refused = client_as("admin").post(f"/accounts/tokens/{token.pk}/revoke", follow=True)
    assert "You have no such token" in refused.content.decode()
    assert Api(raw).get("plans/").status_code == 200
    # An attempt on another person's credential is in the audit log, with who tried.
    attempt = AuditEvent.objects.get(action="access.refused")
    assert attempt.actor_name == "admin-user"
    assert attempt.object_id == str(token.pk)
    assert attempt.after["refusal"].startswith("You have no such token")
    assert raw not in json.dumps(attempt.after) + attempt.object_label


def test_revoking_a_revoked_token_again_is_refused_and_recorded(client_as, personas):
    client = client_as("operator")
    _created_on_page(client)
    token = ApiToken.objects.get()
    client.post(f"/accounts/tokens/{token.pk}/revoke")

    again = client.post(f"/accounts/tokens/{token.pk}/revoke", follow=True)

    assert "was revoked at" in again.content.decode()
    assert AuditEvent.objects.filter(action=TokenEvent.REVOKED).count() == 1
    assert AuditEvent.objects.filter(action="access.refused").count() == 1


def test_an_expired_token_is_refused(personas):
    raw = token_for(personas["operator"], days=1)
    ApiToken.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    refused = Api(raw).get("plans/")
    assert refused.status_code == 401
    assert refused.json()["code"] == "token_expired"


def test_unknown_malformed_and_missing_tokens_are_refused_in_json(personas):
    assert Api("wgt_" + "x" * 43).get("plans/").json()["code"] == "token_invalid"
    client = Client()
    malformed = client.get("/api/v1/plans/", HTTP_AUTHORIZATION="Bearer a b")
    assert malformed.status_code == 401
    assert malformed.json()["code"] == "token_malformed"
    missing = client.get("/api/v1/plans/")
    assert missing.status_code in (401, 403)
    assert missing.json()["code"] == "not_authenticated"
    assert missing["Content-Type"] == "application/json"


def test_a_token_of_a_deactivated_user_is_refused(personas):
    raw = token_for(personas["operator"])
    personas["operator"].is_active = False
    personas["operator"].save()
    assert Api(raw).get("plans/").json()["code"] == "user_inactive"


def test_a_token_acts_with_its_users_roles_as_they_are_now(personas):
    viewer = personas["viewer"]
    raw = token_for(viewer)
    api = Api(raw)
    refused = api.post("plans/", {"name": "p"})
    assert refused.status_code == 403
    assert (
        refused.json()["message"]
        == "Planning and running rollouts needs the operator or admin role."
    )
    assert AuditEvent.objects.filter(action="access.refused").exists()


def test_a_read_only_token_reads_and_is_refused_every_change(personas):
    make_cluster(name="aks-one")
    raw = token_for(personas["admin"], read_only=True)
    api = Api(raw)
    assert api.get("plans/").status_code == 200
    assert api.post("plans/preview/", {"names": ["aks-one"]}).status_code == 200
    for path in ("plans/", "plans/1/submit/", "emergency-stop/"):
        refused = api.post(path, {"name": "x", "reason": "r"})
        assert refused.status_code == 403, path
        assert refused.json()["code"] == "read_only_token"
    assert api.patch("plans/1/", {"name": "y"}).json()["code"] == "read_only_token"


def test_creation_and_first_use_from_each_address_are_audited_without_the_token(personas):
    raw = token_for(personas["operator"])
    api = Api(raw)
    api.get("plans/")
    api.get("plans/")
    api.client.get("/api/v1/plans/", REMOTE_ADDR="10.1.2.3", **api.headers)
    assert AuditEvent.objects.filter(action=TokenEvent.CREATED).count() == 1
    new_address = AuditEvent.objects.filter(action=TokenEvent.NEW_ADDRESS)
    assert sorted(e.after["address"] for e in new_address) == ["10.1.2.3", "127.0.0.1"]
    for event in AuditEvent.objects.all():
        assert raw not in str(event.after)
        assert raw not in str(event.before)
        assert raw[4:20] not in str(event.after)


def test_the_api_documentation_page_needs_a_sign_in_and_loads_nothing_from_elsewhere(client_as):
    assert Client().get("/api/docs/").status_code == 302
    page = client_as("viewer").get("/api/docs/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in html
    assert not re.findall(r"""(?:src|href)=["']?(?:https?:)?//""", html), html
    assert (
        client_as("viewer")
        .get("/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js")
        .status_code
        == 200
    )
