"""A task sent through Redis runs in a real Celery worker process and changes the database."""

from __future__ import annotations

from health.models import WorkerHeartbeat
from health.tasks import record_heartbeat
from tests.processes import wait_until


def test_a_task_sent_to_a_real_worker_records_its_heartbeat(celery_worker):
    assert not WorkerHeartbeat.objects.exists()

    record_heartbeat.apply_async(queue=celery_worker.queue)

    wait_until(WorkerHeartbeat.objects.exists, 30, "the worker's heartbeat row")
    heartbeat = WorkerHeartbeat.objects.get()
    assert heartbeat.hostname.startswith(celery_worker.queue + "@")
    assert celery_worker.process.running()
