"""The one Celery app. Its settings are Django's `CELERY_*` settings; tasks live in each app."""

from __future__ import annotations

import contextlib
import os
from typing import Any

from celery import Celery
from celery.signals import task_failure, task_postrun, task_prerun
from django.db import DatabaseError, close_old_connections, connection

from config import metrics

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("wavegate")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Each task's duration and failures, for /metrics (config/metrics.py).
task_prerun.connect(metrics.task_started, dispatch_uid="config.metrics_task_started")
task_postrun.connect(metrics.task_ended, dispatch_uid="config.metrics_task_ended")
task_failure.connect(metrics.task_failed, dispatch_uid="config.metrics_task_failed")


@task_prerun.connect(dispatch_uid="config.db_connections_before")
def _before_task(task: Any = None, **kwargs: Any) -> None:
    if not _eager(task):
        close_old_connections()


def _eager(task: Any) -> bool:
    return bool(getattr(getattr(task, "request", None), "is_eager", False))


@task_postrun.connect(dispatch_uid="config.db_connections_after")
def _after_task(task: Any = None, **kwargs: Any) -> None:
    """Tasks reuse their process's database connection (CELERY_DB_REUSE_MAX): connecting anew
    for each short engine step cost about half its time. As around a web request, a connection
    that failed or outlived CONN_MAX_AGE is closed here and the next query opens a fresh one
    (CONN_HEALTH_CHECKS checks a reused one first). Not for a task run eagerly, in its
    caller's process and transaction."""
    if _eager(task):
        return
    if connection.vendor == "postgresql" and connection.connection is not None:
        # No session lock outlives its task on a reused connection (rollout/engine.py's
        # target locks are released in `finally`; this covers a task cut off in between).
        with contextlib.suppress(DatabaseError), connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock_all()")  # broken: closed just below
    close_old_connections()
