"""Run one inventory sync now, in this process, and say how it went: exit 0 when it succeeded,
1 when it failed, 3 when another sync is running (accounts/scripting.py's table)."""

from __future__ import annotations

from typing import Any

from accounts.scripting import Exit, ScriptCommand, ScriptError
from fleet.choices import SyncStatus, SyncTrigger
from fleet.models import SyncRun
from fleet.sync import SyncAlreadyRunning, run_sync


def result(run: SyncRun) -> dict[str, Any]:
    """The sync run as --json prints it."""
    return {
        "id": run.pk,
        "status": run.status,
        "trigger": run.trigger,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "duration_seconds": run.duration_seconds,
        "counts": run.counts,
        "error": run.error,
    }


class Command(ScriptCommand):
    help = "Sync the fleet inventory from Azure now (the same sync beat runs on a period)."
    exit_statuses = (
        "0 the sync succeeded; 1 it failed (its error is said); 3 refused: a sync is already "
        "running"
    )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            run = run_sync(SyncTrigger.COMMAND)
        except SyncAlreadyRunning as exc:
            raise ScriptError(str(exc), Exit.REFUSED, code="conflict") from exc
        if self.as_json:
            self.emit(result(run))
        if run.status != SyncStatus.SUCCEEDED:
            raise ScriptError(f"inventory sync {run.pk} failed: {run.error}", reported=self.as_json)
        if self.as_json:
            return
        counts = run.counts
        self.stdout.write(
            f"inventory sync {run.pk} succeeded in {run.duration_seconds:.1f}s: "
            f"{counts.get('clusters', 0)} clusters in {counts.get('subscriptions', 0)} "
            f"subscriptions; {counts.get('discovered', 0)} discovered, "
            f"{counts.get('changed', 0)} changed, {counts.get('removed', 0)} removed, "
            f"{counts.get('unchanged', 0)} unchanged"
        )
