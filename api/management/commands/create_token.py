"""Issue a personal API token for a user, as the user's API tokens page does, for a script or a
service account set up from a shell; the token is printed once and never again.

Exit 0 when issued, 2 when it cannot be issued as asked (a name, a lifetime out of bounds, an
inactive user), 4 no such user.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser
from django.db import transaction

from accounts.scripting import Exit, ScriptCommand, ScriptError, find_user
from api import tokens

WARNING = "Keep it now: it is not shown again (only its digest is stored)."


class Command(ScriptCommand):
    help = (
        "Issue a personal API token for USER (acting as that user, with the user's roles as "
        "they are at each use, or reads only with --read-only) and print it once."
    )
    exit_statuses = (
        "0 issued; 2 it cannot be issued as asked (no name, a lifetime out of bounds, an "
        "inactive user); 4 no such user"
    )

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("user", metavar="USER", help="the user the token acts as")
        parser.add_argument("--name", required=True, help="what uses the token, e.g. ci-deploy")
        parser.add_argument(
            "--days",
            type=int,
            help=f"how long it lasts (default WAVEGATE_API_TOKEN_DEFAULT_DAYS, at most "
            f"WAVEGATE_API_TOKEN_MAX_DAYS, now {tokens.max_days()})",
        )
        parser.add_argument(
            "--read-only", action="store_true", help="the token may read, never change anything"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        user = find_user(options["user"], field="USER")
        try:
            with transaction.atomic():
                # Nobody signed in issues it: the audit log says the system did, from a shell.
                token, raw = tokens.issue(
                    user,
                    name=options["name"],
                    days=options["days"],
                    read_only=options["read_only"],
                    acting_user=None,
                )
        except tokens.TokenRefused as refusal:
            raise ScriptError(str(refusal), Exit.USAGE, code=refusal.code) from refusal
        if self.as_json:
            self.emit(
                {
                    "token": raw,
                    "id": token.pk,
                    "user": user.get_username(),
                    "name": token.name,
                    "read_only": token.read_only,
                    "expires_at": token.expires_at,
                    "warning": WARNING,
                }
            )
            return
        access = "reads only" if token.read_only else f"acts as {user.get_username()}"
        self.stdout.write(
            f"API token {token.name!r} for {user.get_username()} ({access}), expires "
            f"{token.expires_at:%Y-%m-%d %H:%M} UTC:"
        )
        self.stdout.write(raw)
        self.stdout.write(WARNING)
