"""`{{ n|count:"cluster" }}` → "1 cluster", "2 clusters": the one way pages put a number before
a noun (accounts/wording.py). A builtin (config/settings.py TEMPLATES): every template has it."""

from __future__ import annotations

from django import template

from accounts.wording import counted

register = template.Library()


@register.filter
def count(n: object, noun: str) -> str:
    """A value that is not a number is shown as it is, so a page never fails on it."""
    if isinstance(n, bool) or not isinstance(n, int):
        try:
            n = int(str(n))
        except ValueError:
            return f"{n} {noun.partition(',')[0]}"
    return counted(n, noun)


@register.filter
def state(value: object) -> str:
    """A state as stored ("rolling_back") in words ("Rolling back"), for pages that show a
    state recorded by another part of Wavegate (an audit event's after-image)."""
    text = str(value).replace("_", " ").strip()
    return text[:1].upper() + text[1:]
