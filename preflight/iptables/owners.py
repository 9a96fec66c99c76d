"""The owners AKS accepts: who installs the rules its allow-list lets through, in which tables,
and how to tell (shared/reference/aks-ebpf-host-routing.md); and `Attribution`, the same owner
table compiled for one analysis, which settles most rules by their chain alone."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import re2

from preflight.iptables.dump import UNKNOWN_TABLE, Rule

WIRESERVER = r"168\.63\.129\.16/32"


@dataclass(frozen=True)
class ChainNames:
    """Rules in one of these chains (exact names, or names with one of the prefixes), and with
    `jumps`, rules jumping to one."""

    names: frozenset[str]
    prefixes: tuple[str, ...] = ()
    jumps: bool = True

    def __call__(self, rule: Rule) -> bool:
        if self.claims(rule.chain):
            return True
        if not self.jumps:
            return False
        target = rule.target
        return target is not None and self.claims(target)

    def claims(self, name: str) -> bool:
        return name in self.names or name.startswith(self.prefixes)


@dataclass(frozen=True)
class CommentContains:
    text: str

    def __call__(self, rule: Rule) -> bool:
        return any(self.text in c for c in rule.comments)


@dataclass(frozen=True)
class LineMatches:
    """The whole rule line (without counters) matches this regular expression."""

    pattern: str
    regex: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "regex", re.compile(self.pattern))

    def __call__(self, rule: Rule) -> bool:
        return self.regex.fullmatch(rule.rule) is not None


# An administrator's pattern: at most this long, and it must not accept rules of unrelated
# origins (each line below comes from a different product; a pattern for one of them may match
# that one, never two or more), nor an empty or arbitrary line.
MAX_PATTERN_LENGTH = 300
UNRELATED_RULES = (
    "-A INPUT -j ACCEPT",
    "-A FORWARD -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
    '-A cali-FORWARD -m comment --comment "cali:vjrMJCRpqwy5oRoX" -j MARK --set-xmark 0x0/0xe0000',
    "-A f2b-sshd -s 203.0.113.7/32 -j REJECT --reject-with icmp-port-unreachable",
    "-A ISTIO_OUTPUT -o lo -s 127.0.0.6/32 -j RETURN",
    "-A OUTPUT -p tcp -m tcp --dport 25 -j DROP",
    "-A PREROUTING -p tcp -m tcp --dport 80 -j DNAT --to-destination 10.0.0.5:8080",
    "-A KUBE-SERVICES -d 10.0.0.10/32 -p udp -m udp --dport 53 -j KUBE-SVC-TCOU7JCQXEZGVUNU",
)
ARBITRARY_LINES = ("", " ", "x", "-A", "garbage that is not a rule at all")


def _compile_linear(pattern: str) -> Any:
    """The pattern compiled by RE2, which matches in time linear in the line: an administrator's
    pattern can never hang a worker. ValueError when RE2 cannot take it (back-references and
    look-arounds are not linear)."""
    try:
        return re2.compile(pattern)
    except Exception as exc:  # re2 raises its own error type, not re.error
        said = exc.args[0] if exc.args else exc
        said = said.decode(errors="replace") if isinstance(said, bytes) else str(said)
        raise ValueError(f"the regular expression does not compile for RE2: {said}") from exc


def check_pattern(pattern: str) -> None:
    """Refuse a full-line pattern that is too long, does not compile, or accepts too much: an
    empty or arbitrary line, or rules of two or more unrelated origins. ValueError says why."""
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise ValueError(
            f"the regular expression is {len(pattern)} characters long; at most "
            f"{MAX_PATTERN_LENGTH} are allowed"
        )
    regex = _compile_linear(pattern)
    loose = [line for line in ARBITRARY_LINES if regex.fullmatch(line) is not None]
    if loose:
        raise ValueError(
            f"the regular expression matches {loose[0]!r}, which is no rule: it would accept "
            "rules it was not written for"
        )
    unrelated = [line for line in UNRELATED_RULES if regex.fullmatch(line) is not None]
    if len(unrelated) >= 2:
        raise ValueError(
            f"the regular expression matches {len(unrelated)} rules of unrelated origins (for "
            f"example {unrelated[0]!r} and {unrelated[1]!r}): narrow it to the rules it is for"
        )


@dataclass(frozen=True)
class LinearLineMatches:
    """An administrator's full-line pattern, matched by RE2 (linear time)."""

    pattern: str
    regex: Any = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "regex", _compile_linear(self.pattern))

    def __call__(self, rule: Rule) -> bool:
        return self.regex.fullmatch(rule.rule) is not None


