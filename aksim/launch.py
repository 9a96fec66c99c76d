"""Start `python -m aksim serve` as a child process and wait until it listens: the one way the
demo, the tests and the benchmarks bring a simulator up."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def serve_command(
    fleet: Path, state_dir: Path, *, time_scale: float = 1.0, python: str = sys.executable
) -> tuple[list[str], Path]:
    """The command line serving `fleet` on a free port, and the ready file it will write."""
    ready = state_dir / "ready.json"
    ready.unlink(missing_ok=True)
    argv = [
        python, "-m", "aksim", "serve", "--fleet", str(fleet), "--port", "0",
        "--time-scale", str(time_scale), "--ready-file", str(ready), "--state-dir", str(state_dir),
    ]  # fmt: skip
    return argv, ready


def wait_ready(ready: Path, alive: Callable[[], bool], timeout: float = 60) -> dict[str, Any]:
    """The ready file's content ({endpoint, ca, port, clusters}) once the server listens.

    Raises RuntimeError when the process stops or `timeout` seconds pass first.
    """
    deadline = time.monotonic() + timeout
    while not ready.exists():
        if not alive():
            raise RuntimeError("aksim stopped during start-up")
        if time.monotonic() > deadline:
            raise RuntimeError(f"aksim did not listen within {timeout:.0f} s")
        time.sleep(0.1)
    return dict(json.loads(ready.read_text()))
