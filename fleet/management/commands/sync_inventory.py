"""Run one inventory sync now, in this process, and say how it went (exit 1 if it failed)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from fleet.choices import SyncStatus, SyncTrigger
from fleet.sync import SyncAlreadyRunning, run_sync


class Command(BaseCommand):
    help = "Sync the fleet inventory from Azure now (the same sync beat runs on a period)."

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            run = run_sync(SyncTrigger.COMMAND)
        except SyncAlreadyRunning as exc:
            raise CommandError(str(exc)) from exc
        counts = run.counts
        if run.status != SyncStatus.SUCCEEDED:
            raise CommandError(f"inventory sync {run.pk} failed: {run.error}")
        self.stdout.write(
            f"inventory sync {run.pk} succeeded in {run.duration_seconds:.1f}s: "
            f"{counts.get('clusters', 0)} clusters in {counts.get('subscriptions', 0)} "
            f"subscriptions; {counts.get('discovered', 0)} discovered, "
            f"{counts.get('changed', 0)} changed, {counts.get('removed', 0)} removed, "
            f"{counts.get('unchanged', 0)} unchanged"
        )
