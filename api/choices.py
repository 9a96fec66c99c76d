"""The API's audit actions: personal tokens created, first used from an address, revoked."""

from __future__ import annotations

from django.db import models


class TokenEvent(models.TextChoices):
    # "user." names: the auditor's page files them under Access (audit/kinds.py).
    CREATED = "user.token_created", "API token created"
    NEW_ADDRESS = "user.token_used_from_new_address", "API token used from a new address"
    REVOKED = "user.token_revoked", "API token revoked"


class TokenState(models.TextChoices):
    ACTIVE = "active", "Active"
    EXPIRED = "expired", "Expired"
    REVOKED = "revoked", "Revoked"
