"""Give a user exactly the roles named (creating the user if asked). The audit log records the
change as it records any change of users and roles (audit/access_log.py)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from accounts.roles import Role, roles_of


class Command(BaseCommand):
    help = "Set a user's Wavegate roles, e.g. `set_roles alice operator approver`."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("roles", nargs="*", help=f"any of: {', '.join(Role.values)}")
        parser.add_argument(
            "--create", action="store_true", help="create the user (without a usable password)"
        )

    def handle(
        self, *args: Any, username: str, roles: list[str], create: bool, **options: Any
    ) -> None:
        unknown = sorted(set(roles) - set(Role.values))
        if unknown:
            raise CommandError(
                f"unknown role(s): {', '.join(unknown)}; choose from {', '.join(Role.values)}"
            )
        User = get_user_model()
        with transaction.atomic():
            try:
                user = User.objects.get(username=username)
            except User.DoesNotExist:
                if not create:
                    raise CommandError(
                        f"no user {username!r}; add --create to create one"
                    ) from None
                user = User.objects.create_user(username=username)
            user.groups.set(Group.objects.filter(name__in=roles))
            after = roles_of(user)
        self.stdout.write(f"{username}: {', '.join(after) or 'no role'}")
