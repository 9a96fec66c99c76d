"""Parsing a dump line by line, and `analyse`: parse, attribute each rule to an owner, and list
the rules nobody AKS accepts owns as findings with their likely origin."""

from __future__ import annotations

import gc
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from preflight.iptables.dump import UNKNOWN_TABLE, Analysis, Chain, Error, Finding, Rule, Table
from preflight.iptables.origins import origin_of
from preflight.iptables.owners import OWNERS, Attribution, Owner
from preflight.iptables.words import target_and_comments, without_verbose_counters

_COUNTERS = re.compile(r"\[(\d+):(\d+)\]\s*")
_CHAIN_NAME = re.compile(r"(?!-)[^\s\"'\\]{1,64}")  # iptables: no leading "-"
# No text dump holds these: control characters but tab and line ends, and U+FFFD, which stands
# for undecodable bytes.
_CONTROL_CHARACTERS = "".join(map(chr, [*range(9), 11, 12, *range(14, 32), 127, 0xFFFD]))
_CONTROL = re.compile(f"[{_CONTROL_CHARACTERS}]")


def _has_control_characters(text: str) -> bool:
    # One scan of the text per character is a lot faster than one regex search.
    return any(c in text for c in _CONTROL_CHARACTERS)


def _is_plain(text: str) -> bool:
    """No backslash, no single quote, no `-S -v` counters: nothing to unescape or strip."""
    return "\\" not in text and "'" not in text and " -c " not in text


class _Parser:
    def __init__(self, attribution: Attribution | None = None) -> None:
        self.attribution = attribution
        self.unsettled: list[Rule] = []  # rules whose owner read() did not settle
        self.tables: list[Table] = []
        self.by_name: dict[str, Table] = {}
        self.table: Table | None = None
        self.rules: list[Rule] = []
        self.errors: list[Error] = []
        self.recognised = 0
        self.check_text = True  # off when the whole input has no control characters

    def error(self, number: int, message: str) -> None:
        self.errors.append(Error(number, message))

    def current(self) -> Table:
        if self.table is None:
            self.table = self.open(UNKNOWN_TABLE)
        return self.table

    def open(self, name: str) -> Table:
        table = self.by_name.get(name)
        if table is None:
            table = self.by_name[name] = Table(name)
            self.tables.append(table)
        return table

    def read(self, lines: Iterable[str], plain: bool = False) -> None:
        """Every line of the dump. The two shapes that make up nearly all of a big one, a plain
        "-A" line and a user chain's ":NAME - [0:0]", are read right here; the rest by feed().
        `plain`: _is_plain holds for the whole text, so no line needs that check."""
        rules, unsettled, attribution = self.rules, self.unsettled, self.attribution
        no_controls = not self.check_text
        chain_name_ok = _CHAIN_NAME.fullmatch
        table = self.table  # changed only by feed() and current()
        chains: dict[str, Chain] = {} if table is None else table.chains
        # The chain of the rule before (iptables-save lists a chain's rules together): the
        # start of its lines, its names, its rules, and the owner of those of them whose lines
        # hold none of `needles` (None: each must be judged).
        prefix = "\n"  # no line starts with it
        table_name = chain_name = ""
        rules_of_chain: list[Rule] | None = None
        settled: str | None = None
        needles: tuple[str, ...] = ()
        recognised = 0
        for number, raw in enumerate(lines, 1):
            try:
                # A rule whose target and comments can be read when asked, with no error to
                # report and nothing to strip: no trailing blank, no unclosed quote, no escape,
                # no `-S -v` counters.
                if (
                    raw[:3] == "-A "
                    and no_controls
                    and raw[-1] > " "
                    and not raw.count('"') % 2
                    and (plain or _is_plain(raw))
                ):
                    if not raw.startswith(prefix):
                        space = raw.find(" ", 3)
                        name = raw[3:space] if space > 0 else raw[3:]
                        chain = chains.get(name)
                        if chain is None and chain_name_ok(name):
                            if table is None:
                                table = self.current()
                                chains = table.chains
                            chain = chains[name] = Chain(name)
                        if chain is None or table is None:
                            prefix, rules_of_chain = "\n", None
                        else:
                            prefix, rules_of_chain = f"-A {name} ", chain.rules
                            table_name, chain_name = table.name, chain.name
                            if attribution is not None:
                                settled, needles = attribution.settled_by_chain(table_name, name)
                    if rules_of_chain is not None:
                        rule = Rule(table_name, chain_name, raw, number)
                        rules_of_chain.append(rule)
                        rules.append(rule)
                        recognised += 1
                        if settled is not None:
                            for needle in needles:
                                if needle in raw:
                                    break
                            else:
                                rule.owner = settled
                                continue
                        unsettled.append(rule)
                        continue
                elif raw[:1] == ":" and no_controls and table is not None:
                    parts = raw.split(" ")
                    if (
                        len(parts) == 3
                        and (parts[2] == "[0:0]" or _COUNTERS.fullmatch(parts[2]))
                        and chain_name_ok(parts[0], 1)
                    ):
                        name = parts[0][1:]
                        declared = chains.get(name)
                        if declared is None:
                            declared = chains[name] = Chain(name)
                        if parts[1] != "-":
                            declared.policy = parts[1]
                        recognised += 1
                        continue
                self.feed(number, raw)
            except Exception as exc:  # the parser must never raise on input
                self.error(number, f"could not parse line: {exc}")
            if self.table is not table:  # a "*table" line, a COMMIT, a headerless rule
                table = self.table
                chains = {} if table is None else table.chains
                prefix, settled = "\n", None
        self.recognised += recognised

    def feed(self, number: int, raw: str) -> None:
        line = raw.strip()
        if not line or line[0] == "#":
            return
        if self.check_text and _CONTROL.search(line):
            self.error(number, "not text: control characters or undecodable bytes")
            return
        if line[0] == "[":
            m = _COUNTERS.match(line)
            if m is None:
                self.error(number, f"malformed counters: {line[:80]!r}")
                return
            line = line[m.end() :]
        first = line[:2]
        if first == "-A" or first == "-I":
            self.rule(number, line)
        elif line[0] == "*":
            name = line[1:].strip()
            if not _CHAIN_NAME.fullmatch(name):
                self.error(number, f"malformed table header: {line[:80]!r}")
                return
            self.table = self.open(name)
            self.recognised += 1
        elif line[0] == ":":
            parts = line[1:].split()
            if not parts or len(parts) > 3 or not _CHAIN_NAME.fullmatch(parts[0]):
                self.error(number, f"malformed chain line: {line[:80]!r}")
                return
            if len(parts) == 3 and not _COUNTERS.fullmatch(parts[2]):
                self.error(number, f"malformed chain counters: {line[:80]!r}")
                return
            chain = self.current().chain(parts[0])
            if len(parts) > 1 and parts[1] != "-":
                chain.policy = parts[1]
            self.recognised += 1
        elif line == "COMMIT":
            self.table = None
            self.recognised += 1
        elif first == "-N" or first == "-P":
            parts = without_verbose_counters(line).split()
            want = 2 if first == "-N" else 3
            if (
                parts[0] != first
                or len(parts) != want
                or not _CHAIN_NAME.fullmatch(parts[1])
                or (first == "-P" and not parts[2].isalpha())
            ):
                self.error(number, f"malformed {first} line: {line[:80]!r}")
                return
            chain = self.current().chain(parts[1])
            if first == "-P":
                chain.policy = parts[2]
            self.recognised += 1
        else:
            self.error(number, f"unrecognised line: {line[:80]!r}")

    def rule(self, number: int, line: str) -> None:
        if " -c " in line:
            line = without_verbose_counters(line)
        if line[:3] != "-A " and line[:3] != "-I ":
            self.error(number, f"unrecognised line: {line[:80]!r}")
            return
        spec = line[3:].lstrip()
        chain_name, _, rest = spec.partition(" ")
        if not _CHAIN_NAME.fullmatch(chain_name):
            self.error(number, f"rule without a chain name: {line[:80]!r}")
            return
        target, comments, ok = target_and_comments(rest)
        if not ok:
            self.error(number, "unterminated quote in rule")
        table = self.current()
        rule = Rule(table.name, chain_name, line, number, comments, target)
        table.chain(chain_name).rules.append(rule)
        self.rules.append(rule)
        self.unsettled.append(rule)
        self.recognised += 1


