"""Issue, check and revoke personal API tokens. The token is returned once, by `issue`; only its
SHA-256 digest is stored, and no log line, page, audit event or export ever holds it."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

import audit
from api.choices import TokenEvent, TokenState
from api.models import ApiToken, TokenAddress

PREFIX = "wgt_"
# A request's use is written down at most this often, so that a busy script does not turn
# every read into a write.
_LAST_USED_EVERY = timedelta(minutes=1)


class TokenRefused(Exception):
    """The token cannot be used (or issued): `code` is stable, the message says what to do."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def digest(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def _facts(token: ApiToken) -> dict[str, Any]:
    return {
        "user": token.user.get_username(),
        "name": token.name,
        "read_only": token.read_only,
        "expires_at": token.expires_at.isoformat(),
    }


def max_days() -> int:
    return int(settings.WAVEGATE_API_TOKEN_MAX_DAYS)


def default_days() -> int:
    """The default, never past the maximum (an installation may set the maximum lower)."""
    return min(int(settings.WAVEGATE_API_TOKEN_DEFAULT_DAYS), max_days())


@transaction.atomic
def issue(
    user: Any, *, name: str, days: int | None = None, read_only: bool = False, acting_user: Any
) -> tuple[ApiToken, str]:
    """A new token for `user`, valid `days` (default WAVEGATE_API_TOKEN_DEFAULT_DAYS, at most
    WAVEGATE_API_TOKEN_MAX_DAYS). Returns the row and the token, which is never seen again."""
    name = (name or "").strip()
    if not name:
        raise TokenRefused("invalid", "Give the token a name that says what uses it.")
    if len(name) > 100:
        raise TokenRefused(
            "invalid", f"A token's name has at most 100 characters, not {len(name)}."
        )
    days = default_days() if days is None else days
    if not 1 <= days <= max_days():
        raise TokenRefused(
            "invalid",
            f"A token lasts from 1 to {max_days()} days (WAVEGATE_API_TOKEN_MAX_DAYS), not {days}.",
        )
    if not user.is_active:
        raise TokenRefused("user_inactive", f"{user.get_username()} is not an active user.")
    raw = PREFIX + secrets.token_urlsafe(32)
    now = timezone.now()
    token = ApiToken.objects.create(
        user=user,
        name=name,
        digest=digest(raw),
        read_only=read_only,
        created_at=now,
        expires_at=now + timedelta(days=days),
    )
    audit.record(TokenEvent.CREATED, acting_user=acting_user, obj=token, after=_facts(token))
    return token, raw


@transaction.atomic
def revoke(token: ApiToken, *, acting_user: Any) -> ApiToken:
    """Refuse the token from now on. Only its own user may (an admin deactivates a user)."""
    token = ApiToken.objects.select_for_update().select_related("user").get(pk=token.pk)
    if acting_user is not None and acting_user.pk != token.user_id:
        raise TokenRefused("forbidden", "Only the token's own user may revoke it.")
    if token.revoked_at is not None:
        raise TokenRefused(
            "already_revoked",
            f"Token {token.name!r} was revoked at {token.revoked_at:%Y-%m-%d %H:%M} UTC.",
        )
    token.revoked_at = timezone.now()
    token.save(update_fields=["revoked_at"])
    audit.record(TokenEvent.REVOKED, acting_user=acting_user, obj=token, after=_facts(token))
    return token


@dataclass(frozen=True)
class Holder:
    user: Any
    token: ApiToken


def authenticate(raw: str, address: str | None) -> Holder:
    """The token's user, if the token may be used now; else TokenRefused saying why."""
    token = (
        ApiToken.objects.select_related("user").filter(digest=digest(raw)).first()
        if raw.startswith(PREFIX)
        else None
    )
    if token is None:
        raise TokenRefused(
            "token_invalid", "This API token is not known: create one on your API tokens page."
        )
    now = timezone.now()
    state = token.state(now)
    if state == TokenState.REVOKED:
        raise TokenRefused(
            "token_revoked", f"API token {token.name!r} was revoked: create a new one."
        )
    if state == TokenState.EXPIRED:
        raise TokenRefused(
            "token_expired",
            f"API token {token.name!r} expired at {token.expires_at:%Y-%m-%d %H:%M} UTC: "
            "create a new one.",
        )
    if not token.user.is_active:
        raise TokenRefused(
            "user_inactive", f"{token.user.get_username()} is no longer an active user."
        )
    _note_use(token, address, now)
    return Holder(token.user, token)


def _note_use(token: ApiToken, address: str | None, now: Any) -> None:
    if address and not TokenAddress.objects.filter(token=token, address=address).exists():
        try:
            with transaction.atomic():
                TokenAddress.objects.create(token=token, address=address, first_used_at=now)
                audit.record(
                    TokenEvent.NEW_ADDRESS,
                    acting_user=token.user,
                    obj=token,
                    after={**_facts(token), "address": address},
                )
        except IntegrityError:
            pass  # a concurrent request from the same address recorded it first
    if token.last_used_at is None or now - token.last_used_at >= _LAST_USED_EVERY:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
