"""A broker outage is not an error page (issue 14 §5): with Redis down, "Sync now", "Scan now" and
submitting a plan with a webhook answer normally and say the work is queued; once Redis is back,
beat's re-send delivers it to a real worker and the work completes. A scan no worker ever took
ends with a reason instead of staying queued for ever."""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from kombu import pools

from accounts.roles import Role
from audit.models import AuditEvent
from config.celery_app import app as celery_app
from config.outbox_notice import NOTICE
from fleet import outbox
from fleet.choices import ScanStatus, SyncStatus, SyncTrigger
from fleet.models import Cluster, OutboxMessage, PreflightScan, SyncRun
from fleet.sync import run_sync
from preflight.scans import fail_never_started
from tests.conftest import start_worker, tasks_sent_to
from tests.factories import make_cluster, plan_form
from tests.processes import wait_until
from tests.rollout.conftest import SECRET, receiver, serve  # noqa: F401 (fixtures)


@contextmanager
def broker(url: str) -> Iterator[None]:
    """This process sends its tasks to `url` (a Redis of the test's own) while inside."""

    def reset() -> None:
        pools.reset()  # kombu's connection and producer pools, keyed by the old URL
        celery_app._pool = None  # type: ignore[attr-defined]
        celery_app.amqp._producer_pool = None  # type: ignore[attr-defined]

    before = celery_app.conf.broker_url
    celery_app.conf.broker_url = url  # type: ignore[misc]
    reset()
    try:
        yield
    finally:
        celery_app.conf.broker_url = before  # type: ignore[misc]
        reset()


def operator_client() -> Client:
    user = get_user_model().objects.create_user("outage-operator")
    user.groups.add(Group.objects.get(name=Role.OPERATOR.value))
    client = Client()
    client.force_login(user)
    return client


def test_with_redis_down_the_pages_say_queued_and_the_work_runs_once_it_is_back(
    isolated_db,
    wavegate_on_aksim,
    redis_server,
    receiver,  # noqa: F811
    settings,
    tmp_path,
):
    aksim = wavegate_on_aksim
    redis, url = redis_server
    assert run_sync(SyncTrigger.COMMAND).status == "succeeded"
    cluster = Cluster.objects.filter(eligible=True).order_by("name").first()
    settings.WAVEGATE_WEBHOOK_URL = receiver.url
    settings.WAVEGATE_WEBHOOK_SECRET = SECRET
    worker = start_worker(
        isolated_db.url,
        tmp_path / "worker.log",
        {
            **aksim.wavegate_env(),
            "REDIS_URL": url,
            "WAVEGATE_WEBHOOK_URL": receiver.url,
            "WAVEGATE_WEBHOOK_SECRET": SECRET,
            "WAVEGATE_SCAN_POLL_SECONDS": "0.2",
        },
    )
    client = operator_client()
    try:
        redis.stop()
        with broker(url), tasks_sent_to(worker):
            answers = [
                client.post(reverse("fleet:sync"), follow=True),
                client.post(
                    reverse("preflight:cluster_scan", kwargs={"pk": cluster.pk}), follow=True
                ),
                client.post(
                    reverse("rollout:plan_new"),
                    plan_form(name="outage", names=cluster.name, wave_spec="100%"),
                    follow=True,
                ),
            ]
            for response in answers:
                assert response.status_code == 200
                assert NOTICE in response.content.decode()

            def unsent():
                return OutboxMessage.objects.filter(sent_at__isnull=True)

            assert sorted(unsent().values_list("task", flat=True)) == [
                "fleet.scan_cluster",
                "fleet.sync_inventory",
                "rollout.send_webhook",
            ]
            assert all("Error" in m.last_error for m in unsent())
            scan = PreflightScan.objects.get(cluster=cluster, requested_by__isnull=False)
            assert scan.status == ScanStatus.QUEUED

            redis.start()  # the same port: Redis is back
            wait_until(lambda: redis.running(), 10, "Redis back")
            OutboxMessage.objects.update(created_at=timezone.now() - datetime.timedelta(minutes=1))
            wait_until(lambda: outbox.resend()[0] == 3 or not unsent().exists(), 30, "re-sent")

            assert not unsent().exists()
            wait_until(
                lambda: SyncRun.objects.filter(
                    trigger=SyncTrigger.BUTTON, status=SyncStatus.SUCCEEDED
                ).exists(),
                120,
                "the requested sync to finish",
            )
            wait_until(
                lambda: (
                    PreflightScan.objects.get(pk=scan.pk).status
                    not in (ScanStatus.QUEUED, ScanStatus.RUNNING)
                ),
                120,
                "the scan to finish",
            )
            wait_until(lambda: receiver.received, 60, "the webhook")
    finally:
        worker.process.stop()

    assert receiver.bodies()[0]["kind"] == "wave_awaiting_approval"


@pytest.mark.django_db
def test_a_scan_no_worker_ever_took_ends_with_a_reason(personas, settings):
    settings.WAVEGATE_OUTBOX_GIVE_UP_MINUTES = 30
    cluster = make_cluster(name="aks-0")
    long_ago = timezone.now() - datetime.timedelta(minutes=31)
    scan = PreflightScan.objects.create(
        cluster=cluster, requested_by=personas["operator"], queued_at=long_ago
    )
    young = PreflightScan.objects.create(
        cluster=make_cluster(name="aks-1"), queued_at=timezone.now()
    )

    assert fail_never_started() == 1

    scan.refresh_from_db()
    assert scan.status == ScanStatus.ERROR
    assert "Never started: no worker took it within 30 minutes" in scan.message
    young.refresh_from_db()
    assert young.status == ScanStatus.QUEUED


@pytest.mark.django_db
def test_work_the_broker_never_took_is_given_up_with_an_audit_event(settings):
    settings.WAVEGATE_OUTBOX_GIVE_UP_MINUTES = 30
    message = OutboxMessage.objects.create(task="fleet.sync_inventory", args=["button", 1])
    OutboxMessage.objects.filter(pk=message.pk).update(
        created_at=timezone.now() - datetime.timedelta(minutes=31), last_error="refused"
    )

    assert outbox.resend()[1] == 1

    message.refresh_from_db()
    assert message.given_up_at is not None
    event = AuditEvent.objects.get(action="outbox.given_up")
    assert event.after["task"] == "fleet.sync_inventory"
