"""Export the audit log, or a time range of it, as CSV or JSON lines (described in
audit/export.py), streamed to a file or to stdout; check it with `python -m audit.verify_export`.

Exit 0 when written, 1 when it could not be written, 2 for arguments that cannot be used;
--json (with --output: the export itself is not JSON) prints what was written.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime, time
from pathlib import Path
from typing import Any

from django.core.management.base import CommandParser

from accounts.scripting import Exit, ScriptCommand, ScriptError
from audit.export import FORMATS, AuditExport, Format, started
from audit.models import AuditEvent


def _moment(option: str, text: str, *, end_of_day: bool) -> datetime:
    """An ISO 8601 date or time (UTC unless it says otherwise); a bare date is the start of that
    day, or for --until its end."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ScriptError(
            f"{option} {text!r} is not a date or time: give ISO 8601, e.g. 2026-12-04 or "
            f"2026-12-04T10:30:00Z",
            Exit.USAGE,
            field=option,
        ) from None
    if len(text.strip()) == 10 and end_of_day:
        moment = datetime.combine(moment.date(), time.max)
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    try:
        moment.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00, a moment before year 1 in UTC
        raise ScriptError(
            f"{option} {text!r} is out of range: give a moment between the years 1 and 9999 UTC",
            Exit.USAGE,
            field=option,
        ) from None
    return moment


class Command(ScriptCommand):
    help = (
        "Export the audit log with every event's hash and the signed checkpoints in range, as "
        "CSV or JSON lines, to stdout or --output. With only --since/--until the export is "
        "complete over that range (every link can be checked offline)."
    )
    exit_statuses = "0 written; 1 it could not be written; 2 arguments that cannot be used"

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("--format", choices=sorted(FORMATS), required=True)
        parser.add_argument("--since", help="first moment, ISO 8601 (UTC unless it says)")
        parser.add_argument("--until", help="last moment, ISO 8601; a bare date: that whole day")
        parser.add_argument("--output", help="file to write (stdout when not given)")

    def handle(self, *args: Any, **options: Any) -> None:
        if self.as_json and options["output"] is None:
            raise ScriptError(
                "--json needs --output: without it the export itself goes to stdout",
                Exit.USAGE,
                field="--output",
            )
        events = AuditEvent.objects.all()
        given: dict[str, str] = {}
        bounds: dict[str, datetime] = {}
        for option, lookup, end_of_day in (("since", "at__gte", False), ("until", "at__lte", True)):
            if options[option] is not None:
                bounds[option] = _moment(f"--{option}", options[option], end_of_day=end_of_day)
                given[option] = bounds[option].astimezone(UTC).isoformat()
                events = events.filter(**{lookup: bounds[option]})
        if "since" in bounds and "until" in bounds and bounds["since"] > bounds["until"]:
            raise ScriptError(
                "--since is after --until: no event can match", Exit.USAGE, field="--since"
            )
        fmt = FORMATS[options["format"]]
        if options["output"] is None:
            export = started(events, fmt, given)  # recorded as the page records its exports
            for chunk in export.lines(fmt):
                self.stdout.write(chunk, ending="")
            self.stdout.flush()
            self.stderr.write(self._summary(export, "stdout"))
            return
        export = self._to_file(Path(options["output"]), lambda: started(events, fmt, given), fmt)
        if self.as_json:
            self.emit(
                {
                    "output": options["output"],
                    "format": fmt.name,
                    "filter": given,
                    "scope": export.scope,
                    "events": export.events_written,
                    "first_seq": export.first_seq,
                    "last_seq": export.last_seq,
                    "checkpoints": export.checkpoints_written,
                }
            )
            return
        self.stdout.write(self._summary(export, options["output"]))

    @staticmethod
    def _summary(export: AuditExport, where: str) -> str:
        return (
            f"{export.events_written} events ({export.scope}, from {export.first_seq} to "
            f"{export.last_seq}) and {export.checkpoints_written} checkpoints written to {where}"
        )

    @staticmethod
    def _to_file(path: Path, start: Callable[[], AuditExport], fmt: Format) -> AuditExport:
        """Written beside the file and renamed when complete: a cut-off export never looks like
        a finished one. Started (and recorded) once the file could be opened: a path that
        cannot be written records no export."""
        partial = path.with_name(path.name + ".partial")
        try:
            with open(partial, "w", encoding="utf-8", newline="") as out:
                export = start()
                for chunk in export.lines(fmt):
                    out.write(chunk)
            os.replace(partial, path)
        except OSError as error:
            partial.unlink(missing_ok=True)
            raise ScriptError(
                f"the export could not be written to {path}: {error.strerror or error}",
                Exit.FAILED,
                field="--output",
            ) from error
        return export
