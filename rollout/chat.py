"""An announcement (rollout/notify.py `message`) as a chat message: a Slack incoming webhook's
Block Kit message, or the Adaptive Card a Teams workflow ("When a Teams webhook request is
received", then "Post card in a chat or channel") posts. Both say what happened, to which plan
and wave, why, and link to the page to look at."""

from __future__ import annotations

import datetime
import re
from typing import Any

from rollout.choices import PlanStatus
from rollout.destinations import FAILURE_BUDGET_EXCEEDED

# Slack's documented limits: a section's text, a text object in a context block, a button's
# label; the message's own `text` may be longer, but it is only the notification's fallback.
SECTION_TEXT_LIMIT = 3000
HEADER_TEXT_LIMIT = 150
BUTTON_TEXT_LIMIT = 75
ADAPTIVE_CARD = "application/vnd.microsoft.card.adaptive"
ADAPTIVE_CARD_SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"
ADAPTIVE_CARD_VERSION = "1.4"  # what Teams renders on every client

# How each kind looks: Slack's emoji, the Adaptive Card's colour for its headline.
LOOKS: dict[str, tuple[str, str]] = {
    "wave_awaiting_approval": (":raised_hand:", "Warning"),
    "plan_paused": (":double_vertical_bar:", "Attention"),
    FAILURE_BUDGET_EXCEEDED: (":rotating_light:", "Attention"),
    "plan_completed": (":white_check_mark:", "Good"),
    "plan_aborted": (":no_entry_sign:", "Attention"),
    "plan_rejected": (":x:", "Attention"),
    "emergency_stop": (":octagonal_sign:", "Attention"),
    "emergency_stop_lifted": (":arrow_forward:", "Good"),
}
# A completed plan whose outcome is not what it was for.
COMPLETED_BADLY = (":warning:", "Warning")


def title(payload: dict[str, Any]) -> str:
    """What happened and to what, in one line of plain text."""
    kind, wave = payload.get("kind"), payload.get("wave")
    name = (payload.get("plan") or {}).get("name", "")
    at_wave = f" at wave {wave}" if wave is not None else ""
    if kind == "wave_awaiting_approval":
        return f"Wave {wave} of plan {name} awaits approval"
    if kind == "plan_paused" and payload.get("cause") == FAILURE_BUDGET_EXCEEDED:
        return f"Plan {name} paused: wave {wave} is over its failure budget"
    if kind == "plan_paused":
        return f"Plan {name} paused{at_wave}"
    if kind == "plan_completed":
        return f"Plan {name} completed"
    if kind == "plan_aborted":
        return f"Plan {name} aborted"
    if kind == "plan_rejected":
        return f"Plan {name} rejected{at_wave}"
    if kind == "emergency_stop":
        return "Emergency stop: no rollout starts or resumes"
    if kind == "emergency_stop_lifted":
        return "Emergency stop lifted"
    return str(kind)


def facts(payload: dict[str, Any]) -> list[tuple[str, str]]:
    """The announcement's particulars, each a (label, value)."""
    plan = payload.get("plan") or {}
    found: list[tuple[str, str]] = []
    if plan:
        found.append(("Plan", str(plan.get("name", ""))))
    if payload.get("wave") is not None:
        found.append(("Wave", str(payload["wave"])))
    if plan.get("status") in PlanStatus.values:
        found.append(("Status", str(PlanStatus(plan["status"]).label)))
    outcome = payload.get("outcome")
    if outcome:
        found.append(("Outcome", f"{outcome['headline']}: {outcome['detail']}"))
    when = _when(payload.get("time"))
    if when:
        found.append(("When", when))
    return found


def link_label(payload: dict[str, Any]) -> str:
    if payload.get("wave") is not None:
        return f"Open wave {payload['wave']}"
    if payload.get("plan"):
        return "Open the plan"
    return "Open the emergency stop"


def _when(time: Any) -> str:
    try:
        at = datetime.datetime.fromisoformat(str(time))
    except ValueError:
        return ""
    return f"{at.astimezone(datetime.UTC):%Y-%m-%d %H:%M} UTC"


def _looks(payload: dict[str, Any]) -> tuple[str, str]:
    kind = payload.get("kind", "")
    if kind == "plan_paused" and payload.get("cause") == FAILURE_BUDGET_EXCEEDED:
        kind = FAILURE_BUDGET_EXCEEDED
    if kind == "plan_completed" and (payload.get("outcome") or {}).get("tone") != "ok":
        return COMPLETED_BADLY
    return LOOKS.get(kind, ("", "Default"))


# --- Slack -------------------------------------------------------------------------------------
def escape(text: str) -> str:
    """Slack's three control characters as the entities its docs ask for, and nothing else."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def clip(text: str, limit: int) -> str:
    """At most `limit` characters, an ellipsis where it was cut, never half an entity."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    amp = cut.rfind("&")
    if amp != -1 and ";" not in cut[amp:]:
        cut = cut[:amp]
    return cut + "…"


