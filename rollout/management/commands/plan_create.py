"""Create a rollout plan from a YAML file (docs/plan-file.md) as the new-plan page does: the same
form (rollout.forms.form_from), the same preview and the same actions, as the user `--as` names;
with --submit, created and submitted in one transaction, or neither.

Exit 0 when created, 2 when the file is not a valid plan (each problem with its line and
field), 3 refused (the role, a cluster another plan holds…; recorded as the pages record it),
4 no such user.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml
from django.core.exceptions import PermissionDenied
from django.core.management.base import CommandParser
from django.db import transaction

from accounts.scripting import Exit, ScriptCommand, ScriptError, acting_user, refused
from audit.refusals import record_command_refusal
from rollout import actions
from rollout.forms import NotAPlan, PlanForm, form_from
from rollout.models import RolloutPlan
from rollout.preview import Preview, checked_preview
from rollout.report import plan_status


def _code_point(character: int | str) -> int:
    """PyYAML's ReaderError gives a character as its code point, or a byte as a one-byte str."""
    return character if isinstance(character, int) else ord(character)


class PlanFile:
    """A plan file read and parsed, with the line each top-level field is on."""

    def __init__(self, path: str) -> None:
        self.name = "stdin" if path == "-" else path
        try:
            text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            reason = getattr(error, "strerror", None) or error
            raise self.invalid(f"{self.name} cannot be read: {reason}", "--from-file") from error
        self.lines: dict[str, int] = {}
        loader = None
        try:
            loader = yaml.SafeLoader(text)  # reads the text first: a control character stops it
            node = loader.get_single_node()
            self.data = loader.construct_document(node) if node is not None else None
        except yaml.MarkedYAMLError as error:
            raise self.invalid(self.yaml_problem(error), "--from-file") from error
        except yaml.reader.ReaderError as error:
            line = text.count("\n", 0, error.position) + 1
            column = error.position - text.rfind("\n", 0, error.position)
            raise self.invalid(
                f"{self.name}, line {line}, column {column}: not valid YAML: the character "
                f"U+{_code_point(error.character):04X} cannot be in a YAML file",
                "--from-file",
            ) from error
        except yaml.YAMLError as error:
            raise self.invalid(f"{self.name} is not YAML: {error}", "--from-file") from error
        except RecursionError as error:
            raise self.invalid(
                f"{self.name} nests lists or mappings too deeply to be a plan.", "--from-file"
            ) from error
        finally:
            if loader is not None:
                loader.dispose()
        if node is None:
            raise self.invalid(
                f"{self.name} is empty: a plan is a mapping of its fields (name, wave_spec, …).",
                "--from-file",
            )
        if isinstance(node, yaml.MappingNode):
            self.index(node)

    def index(self, node: yaml.MappingNode) -> None:
        """Note each field's line; a field given twice (YAML keeps the last) is refused."""
        for key, _ in node.value:
            if not isinstance(key, yaml.ScalarNode):
                continue
            line = key.start_mark.line + 1
            if key.value in self.lines:
                raise self.invalid(
                    f"{self.where(key.value)}: {key.value} is given twice (also on line {line}).",
                    key.value,
                )
            self.lines[key.value] = line

    def yaml_problem(self, error: yaml.MarkedYAMLError) -> str:
        mark = error.problem_mark or error.context_mark
        where = (
            f"{self.name}, line {mark.line + 1}, column {mark.column + 1}" if mark else self.name
        )
        said = "; ".join(str(p) for p in (error.context, error.problem) if p)
        return f"{where}: not valid YAML: {said}"

    def where(self, field: str | None) -> str:
        """`plan.yaml, line 4` for a field of the file, else the file's name."""
        line = self.lines.get(field or "")
        return f"{self.name}, line {line}" if line else self.name

    @staticmethod
    def invalid(message: str, field: str | None, **more: Any) -> ScriptError:
        return ScriptError(message, Exit.USAGE, field=field, **more)

    def form_errors(self, form: PlanForm) -> ScriptError:
        """Every problem the form found, each with its field and line, as the page lists them."""
        errors = {
            ("non_field_errors" if field == "__all__" else field): [str(m) for m in messages]
            for field, messages in form.errors.items()
        }
        in_order = sorted(errors, key=lambda field: self.lines.get(field, 0))
        said = [
            f"{self.where(field)}, {field}: {message}"
            if field != "non_field_errors"
            else f"{self.name}: {message}"
            for field in in_order
            for message in errors[field]
        ]
        first = next(iter(errors))
        return self.invalid(
            f"{self.name} is not a valid plan:\n  " + "\n  ".join(said),
            None if first == "non_field_errors" else first,
            errors=errors,
        )


