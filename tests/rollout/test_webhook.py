"""The webhook: a paused plan (or a wave awaiting approval) is POSTed as signed JSON to a real
HTTP server on 127.0.0.1, tried again after a 5xx or a network error, never after a 4xx, and
given up with a log line and an audit event after the last try."""

from __future__ import annotations

import hashlib
import hmac
import logging

import pytest
from django.urls import reverse

from audit.models import AuditEvent
from rollout import actions, emergency, notify
from rollout.tasks import send_webhook
from tests.conftest import start_worker, tasks_sent_to
from tests.factories import make_user, plan_over_a_new_cluster
from tests.processes import free_port, wait_until
from tests.rollout.conftest import SECRET


def signed(headers: dict[str, str], body: bytes) -> bool:
    expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(headers.get("X-Wavegate-Signature", ""), expected)


@pytest.mark.django_db
def test_pausing_a_plan_posts_signed_json_and_tries_again_after_a_500(
    client_as, personas, webhook, eager, django_capture_on_commit_callbacks
):
    plan = plan_over_a_new_cluster(personas["operator"], "west")
    webhook.answers.append(500)

    with django_capture_on_commit_callbacks(execute=True):
        client_as("operator").post(
            reverse("rollout:plan_pause", kwargs={"pk": plan.pk}), {"comment": "change freeze"}
        )

    assert len(webhook.received) == 2  # a 500, then delivered
    first, second = webhook.bodies()
    assert first == second  # the same delivery, tried again
    assert first["kind"] == "plan_paused"
    assert first["plan"] == {
        "id": plan.pk,
        "name": "west",
        "status": "paused",
        "url": f"https://wavegate.example.com/plans/{plan.pk}/",
    }
    assert first["wave"] is None
    assert first["reason"] == "Paused by operator-user: change freeze"
    assert first["time"].startswith(str(plan.created_at.year))
    assert len(first["delivery"]) == 36
    for headers, body in webhook.received:
        assert headers["Content-Type"] == "application/json"
        assert headers["X-Wavegate-Event"] == "plan_paused"
        assert headers["X-Wavegate-Delivery"] == first["delivery"]
        assert signed(headers, body)
    assert not AuditEvent.objects.filter(action="rollout.webhook_failed").exists()


@pytest.mark.django_db
def test_each_announcement_has_its_own_delivery_id(personas, webhook, eager):
    plan = plan_over_a_new_cluster(personas["operator"], "west")

    for _ in range(2):
        send_webhook.delay(notify.message("plan_paused", plan, reason="again"))

    assert len({body["delivery"] for body in webhook.bodies()}) == 2


@pytest.mark.django_db
def test_without_a_secret_there_is_no_signature(settings, personas, webhook, eager):
    settings.WAVEGATE_WEBHOOK_SECRET = ""
    plan = plan_over_a_new_cluster(personas["operator"], "west")

    send_webhook.delay(notify.message("plan_paused", plan))

    headers, _ = webhook.received[0]
    assert "X-Wavegate-Signature" not in headers


@pytest.mark.django_db
def test_a_wave_awaiting_approval_links_to_the_wave(personas, webhook, eager):
    plan = plan_over_a_new_cluster(personas["operator"], "west")
    wave = plan.waves.get(index=1)

    send_webhook.delay(notify.message("wave_awaiting_approval", plan, wave))

    (body,) = webhook.bodies()
    assert body["kind"] == "wave_awaiting_approval"
    assert body["wave"] == 1
    assert body["plan"]["url"] == f"https://wavegate.example.com/plans/{plan.pk}/waves/1/"


@pytest.mark.django_db
def test_announce_queues_after_commit_and_only_when_a_url_is_set(
    settings, personas, django_capture_on_commit_callbacks
):
    plan = plan_over_a_new_cluster(personas["operator"], "west")
    settings.WAVEGATE_WEBHOOK_URL = ""
    with django_capture_on_commit_callbacks() as off:
        actions.pause_plan(plan, acting_user=personas["operator"], reason="quiet")

    settings.WAVEGATE_WEBHOOK_URL = "http://127.0.0.1:9/"
    with django_capture_on_commit_callbacks() as on:
        notify.announce("wave_awaiting_approval", plan, plan.waves.get())

    assert off == []
    assert len(on) == 1
    with pytest.raises(ValueError, match="unknown announcement"):
        notify.announce("plan_exploded", plan)


@pytest.mark.django_db
def test_the_emergency_stop_announces_every_plan_it_pauses(
    personas, webhook, eager, django_capture_on_commit_callbacks
):
    first = plan_over_a_new_cluster(personas["operator"], "one")
    second = plan_over_a_new_cluster(personas["operator"], "two")

    with django_capture_on_commit_callbacks(execute=True):
        emergency.stop_everything(acting_user=personas["operator"], reason="incident 42")

    bodies = sorted(webhook.bodies(), key=lambda b: b["plan"]["id"])
    assert [b["plan"]["id"] for b in bodies] == [first.pk, second.pk]
    assert all(b["kind"] == "plan_paused" for b in bodies)
    assert all("emergency stop: incident 42" in b["reason"] for b in bodies)


