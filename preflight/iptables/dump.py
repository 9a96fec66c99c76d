"""A parsed `iptables-save` dump: its tables, chains and rules, and what an analysis returns
(the findings, the lines it could not read)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from preflight.iptables.words import target_and_comments

UNKNOWN_TABLE = "?"  # rules read before any "*table" header


class Rule:
    """One rule line. Its target and comments are read from the line the first time they are
    asked for: in a big dump most rules are attributed by their chain alone and never need them.
    """

    __slots__ = ("_read", "chain", "line", "owner", "rule", "table")

    def __init__(
        self,
        table: str,
        chain: str,
        rule: str,
        line: int,
        comments: tuple[str, ...] | None = None,
        target: str | None = None,
    ) -> None:
        self.table = table  # UNKNOWN_TABLE when the dump has no "*table" header before it
        self.chain = chain
        self.rule = rule  # the exact "-A CHAIN ..." line, without counters
        self.line = line  # 1-based line number in the input
        self.owner: str | None = None  # the OWNERS entry that claims it; None: user-installed
        # (target, comments) once read; comments None: read them from the line when asked
        self._read = None if comments is None else (target, comments)

    @property
    def target(self) -> str | None:
        """The "-j" / "-g" target, if any."""
        return self._parts()[0]

    @property
    def comments(self) -> tuple[str, ...]:
        """The text of each "-m comment --comment ..." (unquoted)."""
        return self._parts()[1]

    def _parts(self) -> tuple[str | None, tuple[str, ...]]:
        if self._read is None:
            target, comments, _ = target_and_comments(self.rule[3:].lstrip().partition(" ")[2])
            self._read = (target, comments)
        return self._read

    def __repr__(self) -> str:
        return f"Rule({self.table!r}, {self.rule!r}, line={self.line}, owner={self.owner!r})"


@dataclass(slots=True)
class Chain:
    name: str
    policy: str | None = None  # ACCEPT / DROP for a built-in chain; None for a user chain
    rules: list[Rule] = field(default_factory=list)


@dataclass(slots=True)
class Table:
    name: str
    chains: dict[str, Chain] = field(default_factory=dict)

    def chain(self, name: str) -> Chain:
        found = self.chains.get(name)
        if found is None:
            found = self.chains[name] = Chain(name)
        return found


@dataclass(frozen=True, slots=True)
class Error:
    line: int
    message: str


@dataclass(frozen=True, slots=True)
class Finding:
    table: str
    chain: str
    rule: str
    origin: str
    hint: str
    line: int


@dataclass
class Analysis:
    tables: list[Table]
    rules: list[Rule]
    findings: list[Finding]
    errors: list[Error]
    recognised: int  # lines read as part of a dump (headers, chains, rules, COMMIT)

    @property
    def verdict(self) -> str:
        return "blocked" if self.findings else "clean"

    def to_json(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "findings": [
                {
                    "table": f.table,
                    "chain": f.chain,
                    "rule": f.rule,
                    "origin": f.origin,
                    "hint": f.hint,
                }
                for f in self.findings
            ],
            "errors": [{"line": e.line, "message": e.message} for e in self.errors],
        }