@dataclass(frozen=True)
class AllOf:
    tests: tuple[Callable[[Rule], bool], ...]

    def __call__(self, rule: Rule) -> bool:
        return all(test(rule) for test in self.tests)


def in_or_jumping_to(*chains: str, prefixes: tuple[str, ...] = ()) -> ChainNames:
    """Rules in one of these chains (exact names, or names starting with a prefix), or jumping
    to one."""
    return ChainNames(frozenset(chains), prefixes)


def comment_contains(text: str) -> CommentContains:
    return CommentContains(text)


def chain_prefix(prefix: str) -> ChainNames:
    """Rules in a chain whose name starts with the prefix, wherever they jump."""
    return ChainNames(frozenset(), (prefix,), jumps=False)


def line_matches(pattern: str) -> LineMatches:
    """The whole rule line (without counters) matches this regular expression."""
    return LineMatches(pattern)


@dataclass(frozen=True)
class Owner:
    """One allow-list entry: who installs the rules it claims, in which tables, and how to tell.

    `tables` is None for "every table". `match` gets a Rule (its chain, exact line, comments and
    target): one of the tests above, or any function of a Rule. To accept more, add an Owner to
    OWNERS, or pass `OWNERS + extra` to `analyse` (and record why in the audit log).
    """

    name: str
    allows: str  # the allow-list entry, in words
    tables: frozenset[str] | None
    match: Callable[[Rule], bool]

    @classmethod
    def from_spec(
        cls,
        name: str,
        allows: str,
        tables: Iterable[str] | None = None,
        chain: str | None = None,
        chain_prefix: str | None = None,
        comment: str | None = None,
        line_regex: str | None = None,
    ) -> Owner:
        """An owner from plain data, as an administrator's extension is stored.

        `tables`: the tables it applies to (None or empty: every table). It claims a rule that
        meets every test given: `chain` / `chain_prefix`, the rule is in that chain (exact name,
        or any name with the prefix; both given: either) or jumps to it; `comment`, one of the
        rule's comments contains this text; `line_regex`, the whole rule line, as `iptables-save`
        prints it without counters, matches this regular expression. At least one test is
        needed; a regex that does not compile raises ValueError.
        """
        tests: list[Callable[[Rule], bool]] = []
        if chain or chain_prefix:
            names = frozenset([chain] if chain else [])
            tests.append(ChainNames(names, (chain_prefix,) if chain_prefix else ()))
        if comment:
            tests.append(CommentContains(comment))
        if line_regex:
            try:
                tests.append(LinearLineMatches(line_regex))
            except ValueError as exc:
                raise ValueError(f"{name}: line_regex: {exc}") from exc
        if not tests:
            raise ValueError(
                f"{name}: an owner needs a chain, a chain prefix, a comment or a regex"
            )
        chosen = frozenset(tables) if tables else None
        return cls(name, allows, chosen, tests[0] if len(tests) == 1 else AllOf(tuple(tests)))


def _tables(*names: str) -> frozenset[str]:
    return frozenset(names)


_LOCALDNS_COMMENT = (
    r"""-m comment --comment (?:"localdns: skip conntrack"|'localdns: skip conntrack')"""
)

