"""What the browser tests share: Debian's Chromium and its flags, the app under gunicorn, and
signing in through the real login page."""

from __future__ import annotations

import contextlib
import os
import socket
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from playwright.sync_api import Page

from tests.processes import BIN, Process, free_port, wait_until

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@contextlib.contextmanager
def serve(database_url: str, tmp_path: Path, **extra_env: str) -> Iterator[str]:
    """The app under gunicorn on a free port, on the given database; its base URL."""
    port = free_port()
    env = dict(
        os.environ,
        DATABASE_URL=database_url,
        WAVEGATE_VAR_DIR=str(tmp_path / "var"),
        DJANGO_SECRET_KEY="browser-test-" + "k" * 40,
        # Plain HTTP on 127.0.0.1, as the demo: no Secure cookies.
        DJANGO_SECURE_COOKIES="false",
        **extra_env,
    )
    argv = [str(BIN / "gunicorn"), "config.wsgi:application", "--bind", f"127.0.0.1:{port}"]
    argv += ["--workers", "2", "--access-logfile", "-"]
    # Gunicorn's default control socket is one path for every gunicorn on the machine.
    argv += ["--no-control-socket"]
    process = Process("gunicorn", argv, env, tmp_path / "gunicorn.log").start()
    base = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        if not process.running():
            return True
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) != 0:
                return False
        try:
            urllib.request.urlopen(base + "/accounts/login/", timeout=5).close()
        except OSError:  # refused, or accepted but not answered yet: a worker still booting
            return False
        return True

    try:
        wait_until(answers, 60, "gunicorn to serve the sign-in page", interval=0.2)
        assert process.running(), process.log()
        yield base
    finally:
        process.stop()


def sign_in(page: Page, server: str, user: dict[str, str]) -> None:
    page.goto(server + "/accounts/login/")
    page.fill("#id_username", user["username"])
    page.fill("#id_password", user["password"])
    page.click("button:has-text('Sign in')")
    page.wait_for_url(server + "/")
