"""Start preflight scans as a person would on the pages ("Scan now", "Scan all eligible
clusters"), through the same actions and as the user `--as` names; with --wait, follow them in
the database to their verdicts.

Exit 0 when queued (with --wait: every scan clean), 1 when a scan ended blocked, incomplete or
in error, or was still open when the wait ran out, 2 for bad arguments, 3 refused (the role, a
scan already open; recorded as the pages record it), 4 no such user or cluster.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.core.management.base import CommandParser
from django.db import transaction
from django.db.models import Count, Max

from accounts.scripting import Exit, ScriptCommand, ScriptError, acting_user, refused
from audit.refusals import record_command_refusal
from fleet.choices import SCAN_OPEN, ScanStatus
from fleet.models import Cluster, PreflightScan
from preflight import actions

POLL_SECONDS = 1.0  # how often --wait reads the scans again


def find_cluster(given: str) -> Cluster:
    """The cluster named `given` (or with that ARM id), one still in Azure before one removed;
    exit 4 when none, 2 when several present clusters share the name."""
    text = given.strip()
    found = list(
        Cluster.objects.filter(arm_id=text.lower())
        if text.startswith("/")
        else Cluster.objects.filter(name=text).order_by("pk")
    )
    present = [c for c in found if c.present]
    if len(present) > 1:
        ids = "; ".join(c.arm_id for c in present)
        raise ScriptError(
            f"{len(present)} clusters are named {text!r}: give its ARM id instead ({ids}).",
            Exit.USAGE,
            field="--cluster",
        )
    if not found:
        raise ScriptError(f"There is no cluster named {text!r}.", Exit.NOT_FOUND, field="--cluster")
    if present:
        return present[0]
    return max(found, key=lambda c: c.removed_at or c.changed_at)  # the action says it is gone


def scan_row(scan: PreflightScan) -> dict[str, Any]:
    return {
        "scan": scan.pk,
        "cluster": scan.cluster.name,
        "cluster_id": scan.cluster_id,
        "status": scan.status,
        "status_label": ScanStatus(scan.status).label,
        "nodes_expected": scan.nodes_expected,
        "nodes_read": scan.nodes_read,
        "findings": getattr(scan, "finding_count", 0),
        "message": scan.message,
        "queued_at": scan.queued_at,
        "finished_at": scan.finished_at,
    }


def verdict_line(row: dict[str, Any]) -> str:
    """One scan as an operator reads it."""
    said = f"{row['cluster']}: {row['status_label'].lower()}"
    if row["status"] == ScanStatus.CLEAN:
        return f"{said}, {row['nodes_read']} of {row['nodes_expected']} nodes read"
    if row["status"] == ScanStatus.BLOCKED:
        said += f", {row['findings']} user-installed rule(s)"
    return f"{said}: {row['message']}" if row["message"] else said


class Command(ScriptCommand):
    help = (
        "Start preflight scans (--cluster NAME, repeatable, or --all eligible clusters) as the "
        "user --as names, through the same actions as the pages; with --wait SECONDS, wait for "
        "their verdicts."
    )
    exit_statuses = (
        "0 queued, with --wait every scan clean; 1 a scan blocked, incomplete or in error, or "
        "still open when the wait ran out; 2 bad arguments; 3 refused (the user's role, a scan "
        "already open); 4 no such user or cluster"
    )

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        which = parser.add_mutually_exclusive_group(required=True)
        which.add_argument(
            "--cluster",
            action="append",
            metavar="NAME",
            help="a cluster's name (or ARM id) to scan; repeat it for several",
        )
        which.add_argument(
            "--all", action="store_true", help="every eligible cluster not already being scanned"
        )
        parser.add_argument(
            "--as",
            dest="as_user",
            metavar="USER",
            required=True,
            help="the user the scans are requested as (an operator or an admin)",
        )
        parser.add_argument(
            "--wait",
            type=float,
            metavar="SECONDS",
            help="wait at most this long for the scans to finish, and report their verdicts",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        wait: float | None = options["wait"]
        if wait is not None and not 0 < wait < math.inf:  # nan too
            raise ScriptError(
                "--wait takes a finite number of seconds above 0.", Exit.USAGE, field="--wait"
            )
        user = acting_user(
            options["as_user"],
            lambda user, refusal: record_command_refusal(user, refusal, "run_preflight"),
        )
        clusters = [find_cluster(name) for name in options["cluster"] or ()]
        scan_ids = self.request(user, clusters)
        if wait is None:
            self.report(scan_ids, waited=False)
            return
        deadline = time.monotonic() + wait
        while PreflightScan.objects.filter(pk__in=scan_ids, status__in=SCAN_OPEN).exists():
            left = deadline - time.monotonic()
            if left <= 0:
                break
            time.sleep(min(POLL_SECONDS, left))
        self.report(scan_ids, waited=True, wait=wait)

    def request(self, user: Any, clusters: list[Cluster]) -> list[int]:
        """Queue the scans (all of them or, when one is refused, none); their ids."""
        try:
            with transaction.atomic():
                if clusters:
                    return [actions.request_scan(c, acting_user=user).pk for c in clusters]
                before = PreflightScan.objects.aggregate(last=Max("pk"))["last"] or 0
                actions.request_fleet_scan(acting_user=user)
                return list(
                    PreflightScan.objects.filter(pk__gt=before, requested_by=user).values_list(
                        "pk", flat=True
                    )
                )
        except (actions.ActionRefused, PermissionDenied) as refusal:
            record_command_refusal(user, refusal, "run_preflight")
            raise refused(refusal) from refusal

    def report(self, scan_ids: list[int], *, waited: bool, wait: float = 0) -> None:
        scans = (
            PreflightScan.objects.filter(pk__in=scan_ids)
            .select_related("cluster")
            .annotate(finding_count=Count("findings"))
            .order_by("cluster__name", "pk")
        )
        rows = [scan_row(scan) for scan in scans]
        counts = Counter(row["status"] for row in rows)
        still_open = [row for row in rows if row["status"] in SCAN_OPEN]
        not_clean = [r for r in rows if r["status"] not in (*SCAN_OPEN, ScanStatus.CLEAN)]
        if self.as_json:
            self.emit(
                {
                    "scans": rows,
                    "counts": dict(sorted(counts.items())),
                    "waited": waited,
                    "finished": not still_open,
                    "clean": not still_open and not not_clean,
                }
            )
        elif not waited:
            self.stdout.write(
                f"{len(rows)} scan{'s' if len(rows) != 1 else ''} queued, up to "
                f"{settings.WAVEGATE_SCAN_CONCURRENCY} at a time (as many as the workers run): "
                "follow them on the blockers page, or wait for them with --wait."
            )
            if len(rows) <= 50:  # a fleet's thousands are followed on the page
                for row in rows:
                    self.stdout.write(f"  {row['cluster']}: scan {row['scan']} queued")
        else:
            for row in rows:
                if row["status"] != ScanStatus.CLEAN or len(rows) <= 50:
                    self.stdout.write(verdict_line(row))
            summary = ", ".join(f"{n} {ScanStatus(s).label.lower()}" for s, n in counts.items())
            self.stdout.write(f"{len(rows)} scan(s): {summary}")
        if not waited:
            return
        if still_open:
            names = ", ".join(f"{r['cluster']} ({r['status']})" for r in still_open[:10])
            raise ScriptError(
                f"{len(still_open)} scan(s) still queued or running after {wait:g} s: {names}",
                reported=self.as_json,
            )
        if not_clean:
            names = ", ".join(f"{r['cluster']} ({r['status']})" for r in not_clean[:10])
            raise ScriptError(
                f"{len(not_clean)} of {len(rows)} scan(s) not clean: {names}", reported=self.as_json
            )
