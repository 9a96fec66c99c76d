"""The demo configuration (`make run`: SQLite, an embedded Redis, web, worker, beat) still works.

The suite runs on PostgreSQL; this test runs scripts/demo.py itself, as `make run` does, so the
embedded defaults cannot rot unnoticed.
"""

from __future__ import annotations

import http.cookiejar
import json
import os
import re
import signal
import ssl
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request

import pytest

from tests.processes import ROOT, wait_until


@pytest.fixture
def demo(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    env["WAVEGATE_VAR_DIR"] = str(tmp_path / "var")
    output = tmp_path / "demo.out"
    with output.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "scripts/demo.py", "--port", "0", "--redis", "embedded"],
            cwd=ROOT,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_until(
            lambda: "Press Ctrl-C" in output.read_text() or process.poll() is not None,
            180,
            "the demo to come up",
            interval=0.5,
        )
        text = output.read_text()
        assert process.poll() is None, text
        yield process, text, tmp_path / "var", output.read_text
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)
            process.wait(timeout=60)


class Browser:
    """Just enough of a browser: cookies, CSRF token, form posts."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def get(self, path: str) -> str:
        with self.opener.open(self.base + path, timeout=10) as response:
            return response.read().decode()

    def sign_in(self, username: str, password: str) -> str:
        page = self.get("accounts/login/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
        assert token, page
        data = urllib.parse.urlencode(
            {"username": username, "password": password, "csrfmiddlewaretoken": token.group(1)}
        ).encode()
        request = urllib.request.Request(
            self.base + "accounts/login/", data=data, headers={"Referer": self.base}
        )
        with self.opener.open(request, timeout=10) as response:
            return response.read().decode()


def test_the_demo_comes_up_on_sqlite_signs_in_and_runs_tasks(demo):
    process, text, var_dir, output = demo
    running = re.search(r"Wavegate is running at (http://127\.0\.0\.1:\d+/)", text)
    assert running, text
    base = running.group(1)
    logins = dict(re.findall(r"^\s+(viewer|operator|approver|auditor|admin)\s+(\S+)$", text, re.M))
    assert len(logins) == 5

    # The database is the demo's SQLite file, migrated.
    assert (var_dir / "wavegate.sqlite3").exists()

    # aksim serves the generated demo fleet over HTTPS that verifies with its own CA.
    simulated = re.search(r"Simulated Azure \(aksim\) at (https://127\.0\.0\.1:\d+)", text)
    assert simulated, text
    context = ssl.create_default_context(cafile=str(var_dir / "aksim" / "aksim-ca.pem"))
    with urllib.request.urlopen(simulated.group(1) + "/_aksim/healthz", context=context) as answer:
        assert json.load(answer)["clusters"] == 300
    # ... and syncs the inventory from it, in the background once the pages answer.
    wait_until(
        lambda: bool(re.search(r"inventory sync \d+ succeeded .*: 300 clusters in 6", output())),
        60,
        "the demo's inventory sync",
        interval=0.5,
    )

    # Healthy means the worker ran the heartbeat task through Redis and wrote it to SQLite; the
    # demo says when.
    wait_until(lambda: "/healthz is green" in output(), 60, "the worker", interval=0.5)
    with urllib.request.urlopen(base + "healthz", timeout=10) as response:
        health = json.load(response)
    assert health["status"] == "ok", health

    page = Browser(base).sign_in("approver", logins["approver"])
    assert 'data-testid="roles">Approver<' in page

    auditor = Browser(base)
    auditor.sign_in("auditor", logins["auditor"])
    assert "user.signed_in" in auditor.get("audit/")
    # Beat checks the chain, and signs its head outside the database, within a minute or two.
    wait_until(
        lambda: (
            "Intact." in (shown := auditor.get("audit/verify/"))
            and "The newest signed checkpoint covers events 1 to" in shown
        ),
        150,
        "beat to verify the audit chain and sign a checkpoint",
        interval=5,
    )
    assert (var_dir / "audit-checkpoints.jsonl").read_text().strip()

    os.killpg(process.pid, signal.SIGINT)
    assert process.wait(timeout=60) == 0
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(base + "healthz", timeout=3)
