"""List sign-in lock-outs, or lift one (recorded in the audit log, as the admin page does)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.choices import LockoutKind
from accounts.lockouts import current_lockouts, lift_lockout


class Command(BaseCommand):
    help = (
        "Lift a sign-in lock-out: `lift_lockout --user alice` or `lift_lockout --address "
        "203.0.113.9`; with neither, list who is locked out."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        which = parser.add_mutually_exclusive_group()
        which.add_argument("--user", help="the user name locked out")
        which.add_argument("--address", help="the client address locked out")

    def handle(self, *args: Any, user: str | None, address: str | None, **options: Any) -> None:
        if user is None and address is None:
            lockouts = current_lockouts()
            for lockout in lockouts:
                self.stdout.write(
                    f"{lockout.kind.value} {lockout.value}: {lockout.failures} failed sign-ins, "
                    f"locked until {lockout.ends:%Y-%m-%d %H:%M:%S} UTC"
                )
            if not lockouts:
                self.stdout.write("Nobody is locked out.")
            return
        kind, value = (
            (LockoutKind.USER, user) if user is not None else (LockoutKind.ADDRESS, address)
        )
        assert value is not None
        lifted = lift_lockout(kind, value)
        if lifted is None:
            raise CommandError(f"{kind.label.lower()} {value!r} is not locked out")
        self.stdout.write(f"Lifted the lock-out of {kind.label.lower()} {value}.")
