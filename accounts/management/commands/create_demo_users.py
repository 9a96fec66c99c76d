"""Make one demo user per role, each with a fresh random password, and print the logins. The
audit log records each user created, password set and role given (audit/access_log.py)."""

from __future__ import annotations

import secrets
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand
from django.db import transaction

from accounts.roles import Role


class Command(BaseCommand):
    help = (
        "Create (or reset) one demo user per role, named after the role, with a new random "
        "password each run, and print the logins. For demos and local trials only."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        logins = []
        for role in Role:
            password = secrets.token_urlsafe(12)
            with transaction.atomic():
                self._create_or_reset(role, password)
            logins.append((role.value, password))
        width = max(len(name) for name, _ in logins)
        self.stdout.write("Demo logins (username  password):")
        for name, password in logins:
            self.stdout.write(f"  {name.ljust(width)}  {password}")

    def _create_or_reset(self, role: Role, password: str) -> None:
        User = get_user_model()
        user, _ = User.objects.get_or_create(username=role.value)
        user.set_password(password)
        user.save()
        user.groups.set([Group.objects.get(name=role.value)])
