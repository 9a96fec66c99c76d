"""The checks behind /healthz: can we reach the database and Redis, and is a worker alive?

Each answers with a small dict that is safe to show anyone: no URLs, hosts or credentials.
"""

from __future__ import annotations

from typing import Any

import redis
from django.conf import settings
from django.db import connection
from django.utils import timezone

from health.models import WorkerHeartbeat

Result = dict[str, Any]


def check_database() -> Result:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:
        return {"ok": False, "error": f"database unreachable ({type(exc).__name__})"}
    return {"ok": True}


def check_redis() -> Result:
    client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        return {"ok": False, "error": f"redis unreachable ({type(exc).__name__})"}
    finally:
        client.close()
    return {"ok": True}


def check_worker() -> Result:
    try:
        heartbeat = WorkerHeartbeat.latest()
    except Exception as exc:
        return {"ok": False, "error": f"heartbeat unreadable ({type(exc).__name__})"}
    if heartbeat is None:
        return {"ok": False, "error": "no worker heartbeat yet", "last_heartbeat": None}
    age = (timezone.now() - heartbeat.last_seen).total_seconds()
    result: Result = {
        "ok": age <= settings.WAVEGATE_HEARTBEAT_STALE_SECONDS,
        "last_heartbeat": heartbeat.last_seen.isoformat(),
        "age_seconds": round(age, 1),
    }
    if not result["ok"]:
        result["error"] = f"last worker heartbeat is {age:.0f}s old"
    return result


def run_checks() -> dict[str, Result]:
    return {"database": check_database(), "redis": check_redis(), "worker": check_worker()}
