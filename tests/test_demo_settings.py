"""`make run` keeps to a Redis database and a Celery queue of its own, and its new-plan form
suggests settings a first plan finishes with in minutes; without it, the safe defaults stay.

scripts/demo.py is run in full by tests/test_demo_smoke.py; these tests take the environment
and the worker command it computes, which is what decides where its work goes.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import socket
import subprocess
import sys
import uuid

import pytest
from django.urls import reverse

from health.models import WorkerHeartbeat
from tests.processes import ROOT, Process, free_port, wait_until

_spec = importlib.util.spec_from_file_location("demo_script", ROOT / "scripts" / "demo.py")
assert _spec is not None
assert _spec.loader is not None
demo_script = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(demo_script)

# What a user may set that the demo would otherwise choose.
CHOSEN_BY_THE_DEMO = {
    "REDIS_URL",
    "CELERY_QUEUE",
    "WAVEGATE_SCAN_QUEUE",
    "WAVEGATE_PLAN_DEFAULT_SOAK_MINUTES",
    "WAVEGATE_PLAN_DEFAULT_RESPECT_WINDOWS",
}
READ_SETTINGS = (
    "import json; from django.conf import settings as s; print(json.dumps(["
    "s.CELERY_BROKER_URL, s.CELERY_TASK_DEFAULT_QUEUE, s.CELERY_TASK_ROUTES, "
    "s.WAVEGATE_PLAN_DEFAULT_SOAK_MINUTES, s.WAVEGATE_PLAN_DEFAULT_RESPECT_WINDOWS]))"
)


def unset_by_the_user() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in CHOSEN_BY_THE_DEMO}


def settings_under(env: dict[str, str]) -> list:
    done = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", READ_SETTINGS],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_it_uses_a_redis_database_and_a_queue_of_its_own(tmp_path):
    demo = demo_script.Demo(tmp_path, environ=unset_by_the_user())

    redis_url = demo.choose_redis("auto")  # the machine's Redis answers on 6379

    assert redis_url == "redis://127.0.0.1:6379/15"
    assert demo.env["CELERY_QUEUE"] == "wavegate-demo"
    assert demo_script.worker_queues(demo.env) == ["wavegate-demo"]


def test_what_the_user_set_wins(tmp_path):
    chosen = dict(
        unset_by_the_user(),
        REDIS_URL=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
        CELERY_QUEUE="mine",
        WAVEGATE_SCAN_QUEUE="my-scans",
        WAVEGATE_PLAN_DEFAULT_SOAK_MINUTES="45",
    )
    demo = demo_script.Demo(tmp_path, environ=chosen)

    assert demo.choose_redis("auto") == chosen["REDIS_URL"]
    assert demo_script.worker_queues(demo.env) == ["mine", "my-scans"]
    assert demo.env["WAVEGATE_PLAN_DEFAULT_SOAK_MINUTES"] == "45"


@pytest.mark.slow
def test_production_keeps_its_defaults_and_the_demo_its_own(tmp_path):
    production = dict(unset_by_the_user(), WAVEGATE_VAR_DIR=str(tmp_path))
    assert settings_under(production) == [
        "redis://127.0.0.1:6379/0",
        "wavegate",
        {},
        30,
        True,
    ]

    demo_env = dict(
        demo_script.demo_environment(unset_by_the_user(), tmp_path),
        REDIS_URL="redis://127.0.0.1:6379/15",
    )
    assert settings_under(demo_env) == [
        "redis://127.0.0.1:6379/15",
        "wavegate-demo",
        {},
        1,
        False,
    ]


def plan_form_defaults(page: str) -> tuple[str, bool]:
    soak = re.search(r'<input[^>]*name="soak_minutes"[^>]*>', page)
    windows = re.search(r'<input[^>]*name="respect_maintenance_windows"[^>]*>', page)
    assert soak, page
    assert windows, page
    value = re.search(r'value="(\d+)"', soak.group(0))
    assert value, soak.group(0)
    return value.group(1), " checked" in windows.group(0)


@pytest.mark.django_db
def test_the_new_plan_form_suggests_the_safe_defaults(client_as):
    page = client_as("operator").get(reverse("rollout:plan_new")).content.decode()

    assert plan_form_defaults(page) == ("30", True)


@pytest.mark.django_db
def test_the_demo_form_suggests_a_short_soak_and_no_windows(client_as, settings):
    settings.WAVEGATE_PLAN_DEFAULT_SOAK_MINUTES = int(
        demo_script.DEMO_PLAN_DEFAULTS["WAVEGATE_PLAN_DEFAULT_SOAK_MINUTES"]
    )
    settings.WAVEGATE_PLAN_DEFAULT_RESPECT_WINDOWS = False

    page = client_as("operator").get(reverse("rollout:plan_new")).content.decode()

    assert plan_form_defaults(page) == ("1", False)


@pytest.mark.django_db
def test_the_favicon_answers_without_signing_in(client):
    icon = client.get("/favicon.ico")
    assert icon.status_code == 200
    assert icon["Content-Type"] == "image/svg+xml"
    assert icon.content.lstrip().startswith(b"<svg")

    page = client.get(reverse("accounts:login")).content.decode()
    linked = re.search(r'<link rel="icon" href="([^"]+)"', page)
    assert linked, page
    assert client.get(linked.group(1)).status_code == 200


@pytest.mark.slow
def test_the_demo_worker_runs_what_the_app_sends_to_its_queues(isolated_db, tmp_path):
    """The worker started as the demo starts it takes the app's tasks from every queue they are
    routed to: the default one (a heartbeat) and the scans' own (a scan chain)."""
    run = uuid.uuid4().hex[:10]
    env = dict(
        demo_script.demo_environment(
            dict(
                unset_by_the_user(),
                CELERY_QUEUE=f"demo-{run}",
                WAVEGATE_SCAN_QUEUE=f"demo-scans-{run}",
            ),
            tmp_path,
        ),
        DATABASE_URL=isolated_db.url,
        REDIS_URL=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
    )
    worker = Process(
        "worker", demo_script.worker_command(env), env, tmp_path / "worker.log"
    ).start()
    try:
        wait_until(lambda: " ready." in worker.log() or not worker.running(), 60, "the worker")
        assert worker.running(), worker.log()

        for task in ("health.record_heartbeat", "fleet.scan_next"):
            subprocess.run(
                [str(demo_script.BIN / "celery"), "-A", "config", "call", task],
                cwd=ROOT,
                env=env,
                capture_output=True,
                check=True,
            )

        wait_until(WorkerHeartbeat.objects.exists, 30, "the heartbeat the demo sends first")
        wait_until(
            lambda: bool(re.search(r"Task fleet\.scan_next\[[^]]+\] succeeded", worker.log())),
            30,
            "the scan chain sent to the scans' queue",
        )
    finally:
        worker.stop()


@pytest.mark.slow
def test_the_demo_web_listens_only_once_the_database_is_migrated(tmp_path):
    """The demo's web loads while the database migrates, but opens its port only when the
    launcher says the migrations are done: no request meets a database without its tables."""
    environ = {k: v for k, v in unset_by_the_user().items() if k != "DATABASE_URL"}
    demo = demo_script.Demo(tmp_path, environ=environ)  # SQLite in tmp_path, not yet migrated
    port = free_port()
    gate = demo.start_web(port)
    try:
        wait_until(
            lambda: demo_script.WEB_WAITING in demo.log_tail("web") or demo.died() is not None,
            90,
            "the web to load",
        )
        assert demo.died() is None, demo.log_tail("web")
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()

        demo.migrate({})
        demo.open_web(gate)

        sign_in = f"http://127.0.0.1:{port}/{demo_script.SIGN_IN}"
        wait_until(lambda: demo_script.page_answers(sign_in), 30, "the sign-in page")
    finally:
        demo.stop()
