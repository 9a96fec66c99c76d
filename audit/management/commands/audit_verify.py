"""Check the audit chain and every checkpoint it can see; say exactly what was found.

Exit 0 when everything holds, 1 when something is wrong (each problem on its own line).
"""

from __future__ import annotations

from typing import Any

from django.core.cache import cache
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from audit.kinds import AuditAction
from audit.log import record
from audit.models import ChainWatch
from audit.verification import BANNER_CACHE_KEY, full_report


class Command(BaseCommand):
    help = (
        "Recompute the audit log's hash chain and check every signed checkpoint (database and "
        "checkpoint file); report what holds and the first thing that does not."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--acknowledge",
            metavar="REASON",
            help="After investigating a break beat reported, lift the banner (recorded with "
            "the reason); checks resume from the current end of the log.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        report = full_report()
        for statement in report.statements:
            self.stdout.write(statement)
        for problem in report.problems:
            self.stderr.write(f"PROBLEM: {problem}")
        if options["acknowledge"] is not None:
            if not options["acknowledge"].strip():
                raise CommandError("--acknowledge needs the reason, e.g. what was found and done")
            self._acknowledge(options["acknowledge"].strip(), report.last_seq)
        if not report.intact:
            raise SystemExit(1)

    def _acknowledge(self, reason: str, head: int) -> None:
        with transaction.atomic():
            watch = ChainWatch.objects.select_for_update().filter(pk=1).first()
            if watch is None or watch.broken_seq is None:
                self.stdout.write("no break to acknowledge")
                return
            event = record(
                AuditAction.BREAK_ACKNOWLEDGED,
                object_type="audit.auditevent",
                object_id=str(watch.broken_seq),
                object_label=f"event {watch.broken_seq}",
                before={"problems": watch.broken_reason, "since": watch.broken_since},
                after={"reason": reason, "resumed_after": head},
            )
            # Checks resume after the acknowledgement itself.
            watch.verified_seq, watch.verified_hash = event.seq, event.hash
            watch.resumed_after = event.seq
            watch.broken_seq = None
            watch.broken_reason = ""
            watch.broken_since = None
            watch.save()
        cache.delete(BANNER_CACHE_KEY)
        self.stdout.write(f"break acknowledged; checks resume after event {event.seq}")
