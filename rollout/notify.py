"""Tell the outside world when a rollout needs a person: a wave awaits approval, a plan paused.

`announce` queues one webhook delivery (rollout.send_webhook) once the caller's transaction
commits; `deliver` is the POST itself. Off unless WAVEGATE_WEBHOOK_URL is set.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import uuid
from typing import Any
from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

import audit
from rollout import enqueue
from rollout.choices import RolloutEvent
from rollout.models import RolloutPlan, Wave

log = logging.getLogger(__name__)

KINDS = frozenset({"wave_awaiting_approval", "plan_paused"})
SIGNATURE_HEADER = "X-Wavegate-Signature"
DELIVERY_HEADER = "X-Wavegate-Delivery"
EVENT_HEADER = "X-Wavegate-Event"


class Unavailable(Exception):
    """The receiver could not be reached or answered 5xx (or 429): worth another try."""


class Refused(Exception):
    """The receiver answered that this request is wrong (4xx, 3xx), or the URL is unusable:
    another try would fail alike."""


def announce(kind: str, plan: RolloutPlan, wave: Wave | None = None, reason: str = "") -> None:
    """Queue a webhook about `plan` (and `wave`) for when the caller's transaction commits."""
    if kind not in KINDS:
        raise ValueError(f"unknown announcement {kind!r}; one of {', '.join(sorted(KINDS))}")
    if not settings.WAVEGATE_WEBHOOK_URL:
        return
    enqueue.send_webhook_on_commit(message(kind, plan, wave, reason))


def message(
    kind: str, plan: RolloutPlan, wave: Wave | None = None, reason: str = ""
) -> dict[str, Any]:
    """The JSON body: what happened, when, and where to look. Built when it happens (the plan
    may have moved on before it is delivered), with an id the receiver may use to drop a
    delivery it has already seen."""
    if wave is not None:
        path = reverse("rollout:wave", kwargs={"pk": plan.pk, "index": wave.index})
    else:
        path = reverse("rollout:plan", kwargs={"pk": plan.pk})
    return {
        "kind": kind,
        "delivery": str(uuid.uuid4()),
        "time": timezone.now().isoformat(),
        "plan": {
            "id": plan.pk,
            "name": plan.name,
            "status": plan.status,
            "url": settings.WAVEGATE_PUBLIC_URL.rstrip("/") + path,
        },
        "wave": wave.index if wave is not None else None,
        "reason": reason,
    }


def signature(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def deliver(payload: dict[str, Any]) -> int:
    """POST the payload once to WAVEGATE_WEBHOOK_URL; returns the HTTP status (2xx).

    Raises Unavailable (try again later) or Refused (do not)."""
    body = json.dumps(payload, sort_keys=True).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Wavegate",
        DELIVERY_HEADER: str(payload.get("delivery", "")),
        EVENT_HEADER: str(payload.get("kind", "")),
    }
    if settings.WAVEGATE_WEBHOOK_SECRET:
        headers[SIGNATURE_HEADER] = signature(body, settings.WAVEGATE_WEBHOOK_SECRET)
    try:
        response = requests.post(
            settings.WAVEGATE_WEBHOOK_URL,
            data=body,
            headers=headers,
            timeout=settings.WAVEGATE_WEBHOOK_TIMEOUT_SECONDS,
            # A redirected POST turns into a GET on the way: better to say so than follow.
            allow_redirects=False,
        )
    except (
        requests.exceptions.MissingSchema,
        requests.exceptions.InvalidSchema,
        requests.exceptions.InvalidURL,
    ) as exc:
        raise Refused(f"WAVEGATE_WEBHOOK_URL is not a usable URL ({type(exc).__name__})") from exc
    except requests.RequestException as exc:
        # Only the kind of failure and the host: a webhook URL's path often is its secret
        # (Slack, Teams), and this text reaches the audit log and its exports.
        host = urlsplit(settings.WAVEGATE_WEBHOOK_URL).hostname or "the webhook"
        raise Unavailable(f"{type(exc).__name__} reaching {host}") from exc
    status = response.status_code
    if status >= 500 or status == 429:
        raise Unavailable(f"the webhook answered {status}")
    if status >= 300:
        raise Refused(f"the webhook answered {status}: {response.text[:200]}")
    return status


def give_up(payload: dict[str, Any], problem: str, tries: int) -> None:
    """Record that an announcement was never delivered: a log line and an audit event."""
    plan = payload.get("plan") or {}
    log.error(
        "webhook %s (%s, plan %s) not delivered after %d tr%s: %s",
        payload.get("delivery"),
        payload.get("kind"),
        plan.get("id"),
        tries,
        "y" if tries == 1 else "ies",
        problem,
    )
    with transaction.atomic():
        audit.record(
            RolloutEvent.WEBHOOK_FAILED,
            object_type="rollout.rolloutplan",
            object_id=str(plan.get("id", "")),
            object_label=str(plan.get("name", "")),
            after={
                "kind": payload.get("kind"),
                "delivery": payload.get("delivery"),
                "wave": payload.get("wave"),
                "tries": tries,
                "problem": problem,
            },
        )
