from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from config.celery_app import app as celery_app
from fleet.choices import SyncTrigger
from fleet.sync import run_sync
from tests.aksim_server import Aksim

SECRET = "webhook secret"


@pytest.fixture
def fleet(wavegate_on_aksim: Aksim, settings) -> Aksim:
    """The test fleet in aksim, synced into Wavegate, with quick preflight scans."""
    settings.WAVEGATE_SCAN_POLL_SECONDS = 0.05
    settings.WAVEGATE_SCAN_DEADLINE_SECONDS = 5.0
    # Tests here drive the engine by running ticks: a step's scheduled next turn is sent by
    # the next tick once due (an eager run cannot wait for its countdown).
    settings.WAVEGATE_STEP_GRACE_SECONDS = 0
    assert run_sync(SyncTrigger.COMMAND).status == "succeeded"
    return wavegate_on_aksim


@dataclass
class Receiver:
    """A webhook receiver: answers each POST with the next status of `answers` (then 200)."""

    url: str
    answers: list[int] = field(default_factory=list)
    said: bytes = b""  # the body of each answer
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)

    def bodies(self) -> list[dict]:
        return [json.loads(body) for _, body in self.received]


@pytest.fixture
def serve() -> Iterator[Callable[[str], Receiver]]:
    """Start a receiver at `path` on a free port of 127.0.0.1: each POST is kept and answered
    with the next of its `answers` (then 200)."""
    servers: list[ThreadingHTTPServer] = []

    def start(path: str) -> Receiver:
        lock = threading.Lock()
        box: list[Receiver] = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with lock:
                    box[0].received.append((dict(self.headers), body))
                    status = box[0].answers.pop(0) if box[0].answers else 200
                self.send_response(status)
                self.send_header("Content-Length", str(len(box[0].said)))
                self.end_headers()
                self.wfile.write(box[0].said)

            def log_message(self, *args: object) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)  # a free port
        box.append(Receiver(f"http://127.0.0.1:{server.server_port}{path}"))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return box[0]

    try:
        yield start
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()


@pytest.fixture
def receiver(serve: Callable[[str], Receiver]) -> Receiver:
    return serve("/hooks/wavegate")


@pytest.fixture
def webhook(settings, receiver) -> Receiver:
    settings.WAVEGATE_WEBHOOK_URL = receiver.url
    settings.WAVEGATE_WEBHOOK_SECRET = SECRET
    settings.WAVEGATE_PUBLIC_URL = "https://wavegate.example.com/"
    return receiver


@pytest.fixture
def eager() -> Iterator[None]:
    """Tasks sent with .delay() run here and now; retries too, without their wait."""
    before = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    try:
        yield
    finally:
        celery_app.conf.task_always_eager = before
