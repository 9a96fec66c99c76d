"""ARM's and Resource Graph's request limits, as token buckets with Azure's sizes."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Limit:
    burst: float
    per_second: float


# ARM, per subscription and principal (shared/reference/aks-ebpf-host-routing.md).
ARM_LIMITS = {
    "reads": Limit(250, 25),
    "writes": Limit(200, 10),
    "deletes": Limit(200, 10),
}
# ARM, per subscription for every principal together: this many times the bucket above.
GLOBAL_FACTOR = 15


def global_limit(kind: str) -> Limit:
    """The subscription-wide bucket of a kind (reads 3,750 burst +375/s, writes 3,000 +150/s)."""
    limit = ARM_LIMITS[kind]
    return Limit(limit.burst * GLOBAL_FACTOR, limit.per_second * GLOBAL_FACTOR)


# Resource Graph: about 15 queries per 5 seconds per user.
GRAPH_LIMIT = Limit(15, 3)


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    remaining: int
    retry_after: int  # seconds until a token is back (when refused)
    resets_after: float  # seconds until the bucket is full again


class Buckets:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.lock = threading.Lock()
        self.levels: dict[tuple[str, ...], tuple[float, float]] = {}  # key -> (tokens, at)

    def take(self, key: tuple[str, ...], limit: Limit) -> Verdict:
        with self.lock:
            now = self.clock()
            tokens, at = self.levels.get(key, (limit.burst, now))
            tokens = min(limit.burst, tokens + (now - at) * limit.per_second)
            if tokens < 1:
                self.levels[key] = (tokens, now)
                wait = (1 - tokens) / limit.per_second
                return Verdict(
                    False, 0, max(1, math.ceil(wait)), (limit.burst - tokens) / limit.per_second
                )
            tokens -= 1
            self.levels[key] = (tokens, now)
            return Verdict(True, int(tokens), 0, (limit.burst - tokens) / limit.per_second)

    def clear(self) -> None:
        with self.lock:
            self.levels.clear()
