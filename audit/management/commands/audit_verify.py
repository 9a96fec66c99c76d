"""Check the audit chain and every checkpoint it can see; say exactly what was found.

Exit 0 when everything holds, 1 when something is wrong (each problem on its own line), 2 for
an --acknowledge without its reason; --json prints what was found as one JSON document.
"""

from __future__ import annotations

from typing import Any

from django.core.cache import cache
from django.core.management.base import CommandParser
from django.db import transaction

from accounts.scripting import Exit, ScriptCommand, ScriptError
from audit.kinds import AuditAction
from audit.log import record
from audit.models import ChainWatch
from audit.verification import BANNER_CACHE_KEY, Report, full_report


def result(report: Report, acknowledged: dict[str, Any] | None) -> dict[str, Any]:
    """What --json prints: the verdict, and the sentences the human output is made of."""
    return {
        "intact": report.intact,
        "events": report.events,
        "last_seq": report.last_seq,
        "checkpoints_checked": report.checkpoints_checked,
        "anchored_to": report.anchored_to,
        "statements": report.statements,
        "problems": report.problems,
        "acknowledged": acknowledged,
    }


class Command(ScriptCommand):
    help = (
        "Recompute the audit log's hash chain and check every signed checkpoint (database and "
        "checkpoint file); report what holds and the first thing that does not."
    )
    exit_statuses = (
        "0 the chain and every checkpoint hold; 1 something does not (each problem is named); "
        "2 --acknowledge without a reason"
    )

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument(
            "--acknowledge",
            metavar="REASON",
            help="After investigating a break beat reported, lift the banner (recorded with "
            "the reason); checks resume from the current end of the log.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        reason = options["acknowledge"]
        if reason is not None and not reason.strip():
            raise ScriptError(
                "--acknowledge needs the reason, e.g. what was found and done",
                Exit.USAGE,
                field="--acknowledge",
            )
        report = full_report()
        if not self.as_json:
            for statement in report.statements:
                self.stdout.write(statement)
        for problem in report.problems:
            self.stderr.write(f"PROBLEM: {problem}")
        acknowledged = None
        if reason is not None:
            acknowledged = self._acknowledge(reason.strip(), report.last_seq, self.as_json)
        if self.as_json:
            self.emit(result(report, acknowledged))
        if not report.intact:
            raise ScriptError(
                f"the audit log does not hold: {len(report.problems)} problem(s), the first: "
                f"{report.problems[0]}",
                reported=True,
            )

    def _acknowledge(self, reason: str, head: int, quiet: bool) -> dict[str, Any]:
        """Lift the banner of a break beat reported; what was done, for --json."""
        with transaction.atomic():
            watch = ChainWatch.objects.select_for_update().filter(pk=1).first()
            if watch is None or watch.broken_seq is None:
                if not quiet:
                    self.stdout.write("no break to acknowledge")
                return {"break": None, "resumed_after": None}
            broken = watch.broken_seq
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
        if not quiet:
            self.stdout.write(f"break acknowledged; checks resume after event {event.seq}")
        return {"break": broken, "resumed_after": event.seq}
