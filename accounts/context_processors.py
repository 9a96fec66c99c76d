"""Put the signed-in user's roles on every page (the layout shows them)."""

from __future__ import annotations

from django.http import HttpRequest

from accounts.roles import Role, roles_of


def roles(request: HttpRequest) -> dict[str, object]:
    held = roles_of(request.user)
    return {"user_roles": [Role(r).label for r in held]}
