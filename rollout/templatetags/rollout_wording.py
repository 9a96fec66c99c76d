"""`{{ approval.decision|decided }}` → "Approved" / "Rejected": what an approval did, in the
words of the wave states (rollout/outcomes.py), never a verb with a "d" glued on."""

from __future__ import annotations

from django import template

from rollout import outcomes

register = template.Library()


@register.filter
def decided(decision: str) -> str:
    return outcomes.decided(decision)
