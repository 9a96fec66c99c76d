"""Django's changepassword, in one transaction: the new password and its audit event
(recorded by the audit app's signals) commit together or not at all."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.management.commands import changepassword
from django.db import transaction


class Command(changepassword.Command):
    def handle(self, *args: Any, **options: Any) -> str | None:
        with transaction.atomic(using=options.get("database")):
            return super().handle(*args, **options)
