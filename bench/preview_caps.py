"""The plan preview at its caps: cutting a plan over 10,000 clusters with the most name lines a
selection takes (WAVEGATE_PLAN_MAX_PATTERNS, of which WAVEGATE_PLAN_MAX_GLOBS hold wildcards,
each as long as WAVEGATE_PLAN_MAX_PATTERN_LENGTH allows), worst cases first: globs full of
stars that almost match every name. Target: under a second (issue 14 §6). For contrast, the
same cut with twenty times the globs the cap allows, which the form now refuses.
Run by `make bench`; needs no database (the preview's inventory read is the same at any cap).
"""

from __future__ import annotations

import os
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402

from rollout.planning import Candidate, Selection, cut  # noqa: E402

CLUSTERS = 10_000
TARGET_SECONDS = 1.0


def fleet() -> list[Candidate]:
    regions = ["westeurope", "northeurope", "eastus", "westus2"]
    return [
        Candidate(
            id=i,
            name=f"aks-prod-{i:05d}-{regions[i % 4]}-{i % 7}",
            subscription_id=f"sub-{i % 200:03d}",
            region=regions[i % 4],
            ring=("canary", "early", "broad")[i % 3],
            tags={"env": "prod"},
            eligible=True,
            preflight="clean",
        )
        for i in range(CLUSTERS)
    ]


def lines(globs: int, total: int, length: int, rng: random.Random) -> tuple[str, ...]:
    """`globs` star-heavy patterns (ten stars, padded to `length`) that keep a matcher busy on
    every name, then exact names up to `total`."""
    out = []
    for _ in range(globs):
        core = "*" + "*".join(rng.choices("aekoprsw-0123456789", k=10)) + "*"
        out.append((core + "x" * length)[:length] if rng.random() < 0.5 else core)
    out += [f"aks-prod-{i:05d}-westeurope-{i % 7}" for i in range(0, 4 * (total - globs), 4)]
    return tuple(out)


def timed(candidates: list[Candidate], names: tuple[str, ...], runs: int = 5) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        cut(candidates, Selection(names=names), "1, 5%, 25%, 100%")
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    rng = random.Random(14)  # noqa: S311 (made-up names, not secrets)
    candidates = fleet()
    most = settings.WAVEGATE_PLAN_MAX_PATTERNS
    globs = settings.WAVEGATE_PLAN_MAX_GLOBS
    length = settings.WAVEGATE_PLAN_MAX_PATTERN_LENGTH
    at_caps = timed(candidates, lines(globs, most, length, rng))
    exact = timed(candidates, lines(0, most, length, rng))
    over = timed(candidates, lines(20 * globs, 20 * globs, length, rng), runs=1)
    worst = max(at_caps)
    print(f"clusters: {CLUSTERS:,}; caps: {most:,} lines, {globs} with wildcards, {length} chars")
    print(
        f"at the caps ({globs} star-heavy globs + {most - globs} exact names): "
        f"median {statistics.median(at_caps):.3f} s, worst {worst:.3f} s of {len(at_caps)} "
        f"(target < {TARGET_SECONDS:g} s): {'PASS' if worst < TARGET_SECONDS else 'MISS'}"
    )
    print(f"{most:,} exact names: median {statistics.median(exact):.3f} s")
    print(f"over the cap, {20 * globs:,} globs (refused by the form): {over[0]:.2f} s")


if __name__ == "__main__":
    main()
