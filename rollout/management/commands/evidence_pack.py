"""Write a rollout plan's evidence pack (rollout/evidence.py) to a zip file, as the plan's page
hands it out; the export is recorded in the audit log.

Exit 0 when written, 1 when the file could not be written, 2 when several plans have that
name, 4 when none has (the Scripts table in README.md).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from rollout import evidence


class Command(BaseCommand):
    requires_system_checks: list[str] = []  # as the script commands (accounts/scripting.py)
    help = (
        "Write a rollout plan's evidence pack (the plan as approved, its decisions and "
        "refusals, each cluster's preflight and timeline, its audit events with their hashes "
        "and checkpoints, a summary page and a manifest) to a zip file."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("plan", help="the plan's id or exact name")
        parser.add_argument(
            "--output",
            help="the zip file to write (default: wavegate-evidence-plan-<id>-<time>.zip here)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            plan = evidence.find_plan(options["plan"])
        except evidence.PlanNotFound as error:
            several = isinstance(error, evidence.SeveralPlans)
            raise CommandError(str(error), returncode=2 if several else 4) from error
        pack = evidence.build(plan, made_by="manage.py evidence_pack")
        path = Path(options["output"] or pack.filename)
        # Written beside the file and renamed when complete: a cut-off pack never looks whole.
        partial = path.with_name(path.name + ".partial")
        try:
            with open(partial, "wb") as out:
                shutil.copyfileobj(pack.file, out)
            os.replace(partial, path)
        except OSError as error:
            partial.unlink(missing_ok=True)
            raise CommandError(
                f"the evidence pack could not be written to {path}: {error.strerror or error}",
                returncode=1,
            ) from error
        finally:
            pack.file.close()
        evidence.record_export(plan, pack, via="command")
        self.stdout.write(
            f"evidence pack of plan {plan.name!r} (#{plan.pk}) written to {path}: "
            f"{len(pack.digests) + 1} files, {pack.events} audit events; "
            f"manifest.json sha256 {pack.manifest_sha256}"
        )
