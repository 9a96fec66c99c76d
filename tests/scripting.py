"""Running the script commands as a script does: a real `manage.py` process whose exit status,
stdout and stderr the tests read, or call_command with its output captured."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from dataclasses import dataclass
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from tests.processes import BIN, ROOT


def manage(
    database_url: str, *argv: str, stdin: str | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    """`.venv/bin/python manage.py …` on the database at `database_url`. Tasks it queues go to
    a queue of their own, which no worker serves unless `env` names one."""
    return subprocess.run(
        [str(BIN / "python"), "manage.py", *argv],
        cwd=ROOT,
        env={
            **os.environ,
            "DATABASE_URL": database_url,
            "CELERY_QUEUE": f"test-{uuid.uuid4().hex[:10]}",
            **env,
        },
        input=stdin,
        capture_output=True,
        text=True,
        timeout=240,
    )


def document(done: subprocess.CompletedProcess[str]) -> Any:
    """The one JSON document a --json run printed on stdout."""
    return json.loads(done.stdout)


@dataclass
class Ran:
    """What a command run through call_command left: its exit status, stdout and stderr."""

    status: int
    out: str
    err: str
    error: CommandError | None = None

    def json(self) -> Any:
        return json.loads(self.out)


def run(name: str, *argv: str) -> Ran:
    """call_command, with the exit status a shell would see (0, or the CommandError's)."""
    out, err = StringIO(), StringIO()
    try:
        call_command(name, *argv, stdout=out, stderr=err)
    except CommandError as error:
        return Ran(error.returncode, out.getvalue(), err.getvalue(), error)
    return Ran(0, out.getvalue(), err.getvalue())


def ended(ran: Ran, status: int) -> str:
    """The message of a run that ended with `status`."""
    if ran.status != status:
        pytest.fail(f"exit {ran.status}, not {status}: {ran.out} {ran.err} {ran.error}")
    assert ran.error is not None
    return str(ran.error)