def parse(text: str, attribution: Attribution | None = None) -> _Parser:
    """The dump's tables, chains, rules and errors; with an attribution, the owners of the rules
    their chain settles too (see Attribution)."""
    parser = _Parser(attribution)
    if not isinstance(text, str):  # defensive: callers with bytes get a clear error
        parser.error(0, "input is not text")
        return parser
    parser.check_text = _has_control_characters(text)
    # split("\n") is splitlines() for a text with no other line breaks, and a lot faster
    simple = not parser.check_text and text.isascii() and "\r" not in text
    parser.read(
        text.split("\n") if simple else text.splitlines(),
        plain=_is_plain(text),
    )
    return parser


@contextmanager
def _collector_paused() -> Iterator[None]:
    """A big dump becomes 100,000s of small objects that all live until the analysis is returned:
    the cyclic garbage collector's passes over them would free nothing (and cost a sixth of the
    time on 200,000 rules). Analyses in other threads meanwhile are safe: only the one that
    paused it switches it back on."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def analyse(text: str, owners: Iterable[Owner] = OWNERS) -> Analysis:
    """Parse a dump, attribute each rule, and list the rules nobody that AKS accepts owns."""
    attribution = Attribution(tuple(owners))
    with _collector_paused():
        parser = parse(text, attribution)
        for rule in parser.unsettled:
            rule.owner = attribution.judge(rule)
        findings = [_finding(rule) for rule in parser.unsettled if rule.owner is None]
    return Analysis(parser.tables, parser.rules, findings, parser.errors, parser.recognised)


def _finding(rule: Rule) -> Finding:
    origin, hint = origin_of(rule)
    return Finding(rule.table, rule.chain, rule.rule, origin, hint, rule.line)
