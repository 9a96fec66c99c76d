"""Sign and anchor the audit chain's head now."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from audit import anchor


class Command(BaseCommand):
    help = (
        "Sign the audit chain's head with the key in WAVEGATE_AUDIT_HMAC_KEY_FILE, append the "
        "checkpoint to WAVEGATE_AUDIT_CHECKPOINT_FILE and store it."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            made = anchor.make_checkpoint(only_if_new=False)
        except anchor.AnchorProblem as problem:
            raise CommandError(str(problem), returncode=2) from problem
        if made is None:
            self.stdout.write("the audit log is empty: nothing to anchor")
            return
        self.stdout.write(
            f"checkpoint at event {made.seq} signed (key {made.key_id}), hash {made.hash}"
        )
