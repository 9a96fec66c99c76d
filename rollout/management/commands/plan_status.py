"""Say where a rollout plan is (rollout/report.py, as the API's status endpoint says it): a
summary for a person, or with --json the whole report.

Exit 0 when it completed and no cluster failed, 1 when it ended otherwise (aborted, rejected,
or completed with failed or blocked clusters), 5 while it has not ended (a draft, submitted,
running or paused: `status` says which), 2 when several plans have the name given, 4 when none
has it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.core.management.base import CommandParser

from accounts.scripting import Exit, ScriptCommand, ScriptError
from rollout.choices import PlanStatus
from rollout.models import RolloutPlan
from rollout.report import plan_status


def find_plan(given: str) -> RolloutPlan:
    """The plan whose id or exact name is `given`; exit 4 when none, 2 when several share the
    name."""
    text = given.strip()
    if text.isdigit():
        plan = RolloutPlan.objects.filter(pk=int(text)).first()
        if plan is not None:
            return plan
    named = list(RolloutPlan.objects.filter(name=text).order_by("pk"))
    if len(named) > 1:
        ids = ", ".join(str(p.pk) for p in named)
        raise ScriptError(
            f"{len(named)} plans are named {text!r} (ids {ids}): give its id.",
            Exit.USAGE,
            field="PLAN",
        )
    if not named:
        raise ScriptError(
            f"There is no plan with the id or the exact name {text!r}.",
            Exit.NOT_FOUND,
            field="PLAN",
        )
    return named[0]


def exit_of(report: dict[str, Any]) -> Exit:
    """0 completed well, 1 ended otherwise, 5 not ended yet."""
    if not report["finished"]:
        return Exit.NOT_FINISHED
    completed = report["status"] == PlanStatus.COMPLETED
    return Exit.OK if completed and report["outcome"]["tone"] != "bad" else Exit.FAILED


def progress_words(progress: dict[str, Any]) -> str:
    parts = [
        f"{progress[key]} {words}"
        for key, words in (
            ("done", "done"),
            ("in_flight", "in flight"),
            ("failed", "failed or blocked"),
            ("skipped", "skipped"),
            ("rolled_back", "rolled back"),
            ("not_started", "not started"),
        )
        if progress[key]
    ]
    return (
        f"{progress['settled']} of {progress['total']} clusters settled "
        f"({progress['percent_settled']}%)" + (f": {', '.join(parts)}" if parts else "")
    )


def summary(report: dict[str, Any]) -> list[str]:
    """The report in a few lines, in the words of the plan's page."""
    lines = [f"Plan {report['name']!r} (#{report['id']}): {report['status_label']}"]
    if report["outcome"]:
        outcome = report["outcome"]
        lines.append(f"Outcome: {outcome['headline']}: {outcome['detail']}")
    elif report["progress"]["total"]:
        lines.append(progress_words(report["progress"]))
    if report["paused_reason"] and report["status"] == PlanStatus.PAUSED:
        lines.append(f"Paused: {report['paused_reason']}")
    for wave in report["waves"]:
        said = wave["outcome"]["headline"] if wave["outcome"] else wave["status"].replace("_", " ")
        lines.append(f"  wave {wave['index']}: {said}; {progress_words(wave['progress'])}")
    finish = report["finish"]
    if finish:
        if finish["at"]:
            at = datetime.fromisoformat(finish["at"]).astimezone(UTC)
            lines.append(f"Earliest finish: {at:%Y-%m-%d %H:%M} UTC (in {finish['minutes']} min)")
        for reason in [*finish["blocked"], *finish["conditions"]]:
            lines.append(f"  {reason}")
    lines.append(report["url"])
    return lines


class Command(ScriptCommand):
    help = "Say where a rollout plan is: its state, each wave's, its clusters and its outcome."
    exit_statuses = (
        "0 completed with no cluster failed; 1 ended otherwise (aborted, rejected, or "
        "completed with failed or blocked clusters); 5 not ended yet (draft, submitted, "
        "running, paused); 2 several plans have that name; 4 no such plan"
    )

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("plan", metavar="PLAN", help="the plan's id or exact name")

    def handle(self, *args: Any, **options: Any) -> None:
        report = plan_status(find_plan(options["plan"]))
        if self.as_json:
            self.emit(report)
        else:
            self.stdout.write("\n".join(summary(report)))
        status = exit_of(report)
        plan = f"plan {report['name']!r} (#{report['id']})"
        if status == Exit.NOT_FINISHED:
            raise ScriptError(
                f"{plan} has not ended: {report['status_label']}", status, reported=True
            )
        if status == Exit.FAILED:
            outcome = report["outcome"]
            raise ScriptError(
                f"{plan} ended: {outcome['headline']} ({outcome['detail']})", status, reported=True
            )
