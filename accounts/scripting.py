"""What the management commands meant for scripts share: one table of exit statuses (README.md,
"Scripts"), `--json` for one JSON document on stdout (an error as {"code", "message", "field"}),
and the user a command acts as (`--as`)."""

from __future__ import annotations

import argparse
import datetime
import enum
import json
import sys
from collections.abc import Callable
from typing import Any, NoReturn

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.core.serializers.json import DjangoJSONEncoder
from django.db import InterfaceError, OperationalError


class Exit(enum.IntEnum):
    """A script command's exit status; every command gives these the same meaning."""

    OK = 0  # done, or everything holds
    FAILED = 1  # it ran and failed: a chain broken, a sync failed, a scan not clean
    USAGE = 2  # bad arguments or invalid input (argparse's own status for bad arguments)
    REFUSED = 3  # a permission or an action refused, in the page's words
    NOT_FOUND = 4  # no such plan, cluster or user
    NOT_FINISHED = 5  # plan_status: the plan has not ended yet
    UNAVAILABLE = 6  # the database did not answer: nothing is known, try again


# An error document's `code` by exit status; a refusal says which kind, as the API's do.
CODES = {
    Exit.FAILED: "failed",
    Exit.USAGE: "invalid",
    Exit.REFUSED: "refused",
    Exit.NOT_FOUND: "not_found",
    Exit.NOT_FINISHED: "not_finished",
    Exit.UNAVAILABLE: "unavailable",
}


class Encoder(DjangoJSONEncoder):
    """Times in full ISO 8601, as rollout.report and the API give them (Django's encoder cuts
    them to milliseconds)."""

    def default(self, o: Any) -> Any:
        if isinstance(o, datetime.datetime):
            return o.isoformat()
        return super().default(o)


class ScriptError(CommandError):
    """Ends a script command with `exit` and says why on stderr, and with --json as an error
    document on stdout too, unless `reported` (the command printed its result already: one
    document only)."""

    def __init__(
        self,
        message: str,
        exit: Exit = Exit.FAILED,
        *,
        code: str = "",
        field: str | None = None,
        errors: dict[str, list[str]] | None = None,
        reported: bool = False,
    ) -> None:
        super().__init__(message, returncode=int(exit))
        self.code = code or CODES.get(exit, "failed")
        self.field, self.errors, self.reported = field, errors, reported


def document(error: CommandError) -> dict[str, Any]:
    """An error as --json prints it: a stable `code`, the `message`, the `field` at fault (an
    option such as "--as", or a plan file's field) or null, and for invalid input every field's
    messages under `errors`."""
    if isinstance(error, ScriptError):
        body: dict[str, Any] = {"code": error.code, "message": str(error), "field": error.field}
        if error.errors:
            body["errors"] = error.errors
        return body
    known = error.returncode in Exit._value2member_map_
    code = CODES.get(Exit(error.returncode), "failed") if known else "failed"
    return {"code": code, "message": str(error), "field": None}


def refused(refusal: Exception) -> ScriptError:
    """A PermissionDenied or an app's ActionRefused as a script hears it: exit 3, the page's
    words; `code` forbidden (who is asking) or conflict (the state things are in)."""
    forbidden = isinstance(refusal, PermissionDenied)
    return ScriptError(
        str(refusal) or "Your role does not allow this.",
        Exit.REFUSED,
        code="forbidden" if forbidden else "conflict",
    )


def find_user(username: str, *, field: str) -> Any:
    """The user named exactly `username`; exit 4 when there is none."""
    User = get_user_model()
    try:
        return User.objects.get(**{User.USERNAME_FIELD: username})
    except User.DoesNotExist:
        raise ScriptError(f"There is no user {username!r}.", Exit.NOT_FOUND, field=field) from None


def acting_user(
    username: str, record_refusal: Callable[[Any, PermissionDenied], None] | None = None
) -> Any:
    """The user a command acts as (`--as`): known (else exit 4) and active (else exit 3, the
    refusal given to `record_refusal` to be recorded). What the user may do is for the
    action's own access rules to say."""
    user = find_user(username, field="--as")
    if not user.is_active:
        refusal = PermissionDenied(
            f"{username} is not an active user: a deactivated user cannot act."
        )
        if record_refusal is not None:
            record_refusal(user, refusal)
        raise ScriptError(str(refusal), Exit.REFUSED, code="forbidden", field="--as")
    return user


class ScriptCommand(BaseCommand):
    """A management command for scripts: `--json`, the exit statuses of `Exit` (said in its
    help by `exit_statuses`), and bad arguments exit 2 however it is called."""

    exit_statuses = "0 done, 1 failed, 2 usage or invalid input, 3 refused, 4 not found"
    # Django's system checks would end the command with status 1 ("failed") for a problem of
    # another part's settings (a misspelt notification event): a script would misread it.
    # `manage.py check` and the web's start-up report those.
    requires_system_checks: list[str] = []
    as_json = False  # --json was given (set for each run)
    _json_requested = False

    def add_arguments(self, parser: CommandParser) -> None:
        # Django offers --skip-checks only to commands that run the checks; callers that pass
        # it (scripts/demo.py, existing scripts) keep working.
        parser.add_argument("--skip-checks", action="store_true", help=argparse.SUPPRESS)
        parser.add_argument(
            "--json",
            action="store_true",
            help='print one JSON document on stdout (an error as {"code", "message", "field"})',
        )

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        kwargs.setdefault(
            "epilog",
            f"Exit status: {self.exit_statuses}; 6 the database did not answer "
            "(README.md, section Scripts).",
        )
        parser = super().create_parser(prog_name, subcommand, **kwargs)

        def usage_error(message: str) -> NoReturn:
            if parser.called_from_command_line:
                if self._json_requested:
                    body = {"code": CODES[Exit.USAGE], "message": message, "field": None}
                    sys.stdout.write(json.dumps(body) + "\n")
                parser.print_usage(sys.stderr)
                parser.exit(Exit.USAGE, f"{parser.prog}: error: {message}\n")
            raise ScriptError(f"Error: {message}", Exit.USAGE)

        parser.error = usage_error  # type: ignore[method-assign]
        return parser

    def run_from_argv(self, argv: list[str]) -> None:
        self._json_requested = "--json" in argv[2:]
        super().run_from_argv(argv)

    def execute(self, *args: Any, **options: Any) -> Any:
        self.as_json = bool(options.get("json"))
        try:
            try:
                return super().execute(*args, **options)
            except (OperationalError, InterfaceError) as error:
                # Not "failed" (1): a script would read a chain broken or a plan ended badly.
                said = str(error).strip().splitlines()[0] if str(error).strip() else ""
                raise ScriptError(
                    f"Wavegate's database did not answer ({said or type(error).__name__}): "
                    "nothing could be read or done; try again once it answers.",
                    Exit.UNAVAILABLE,
                ) from error
        except CommandError as error:
            if self.as_json and not getattr(error, "reported", False):
                self.emit(document(error))
            if getattr(self, "_called_from_command_line", False) and not options["traceback"]:
                # Said as a shell tool says it ("plan_status: …"), not as "CommandError: …".
                self.stderr.write(f"{self.name}: {error}")
                sys.exit(error.returncode)
            raise

    @property
    def name(self) -> str:
        return type(self).__module__.rpartition(".")[2]

    def emit(self, data: Any) -> None:
        """The command's one JSON document, on stdout."""
        self.stdout.write(json.dumps(data, indent=2, cls=Encoder))
