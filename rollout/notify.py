"""Tell the outside world when a rollout needs a person or ends: a wave awaits approval, a plan
paused (for its failure budget too), completed, was aborted or rejected, an emergency stop began
or was lifted.

`announce` (and `announce_stop`) queue one delivery (rollout.send_webhook) per destination that
wants the announcement (rollout/destinations.py), once the caller's transaction commits, so a
change rolled back announces nothing; `deliver` is one POST to one destination, in its format
(our signed JSON, Slack's or Teams', rollout/chat.py). Each destination's delivery is tried
again on its own: one failing never holds up another. Off while no destination is configured.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.db import transaction
from django.db.models import Count
from django.urls import reverse
from django.utils import timezone

import audit
from rollout import chat, destinations, enqueue
from rollout.choices import RolloutEvent
from rollout.destinations import FAILURE_BUDGET_EXCEEDED, LEGACY, Destination
from rollout.models import EmergencyStop, RolloutPlan, Wave
from rollout.outcomes import outcome

log = logging.getLogger(__name__)

# The kinds a message has; a pause for the failure budget is a plan_paused with that cause.
KINDS = frozenset(destinations.KINDS) - {FAILURE_BUDGET_EXCEEDED}
CAUSES = frozenset({"", FAILURE_BUDGET_EXCEEDED})
# Kinds whose plan has ended: their message says what it did (rollout/outcomes.py).
ENDED = frozenset({"plan_completed", "plan_aborted", "plan_rejected"})
STOP_KINDS = frozenset({"emergency_stop", "emergency_stop_lifted"})
SIGNATURE_HEADER = "X-Wavegate-Signature"
DELIVERY_HEADER = "X-Wavegate-Delivery"
EVENT_HEADER = "X-Wavegate-Event"


class Unavailable(Exception):
    """The receiver could not be reached or answered 5xx (or 429): worth another try."""


class Refused(Exception):
    """The receiver answered that this request is wrong (4xx, 3xx), or the URL is unusable:
    another try would fail alike."""


def _known(kind: str, cause: str = "") -> None:
    if kind not in KINDS:
        raise ValueError(f"unknown announcement {kind!r}; one of {', '.join(sorted(KINDS))}")
    if cause not in CAUSES:
        raise ValueError(f"unknown cause {cause!r} of {kind}")


def announce(
    kind: str, plan: RolloutPlan, wave: Wave | None = None, reason: str = "", *, cause: str = ""
) -> None:
    """Queue an announcement about `plan` (and `wave`) for when the caller's transaction
    commits."""
    _known(kind, cause)
    if kind in STOP_KINDS:
        raise ValueError(f"{kind} is announced by announce_stop")
    _queue(kind, cause, lambda: message(kind, plan, wave, reason, cause=cause))


def announce_stop(kind: str, stop: EmergencyStop, reason: str) -> None:
    """Queue the announcement that an emergency stop began or was lifted."""
    _known(kind)
    if kind not in STOP_KINDS:
        raise ValueError(f"{kind} is not about an emergency stop")
    _queue(kind, "", lambda: message(kind, reason=reason, stop=stop))


def _queue(kind: str, cause: str, build: Callable[[], dict[str, Any]]) -> None:
    """One delivery per destination that wants it, written with the caller's change."""
    reading = destinations.read()
    if reading.problems:  # said at start-up too (rollout/checks.py); the rest still hear
        log.warning("notification destinations: %s", " ".join(reading.problems))
    wanting = [d for d in reading.destinations if d.wants(kind, cause)]
    if not wanting:
        return
    payload = build()
    for destination in wanting:
        enqueue.send_webhook_on_commit(payload, destination.name)


def _page(plan: RolloutPlan | None, wave: Wave | None) -> str:
    if plan is None:
        path = reverse("rollout:emergency_stop")
    elif wave is not None:
        path = reverse("rollout:wave", kwargs={"pk": plan.pk, "index": wave.index})
    else:
        path = reverse("rollout:plan", kwargs={"pk": plan.pk})
    return settings.WAVEGATE_PUBLIC_URL.rstrip("/") + path


def _outcome(plan: RolloutPlan) -> dict[str, str] | None:
    counts = dict(plan.targets.values_list("status").annotate(n=Count("pk")))
    said = outcome(plan.status, counts, plan.goal)
    if said is None:
        return None
    return {"headline": said.headline, "tone": said.tone, "detail": said.detail}