@pytest.mark.django_db
def test_a_4xx_is_not_tried_again_and_is_recorded(personas, webhook, eager, caplog):
    plan = plan_over_a_new_cluster(personas["operator"], "west")
    webhook.answers.append(410)

    with caplog.at_level(logging.ERROR, logger="rollout.notify"):
        send_webhook.delay(notify.message("plan_paused", plan, reason="r"))

    assert len(webhook.received) == 1
    event = AuditEvent.objects.get(action="rollout.webhook_failed")
    assert event.object_id == str(plan.pk)
    assert event.actor_name == "system"
    assert event.after["tries"] == 1
    assert "410" in event.after["problem"]
    assert "not delivered after 1 try" in caplog.text


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("status", "said", "problem"),
    [
        (400, b"invalid_blocks", "WAVEGATE_WEBHOOK_URL answered 400: invalid_blocks"),
        (404, b"<h1>No hook at /hooks/wavegate</h1>", "WAVEGATE_WEBHOOK_URL answered 404"),
        (
            302,
            b"Moved to https://x/hooks/wavegate",
            "WAVEGATE_WEBHOOK_URL answered 302: a redirect",
        ),
    ],
)
def test_what_a_refusing_receiver_said_is_kept_only_when_it_is_an_error_code(
    personas, webhook, eager, caplog, status, said, problem
):
    # An error page may quote the URL it was asked for, whose path is a chat webhook's secret.
    plan = plan_over_a_new_cluster(personas["operator"], "west")
    webhook.answers.append(status)
    webhook.said = said

    with caplog.at_level(logging.ERROR, logger="rollout.notify"):
        send_webhook.delay(notify.message("plan_paused", plan, reason="r"))

    event = AuditEvent.objects.get(action="rollout.webhook_failed")
    assert event.after["problem"].startswith(problem)
    assert "/hooks" not in event.after["problem"]
    assert "/hooks" not in caplog.text


@pytest.mark.django_db
def test_it_gives_up_after_the_last_try_with_a_log_line_and_an_audit_event(
    personas, webhook, eager, caplog, monkeypatch
):
    monkeypatch.setattr(send_webhook, "max_retries", 2)
    plan = plan_over_a_new_cluster(personas["operator"], "west")
    webhook.answers.extend([503] * 10)

    with caplog.at_level(logging.ERROR, logger="rollout.notify"):
        send_webhook.delay(notify.message("plan_paused", plan, reason="r"))

    assert len(webhook.received) == 3  # the first try and 2 more
    event = AuditEvent.objects.get(action="rollout.webhook_failed")
    assert event.after["tries"] == 3
    assert event.after["kind"] == "plan_paused"
    assert "503" in event.after["problem"]
    assert "not delivered after 3 tries" in caplog.text


@pytest.mark.django_db
def test_an_unreachable_receiver_is_tried_again_then_given_up(
    settings, personas, eager, monkeypatch
):
    monkeypatch.setattr(send_webhook, "max_retries", 1)
    # nobody listens; the path is the kind of secret chat webhooks carry
    settings.WAVEGATE_WEBHOOK_URL = f"http://127.0.0.1:{free_port()}/services/T0/B0/s3cr3t"
    plan = plan_over_a_new_cluster(personas["operator"], "west")

    send_webhook.delay(notify.message("plan_paused", plan))

    event = AuditEvent.objects.get(action="rollout.webhook_failed")
    assert event.after["tries"] == 2
    assert "ConnectionError reaching 127.0.0.1" in event.after["problem"]
    # The audit log (and so its exports) never holds the webhook's secret path.
    assert "s3cr3t" not in str(event.after)


@pytest.mark.slow
def test_a_real_worker_delivers_after_a_500_with_backoff(isolated_db, receiver, settings, tmp_path):
    settings.WAVEGATE_WEBHOOK_URL = receiver.url  # here, for announce; the worker reads its env
    worker = start_worker(
        isolated_db.url,
        tmp_path / "worker.log",
        {
            "WAVEGATE_WEBHOOK_URL": receiver.url,
            "WAVEGATE_WEBHOOK_SECRET": SECRET,
            "WAVEGATE_WEBHOOK_BACKOFF_SECONDS": "1",
        },
    )
    creator = make_user("operator", username="olga")
    try:
        with tasks_sent_to(worker):
            # Commits: its first wave awaits approval (delivered).
            plan = plan_over_a_new_cluster(creator, "west")
            wait_until(lambda: len(receiver.received) >= 1, 60, "the wave's announcement")
            receiver.answers.append(500)
            actions.pause_plan(plan, acting_user=creator, reason="by the book")  # commits
            wait_until(lambda: len(receiver.received) >= 3, 60, "the webhook's second try")
    finally:
        worker.process.stop()

    assert len(receiver.received) == 3, worker.process.log()[-3000:]
    awaiting, first, second = receiver.bodies()
    assert awaiting["kind"] == "wave_awaiting_approval"
    assert first == second
    assert first["kind"] == "plan_paused"
    assert first["plan"]["id"] == plan.pk
    assert first["reason"] == "Paused by olga: by the book"
    assert all(signed(headers, body) for headers, body in receiver.received)
    assert "Retry in" in worker.process.log()


@pytest.mark.django_db
def test_a_url_that_is_no_url_is_given_up_at_once(settings, personas, eager):
    settings.WAVEGATE_WEBHOOK_URL = "hooks.example.com/wavegate"  # no scheme
    plan = plan_over_a_new_cluster(personas["operator"], "west")

    send_webhook.delay(notify.message("plan_paused", plan))

    event = AuditEvent.objects.get(action="rollout.webhook_failed")
    assert event.after["tries"] == 1
    assert "not a usable URL" in event.after["problem"]
