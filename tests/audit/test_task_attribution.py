"""Events written while a Celery task runs carry the task's id and the system as actor."""

from __future__ import annotations

import pytest
from celery import shared_task

import audit
from audit.models import AuditEvent

pytestmark = pytest.mark.django_db


@shared_task(name="tests.audit.record_something")
def record_something() -> int:
    return audit.record("test.from_task").seq


def test_events_from_a_task_name_the_task_and_the_system():
    result = record_something.apply()

    event = AuditEvent.objects.get(seq=result.get())
    assert event.request_id == f"task:{result.id}"
    assert event.actor_name == "system"
    assert event.actor_ip is None


def test_the_task_context_ends_with_the_task():
    record_something.apply()

    assert audit.record("test.after_task").request_id == ""
