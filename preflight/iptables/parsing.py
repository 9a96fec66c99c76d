"""Read a node's `iptables-save` / `iptables -S` output and find the rules AKS calls user-installed.

Pure Python, no Django: the scan, the management command and the tests all call `analyse(text)`.

Parsing accepts iptables-nft and iptables-legacy output, IPv4 and IPv6, with or without
`[packets:bytes]` counters (`iptables-save -c`) or `-c packets bytes` (`iptables -S -v`), and
partial dumps that lack a `*table` header or a `COMMIT`. It never raises: a line it cannot read
becomes an `Error` with its line number, and the rest of the dump is still read. A rule line that
is malformed but names its chain (an unterminated quote, say) is still attributed, so a broken
line can never hide a user rule.

Attribution follows AKS's allow-list (shared/reference/aks-ebpf-host-routing.md, "How AKS detects
user-installed iptables rules") plus the kube-proxy chains listed there, and nothing wider: see
`OWNERS`. A rule no owner claims is user-installed, and becomes a `Finding` with a hint at its
origin and at how to remove it. Rules before any `*table` header (plain `iptables -S` output)
have an unknown table: table-specific allow-list entries then still apply, since each of them
also pins the chain and the exact rule.

Administrators extend the allow-list with `analyse(text, owners=OWNERS + extra)`; an extension
stored as data (tables, a chain or chain prefix, a comment substring, a full-line regex) becomes
an `Owner` with `Owner.from_spec(...)`.
"""

from __future__ import annotations

import gc
import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

UNKNOWN_TABLE = "?"  # rules read before any "*table" header

WIRESERVER = r"168\.63\.129\.16/32"


# --- the parsed dump ---------------------------------------------------------------------------


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
            target, comments, _ = _scan(self.rule[3:].lstrip().partition(" ")[2])
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


# --- the owners AKS accepts ----------------------------------------------------------------------


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
                tests.append(LineMatches(line_regex))
            except re.error as exc:
                raise ValueError(f"{name}: line_regex does not compile: {exc}") from exc
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


class _Attribution:
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
        # for each owner, what it settles by chain alone (see _Attribution.settled_by_chain):
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


# --- origin hints for what nobody owns -----------------------------------------------------------

BUILTIN_CHAINS = frozenset({"INPUT", "FORWARD", "OUTPUT", "PREROUTING", "POSTROUTING"})

_FIREWALLD = re.compile(
    r"(?:INPUT|FORWARD|OUTPUT|PREROUTING|POSTROUTING)_(?:direct|ZONES|ZONES_SOURCE|POLICIES\w*)"
    r"|(?:IN|FWDI|FWDO|FWD|OUT|PRE|POST)_\w+"
)


@dataclass(frozen=True)
class Origin:
    """A likely origin: a test on the rule's chain / target / comments, and what to do."""

    name: str
    test: Callable[[Rule], bool]
    hint: str


def _names(rule: Rule) -> tuple[str, ...]:
    return (rule.chain, rule.target or "")


def _named(*prefixes: str) -> Callable[[Rule], bool]:
    return lambda rule: any(name.startswith(prefixes) for name in _names(rule))


ORIGINS: tuple[Origin, ...] = (
    Origin(
        "Azure NPM",
        lambda r: _named("AZURE-NPM")(r),
        "Left behind by Azure Network Policy Manager, which AKS does not accept here: make sure "
        "NPM is uninstalled, then delete its AZURE-NPM* chains and the jumps to them "
        "(or reimage the node).",
    ),
    Origin(
        "Calico",
        lambda r: _named("cali-")(r) or any(c.startswith("cali:") for c in r.comments),
        "Calico's Felix: remove Calico (its DaemonSet and operator) from the cluster, then "
        "reimage or restart the node so its cali-* chains are gone.",
    ),
    Origin(
        "Docker",
        _named("DOCKER"),
        "A Docker Engine on the node: stop and uninstall it (systemctl disable --now docker), "
        "then delete its DOCKER* chains or reimage the node.",
    ),
    Origin(
        "Istio",
        _named("ISTIO_"),
        "istio-init ran in the host network namespace: fix the workload that uses hostNetwork "
        "with sidecar injection, then reimage the node.",
    ),
    Origin(
        "Flannel",
        lambda r: any("FLANNEL" in n for n in _names(r)),
        "Flannel: remove its DaemonSet, then reimage the node so its FLANNEL chains are gone.",
    ),
    Origin(
        "Weave",
        lambda r: any("WEAVE" in n for n in _names(r)),
        "Weave Net: remove its DaemonSet, then reimage the node so its WEAVE chains are gone.",
    ),
    Origin(
        "fail2ban",
        _named("f2b-"),
        "fail2ban on the node: stop and uninstall it (systemctl disable --now fail2ban), which "
        "removes its f2b-* chains.",
    ),
    Origin(
        "ufw",
        _named("ufw-", "ufw6-"),
        "ufw on the node: run 'ufw disable' and uninstall it, which removes its ufw-* chains.",
    ),
    Origin(
        "kind",
        _named("KIND-"),
        "kind's networking (kindnetd) ran on this host: remove it, then delete its KIND-* "
        "chains or reimage the node.",
    ),
    Origin(
        "MicroK8s",
        lambda r: any("microk8s" in x.lower() for x in (*_names(r), *r.comments)),
        "MicroK8s on the node: 'snap remove microk8s', then reimage the node.",
    ),
    Origin(
        "firewalld",
        lambda r: any(_FIREWALLD.fullmatch(n) for n in _names(r) if n),
        "firewalld on the node: stop and disable it (systemctl disable --now firewalld), "
        "then reimage or restart the node.",
    ),
)

