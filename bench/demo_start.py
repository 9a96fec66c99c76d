"""`make run`'s start-up as its user sees it (issue 17: the first page within 15 s): seconds from
`make run` to the sign-in page's first 200 (PASS under 15 s), to the address and logins printed,
to the end of the inventory sync it starts and to /healthz green (the worker's heartbeat), on a
fresh checkout (no var/, no SQLite file, no bytecode) and on a second start of the same checkout.

Runs `make run` in a throwaway copy of this working tree with this checkout's installed .venv
(`make install` done: the "once installed" state), on a free port, its own Celery queue and its
own var/; stops it with Ctrl-C as a user would, and deletes the copy. Run by `make bench`.
`BENCH_DEMO_REDIS_URL` gives the Redis to use (else the demo finds one, as `make run` does).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_SECONDS = 15.0
# What a fresh checkout does not hold.
NOT_IN_A_CHECKOUT = shutil.ignore_patterns(
    ".git", ".venv", "var", "__pycache__", ".*_cache", ".hypothesis", "node_modules", "*.pyc"
)
SYNCED = re.compile(r"inventory sync \d+ succeeded")
HEALTHY = "/healthz is green"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def start_once(checkout: Path, env: dict[str, str], log: Path) -> dict[str, float]:
    """Start `make run` in `checkout`, time what its user waits for, then Ctrl-C it."""
    port = free_port()
    sign_in = f"http://127.0.0.1:{port}/accounts/login/"
    times: dict[str, float] = {}
    with log.open("wb") as sink:
        start = time.monotonic()
        make = subprocess.Popen(
            ["make", "--no-print-directory", "run", f"VENV={ROOT / '.venv'}"],
            cwd=checkout,
            env=dict(env, WAVEGATE_PORT=str(port)),
            stdout=sink,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        deadline = start + 300
        while not {"page", "banner", "synced", "healthy"} <= times.keys():
            now = time.monotonic()
            if make.poll() is not None or now > deadline:
                raise RuntimeError(f"make run stopped or hung:\n{log.read_text()[-3000:]}")
            text = log.read_text(errors="replace")
            if "page" not in times and answers(sign_in):
                times["page"] = time.monotonic() - start
            if "banner" not in times and "Press Ctrl-C" in text:
                times["banner"] = now - start
            if "synced" not in times and SYNCED.search(text):
                times["synced"] = now - start
            if "healthy" not in times and HEALTHY in text:
                times["healthy"] = now - start
            time.sleep(0.1)
    finally:
        if make.poll() is None:
            os.killpg(make.pid, signal.SIGINT)
            try:
                make.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(make.pid, signal.SIGKILL)
                make.wait()
    return times


def main() -> int:
    # `make run` would install into the .venv it is given if pyproject.toml changed since.
    pyproject = (ROOT / "pyproject.toml").read_bytes()
    installed = hashlib.sha1(pyproject, usedforsecurity=False).hexdigest()[:12]  # as Makefile
    if not (ROOT / ".venv" / f".installed-{installed}").exists():
        print("demo_start: the .venv is not installed for this pyproject.toml: make install")
        return 1
    scratch = Path(tempfile.mkdtemp(prefix="wavegate-demo-start-"))
    try:
        checkout = scratch / "wavegate"
        shutil.copytree(ROOT, checkout, ignore=NOT_IN_A_CHECKOUT, symlinks=True)
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in {"DATABASE_URL", "REDIS_URL", "WAVEGATE_VAR_DIR", "MAKEFLAGS", "MFLAGS"}
        }
        # Its own queue: a demo already running on this machine keeps its work to itself.
        env["CELERY_QUEUE"] = f"wavegate-demo-bench-{uuid.uuid4().hex[:8]}"
        if os.environ.get("BENCH_DEMO_REDIS_URL"):
            env["REDIS_URL"] = os.environ["BENCH_DEMO_REDIS_URL"]
        load = ", ".join(f"{n:.2f}" for n in os.getloadavg())
        print(
            f"make run in a fresh checkout, {os.cpu_count()} CPUs, load average {load}; "
            f"target: the first page in under {TARGET_SECONDS:.0f} s"
        )
        for name in ("first start", "second start"):
            times = start_once(checkout, env, scratch / f"{name.replace(' ', '-')}.log")
            verdict = "PASS" if times["page"] < TARGET_SECONDS else "MISS"
            print(
                f"{name}: sign-in page {times['page']:.1f} s ({verdict}), address and logins "
                f"printed {times['banner']:.1f} s, inventory sync done {times['synced']:.1f} s, "
                f"/healthz green {times['healthy']:.1f} s"
            )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
