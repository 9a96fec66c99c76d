"""What every command meant for scripts shares (accounts/scripting.py): its help says its exit
statuses, and bad arguments exit 2, from a shell or through call_command, with --json as an
error document on stdout too."""

from __future__ import annotations

import json
import socket

import pytest
from django.core.management import load_command_class

from tests.processes import ROOT
from tests.scripting import ended, manage, run

COMMANDS = {
    "sync_inventory": "fleet",
    "run_preflight": "preflight",
    "plan_create": "rollout",
    "plan_status": "rollout",
    "audit_verify": "audit",
    "audit_export": "audit",
    "create_token": "api",
}


@pytest.mark.parametrize(("name", "app"), COMMANDS.items())
def test_each_command_says_its_exit_statuses_and_json_in_its_help(name, app):
    command = load_command_class(app, name)

    said = " ".join(command.create_parser("manage.py", name).format_help().split())

    assert "Exit status: 0 " in said
    assert "(README.md, section Scripts)" in said
    assert "--json" in said


def test_the_readme_has_one_table_of_exit_statuses_naming_every_command():
    readme = (ROOT / "README.md").read_text()
    scripts = readme[readme.index("## Scripts") :]
    scripts = scripts[: scripts.index("\n## ", 1)]

    for status, meaning in [(0, "done"), (1, "failed"), (2, "usage"), (3, "refused"), (4, "not")]:
        assert f"| {status} | {meaning}" in scripts.lower()
    for name in COMMANDS:
        assert f"`{name}" in scripts


def test_bad_arguments_from_a_shell_exit_2_with_usage_on_stderr_and_json_on_stdout():
    # No database is reached: the arguments are refused first.
    done = manage("postgres://nobody@nowhere.invalid/none", "run_preflight", "--all", "--json")

    assert done.returncode == 2, done.stderr
    assert "the following arguments are required: --as" in done.stderr
    assert "usage: manage.py run_preflight" in done.stderr
    assert json.loads(done.stdout) == {
        "code": "invalid",
        "message": "the following arguments are required: --as",
        "field": None,
    }


@pytest.mark.parametrize(
    "argv",
    [
        ("plan_status", "1"),
        ("audit_verify",),
        ("sync_inventory",),
        ("create_token", "ci-bot", "--name", "pipeline"),
        ("run_preflight", "--all", "--as", "olga"),
        ("plan_create", "--from-file", "docs/plan.example.yaml", "--as", "olga"),
    ],
    ids=lambda argv: argv[0],
)
def test_a_database_that_does_not_answer_is_6_never_failed(argv):
    # 1 would say "the plan ended badly" or "the chain is broken": an outage says so instead.
    with socket.socket() as probe:  # a port that nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    done = manage(f"postgres://postgres@127.0.0.1:{port}/none", *argv, "--json")

    assert done.returncode == 6, done.stderr
    body = json.loads(done.stdout)
    assert body["code"] == "unavailable"
    assert body["message"].startswith("Wavegate's database did not answer (")
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith(f"{argv[0]}: Wavegate's database did not answer")


def test_bad_arguments_through_call_command_exit_2_too():
    ran = run("run_preflight", "--cluster", "a", "--all", "--as", "x")

    assert "not allowed with argument" in ended(ran, 2)
