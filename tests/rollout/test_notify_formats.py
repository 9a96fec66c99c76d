"""Notifications to several destinations (WAVEGATE_NOTIFY_DESTINATIONS), each in its format and
with the events it asked for: real plan moves are posted to real HTTP servers on 127.0.0.1 as a
Slack incoming webhook's Block Kit message and as the Adaptive Card message a Teams workflow
posts, checked against the shapes Slack and Microsoft document; one destination failing never
holds up another; our own format is still signed; a wrong setting is named at start-up."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
from dataclasses import dataclass
from html import unescape as html_unescape
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.urls import reverse
from markdown_it import MarkdownIt

from audit.models import AuditEvent
from rollout import actions, emergency, notify, reconcile
from rollout.choices import PlanStatus, TargetStatus, WaveStatus
from rollout.models import RolloutPlan
from rollout.tasks import send_webhook
from tests.factories import make_cluster, plan_over_a_new_cluster
from tests.rollout.conftest import Receiver
from tests.rollout.stepping import Sent

pytestmark = pytest.mark.django_db

SITE = "https://wavegate.example.com"
# The secret parts of chat webhook URLs: never in a log line or an audit event.
SLACK_PATH = "/services/T0001/B0001/sl4ck-s3cret"
TEAMS_PATH = "/workflows/abc/triggers/manual/paths/invoke?sig=t34ms-s3cret"


# --- a small JSON-schema-like check ------------------------------------------------------------
@dataclass(frozen=True)
class Text:
    """A string of at most `limit` characters."""

    limit: int | None = None


@dataclass(frozen=True)
class Const:
    value: Any


@dataclass(frozen=True)
class ListOf:
    item: Any
    least: int = 1
    most: int | None = None


@dataclass(frozen=True)
class OneOf:
    choices: tuple[Any, ...]


@dataclass(frozen=True)
class Maybe:
    schema: Any


def problems(value: Any, schema: Any, at: str = "$") -> list[str]:
    """Where `value` differs from `schema`: a dict's keys are required unless Maybe, and no
    other key is allowed (Slack refuses a block with a field it does not know)."""
    if isinstance(schema, Const):
        return [] if value == schema.value else [f"{at}: {value!r} is not {schema.value!r}"]
    if isinstance(schema, Text):
        if not isinstance(value, str):
            return [f"{at}: {value!r} is not a string"]
        if schema.limit is not None and len(value) > schema.limit:
            return [f"{at}: {len(value)} characters, over {schema.limit}"]
        return []
    if schema is bool:
        return [] if isinstance(value, bool) else [f"{at}: {value!r} is not a boolean"]
    if isinstance(schema, ListOf):
        if not isinstance(value, list):
            return [f"{at}: {value!r} is not a list"]
        found = []
        if len(value) < schema.least or (schema.most is not None and len(value) > schema.most):
            found.append(f"{at}: {len(value)} items")
        for i, item in enumerate(value):
            found += problems(item, schema.item, f"{at}[{i}]")
        return found
    if isinstance(schema, OneOf):
        tried = [problems(value, choice, at) for choice in schema.choices]
        return [] if any(not t for t in tried) else min(tried, key=len)
    if isinstance(schema, dict):
        if not isinstance(value, dict):
            return [f"{at}: {value!r} is not an object"]
        found = [f"{at}: unknown key {key!r}" for key in value if key not in schema]
        for key, inner in schema.items():
            if isinstance(inner, Maybe):
                if key in value:
                    found += problems(value[key], inner.schema, f"{at}.{key}")
            elif key not in value:
                found.append(f"{at}: missing {key!r}")
            else:
                found += problems(value[key], inner, f"{at}.{key}")
        return found
    raise AssertionError(f"no such schema: {schema!r}")


# Slack: an incoming webhook's message, its `text` the notification's fallback; a header's
# text at most 150 characters (plain_text), a section's at most 3,000, a button's label at most 75, its URL at most 3,000; at most
# 50 blocks, 10 context elements, 25 action elements (Block Kit reference).
SLACK_MRKDWN = {"type": Const("mrkdwn"), "text": Text(3000)}
SLACK_PLAIN = {"type": Const("plain_text"), "text": Text(3000), "emoji": Maybe(bool)}
SLACK_MESSAGE = {
    "text": Text(40000),
    "blocks": ListOf(
        OneOf(
            (
                {
                    "type": Const("header"),
                    "text": {"type": Const("plain_text"), "text": Text(150), "emoji": Maybe(bool)},
                },
                {"type": Const("section"), "text": OneOf((SLACK_MRKDWN, SLACK_PLAIN))},
                {
                    "type": Const("context"),
                    "elements": ListOf(OneOf((SLACK_MRKDWN, SLACK_PLAIN)), most=10),
                },
                {
                    "type": Const("actions"),
                    "elements": ListOf(
                        {
                            "type": Const("button"),
                            "text": {
                                "type": Const("plain_text"),
                                "text": Text(75),
                                "emoji": Maybe(bool),
                            },
                            "url": Text(3000),
                            "action_id": Text(255),
                        },
                        most=25,
                    ),
                },
            )
        ),
        most=50,
    ),
}
# Teams: the "message with an Adaptive Card" a workflow's "When a Teams webhook request is
# received" trigger takes (Microsoft Learn, connectors-using), a version-1.4 card.
TEXT_BLOCK = {
    "type": Const("TextBlock"),
    "text": Text(),
    "wrap": Maybe(bool),
    "weight": Maybe(OneOf((Const("Default"), Const("Lighter"), Const("Bolder")))),
    "size": Maybe(
        OneOf(tuple(Const(s) for s in ("Default", "Small", "Medium", "Large", "ExtraLarge")))
    ),
    "color": Maybe(
        OneOf(
            tuple(
                Const(c)
                for c in ("Default", "Dark", "Light", "Accent", "Good", "Warning", "Attention")
            )
        )
    ),
}
FACT_SET = {"type": Const("FactSet"), "facts": ListOf({"title": Text(), "value": Text()})}
TEAMS_MESSAGE = {
    "type": Const("message"),
    "attachments": ListOf(
        {
            "contentType": Const("application/vnd.microsoft.card.adaptive"),
            "contentUrl": Const(None),
            "content": {
                "$schema": Const("http://adaptivecards.io/schemas/adaptive-card.json"),
                "type": Const("AdaptiveCard"),
                "version": Const("1.4"),
                "body": ListOf(OneOf((TEXT_BLOCK, FACT_SET))),
                "actions": ListOf(
                    {"type": Const("Action.OpenUrl"), "title": Text(), "url": Text()}, most=1
                ),
            },
        },
        most=1,
    ),
}


def slack_said(body: dict) -> tuple[str, str]:
    """(what the channel shows: the header's line, then the section's; the button's URL) of a
    Slack message of the right shape. What people wrote is in plain_text, which Slack shows as
    written (mrkdwn has no escape for * _ ~); the fallback escapes Slack's three characters."""
    assert problems(body, SLACK_MESSAGE) == []
    blocks = {b["type"]: b for b in body["blocks"]}
    shown = [blocks["header"]["text"]["text"]]
    if "section" in blocks:
        assert blocks["section"]["text"]["type"] == "plain_text"
        shown.append(blocks["section"]["text"]["text"])
    for element in blocks.get("context", {}).get("elements", []):
        assert element["type"] == "plain_text"
    (button,) = blocks["actions"]["elements"]
    fallback = body["text"].removesuffix(f"<{button['url']}|{button['text']['text']}>")
    assert fallback != body["text"]
    assert not re.search(r"[<>]|&(?!amp;|lt;|gt;)", fallback), fallback
    return "\n".join(shown), button["url"]


MARKDOWN = MarkdownIt("commonmark")  # what Adaptive Cards render a subset of


def shown(text: str) -> str:
    """The text a card's reader sees: `text` rendered as CommonMark, its tags taken away."""
    html = MARKDOWN.render(text)
    return html_unescape(re.sub(r"<[^>]+>", "", html)).strip()


def teams_said(body: dict) -> tuple[str, dict[str, str], str]:
    """(the card's texts, its facts, its link) of a Teams message of the right shape."""
    assert problems(body, TEAMS_MESSAGE) == []
    card = body["attachments"][0]["content"]
    texts = "\n".join(b["text"] for b in card["body"] if b["type"] == "TextBlock")
    facts = {
        f["title"]: f["value"] for b in card["body"] if b["type"] == "FactSet" for f in b["facts"]
    }
    return texts, facts, card["actions"][0]["url"]


def test_the_shape_checks_catch_what_slack_and_teams_refuse():
    assert problems({"text": "x", "blocks": []}, SLACK_MESSAGE) == ["$.blocks: 0 items"]
    long = {"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}
    assert problems({"text": "x", "blocks": [long]}, SLACK_MESSAGE)
    header = {"type": "header", "text": {"type": "plain_text", "text": "x" * 151}}
    assert problems({"text": "x", "blocks": [header]}, SLACK_MESSAGE)
    odd = {"type": "section", "text": {"type": "mrkdwn", "text": "x"}, "colour": "red"}
    assert problems({"text": "x", "blocks": [odd]}, SLACK_MESSAGE)
    assert problems({"type": "message", "attachments": [{"contentType": "x"}]}, TEAMS_MESSAGE)


@pytest.fixture
def chats(settings, serve) -> tuple[Receiver, Receiver]:
    """A Slack channel and a Teams channel, told of everything."""
    slack, teams = serve(SLACK_PATH), serve(TEAMS_PATH)
    configure(
        settings,
        {"name": "ops-slack", "url": slack.url, "format": "slack"},
        {"name": "ops-teams", "url": teams.url, "format": "teams", "events": []},
    )
    return slack, teams


def configure(settings, *destinations: dict) -> None:
    settings.WAVEGATE_WEBHOOK_URL = ""
    settings.WAVEGATE_PUBLIC_URL = SITE + "/"
    settings.WAVEGATE_NOTIFY_DESTINATIONS = json.dumps(list(destinations))


def plan_page(plan: RolloutPlan) -> str:
    return f"{SITE}/plans/{plan.pk}/"


def kinds(receiver: Receiver) -> list[str]:
    return [headers["X-Wavegate-Event"] for headers, _ in receiver.received]


# --- what each format says ---------------------------------------------------------------------
def test_a_wave_awaiting_approval_reaches_slack_and_teams_linking_to_the_wave(
    personas, chats, eager, django_capture_on_commit_callbacks
):
    slack, teams = chats
    with django_capture_on_commit_callbacks(execute=True):
        plan = plan_over_a_new_cluster(personas["operator"], "west")

    wave_page = f"{plan_page(plan)}waves/1/"
    ((headers, _),) = slack.received
    assert headers["Content-Type"] == "application/json"
    assert headers["X-Wavegate-Event"] == "wave_awaiting_approval"
    assert "X-Wavegate-Signature" not in headers  # the URL is the secret: nothing to sign with
    section, link = slack_said(slack.bodies()[0])
    assert section.startswith(":raised_hand: Wave 1 of plan west awaits approval")
    assert link == wave_page
    assert slack.bodies()[0]["text"].startswith("Wave 1 of plan west awaits approval")

    texts, facts, link = teams_said(teams.bodies()[0])
    assert texts == "Wave 1 of plan west awaits approval"
    assert facts["Plan"] == "west"
    assert facts["Wave"] == "1"
    assert facts["Status"] == "Submitted"
    assert facts["When"].endswith(" UTC")
    assert link == wave_page


def test_a_pause_says_who_paused_and_why_escaped_for_slack(
    client_as, personas, chats, eager, django_capture_on_commit_callbacks
):
    slack, teams = chats
    plan = plan_over_a_new_cluster(personas["operator"], "west")
    slack.received.clear()
    teams.received.clear()

    with django_capture_on_commit_callbacks(execute=True):
        client_as("operator").post(
            reverse("rollout:plan_pause", kwargs={"pk": plan.pk}),
            {"comment": "freeze <until> R&D says go"},
        )

    section, link = slack_said(slack.bodies()[0])
    assert section.splitlines() == [
        ":double_vertical_bar: Plan west paused",
        "Paused by operator-user: freeze <until> R&D says go",
    ]
    assert link == plan_page(plan)
    texts, facts, link = teams_said(teams.bodies()[0])
    assert [shown(line) for line in texts.splitlines()] == [
        "Plan west paused",
        "Paused by operator-user: freeze <until> R&D says go",
    ]
    assert facts["Status"] == "Paused"
    assert link == plan_page(plan)


def test_slack_and_teams_show_markdown_in_a_reason_or_a_name_as_written(
    client_as, personas, chats, eager, django_capture_on_commit_callbacks
):
    slack, teams = chats
    name = "west_*eu*_[1]"
    cluster = make_cluster(name="aks-markdown")
    plan = plan_over_a_new_cluster(personas["operator"], name, selection={"names": [cluster.name]})
    slack.received.clear()
    teams.received.clear()
    reason = "see [the runbook](https://evil.example/) **now**\n- step 1\n2. step `two`"

    with django_capture_on_commit_callbacks(execute=True):
        client_as("operator").post(
            reverse("rollout:plan_pause", kwargs={"pk": plan.pk}), {"comment": reason}
        )

    # Slack shows it as written: what people wrote is plain_text, which Slack does not format.
    in_slack, _ = slack_said(slack.bodies()[0])
    assert in_slack.splitlines() == [
        f":double_vertical_bar: Plan {name} paused",
        *f"Paused by operator-user: {reason}".splitlines(),
    ]
    card = teams.bodies()[0]["attachments"][0]["content"]
    texts = [b["text"] for b in card["body"] if b["type"] == "TextBlock"]
    facts = {
        f["title"]: f["value"] for b in card["body"] if b["type"] == "FactSet" for f in b["facts"]
    }
    # What a card shows: a reader sees the words, never a link, emphasis, a list or code.
    assert [shown(text) for text in texts] == [
        f"Plan {name} paused",
        f"Paused by operator-user: {reason}",
    ]
    assert shown(facts["Plan"]) == name
    for text in [*texts, *facts.values()]:
        html = MARKDOWN.render(text)
        assert not re.search(r"<(?!/?p>|br ?/?>)", html), html


def test_a_long_reason_is_cut_within_slacks_and_teams_limits(
    personas, chats, eager, django_capture_on_commit_callbacks
):
    slack, teams = chats
    plan = plan_over_a_new_cluster(personas["operator"], "west")
    slack.received.clear()
    teams.received.clear()

    with django_capture_on_commit_callbacks(execute=True):
        actions.pause_plan(plan, acting_user=personas["operator"], reason="a&b " * 10_000)

    body = slack.bodies()[0]
    slack_said(body)  # its shape holds the 3,000 characters of a section and of the fallback
    section = next(b for b in body["blocks"] if b["type"] == "section")["text"]["text"]
    assert len(section) == 3000
    assert section.startswith("Paused by operator-user: a&b a&b")
    assert section.endswith("…")
    assert not re.search(r"&[a-z]*…", body["text"])  # cut between entities, never inside one
    # Teams takes messages of at most 28 KB.
    ((_, sent),) = teams.received
    assert len(sent) < 28 * 1024
    texts, _, _ = teams_said(json.loads(sent))
    reason = shown(texts.splitlines()[1])
    assert reason.startswith("Paused by operator-user: a&b a&b")
    assert reason.endswith("…")
    assert len(reason) == 3000


def test_the_emergency_stop_and_its_lifting_are_announced_once_each(
    personas, chats, eager, django_capture_on_commit_callbacks
):
    slack, teams = chats
    west = plan_over_a_new_cluster(personas["operator"], "west")
    slack.received.clear()
    teams.received.clear()

    with django_capture_on_commit_callbacks(execute=True):
        emergency.stop_everything(acting_user=personas["admin"], reason="incident 42")
    with django_capture_on_commit_callbacks(execute=True):
        emergency.lift(acting_user=personas["admin"], reason="all clear")

    assert kinds(slack) == ["emergency_stop", "plan_paused", "emergency_stop_lifted"]
    assert kinds(teams) == kinds(slack)
    stop_page = f"{SITE}{reverse('rollout:emergency_stop')}"
    stopped, paused, lifted = slack.bodies()
    section, link = slack_said(stopped)
    assert section.splitlines() == [
        ":octagonal_sign: Emergency stop: no rollout starts or resumes",
        "Stopped by admin-user: incident 42. Paused 1 plan (west). Clusters being changed: 0 "
        "(they finish); not started: 1 (they wait).",
    ]
    assert link == stop_page
    assert "emergency stop: incident 42" in slack_said(paused)[0]
    section, link = slack_said(lifted)
    assert section.splitlines()[1] == (
        "Lifted by admin-user: all clear. Plans still paused: 1 (an operator resumes each)."
    )
    texts, facts, link = teams_said(teams.bodies()[0])
    assert texts.startswith("Emergency stop: no rollout starts or resumes\nStopped by admin-user")
    assert "Plan" not in facts
    assert link == stop_page
    west.refresh_from_db()
    assert west.status == PlanStatus.PAUSED


def test_an_aborted_and_a_rejected_plan_say_what_they_did(
    personas, chats, eager, django_capture_on_commit_callbacks
):
    slack, teams = chats
    aborted = plan_over_a_new_cluster(personas["operator"], "west")
    rejected = plan_over_a_new_cluster(personas["operator"], "east")
    slack.received.clear()
    teams.received.clear()

    with django_capture_on_commit_callbacks(execute=True):
        actions.abort_plan(aborted, acting_user=personas["operator"], reason="wrong clusters")
    with django_capture_on_commit_callbacks(execute=True):
        actions.reject_wave(
            rejected.waves.get(index=1), acting_user=personas["approver"], comment="not today"
        )

    assert kinds(slack) == ["plan_aborted", "plan_rejected"]
    section, link = slack_said(slack.bodies()[0])
    assert section.splitlines() == [
        ":no_entry_sign: Plan west aborted",
        "Aborted by operator-user: wrong clusters",
        "Aborted: 1 cluster skipped",
    ]
    assert link == plan_page(aborted)
    section, link = slack_said(slack.bodies()[1])
    assert section.splitlines()[:2] == [
        ":x: Plan east rejected at wave 1",
        "Wave 1 rejected by approver-user: not today",
    ]
    assert link == f"{plan_page(rejected)}waves/1/"
    _, facts, _ = teams_said(teams.bodies()[0])
    assert facts["Outcome"] == "Aborted: 1 cluster skipped"
    assert facts["Status"] == "Aborted"


def test_a_completed_plan_says_its_outcome(
    personas, chats, eager, django_capture_on_commit_callbacks
):
    slack, teams = chats
    plan = plan_over_a_new_cluster(personas["operator"], "west")
    # Its one wave done with its cluster changed: the reconciler completes the plan.
    plan.targets.update(status=TargetStatus.ENABLED)
    plan.waves.update(status=WaveStatus.DONE)
    RolloutPlan.objects.filter(pk=plan.pk).update(status=PlanStatus.RUNNING)
    slack.received.clear()
    teams.received.clear()

    with django_capture_on_commit_callbacks(execute=True):
        reconcile.reconcile_plan(plan.pk, Sent())

    plan.refresh_from_db()
    assert plan.status == PlanStatus.COMPLETED
    section, link = slack_said(slack.bodies()[0])
    assert section.splitlines() == [
        ":white_check_mark: Plan west completed",
        "Completed: 1 cluster enabled",
    ]
    assert link == plan_page(plan)
    texts, facts, _ = teams_said(teams.bodies()[0])
    assert texts == "Plan west completed"
    assert facts["Outcome"] == "Completed: 1 cluster enabled"
    card = teams.bodies()[0]["attachments"][0]["content"]
    assert card["body"][0]["color"] == "Good"


# --- which destination hears what --------------------------------------------------------------
def test_each_destination_hears_only_the_events_it_asked_for(
    settings, serve, personas, eager, django_capture_on_commit_callbacks
):
    pauses, budget, ends, everything = (serve(f"/{n}") for n in ("p", "b", "e", "all"))
    configure(
        settings,
        {"name": "pauses", "url": pauses.url, "format": "slack", "events": ["plan_paused"]},
        {
            "name": "budget",
            "url": budget.url,
            "format": "teams",
            "events": ["failure_budget_exceeded"],
        },
        {"name": "ends", "url": ends.url, "format": "wavegate", "events": ["plan_aborted"]},
        {"name": "all", "url": everything.url, "format": "wavegate"},
    )
    with django_capture_on_commit_callbacks(execute=True):
        west = plan_over_a_new_cluster(personas["operator"], "west", failure_budget="0")
    # Its wave running, its one cluster failed: over a budget of 0, the reconciler pauses it.
    west.waves.update(status=WaveStatus.RUNNING)
    west.targets.update(status=TargetStatus.FAILED)
    RolloutPlan.objects.filter(pk=west.pk).update(status=PlanStatus.RUNNING)
    with django_capture_on_commit_callbacks(execute=True):
        reconcile.reconcile_plan(west.pk, Sent())
    with django_capture_on_commit_callbacks(execute=True):
        actions.abort_plan(west, acting_user=personas["operator"], reason="enough")

    assert kinds(everything) == ["wave_awaiting_approval", "plan_paused", "plan_aborted"]
    assert kinds(pauses) == ["plan_paused"]  # a pause for the budget is a pause
    assert kinds(budget) == ["plan_paused"]
    assert kinds(ends) == ["plan_aborted"]
    paused = everything.bodies()[1]
    assert paused["cause"] == "failure_budget_exceeded"
    assert paused["wave"] == 1
    texts, facts, link = teams_said(budget.bodies()[0])
    assert texts.startswith("Plan west paused: wave 1 is over its failure budget\nWave 1: 1 failed")
    assert facts["Wave"] == "1"
    assert link == f"{plan_page(west)}waves/1/"
    section, _ = slack_said(pauses.bodies()[0])
    assert section.startswith(":rotating_light: Plan west paused: wave 1 is over its failure")


def test_a_failing_destination_does_not_hold_up_another(
    settings, serve, personas, eager, caplog, monkeypatch, django_capture_on_commit_callbacks
):
    monkeypatch.setattr(send_webhook, "max_retries", 1)
    slack, teams = serve(SLACK_PATH), serve(TEAMS_PATH)
    slack.answers.extend([500] * 10)
    configure(
        settings,
        {"name": "ops-slack", "url": slack.url, "format": "slack"},
        {"name": "ops-teams", "url": teams.url, "format": "teams"},
    )

    with caplog.at_level(logging.DEBUG), django_capture_on_commit_callbacks(execute=True):
        plan = plan_over_a_new_cluster(personas["operator"], "west")

    assert len(slack.received) == 2  # tried once more, then given up
    assert len(teams.received) == 1  # delivered at once
    event = AuditEvent.objects.get(action="rollout.webhook_failed")
    assert event.object_id == str(plan.pk)
    assert event.after["destination"] == "ops-slack"
    assert event.after["tries"] == 2
    assert event.after["problem"] == "destination 'ops-slack' answered 500"
    assert "destination ops-slack" in caplog.text
    # A chat webhook's path is its secret: in no log line, no audit event.
    for secret in ("sl4ck-s3cret", "t34ms-s3cret"):
        assert secret not in caplog.text
        assert secret not in str(event.after)


def test_our_own_format_is_signed_with_the_destinations_secret_and_the_old_webhook_hears_as_before(
    settings, serve, receiver, personas, eager, django_capture_on_commit_callbacks
):
    ours = serve("/hooks/incidents")
    configure(
        settings,
        {"name": "incidents", "url": ours.url, "format": "wavegate", "secret": "s1"},
    )
    settings.WAVEGATE_WEBHOOK_URL = receiver.url  # the destination "webhook", as before
    settings.WAVEGATE_WEBHOOK_SECRET = "s0"

    with django_capture_on_commit_callbacks(execute=True):
        plan = plan_over_a_new_cluster(personas["operator"], "west")
    with django_capture_on_commit_callbacks(execute=True):
        actions.abort_plan(plan, acting_user=personas["operator"], reason="enough")

    # WAVEGATE_WEBHOOK_URL is told only what it always was: not of the abort.
    assert [b["kind"] for b in receiver.bodies()] == ["wave_awaiting_approval"]
    assert [b["kind"] for b in ours.bodies()] == ["wave_awaiting_approval", "plan_aborted"]
    for target, secret in ((receiver, "s0"), (ours, "s1")):
        for headers, body in target.received:
            expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
            assert headers["X-Wavegate-Signature"] == expected
    assert receiver.bodies()[0]["delivery"] == ours.bodies()[0]["delivery"]
    aborted = ours.bodies()[1]
    assert aborted["plan"] == {
        "id": plan.pk,
        "name": "west",
        "status": "aborted",
        "url": plan_page(plan),
    }
    assert aborted["reason"] == "Aborted by operator-user: enough"
    assert aborted["outcome"] == {
        "headline": "Aborted",
        "tone": "bad",
        "detail": "1 cluster skipped",
    }


def test_a_destination_dropped_from_the_setting_is_given_up(settings, personas, eager):
    configure(settings)
    plan = plan_over_a_new_cluster(personas["operator"], "west")

    send_webhook.delay(notify.message("plan_paused", plan), "gone")

    event = AuditEvent.objects.get(action="rollout.webhook_failed")
    assert event.after["destination"] == "gone"
    assert event.after["problem"] == "destination 'gone' is not configured any more"


# --- the setting, checked at start-up ----------------------------------------------------------
def check_errors() -> str:
    with pytest.raises(SystemCheckError) as caught:
        call_command("check")
    return str(caught.value)


def test_a_wrong_destination_is_named_at_start_up_without_its_url(settings):
    configure(
        settings,
        {"name": "ops-slack", "url": "https://hooks.slack.com" + SLACK_PATH, "format": "slak"},
        {"name": "ops-teams", "url": "teams.example.com" + TEAMS_PATH, "format": "teams"},
        {
            "name": "pager",
            "url": "https://pager.example.com/",
            "format": "wavegate",
            "events": ["plan_exploded"],
            "evnts": [],
        },
        {"name": "chat", "url": "https://chat.example.com/", "format": "slack", "secret": "x"},
        {"name": "chat", "url": "https://chat.example.com/", "format": "teams"},
    )

    said = check_errors()

    assert (
        "destination 'ops-slack': format must be one of wavegate, slack, teams, not 'slak'." in said
    )
    assert (
        "destination 'ops-teams': url must be an http:// or https:// address with a host." in said
    )
    assert "destination 'pager': unknown event 'plan_exploded'; the events are" in said
    assert "destination 'pager': unknown field 'evnts'" in said
    assert "destination 'chat': a secret is only for format wavegate" in said
    assert "destination 'chat': the name is taken by another destination." in said
    assert "rollout.E001" in said
    for secret in ("sl4ck-s3cret", "t34ms-s3cret"):
        assert secret not in said


@pytest.mark.parametrize(
    ("value", "said"),
    [
        ("[{", "WAVEGATE_NOTIFY_DESTINATIONS is not JSON: Expecting property name"),
        ('{"name": "x"}', "WAVEGATE_NOTIFY_DESTINATIONS must be a JSON list of destinations."),
        ('["x"]', "WAVEGATE_NOTIFY_DESTINATIONS: entry 1 is not an object."),
        ('[{"url": "https://x.example.com/"}]', "entry 1 has no name."),
    ],
)
def test_a_setting_that_is_not_a_list_of_destinations_is_named(settings, value, said):
    configure(settings)
    settings.WAVEGATE_NOTIFY_DESTINATIONS = value

    assert said in check_errors()


def test_the_old_webhook_url_is_checked_too_and_a_good_setting_passes(settings):
    configure(settings, {"name": "webhook", "url": "https://a.example.com/", "format": "slack"})
    settings.WAVEGATE_WEBHOOK_URL = "hooks.example.com/wavegate"

    said = check_errors()

    assert "WAVEGATE_WEBHOOK_URL: must be an http:// or https:// address with a host." in said
    assert "destination 'webhook': the name is taken by WAVEGATE_WEBHOOK_URL." in said

    settings.WAVEGATE_WEBHOOK_URL = ""
    call_command("check")  # no error
