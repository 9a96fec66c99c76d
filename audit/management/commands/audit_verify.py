"""Recompute the audit chain: exit 0 with the count when intact, 1 naming the first broken event."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from audit.verification import verify_stored_chain


class Command(BaseCommand):
    help = "Recompute the audit log's hash chain and report the first broken event, if any."

    def handle(self, *args: Any, **options: Any) -> None:
        verdict = verify_stored_chain()
        if not verdict.intact:
            raise CommandError(
                f"audit chain broken at sequence number {verdict.first_broken}: {verdict.reason} "
                f"({verdict.count} events before it are intact)",
                returncode=1,
            )
        self.stdout.write(f"audit chain intact: {verdict.count} events")