_STANDARD_TARGETS = frozenset(
    {
        "ACCEPT", "DROP", "RETURN", "REJECT", "LOG", "NFLOG", "ULOG", "MARK", "CONNMARK",
        "MASQUERADE", "SNAT", "DNAT", "REDIRECT", "NETMAP", "NOTRACK", "CT", "TPROXY", "TCPMSS",
        "TOS", "DSCP", "TTL", "HL", "CLASSIFY", "NFQUEUE", "QUEUE", "AUDIT", "TRACE", "TEE",
        "SECMARK", "CONNSECMARK", "CHECKSUM", "SET", "IDLETIMER", "LED", "RATEEST", "SYNPROXY",
    }
)  # fmt: skip


def origin_of(rule: Rule) -> tuple[str, str]:
    for origin in ORIGINS:
        if origin.test(rule):
            return origin.name, origin.hint
    custom = rule.chain if rule.chain not in BUILTIN_CHAINS else None
    if custom is None and rule.target and rule.target not in _STANDARD_TARGETS:
        custom = rule.target
    if custom is not None:
        return (
            f"a custom chain ({custom})",
            f"Installed by some tool or DaemonSet of your own that created {custom}: stop that "
            f"tool first, then delete the jumps to {custom}, flush it and delete it (iptables -F, "
            "-X), or reimage the node.",
        )
    return (
        "hand-written",
        "A rule added by hand or by a node script: find what adds it (cloud-init, a privileged "
        "DaemonSet), stop it, then delete the rule with 'iptables -D' and the same arguments.",
    )


# --- parsing -------------------------------------------------------------------------------------

# One shell word: bare characters, "double-quoted" (backslash escapes), 'single-quoted', \x.
# A quote that never closes takes the rest of the line (group 2) and is reported.
_TOKEN = re.compile(r"""\s*(?:((?:[^\s"'\\]+|"(?:[^"\\]|\\.)*"|'[^']*'|\\.?)+)|(\S.*))""", re.S)
_UNQUOTE = re.compile(r""""((?:[^"\\]|\\.)*)"|'([^']*)'|\\(.)""", re.S)
_COUNTERS = re.compile(r"\[(\d+):(\d+)\]\s*")
_VERBOSE_COUNTERS = re.compile(r" -c \d+ \d+(?= |$)")
_CHAIN_NAME = re.compile(r"(?!-)[^\s\"'\\]{1,64}")  # iptables: no leading "-"
# No text dump holds these: control characters but tab and line ends, and U+FFFD, which stands
# for undecodable bytes.
_CONTROL_CHARACTERS = "".join(map(chr, [*range(9), 11, 12, *range(14, 32), 127, 0xFFFD]))
_CONTROL = re.compile(f"[{_CONTROL_CHARACTERS}]")


def _unquote(word: str) -> str:
    if '"' not in word and "'" not in word and "\\" not in word:
        return word
    if word[0] == '"' and word.count('"') == 2 and word[-1] == '"' and "\\" not in word:
        return word[1:-1]

    def piece(m: re.Match[str]) -> str:
        if m.group(1) is not None:
            return re.sub(r"\\(.)", r"\1", m.group(1))
        if m.group(2) is not None:
            return m.group(2)
        return m.group(3)

    return _UNQUOTE.sub(piece, word)


def _words(spec: str) -> tuple[list[str], bool]:
    """A rule's words, quotes kept, and whether every quote closed."""
    if '"' not in spec and "'" not in spec and "\\" not in spec:
        return spec.split(), True
    words: list[str] = []
    ok = True
    for word, rest in _TOKEN.findall(spec):
        if word:
            words.append(word)
        elif rest:
            words.append(rest)
            ok = False
    return words, ok


def _without_verbose_counters(line: str) -> str:
    """The line without the "-c PACKETS BYTES" of `iptables -S -v`, which iptables prints just
    before the target (at the end of a rule without one, or of a "-P" line)."""
    for m in _VERBOSE_COUNTERS.finditer(line):
        if _words(line[: m.start()])[1]:  # not inside a quoted string
            return line[: m.start()] + line[m.end() :]
    return line


