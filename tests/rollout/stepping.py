"""Driving the rollout engine by hand in tests: one target step by step until it settles, one
reconciler tick at a time, and a reconciler `send` that records what it was asked to step."""

from __future__ import annotations

import time

from rollout import engine, tasks
from rollout.models import RolloutTarget

SETTLED = {"enabled", "failed", "blocked", "skipped", "rolled_back"}


def run_until_settled(target: RolloutTarget, steps: int = 400) -> list[str]:
    """Step `target` until it settles; every status it went through, in order."""
    seen = [target.status]
    for _ in range(steps):
        status = engine.advance(target.pk, go_on=False).status  # one step at a time, to see each
        if status != seen[-1]:
            seen.append(status)
        if status in SETTLED:
            return seen
        time.sleep(0.02)
    raise AssertionError(f"target stuck after {steps} steps: {seen}")


def run_tick() -> None:
    time.sleep(0.05)  # steps wait as Azure's Retry-After says: let time pass between ticks
    tasks.tick()  # eagerly: each step runs here, and its next when a later tick finds it due


class Sent(list):
    """A reconciler's `send` that records the target ids it was asked to step."""

    def __call__(self, target_id: int, turn: str) -> None:
        self.append(target_id)
