"""Gunicorn's hooks for Wavegate's web: `gunicorn --config python:config.gunicorn config.wsgi`
(the Docker image, compose and `make run` start it so; the rest of its flags are theirs).

With PROMETHEUS_MULTIPROC_DIR set, each web worker writes its counts there for /metrics; a
worker that exits is marked dead, so that its live gauges stop counting (config/metrics.py).
"""

from __future__ import annotations

from typing import Any

from config import metrics


def child_exit(server: Any, worker: Any) -> None:
    metrics.process_exited(worker.pid)
