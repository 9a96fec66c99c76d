"""Check one node's `iptables-save` (or `iptables -S`) output for rules that block BpfVeth.

Exit status: 0 clean, 3 user-installed rules found, 2 input unreadable: a missing file, empty
input, input over WAVEGATE_SCAN_MAX_DUMP_BYTES, a line that does not read as iptables (binary,
HTML, an error page), a table cut short (no COMMIT), or iptables-nft's warning that the legacy
backend holds tables too without that backend's dump. Only a dump read whole is ever clean.

The input is read as a stream, at most the limit and one byte, and every byte is kept: a rule
with bytes that are not UTF-8 (shown as \\xNN) is classified like any other.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from typing import Any, BinaryIO

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from preflight.iptables import Analysis, analyse

EXIT_BLOCKED = 3
EXIT_UNREADABLE = 2


class OverLimit(Exception):
    pass


class Bounded:
    """A binary stream that refuses to give more than `limit` bytes (OverLimit)."""

    def __init__(self, stream: BinaryIO, limit: int) -> None:
        self.stream, self.limit, self.count = stream, limit, 0

    def read(self, size: int = -1) -> bytes:
        want = self.limit + 1 - self.count
        data = self.stream.read(want if size < 0 else min(size, want))
        self.count += len(data)
        if self.count > self.limit:
            raise OverLimit
        return data


class Command(BaseCommand):
    # Another part's settings (a misspelt notification event) must not turn a node's verdict
    # into exit 1: `manage.py check` and the web's start-up report those.
    requires_system_checks: list[str] = []
    help = (
        "Analyse an iptables-save / iptables -S dump (FILE, or - for stdin) and list the "
        "user-installed rules that make AKS refuse eBPF host routing (BpfVeth). "
        "Exit 0 when clean, 3 when blocked, 2 when the input is unreadable or incomplete."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", metavar="FILE", help="the dump to read; - reads stdin")
        parser.add_argument("--json", action="store_true", help="print the analysis as JSON")

    def handle(self, *args: Any, **options: Any) -> None:
        path: str = options["file"]
        limit: int = settings.WAVEGATE_SCAN_MAX_DUMP_BYTES
        try:
            analysis = self.analyse(path, limit)
            if analysis.recognised == 0 and not analysis.problems:
                raise CommandError(f"{path}: empty input", returncode=EXIT_UNREADABLE)
        except CommandError as error:
            if options["json"]:  # still one JSON document, as the script asked
                said = {
                    "verdict": "unreadable",
                    "findings": [],
                    "errors": [],
                    "message": str(error),
                }
                self.stdout.write(json.dumps(said, indent=2))
            raise
        if options["json"]:
            self.stdout.write(json.dumps(analysis.to_json(), indent=2))
        else:
            self.stdout.write(self.report(path, analysis))
        if analysis.findings:
            raise CommandError(
                f"{len(analysis.findings)} user-installed rule(s) block eBPF host routing",
                returncode=EXIT_BLOCKED,
            )
        if analysis.other_backends:
            first = analysis.other_backends[0]
            raise CommandError(
                f"{path}: incomplete: iptables-nft says iptables-legacy tables are present too "
                f"(line {first.line}: {first.text}), and their rules are not in the input. Run "
                "iptables-legacy-save (ip6tables-legacy-save for IPv6) as well and check both "
                "outputs together, one after the other in one file",
                returncode=EXIT_UNREADABLE,
            )
        if analysis.recognised == 0:
            raise CommandError(
                f"{path}: not an iptables dump (no line could be read)",
                returncode=EXIT_UNREADABLE,
            )
        if analysis.unreadable:
            problems = len(analysis.errors) + len(analysis.cut_short)
            raise CommandError(
                f"{path}: unreadable: {problems} part(s) of the dump could not be read (listed "
                "above), so it cannot be called clean",
                returncode=EXIT_UNREADABLE,
            )

    def analyse(self, path: str, limit: int) -> Analysis:
        try:
            if path == "-":
                return analyse(Bounded(sys.stdin.buffer, limit))  # type: ignore[arg-type]
            with open(path, "rb") as handle:
                return analyse(Bounded(handle, limit))  # type: ignore[arg-type]
        except OverLimit:
            raise CommandError(
                f"{path}: over the limit of {limit:,} bytes (WAVEGATE_SCAN_MAX_DUMP_BYTES): "
                "not read, so it cannot be called clean",
                returncode=EXIT_UNREADABLE,
            ) from None
        except OSError as exc:
            raise CommandError(
                f"{path}: {exc.strerror or exc}", returncode=EXIT_UNREADABLE
            ) from exc

    def report(self, path: str, analysis: Analysis) -> str:
        out: list[str] = []
        rules = len(analysis.rules)
        if analysis.findings:
            out.append(
                f"{path}: BLOCKED — {len(analysis.findings)} of {rules} rules are "
                "user-installed; AKS refuses eBPF host routing (BpfVeth) until they are removed."
            )
            by_origin: dict[str, list[Any]] = defaultdict(list)
            for finding in analysis.findings:
                by_origin[finding.origin].append(finding)
            for origin, findings in by_origin.items():
                out.append("")
                out.append(f"{origin} ({len(findings)} rules)")
                out.append(f"  what to do: {findings[0].hint}")
                for f in findings:
                    out.append(f"  line {f.line} [{f.table}] {f.rule}")
        elif analysis.unreadable:
            out.append(f"{path}: UNREADABLE — {rules} rules read, but not the whole dump.")
        elif analysis.other_backends:
            out.append(f"{path}: INCOMPLETE — {rules} rules read, but not another backend's.")
        else:
            out.append(f"{path}: clean — all {rules} rules belong to components AKS accepts.")
        if analysis.problems:
            out.append("")
            out.append(f"{len(analysis.problems)} problem(s) reading the dump:")
            for e in analysis.problems:
                where = f"line {e.line}" if e.line else "input"
                out.append(f"  {where}: {e.message}" + (f": {e.text}" if e.text else ""))
        return "\n".join(out)