OWNERS: tuple[Owner, ...] = (
    # every table
    Owner(
        "kubelet",
        "rules in or jumping to KUBE-FIREWALL",
        None,
        in_or_jumping_to("KUBE-FIREWALL"),
    ),
    Owner(
        "kube-proxy",
        "rules in or jumping to kube-proxy's chains (KUBE-SERVICES, KUBE-SVC-*, KUBE-SEP-*, ...)",
        None,
        in_or_jumping_to(
            "KUBE-SERVICES",
            "KUBE-EXTERNAL-SERVICES",
            "KUBE-NODEPORTS",
            "KUBE-POSTROUTING",
            "KUBE-MARK-MASQ",
            "KUBE-MARK-DROP",
            "KUBE-FORWARD",
            "KUBE-PROXY-FIREWALL",
            "KUBE-PROXY-CANARY",
            "KUBE-KUBELET-CANARY",
            prefixes=("KUBE-SEP-", "KUBE-SVC-"),
        ),
    ),
    Owner(
        "AKS node setup (ip-masq-agent)",
        "rules in or jumping to IP-MASQ-AGENT",
        None,
        in_or_jumping_to("IP-MASQ-AGENT"),
    ),
    Owner("Cilium", 'comment contains "cilium:"', None, comment_contains("cilium:")),
    Owner("Cilium", 'comment contains "cilium-feeder:"', None, comment_contains("cilium-feeder:")),
    Owner("Cilium", "-A CILIUM_<chain> ...", None, chain_prefix("CILIUM_")),
    Owner(
        "AKS node setup (AgentBaker)",
        'comment contains "AKS managed: added by AgentBaker"',
        None,
        comment_contains("AKS managed: added by AgentBaker"),
    ),
    # filter and mangle
    Owner(
        "AKS node setup (wireserver)",
        "FORWARD DROP of tcp to 168.63.129.16/32 ports 80 and 32526",
        _tables("filter", "mangle"),
        line_matches(
            rf"-A FORWARD -d {WIRESERVER} -p tcp (?:-m tcp )?--dport (?:80|32526) -j DROP"
        ),
    ),
    # filter
    Owner(
        "AKS node setup (DHCP client)",
        "INPUT -p udp --dport 68 -j ACCEPT",
        _tables("filter"),
        line_matches(r"-A INPUT -p udp (?:-m udp )?--dport 68 -j ACCEPT"),
    ),
    # nat
    Owner(
        "AKS node setup (SWIFT)",
        "POSTROUTING -j SWIFT / SWIFT-POSTROUTING",
        _tables("nat"),
        line_matches(r"-A POSTROUTING -j (?:SWIFT|SWIFT-POSTROUTING)"),
    ),
    Owner(
        "AKS node setup (SWIFT)",
        "SWIFT -s ... / SWIFT-POSTROUTING -s ...",
        _tables("nat"),
        line_matches(r"-A (?:SWIFT|SWIFT-POSTROUTING) -s \S.*"),
    ),
    # raw: iptables prints the comment where the command put it, before or after the port
    Owner(
        "AKS node setup (localdns)",
        "PREROUTING/OUTPUT NOTRACK of tcp/udp port 53 to 169.254.10.10/32 or 169.254.10.11/32 "
        'with comment "localdns: skip conntrack"',
        _tables("raw"),
        line_matches(
            r"-A (?:PREROUTING|OUTPUT) -d 169\.254\.10\.1[01]/32 -p (tcp|udp) "
            rf"(?:{_LOCALDNS_COMMENT} (?:-m \1 )?--dport 53|(?:-m \1 )?--dport 53 "
            rf"{_LOCALDNS_COMMENT}) -j NOTRACK"
        ),
    ),
    # security
    Owner(
        "AKS node setup (waagent)",
        "OUTPUT to 168.63.129.16/32 tcp dport 53 ACCEPT",
        _tables("security"),
        line_matches(rf"-A OUTPUT -d {WIRESERVER} -p tcp (?:-m tcp )?--dport 53 -j ACCEPT"),
    ),
    Owner(
        "AKS node setup (waagent)",
        "OUTPUT to 168.63.129.16/32 tcp --uid-owner 0 ACCEPT",
        _tables("security"),
        line_matches(rf"-A OUTPUT -d {WIRESERVER} -p tcp -m owner --uid-owner 0 -j ACCEPT"),
    ),
    Owner(
        "AKS node setup (waagent)",
        "OUTPUT to 168.63.129.16/32 tcp --ctstate INVALID,NEW DROP",
        _tables("security"),
        line_matches(
            rf"-A OUTPUT -d {WIRESERVER} -p tcp -m conntrack --ctstate INVALID,NEW -j DROP"
        ),
    ),
)


