"""The one Celery app. Its settings are Django's `CELERY_*` settings; tasks live in each app."""

from __future__ import annotations

import os
from typing import Any

from celery import Celery
from celery.signals import task_postrun, task_prerun

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("wavegate")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@task_prerun.connect(dispatch_uid="config.db_connections_before")
@task_postrun.connect(dispatch_uid="config.db_connections_after")
def _close_old_connections(task: Any = None, **kwargs: Any) -> None:
    """Tasks reuse their process's database connection (CELERY_DB_REUSE_MAX): connecting anew
    for each short engine step cost about half its time. As around a web request, a connection
    that failed or outlived CONN_MAX_AGE is closed here and the next query opens a fresh one
    (CONN_HEALTH_CHECKS checks a reused one first). Not for a task run eagerly, in its
    caller's process and transaction."""
    from django.db import close_old_connections

    if getattr(getattr(task, "request", None), "is_eager", False):
        return

    close_old_connections()
