"""Counts with their nouns, written once: "1 cluster", "2 clusters", "0 policies". Pages use it
through the `count` filter (accounts/templatetags/wording.py), messages and outcomes call it."""

from __future__ import annotations

# Nouns whose plural is not the singular and an "s".
IRREGULAR = {"policy": "policies", "query": "queries", "entry": "entries"}


def plural(noun: str) -> str:
    """The plural of `noun` (its last word, for "node pool")."""
    head, _, last = noun.rpartition(" ")
    if last in IRREGULAR:
        return f"{head} {IRREGULAR[last]}".lstrip()
    if last.endswith(("s", "x", "sh", "ch")):
        return f"{noun}es"
    return f"{noun}s"


def counted(n: int, noun: str) -> str:
    """`n` and `noun`, in the plural unless n is 1. `noun` may give both forms: "child,children"."""
    one, _, many = noun.partition(",")
    return f"{n} {one if n == 1 else (many or plural(one))}"
