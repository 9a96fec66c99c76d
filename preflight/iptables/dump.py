"""A parsed `iptables-save` dump: its tables, chains and rules, and what an analysis returns
(the findings, the lines it could not read, the tables cut short, the other backends unread)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from preflight.iptables.words import target_and_comments

UNKNOWN_TABLE = "?"  # rules read before any "*table" header
SHOWN_CHARACTERS = 240  # of a line that could not be read, shown to people


def shown(text: str, limit: int | None = None) -> str:
    """`text` as people may see it: every byte that was not UTF-8 (decoded with
    "surrogateescape") as \\xNN, every control or unprintable character escaped the same way
    (\\uNNNN above 0xff), the rest unchanged; cut to `limit` characters with "…"."""
    cut = text if limit is None or len(text) <= limit else text[:limit]
    if cut.isprintable():
        return cut if cut is text else cut + "…"
    out = []
    for c in cut:
        if c.isprintable():
            out.append(c)
            continue
        code = ord(c)
        if 0xDC80 <= code <= 0xDCFF:  # a byte surrogateescape kept
            code -= 0xDC00
        out.append(f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}")
    return "".join(out) + ("" if cut is text else "…")


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
    """Why (part of) a dump could not be read: `line` (1-based; 0 for the whole input), what is
    wrong, and the raw line as people may see it (shown())."""

    line: int
    message: str
    text: str = ""


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
    errors: list[Error]  # lines that could not be read; any one makes the dump unreadable
    recognised: int  # lines read as part of a dump (headers, chains, rules, COMMIT)
    # Tables whose COMMIT never came (the dump was cut short): unreadable too.
    cut_short: list[Error] = field(default_factory=list)
    # "# Warning: iptables-legacy tables present, use iptables-legacy-save to see them" with no
    # dump of that backend in the input: its rules were not read, so the node is incomplete.
    other_backends: list[Error] = field(default_factory=list)

    @property
    def unreadable(self) -> bool:
        """Some line could not be read, or the dump was cut short: it cannot be called clean."""
        return bool(self.errors or self.cut_short)

    @property
    def problems(self) -> list[Error]:
        """Everything that keeps the dump from being called clean, in line order."""
        return sorted([*self.errors, *self.cut_short, *self.other_backends], key=lambda e: e.line)

    @property
    def verdict(self) -> str:
        """blocked (some rule blocks, whatever else), unreadable (a line could not be read or
        the dump was cut short), incomplete (another backend's rules were not read) or clean."""
        if self.findings:
            return "blocked"
        if self.unreadable:
            return "unreadable"
        return "incomplete" if self.other_backends else "clean"

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
            "errors": [
                {"line": e.line, "message": e.message, "text": e.text} for e in self.problems
            ],
        }
