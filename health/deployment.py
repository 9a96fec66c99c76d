"""Deploy checks (`manage.py check --deploy`) that stop a production start configured unsafely;
compose runs them before web, worker and beat may start."""

from __future__ import annotations

from ipaddress import ip_address
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.checks import CheckMessage, Error

from audit import keys


def _talks_to_simulator() -> bool:
    """The demo and the tests point the Azure SDK at aksim on this machine."""
    host = urlsplit(settings.AZURE_ARM_ENDPOINT).hostname or ""
    if host == "localhost":
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False


def scan_image_pinned(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Scan pods are privileged on every node: production pins their image by digest."""
    if settings.DEBUG or _talks_to_simulator() or settings.WAVEGATE_SCAN_IMAGE_DIGEST:
        return []
    return [
        Error(
            "WAVEGATE_SCAN_IMAGE_DIGEST is empty: the preflight scan pods run privileged on "
            "every node, so their image must be pinned by digest.",
            hint=(
                "Set WAVEGATE_SCAN_IMAGE_DIGEST to the sha256:… digest of WAVEGATE_SCAN_IMAGE "
                f"({settings.WAVEGATE_SCAN_IMAGE}), e.g. from `docker buildx imagetools inspect`."
            ),
            id="wavegate.E001",
        )
    ]


def audit_anchored(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Production anchors the audit chain outside the database: a readable signing key."""
    if settings.DEBUG or _talks_to_simulator():
        return []
    try:
        keys.load_key()
    except keys.AnchorProblem as problem:
        return [
            Error(
                f"The audit chain would not be anchored: {problem}",
                hint=(
                    "Without signed checkpoints, whoever holds the database's superuser "
                    "password can rewrite the audit log whole. Set WAVEGATE_AUDIT_HMAC_KEY_FILE "
                    "and WAVEGATE_AUDIT_CHECKPOINT_FILE (README: The audit log)."
                ),
                id="wavegate.E002",
            )
        ]
    if not settings.WAVEGATE_AUDIT_CHECKPOINT_FILE:
        return [
            Error(
                "WAVEGATE_AUDIT_CHECKPOINT_FILE is empty: checkpoints would live only in the "
                "database they are meant to vouch for.",
                hint="Name a file outside the database's reach (another volume).",
                id="wavegate.E003",
            )
        ]
    return []
