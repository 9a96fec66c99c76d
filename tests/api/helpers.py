"""What the API tests share: a token for a user, and a client that sends it."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.test import Client

from api import tokens


def token_for(user: Any, *, read_only: bool = False, days: int | None = None) -> str:
    with transaction.atomic():
        _, raw = tokens.issue(
            user, name=f"{user.username} script", days=days, read_only=read_only, acting_user=user
        )
    return raw


class Api:
    """A test client speaking JSON with a bearer token (no session)."""

    def __init__(self, raw: str | None) -> None:
        self.client = Client()
        self.headers = {"HTTP_AUTHORIZATION": f"Bearer {raw}"} if raw else {}

    def get(self, path: str, **params: Any) -> Any:
        return self.client.get("/api/v1/" + path, params, **self.headers)

    def post(self, path: str, body: Any = None) -> Any:
        return self.client.post(
            "/api/v1/" + path, body or {}, content_type="application/json", **self.headers
        )

    def patch(self, path: str, body: Any) -> Any:
        return self.client.patch(
            "/api/v1/" + path, body, content_type="application/json", **self.headers
        )
