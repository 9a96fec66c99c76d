"""Personal API tokens: only a digest of each is kept; the token itself is shown once."""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.db import models

from api.choices import TokenState


class ApiToken(models.Model):
    """A token acts as its user, with the user's roles as they are when it is used, or fewer
    (`read_only`: reads only). It is refused once revoked or past `expires_at`."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100)
    # SHA-256 of the whole token, hex. Tokens are 256 random bits: a slow hash adds nothing
    # (nobody can guess one), and one indexed lookup finds the token of a request.
    digest = models.CharField(max_length=64, unique=True)
    read_only = models.BooleanField(default=False)
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"API token {self.name!r} of {self.user.get_username()}"

    def state(self, now: datetime) -> TokenState:
        if self.revoked_at is not None:
            return TokenState.REVOKED
        if self.expires_at <= now:
            return TokenState.EXPIRED
        return TokenState.ACTIVE


class TokenAddress(models.Model):
    """An address a token was used from: the first use from each is audited."""

    token = models.ForeignKey(ApiToken, on_delete=models.CASCADE, related_name="addresses")
    address = models.CharField(max_length=45)
    first_used_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["token", "address"], name="api_token_address_once")
        ]

    def __str__(self) -> str:
        return f"{self.token_id} from {self.address}"
