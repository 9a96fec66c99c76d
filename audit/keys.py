"""The audit key: read from the file WAVEGATE_AUDIT_HMAC_KEY_FILE names, never stored.

No models here, so that deploy checks can read it while apps load."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings

# Shorter keys are refused: HMAC-SHA256's key should carry at least the hash's 256 bits.
MIN_KEY_BYTES = 32


class AnchorProblem(Exception):
    """Checkpoints cannot be made or read as configured; the message says what to do."""


def key_configured() -> bool:
    return bool(settings.WAVEGATE_AUDIT_HMAC_KEY_FILE)


def load_key() -> bytes:
    path = settings.WAVEGATE_AUDIT_HMAC_KEY_FILE
    if not path:
        raise AnchorProblem(
            "WAVEGATE_AUDIT_HMAC_KEY_FILE is not set: checkpoints cannot be signed or checked. "
            "Create a key (e.g. `head -c 48 /dev/urandom | base64 > /etc/wavegate/audit.key`), "
            "readable by Wavegate only, and name it in that setting."
        )
    try:
        key = Path(path).read_bytes().strip()
    except OSError as error:
        raise AnchorProblem(
            f"The audit key file {path} (WAVEGATE_AUDIT_HMAC_KEY_FILE) cannot be read: "
            f"{error.strerror or error}."
        ) from error
    if len(key) < MIN_KEY_BYTES:
        raise AnchorProblem(
            f"The audit key in {path} has {len(key)} bytes; at least {MIN_KEY_BYTES} are needed."
        )
    return key
