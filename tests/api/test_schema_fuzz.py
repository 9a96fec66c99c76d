"""Schemathesis against the served /api/schema/: every operation, with generated (and the
schema's own example) requests under a real token, answers no 5xx, only the status codes and
content types it documents, and bodies that match its response schema."""

from __future__ import annotations

import json

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import checks

from config.wsgi import application
from tests.api.helpers import Api, token_for
from tests.factories import make_cluster, make_plan

EXAMPLES = 15
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
]


@pytest.fixture
def admin_token(db, personas):
    for n in range(3):
        make_cluster(name=f"aks-fuzz-{n}", ring="canary")
    make_plan(personas["operator"], name="fuzz")
    return token_for(personas["admin"])


@pytest.fixture
def in_process():
    """Requests reach the WSGI application in this process, inside the test's transaction: keep
    Django from closing the connection after each, as its own test client does (and as that
    client then connects them again, this comes after any use of it)."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@pytest.fixture
def api_schema(admin_token):
    served = Api(admin_token).client.get(
        "/api/schema/", HTTP_ACCEPT="application/json", HTTP_AUTHORIZATION=f"Bearer {admin_token}"
    )
    assert served.status_code == 200, served.content[:500]
    loaded = schemathesis.openapi.from_dict(json.loads(served.content))
    loaded.app = application
    return loaded


def test_no_server_error_and_no_response_outside_the_schema(api_schema, admin_token, in_process):
    # in_process last: Django's test client (which fetched the schema) reconnects the signals.
    # Schemathesis's pytest plugin (from_fixture) does not run under pytest 9: each operation
    # gets its own Hypothesis run here instead, and every failure is reported at the end.
    headers = {"Authorization": f"Bearer {admin_token}"}
    failures: list[str] = []
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 20, [op.label for op in operations]
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
            phases=[Phase.explicit, Phase.generate],
        )
        def run(case):
            case.call_and_validate(headers=headers, checks=CHECKS)

        try:
            run()
        except Exception as failure:  # every operation's failure, not only the first
            failures.append(f"{operation.label}: {failure}"[:3000])
    assert not failures, "\n\n".join(failures)


def test_the_schema_needs_a_sign_in_and_names_the_bearer_scheme(admin_token):
    from django.test import Client

    assert Client().get("/api/schema/").status_code in (401, 403)
    served = (
        Client()
        .get(
            "/api/schema/",
            HTTP_ACCEPT="application/json",
            HTTP_AUTHORIZATION=f"Bearer {admin_token}",
        )
        .json()
    )
    assert served["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    assert served["components"]["schemas"]["Error"]["required"] == ["code", "message", "field"]
    for path, operations in served["paths"].items():
        assert path.startswith("/api/v1/"), path
        for method, operation in operations.items():
            assert "401" in operation["responses"], (method, path)
            assert operation.get("summary") or operation.get("description"), (method, path)
