"""How the API knows who is asking: `Authorization: Bearer <token>`, or the browser's session
(the schema's documentation page); and what a read-only token may not do."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request

from api import tokens
from api.models import ApiToken
from audit.context import current


class TokenFailed(exceptions.AuthenticationFailed):
    """Refused at the door; `code` says why (token_invalid, token_expired, token_revoked…)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message, code=code)


class BearerTokenAuthentication(BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[Any, ApiToken] | None:
        header = get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise TokenFailed(
                "token_malformed", "Send the token as 'Authorization: Bearer <token>', one word."
            )
        try:
            raw = header[1].decode("ascii")
        except UnicodeDecodeError as exc:
            raise TokenFailed("token_malformed", "An API token is plain ASCII.") from exc
        ctx = current()
        try:
            holder = tokens.authenticate(raw, ctx.ip if ctx else None)
        except tokens.TokenRefused as refusal:
            raise TokenFailed(refusal.code, str(refusal)) from refusal
        return holder.user, holder.token

    def authenticate_header(self, request: Request) -> str:
        return f'{self.keyword} realm="api"'


class ReadOnlyToken(BasePermission):
    """A read-only token reads; it is refused every change whatever its user's roles."""

    message = "This API token is read-only: it may read, not change anything."
    code = "read_only_token"

    def has_permission(self, request: Request, view: Any) -> bool:
        token = request.auth
        return not (
            isinstance(token, ApiToken)
            and token.read_only
            and request.method not in SAFE_METHODS
            and not getattr(view, "read_only_safe", False)  # a POST that only reads
        )


class SignedIn(BasePermission):
    message = (
        "Sign in, or send a personal API token as 'Authorization: Bearer <token>' "
        "(create one on your API tokens page)."
    )
    code = "not_authenticated"

    def has_permission(self, request: Request, view: Any) -> bool:
        return bool(request.user and request.user.is_authenticated)


class BearerScheme(OpenApiAuthenticationExtension):
    target_class = "api.auth.BearerTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A personal API token (wgt_…), from your API tokens page or "
            "`manage.py create_token`.",
        }
