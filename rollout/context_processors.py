"""Put the rollout banner (rollout/banner.py) on every page; base.html shows it."""

from __future__ import annotations

from django.http import HttpRequest

from rollout.banner import Banner


def banner(request: HttpRequest) -> dict[str, object]:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {"rollout_banner": Banner(user)}