def cut(text: str, limit: int) -> str:
    """At most `limit` characters, an ellipsis where it was cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def slack(payload: dict[str, Any]) -> dict[str, Any]:
    """A Slack incoming webhook's message: `text` for notifications, `blocks` for the channel.

    Slack's mrkdwn has no escape for `*`, `_`, `~` or a backquote, so what people wrote (plan
    names, reasons) is shown in plain_text blocks: a header saying what happened, a section
    saying why, a context line with the particulars."""
    headline, reason, url, label = (
        title(payload),
        str(payload.get("reason") or ""),
        str(payload.get("url") or ""),
        link_label(payload),
    )
    emoji, _ = _looks(payload)
    lines = [reason] if reason else []
    outcome = payload.get("outcome")
    if outcome:
        lines.append(f"{outcome['headline']}: {outcome['detail']}")
    # The outcome is in the section already: the context line gives the rest.
    particulars = " · ".join(
        f"{name}: {value}" for name, value in facts(payload) if name != "Outcome"
    )
    fallback = ": ".join(
        [headline, *([reason] if reason else []), *([outcome["headline"]] if outcome else [])]
    )
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {
                "type": "plain_text",
                "text": cut(f"{emoji} {headline}".strip(), HEADER_TEXT_LIMIT),
                "emoji": True,
            },
        }
    ]
    if lines:
        blocks.append(
            {
                "type": "section",
                "text": {
                    "type": "plain_text",
                    "text": cut("\n".join(lines), SECTION_TEXT_LIMIT),
                    "emoji": False,
                },
            }
        )
    if particulars:
        blocks.append(
            {
                "type": "context",
                "elements": [
                    {
                        "type": "plain_text",
                        "text": cut(particulars, SECTION_TEXT_LIMIT),
                        "emoji": False,
                    }
                ],
            }
        )
    blocks.append(
        {
            "type": "actions",
            "elements": [
                {
                    "type": "button",
                    "text": {"type": "plain_text", "text": cut(label, BUTTON_TEXT_LIMIT)},
                    "url": url,
                    "action_id": "wavegate-open",
                }
            ],
        }
    )
    # The fallback (notifications, clients without blocks) keeps its link whole.
    link = f"<{url}|{escape(label)}>" if url else ""
    text = clip(escape(fallback), SECTION_TEXT_LIMIT - len(link) - 1)
    return {"text": f"{text} {link}".strip(), "blocks": blocks}


# --- Microsoft Teams ---------------------------------------------------------------------------
# Adaptive Cards render a subset of CommonMark in TextBlocks and facts (bold, italic, lists,
# links): a reason or a plan name is text, so what would format is escaped with a backslash.
_MARKDOWN = re.compile(r"([\\`*_\[\]<>~])")
_LINE_MARKER = re.compile(r"^(\s*)([-+#>]|\d+(?=[.)]))", re.MULTILINE)


# A Teams message may be at most 28 KB: a reason (which has no maximum) and each fact are cut
# well within it, escaped Markdown included.
TEAMS_REASON_LIMIT = 3000
TEAMS_FACT_LIMIT = 500


def literal(text: str) -> str:
    """`text` as an Adaptive Card shows it: no link, emphasis or list made of its characters."""
    escaped = _MARKDOWN.sub(r"\\\1", text)
    # A line starting "- ", "+ ", "# ", "> " or "1. " would be a list, heading or quote.
    return _LINE_MARKER.sub(
        lambda m: m[1] + (m[2] + "\\" if m[2][0].isdigit() else "\\" + m[2]), escaped
    )


def teams(payload: dict[str, Any]) -> dict[str, Any]:
    """The "message with an Adaptive Card" a Teams workflow posts to its chat or channel."""
    _, colour = _looks(payload)
    body: list[dict[str, Any]] = [
        {
            "type": "TextBlock",
            "text": literal(title(payload)),
            "weight": "Bolder",
            "size": "Medium",
            "color": colour,
            "wrap": True,
        }
    ]
    if payload.get("reason"):
        reason = cut(str(payload["reason"]), TEAMS_REASON_LIMIT)
        body.append({"type": "TextBlock", "text": literal(reason), "wrap": True})
    particulars = facts(payload)
    if particulars:
        body.append(
            {
                "type": "FactSet",
                "facts": [
                    {"title": name, "value": literal(cut(value, TEAMS_FACT_LIMIT))}
                    for name, value in particulars
                ],
            }
        )
    card = {
        "$schema": ADAPTIVE_CARD_SCHEMA,
        "type": "AdaptiveCard",
        "version": ADAPTIVE_CARD_VERSION,
        "body": body,
        "actions": [
            {"type": "Action.OpenUrl", "title": link_label(payload), "url": payload.get("url")}
        ],
    }
    return {
        "type": "message",
        "attachments": [{"contentType": ADAPTIVE_CARD, "contentUrl": None, "content": card}],
    }