def _applies(owner: Owner, table: str) -> bool:
    return owner.tables is None or table in owner.tables or table == UNKNOWN_TABLE


def owner_of(rule: Rule, owners: Iterable[Owner] = OWNERS) -> str | None:
    """The first owner that claims the rule, asking each in turn (analyse() gives the same
    answer for a whole dump, faster)."""
    for owner in owners:
        if _applies(owner, rule.table) and owner.match(rule):
            return owner.name
    return None


class Attribution:
    """The owners, compiled for one analysis: each rule gets the owner `owner_of` gives it.

    `owner_of` asks every owner about every rule. Here the first owner that claims a whole chain
    by its name (kube-proxy for a KUBE-SEP-* chain) is looked up once per chain. Of the owners
    listed before it, those that claim by target can only take a rule whose line holds one of
    their chain names: so the parser settles a kube-proxy rule in its own chain with a substring
    test, without reading its target or comments. Any other rule is judged owner by owner.
    """

    def __init__(self, owners: tuple[Owner, ...]) -> None:
        self.owners = owners
        self.tables: dict[str, _TableOwners] = {}

    def settled_by_chain(self, table: str, chain: str) -> tuple[str | None, tuple[str, ...]]:
        """The owner of every rule of the chain whose line holds none of the names returned
        with it; None when each rule of the chain must be judged."""
        plan = self.tables.get(table) or self.table(table)
        return plan.settled[plan.first(chain, plan.chains, plan.chain_prefixes)]

    def judge(self, rule: Rule) -> str | None:
        plan = self.table(rule.table)
        first = plan.first(rule.chain, plan.chains, plan.chain_prefixes)
        target = rule.target
        if target is not None:
            first = min(first, plan.first(target, plan.targets, plan.target_prefixes))
        for owner in self.owners[:first]:
            if _by_name(owner) is None and _applies(owner, rule.table) and owner.match(rule):
                return owner.name
        return self.owners[first].name if first < len(self.owners) else None

    def table(self, name: str) -> _TableOwners:
        plan = self.tables.get(name)
        if plan is None:
            plan = self.tables[name] = _TableOwners(self.owners, name)
        return plan


class _TableOwners:
    """The owners that apply to one table, by the chain names they claim. An owner's index in
    the owner table stands for it, len(owners) for none."""

    def __init__(self, owners: tuple[Owner, ...], table: str) -> None:
        self.none = len(owners)
        self.chains: dict[str, int] = {}  # chain name -> first owner claiming rules in it
        self.chain_prefixes: list[tuple[tuple[str, ...], int]] = []  # in the owners' order
        self.targets: dict[str, int] = {}  # chain name -> first owner claiming jumps to it
        self.target_prefixes: list[tuple[tuple[str, ...], int]] = []
        # for each owner, what it settles by chain alone (see Attribution.settled_by_chain):
        # nothing when an owner before it must see the rule itself (comments, line, ...)
        self.settled: list[tuple[str | None, tuple[str, ...]]] = []
        jumped_to: tuple[str, ...] = ()
        others = False
        for index, owner in enumerate(owners):
            self.settled.append((None, ()) if others else (owner.name, jumped_to))
            if not _applies(owner, table):
                continue
            test = _by_name(owner)
            if test is None:
                others = True
                continue
            for name in test.names:
                self.chains.setdefault(name, index)
            if test.prefixes:
                self.chain_prefixes.append((test.prefixes, index))
            if test.jumps:
                jumped_to += (*sorted(test.names), *test.prefixes)
                for name in test.names:
                    self.targets.setdefault(name, index)
                if test.prefixes:
                    self.target_prefixes.append((test.prefixes, index))
        self.settled.append((None, ()))

    def first(
        self, name: str, exact: dict[str, int], prefixes: list[tuple[tuple[str, ...], int]]
    ) -> int:
        """The first owner that claims this name, exactly or by a prefix."""
        first = exact.get(name, self.none)
        for starts, index in prefixes:
            if index >= first:
                break
            if name.startswith(starts):
                return index
        return first


def _by_name(owner: Owner) -> ChainNames | None:
    """The owner's test when it looks at chain names only."""
    test = owner.match
    return test if type(test) is ChainNames else None