def message(
    kind: str,
    plan: RolloutPlan | None = None,
    wave: Wave | None = None,
    reason: str = "",
    *,
    cause: str = "",
    stop: EmergencyStop | None = None,
) -> dict[str, Any]:
    """The JSON body: what happened, when, and where to look. Built when it happens (the plan
    may have moved on before it is delivered), with an id the receiver may use to drop a
    delivery it has already seen. Slack's and Teams' messages are made from it."""
    url = _page(plan, wave)
    body: dict[str, Any] = {
        "kind": kind,
        "delivery": str(uuid.uuid4()),
        "time": timezone.now().isoformat(),
        "plan": None,
        "wave": wave.index if wave is not None else None,
        "reason": reason,
        "cause": cause,
        "url": url,
        "outcome": None,
    }
    if plan is not None:
        body["plan"] = {"id": plan.pk, "name": plan.name, "status": plan.status, "url": url}
        if kind in ENDED:
            body["outcome"] = _outcome(plan)
    if stop is not None:
        body["stop"] = stop.pk
    return body


def signature(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def request(payload: dict[str, Any], destination: Destination) -> tuple[bytes, dict[str, str]]:
    """The body and headers of the POST to `destination`, in its format."""
    if destination.format == "slack":
        sent = chat.slack(payload)
    elif destination.format == "teams":
        sent = chat.teams(payload)
    else:
        sent = payload
    body = json.dumps(sent, sort_keys=True).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Wavegate",
        DELIVERY_HEADER: str(payload.get("delivery", "")),
        EVENT_HEADER: str(payload.get("kind", "")),
    }
    if destination.format == "wavegate" and destination.secret:
        headers[SIGNATURE_HEADER] = signature(body, destination.secret)
    return body, headers


_ERROR_CODE = re.compile(r"[a-z][a-z0-9_]{0,59}")


def deliver(payload: dict[str, Any], destination: str = LEGACY) -> int:
    """POST the payload once to the destination of that name; returns the HTTP status (2xx).

    Raises Unavailable (try again later) or Refused (do not). What they say names the
    destination and at most the URL's host: a chat webhook URL's path is its secret, and this
    text reaches the log and the audit log (and so its exports)."""
    target = destinations.named(destination)
    if target is None:
        raise Refused(f"destination {destination!r} is not configured any more")
    body, headers = request(payload, target)
    try:
        response = requests.post(
            target.url,
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
        raise Refused(f"{target.called} is not a usable URL ({type(exc).__name__})") from exc
    except requests.RequestException as exc:
        host = urlsplit(target.url).hostname or "the webhook"
        raise Unavailable(f"{type(exc).__name__} reaching {host}") from exc
    status = response.status_code
    if status >= 500 or status == 429:
        raise Unavailable(f"{target.called} answered {status}")
    if 300 <= status < 400:
        raise Refused(f"{target.called} answered {status}: a redirect, not followed")
    if status >= 300:
        # Its body only when it is an error code such as Slack's `invalid_blocks`: an error page
        # may quote the URL asked for, and with it the webhook's secret path.
        said = response.text.strip()
        code = f": {said}" if _ERROR_CODE.fullmatch(said) else ""
        raise Refused(f"{target.called} answered {status}{code}")
    return status


def give_up(payload: dict[str, Any], problem: str, tries: int, destination: str = LEGACY) -> None:
    """Record that an announcement was never delivered: a log line and an audit event."""
    plan = payload.get("plan") or {}
    log.error(
        "webhook %s (%s, plan %s, destination %s) not delivered after %d tr%s: %s",
        payload.get("delivery"),
        payload.get("kind"),
        plan.get("id"),
        destination,
        tries,
        "y" if tries == 1 else "ies",
        problem,
    )
    if plan:
        subject = ("rollout.rolloutplan", str(plan.get("id", "")), str(plan.get("name", "")))
    else:
        subject = ("rollout.emergencystop", str(payload.get("stop") or ""), "Emergency stop")
    with transaction.atomic():
        audit.record(
            RolloutEvent.WEBHOOK_FAILED,
            object_type=subject[0],
            object_id=subject[1],
            object_label=subject[2],
            after={
                "kind": payload.get("kind"),
                "delivery": payload.get("delivery"),
                "wave": payload.get("wave"),
                "destination": destination,
                "tries": tries,
                "problem": problem,
            },
        )
