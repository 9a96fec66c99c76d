"""Signals the accounts app sends; the audit app records them (accounts may not import audit)."""

from __future__ import annotations

from django.dispatch import Signal

# Sent inside the transaction that lifted a sign-in lock-out, with kind (LockoutKind), value
# (the user name or address), failures (the count it held) and acting_user (None: a command).
lockout_lifted = Signal()
