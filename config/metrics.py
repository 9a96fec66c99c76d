"""What Wavegate's processes count for Prometheus, and the hooks that count it: requests to Azure
(fleet/azure.py's pipeline policy), Celery tasks (config/celery_app.py's signals) and web
requests (the middleware below). /metrics (health/metrics.py) serves them.

With PROMETHEUS_MULTIPROC_DIR set (`make run`, the Docker image and compose set it), every
process writes its counts to files there and /metrics adds up those of web, workers and beat;
it must be set before any process starts, and emptied when they all start afresh. Without it
(a plain `manage.py runserver`), the counts stay in the process's memory and /metrics shows
that process's alone.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, MutableMapping
from typing import TYPE_CHECKING, Any

from prometheus_client import Counter, Histogram, disable_created_metrics, values
from prometheus_client.multiprocess import mark_process_dead

if TYPE_CHECKING:
    from django.http import HttpRequest, HttpResponse

MULTIPROCESS_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")
# Compose's containers share the directory and each numbers its processes from 1: a process's
# files are named after its host (the container) and its pid, never its pid alone.
_HOST = socket.gethostname().replace("_", "-") or "localhost"


def process_identity(pid: int | None = None) -> str:
    """The name of a process's files in MULTIPROCESS_DIR (this process's, or `pid`'s here)."""
    return f"{_HOST}-{os.getpid() if pid is None else pid}"


if MULTIPROCESS_DIR:
    os.makedirs(MULTIPROCESS_DIR, exist_ok=True)
    # Before any metric below is made: each takes its storage from this class.
    values.ValueClass = values.MultiProcessValue(process_identity)
# A `_created` series beside every counter only adds noise: nothing here reads it.
disable_created_metrics()

# --- Azure ------------------------------------------------------------------------------------
AZURE_REQUESTS = Counter(
    "wavegate_azure_requests",
    "Requests sent to Azure Resource Manager, each attempt counted, by kind (graph: Resource "
    "Graph queries, reads, writes) and the HTTP status Azure answered ('error': no answer).",
    ["kind", "status"],
)
AZURE_THROTTLED = Counter(
    "wavegate_azure_throttled",
    "Requests Azure answered 429 (throttled), by kind.",
    ["kind"],
)
AZURE_RETRIES = Counter(
    "wavegate_azure_retries",
    "Attempts the Azure SDK sent again after one that failed (a 429, a 5xx, no answer), by kind.",
    ["kind"],
)
AZURE_SECONDS = Histogram(
    "wavegate_azure_request_duration_seconds",
    "How long Azure took to answer one attempt, by kind.",
    ["kind"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
_SENT_AT = "wavegate_sent_at"  # where an attempt's start is kept in the SDK's request context


def azure_sending(context: MutableMapping[str, Any]) -> None:
    """An attempt leaves for Azure (the SDK's per-retry policy, before the transport)."""
    context[_SENT_AT] = time.monotonic()


def azure_answered(kind: str, status: int | str, context: MutableMapping[str, Any]) -> None:
    """An attempt ended: Azure answered `status`, or "error" when nothing came back."""
    AZURE_REQUESTS.labels(kind, str(status)).inc()
    if str(status) == "429":
        AZURE_THROTTLED.labels(kind).inc()
    if context.get("retry_count"):  # the SDK's RetryPolicy counts the attempts before this one
        AZURE_RETRIES.labels(kind).inc()
    sent = context.get(_SENT_AT)
    if sent is not None:
        AZURE_SECONDS.labels(kind).observe(time.monotonic() - sent)


# --- Celery tasks -------------------------------------------------------------------------------
TASK_SECONDS = Histogram(
    "wavegate_celery_task_duration_seconds",
    "How long each Celery task ran, by task name (its count: the tasks run).",
    ["task"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
)
TASK_FAILURES = Counter(
    "wavegate_celery_task_failures",
    "Celery tasks that ended with an exception, by task name.",
    ["task"],
)
_task_started: dict[str, float] = {}  # task id → when it started, in this worker process


def task_started(task_id: str = "", **kwargs: Any) -> None:
    """Celery's task_prerun signal."""
    _task_started[task_id] = time.monotonic()


def task_ended(task_id: str = "", task: Any = None, **kwargs: Any) -> None:
    """Celery's task_postrun signal (after a failure too)."""
    started = _task_started.pop(task_id, None)
    if started is not None:
        TASK_SECONDS.labels(_task_name(task)).observe(time.monotonic() - started)


def task_failed(sender: Any = None, **kwargs: Any) -> None:
    """Celery's task_failure signal."""
    TASK_FAILURES.labels(_task_name(sender)).inc()


def _task_name(task: Any) -> str:
    return str(getattr(task, "name", "") or "unknown")


# --- web requests -------------------------------------------------------------------------------
HTTP_REQUESTS = Counter(
    "wavegate_http_requests",
    "Requests the web answered, by kind (api, page, health: /healthz and /metrics, static), "
    "method and HTTP status.",
    ["kind", "method", "status"],
)
HTTP_SECONDS = Histogram(
    "wavegate_http_request_duration_seconds",
    "How long the web took to answer a request, by kind.",
    ["kind"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_HEALTH_PATHS = frozenset({"/healthz", "/metrics"})


def request_kind(path: str) -> str:
    if path.startswith("/api/"):
        return "api"
    if path in _HEALTH_PATHS:
        return "health"
    if path.startswith("/static/"):
        return "static"
    return "page"


class RequestMetricsMiddleware:
    """Counts and times every request the web answers (settings.MIDDLEWARE, near the top)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.monotonic()
        response = self.get_response(request)
        kind = request_kind(request.path)
        method = request.method if request.method in _METHODS else "other"
        HTTP_REQUESTS.labels(kind, method, str(response.status_code)).inc()
        HTTP_SECONDS.labels(kind).observe(time.monotonic() - started)
        return response


# --- processes ----------------------------------------------------------------------------------
def process_exited(pid: int) -> None:
    """A process that wrote here has ended (gunicorn's child_exit hook, config/gunicorn.py): its
    live gauges go; its counters stay, as totals do."""
    if MULTIPROCESS_DIR:
        mark_process_dead(process_identity(pid), MULTIPROCESS_DIR)
