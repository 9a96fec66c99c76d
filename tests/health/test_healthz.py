"""/healthz: 200 when database, Redis and a worker are fine; 503 naming what is not."""

from __future__ import annotations

import datetime

import pytest
from django.utils import timezone

from health.models import WorkerHeartbeat

pytestmark = pytest.mark.django_db


def healthz(client, settings, redis_url):
    settings.REDIS_URL = redis_url
    return client.get("/healthz")


def test_it_answers_200_when_everything_is_fine(client, settings, redis_server):
    WorkerHeartbeat.beat("worker@host")

    response = healthz(client, settings, redis_server[1])

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["failing"] == []
    assert {name for name, check in body["checks"].items() if check["ok"]} == {
        "database",
        "redis",
        "worker",
    }


def test_it_answers_503_naming_redis_when_redis_is_stopped(client, settings, redis_server):
    WorkerHeartbeat.beat("worker@host")
    server, url = redis_server
    server.stop()

    response = healthz(client, settings, url)

    assert response.status_code == 503
    body = response.json()
    assert body["failing"] == ["redis"]
    assert "redis unreachable" in body["checks"]["redis"]["error"]
    assert "127.0.0.1" not in response.content.decode(), "no addresses in a public answer"


def test_it_answers_503_naming_the_worker_when_no_heartbeat_is_fresh(
    client, settings, redis_server
):
    WorkerHeartbeat.objects.create(
        hostname="worker@host",
        last_seen=timezone.now()
        - datetime.timedelta(seconds=settings.WAVEGATE_HEARTBEAT_STALE_SECONDS + 5),
    )

    response = healthz(client, settings, redis_server[1])

    assert response.status_code == 503
    assert response.json()["failing"] == ["worker"]
    assert "old" in response.json()["checks"]["worker"]["error"]


def test_it_answers_without_signing_in_and_without_secrets(client, settings, redis_server):
    settings.REDIS_URL = redis_server[1].replace("redis://", "redis://:s3cret-pass@")

    body = client.get("/healthz").content.decode()

    assert "s3cret" not in body
    assert "postgres" not in body.lower()
