"""Warn every signed-in user, on every page, while beat has found the audit chain broken."""

from __future__ import annotations

from django.core.cache import cache
from django.http import HttpRequest

from audit.verification import BANNER_CACHE_KEY, chain_broken

CACHE_SECONDS = 10


def chain_banner(request: HttpRequest) -> dict[str, object]:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    found = cache.get(BANNER_CACHE_KEY)
    if found is None:
        watch = chain_broken()
        found = (
            {"seq": watch.broken_seq, "reason": watch.broken_reason, "since": watch.broken_since}
            if watch
            else {}
        )
        cache.set(BANNER_CACHE_KEY, found, CACHE_SECONDS)
    return {"audit_chain_broken": found} if found else {}
