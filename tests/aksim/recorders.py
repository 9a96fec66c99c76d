"""Things tests plug into the real Azure SDK clients to see what went over the wire."""

from __future__ import annotations

import threading

from azure.core.pipeline.policies import SansIOHTTPPolicy


class StatusRecorder(SansIOHTTPPolicy):
    """Sees every response, retries included (a per-retry policy)."""

    def __init__(self) -> None:
        self.statuses: list[int] = []
        self.lock = threading.Lock()

    def on_response(self, request, response):
        with self.lock:
            self.statuses.append(response.http_response.status_code)
