"""The state tables in rollout/choices.py: in step with shared/DESIGN.md §6, and sound."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import pytest

from rollout.choices import (
    PLAN_MOVES,
    TARGET_MOVES,
    WAVE_MOVES,
    PlanStatus,
    TargetStatus,
    WaveStatus,
)

DESIGN = Path(__file__).resolve().parents[3] / "shared" / "DESIGN.md"
TABLES = {
    "a cluster in a plan": (TARGET_MOVES, TargetStatus),
    "a wave": (WAVE_MOVES, WaveStatus),
    "a plan": (PLAN_MOVES, PlanStatus),
}


def design_states() -> dict[str, set[str]]:
    """The backticked state names of each line under "States" in DESIGN.md §6."""
    text = DESIGN.read_text()
    section = text[text.index("## 6.") : text.index("## 7.")]
    states = section[section.index("States") :]
    found: dict[str, set[str]] = {}
    for item in re.split(r"\n- ", states)[1:]:
        subject = item.split(":", 1)[0].strip()
        names: set[str] = set()
        for code in re.findall(r"`([^`]+)`", item):
            names.update(w for w in re.findall(r"[a-z_]+", code))
        found[subject] = names
    return found


@pytest.mark.skipif(not DESIGN.exists(), reason="shared/DESIGN.md is not beside the checkout")
@pytest.mark.parametrize("subject", list(TABLES))
def test_every_state_the_design_names_is_in_the_table(subject):
    moves, choices = TABLES[subject]
    named = design_states()[subject]

    assert named <= set(moves), f"DESIGN.md names states the table lacks: {named - set(moves)}"
    assert set(moves) == set(choices.values)


@pytest.mark.parametrize("subject", list(TABLES))
def test_every_move_leads_to_a_known_state_and_every_state_can_end(subject):
    moves: Mapping[str, frozenset[str]] = TABLES[subject][0]
    for targets in moves.values():
        assert targets <= set(moves)
    final = {s for s, out in moves.items() if not out}
    for start in moves:
        seen, frontier = {start}, [start]
        while frontier:
            for nxt in moves[frontier.pop()]:
                if nxt not in seen:
                    seen.add(nxt)
                    frontier.append(nxt)
        assert seen & final, f"{subject}: from {start} no final state can be reached"
