"""Check one node's `iptables-save` (or `iptables -S`) output for rules that block BpfVeth.

Exit status: 0 clean, 3 user-installed rules found, 2 input unreadable (missing file, not
text, empty, or nothing in it reads as an iptables dump).
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from preflight.iptables import Analysis, analyse

EXIT_BLOCKED = 3
EXIT_UNREADABLE = 2


class Command(BaseCommand):
    help = (
        "Analyse an iptables-save / iptables -S dump (FILE, or - for stdin) and list the "
        "user-installed rules that make AKS refuse eBPF host routing (BpfVeth). "
        "Exit 0 when clean, 3 when blocked, 2 when the input is unreadable."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", metavar="FILE", help="the dump to read; - reads stdin")
        parser.add_argument("--json", action="store_true", help="print the analysis as JSON")

    def handle(self, *args: Any, **options: Any) -> None:
        path: str = options["file"]
        data = self.read(path)
        if not data.strip():
            raise CommandError(f"{path}: empty input", returncode=EXIT_UNREADABLE)
        analysis = analyse(data.decode("utf-8", errors="replace"))
        if analysis.recognised == 0:
            raise CommandError(
                f"{path}: not an iptables dump (no line could be read)",
                returncode=EXIT_UNREADABLE,
            )
        if options["json"]:
            self.stdout.write(json.dumps(analysis.to_json(), indent=2))
        else:
            self.stdout.write(self.report(path, analysis))
        if analysis.findings:
            raise CommandError(
                f"{len(analysis.findings)} user-installed rule(s) block eBPF host routing",
                returncode=EXIT_BLOCKED,
            )

    def read(self, path: str) -> bytes:
        try:
            if path == "-":
                return sys.stdin.buffer.read()
            with open(path, "rb") as handle:
                return handle.read()
        except OSError as exc:
            raise CommandError(
                f"{path}: {exc.strerror or exc}", returncode=EXIT_UNREADABLE
            ) from exc

    def report(self, path: str, analysis: Analysis) -> str:
        out: list[str] = []
        rules = len(analysis.rules)
        if not analysis.findings:
            out.append(f"{path}: clean — all {rules} rules belong to components AKS accepts.")
        else:
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
        if analysis.errors:
            out.append("")
            out.append(f"{len(analysis.errors)} line(s) could not be read:")
            out.extend(f"  line {e.line}: {e.message}" for e in analysis.errors)
        return "\n".join(out)
