"""Start-up checks of the rollout app's settings (`manage.py check`, which compose's migrate
runs before web, worker and beat start): every notification destination usable as written."""

from __future__ import annotations

from typing import Any

from django.core.checks import CheckMessage, Error

from rollout import destinations


def notify_destinations(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """One error per problem of WAVEGATE_NOTIFY_DESTINATIONS (or WAVEGATE_WEBHOOK_URL), each
    naming its destination; never a URL, whose path may be a chat webhook's secret."""
    return [
        Error(
            problem,
            hint=(
                'Each destination is {"name", "url", "format": '
                f'{" | ".join(destinations.FORMATS)}, "events": [...] (empty or absent: all), '
                '"secret" (format wavegate only)}. README: Environment variables.'
            ),
            id="rollout.E001",
        )
        for problem in destinations.read().problems
    ]