def preview_data(preview: Preview) -> dict[str, Any]:
    return {
        "clusters": preview.clusters,
        "minutes": preview.minutes,
        "duration": preview.duration,
        "waves": [
            {"index": w.index, "size": w.size, "minutes": w.minutes, "first_names": w.first_names}
            for w in preview.waves
        ],
        "excluded": [{"cluster": e.candidate.name, "reason": e.reason} for e in preview.excluded],
    }


class Command(ScriptCommand):
    help = (
        "Create a rollout plan from a YAML plan file (docs/plan-file.md) as the user --as names, "
        "checked as the new-plan page checks it; --submit also submits it (its first wave then "
        "awaits approval)."
    )
    exit_statuses = (
        "0 created (and submitted); 2 the file is not a valid plan, each problem with its line "
        "and field; 3 refused (the user's role, a cluster another plan holds, an emergency "
        "stop); 4 no such user"
    )

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument(
            "--from-file", required=True, metavar="FILE", help="the plan file; - reads stdin"
        )
        parser.add_argument(
            "--as",
            dest="as_user",
            metavar="USER",
            required=True,
            help="the user who creates the plan (an operator or an admin)",
        )
        parser.add_argument(
            "--submit", action="store_true", help="submit it too: its waves are cut and frozen"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        user = acting_user(
            options["as_user"],
            lambda user, refusal: record_command_refusal(user, refusal, "plan_create"),
        )
        plan_file = PlanFile(options["from_file"])
        try:
            form = form_from(plan_file.data)
        except NotAPlan as error:
            raise plan_file.invalid(
                f"{plan_file.where(error.field)}: {error}", error.field
            ) from error
        preview = checked_preview(form)
        if preview is None:
            raise plan_file.form_errors(form)
        plan = self.create(user, form, submit=options["submit"])
        if self.as_json:
            self.emit(
                {
                    "plan": plan_status(plan),
                    "submitted": options["submit"],
                    "preview": preview_data(preview),
                }
            )
            return
        self.say(plan, preview, submitted=options["submit"])

    def create(self, user: Any, form: PlanForm, *, submit: bool) -> RolloutPlan:
        try:
            # Created and submitted together, or neither: a refused submit leaves no draft.
            with transaction.atomic():
                plan = actions.create_plan(acting_user=user, **form.plan_fields())
                return actions.submit_plan(plan, acting_user=user) if submit else plan
        except (actions.ActionRefused, PermissionDenied) as refusal:
            record_command_refusal(user, refusal, "plan_create")
            raise refused(refusal) from refusal

    def say(self, plan: RolloutPlan, preview: Preview, *, submitted: bool) -> None:
        what = "submitted: its first wave awaits approval" if submitted else "created as a draft"
        self.stdout.write(f"Plan {plan.name!r} (#{plan.pk}) {what}.")
        sizes = ", ".join(str(w.size) for w in preview.waves)
        self.stdout.write(
            f"{preview.clusters} cluster(s) in {len(preview.waves)} wave(s)"
            + (f" ({sizes}), about {preview.duration}" if preview.waves else "")
            + f"; {len(preview.excluded)} set apart."
        )
        for excluded in preview.excluded[:20]:
            self.stdout.write(f"  set apart: {excluded.candidate.name}: {excluded.reason}")
        if len(preview.excluded) > 20:
            self.stdout.write(f"  … and {len(preview.excluded) - 20} more")
        self.stdout.write(plan_status(plan)["url"])