def _plain_scan(words: list[str]) -> tuple[str | None, tuple[str, ...]]:
    """The target and comments of a rule made of bare words (no quotes)."""
    target: str | None = None
    for jump in ("-j", "-g", "--jump", "--goto"):
        if jump in words:
            at = words.index(jump)
            if at + 1 < len(words):
                target = words[at + 1]
            break
    if "--comment" not in words:
        return target, ()
    return target, tuple(words[i + 1] for i in range(len(words) - 1) if words[i] == "--comment")


def _quoted_scan(rest: str) -> tuple[str | None, tuple[str, ...]] | None:
    """The common case: double quotes only, each quoted string a whole word (as iptables-save
    prints comments). None when the line is not that simple."""
    parts = rest.split('"')
    last = len(parts) - 1
    if last % 2:
        return None  # unbalanced
    comments: list[str] = []
    for i in range(1, last, 2):
        before, after = parts[i - 1], parts[i + 1]
        if not (before[-1:].isspace() or (i == 1 and not before)):
            return None
        if not (after[:1].isspace() or (i + 1 == last and not after)):
            return None
        if "--comment" in before:
            word = before.rstrip()
            if word == "--comment" or (word[-10:-9].isspace() and word.endswith("--comment")):
                comments.append(parts[i])
    # Quoted strings become one placeholder word each: they can hold no jump or option.
    words = " \x00 ".join(parts[0::2]).split()
    target: str | None = None
    for jump in ("-j", "-g", "--jump", "--goto"):
        if jump in words:
            at = words.index(jump)
            if at + 1 < len(words):
                target = words[at + 1]
            break
    if rest.count("--comment") > len(comments):  # some comment is a bare word
        _, bare = _plain_scan(words)
        comments.extend(c for c in bare if c != "\x00")
    return target, tuple(comments)


def _scan(rest: str) -> tuple[str | None, tuple[str, ...], bool]:
    """The target and comments of a rule, from the words after its chain name, and whether
    every quote in them closed."""
    if '"' not in rest and "'" not in rest and "\\" not in rest:
        return (*_plain_scan(rest.split()), True)
    if "'" not in rest and "\\" not in rest:
        simple = _quoted_scan(rest)
        if simple is not None:
            return (*simple, True)
    words, ok = _words(rest)
    target: str | None = None
    comments: list[str] = []
    for i in range(len(words) - 1):
        word = words[i]
        if word == "--comment":
            comments.append(_unquote(words[i + 1]))
        elif target is None and word in ("-j", "-g", "--jump", "--goto"):
            target = _unquote(words[i + 1])
    return target, tuple(comments), ok


def _has_control_characters(text: str) -> bool:
    # One scan of the text per character is a lot faster than one regex search.
    return any(c in text for c in _CONTROL_CHARACTERS)


def _is_plain(text: str) -> bool:
    """No backslash, no single quote, no `-S -v` counters: nothing to unescape or strip."""
    return "\\" not in text and "'" not in text and " -c " not in text


class _Parser:
    def __init__(self, attribution: _Attribution | None = None) -> None:
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
            parts = _without_verbose_counters(line).split()
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
            line = _without_verbose_counters(line)
        if line[:3] != "-A " and line[:3] != "-I ":
            self.error(number, f"unrecognised line: {line[:80]!r}")
            return
        spec = line[3:].lstrip()
        chain_name, _, rest = spec.partition(" ")
        if not _CHAIN_NAME.fullmatch(chain_name):
            self.error(number, f"rule without a chain name: {line[:80]!r}")
            return
        target, comments, ok = _scan(rest)
        if not ok:
            self.error(number, "unterminated quote in rule")
        table = self.current()
        rule = Rule(table.name, chain_name, line, number, comments, target)
        table.chain(chain_name).rules.append(rule)
        self.rules.append(rule)
        self.unsettled.append(rule)
        self.recognised += 1


def parse(text: str, attribution: _Attribution | None = None) -> _Parser:
    """The dump's tables, chains, rules and errors; with an attribution, the owners of the rules
    their chain settles too (see _Attribution)."""
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
    attribution = _Attribution(tuple(owners))
    with _collector_paused():
        parser = parse(text, attribution)
        for rule in parser.unsettled:
            rule.owner = attribution.judge(rule)
        findings = [_finding(rule) for rule in parser.unsettled if rule.owner is None]
    return Analysis(parser.tables, parser.rules, findings, parser.errors, parser.recognised)


def _finding(rule: Rule) -> Finding:
    origin, hint = origin_of(rule)
    return Finding(rule.table, rule.chain, rule.rule, origin, hint, rule.line)
