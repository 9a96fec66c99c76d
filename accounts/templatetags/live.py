"""Live regions: the one way a page follows data that changes under the user.

A live region is an element that htmx replaces with a fresh copy of itself every few seconds
(`{% live_poll url %}` on it), and that says when it was last read (`{% live_updated %}`
inside it). The view that serves the region's copy decides whether that copy polls again: a
finished plan's cards, or the blockers once every scan has ended, carry no trigger, so the
polling stops by itself and the indicator says the figures are final. static/js/live.js keeps
a region as it is while someone types in it. A builtin (config/settings.py TEMPLATES).
"""

from __future__ import annotations

from django import template
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

register = template.Library()

DEFAULT_SECONDS = 3


@register.simple_tag
def live_poll(url: str, when: object = True, every: int = DEFAULT_SECONDS) -> SafeString:
    """The attributes that make the element a live region polling `url` every `every` seconds
    while `when` holds (else a live region that no longer polls)."""
    if not when:
        return mark_safe('data-live data-live-every="0"')  # no input in it
    return format_html(
        'data-live data-live-every="{}" hx-get="{}" hx-trigger="every {}s" hx-swap="outerHTML"',
        every,
        url,
        every,
    )


@register.simple_tag
def live_updated(
    when: object = True, every: int = DEFAULT_SECONDS, still: str = "no longer refreshing"
) -> SafeString:
    """ "Updated 14:03:07 UTC · refreshes every 3 s"; once the region stops polling, `still`
    says why ("finished: these figures are final")."""
    now = timezone.now()
    follows = format_html("refreshes every {} s", every) if when else still
    return format_html(
        '<p class="updated small" data-testid="updated">Updated <time datetime="{}">{}</time> UTC'
        " · {}</p>",
        now.isoformat(timespec="seconds"),
        now.strftime("%H:%M:%S"),
        follows,
    )
