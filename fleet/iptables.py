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
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

UNKNOWN_TABLE = "?"  # rules read before any "*table" header

WIRESERVER = r"168\.63\.129\.16/32"


# --- the parsed dump ---------------------------------------------------------------------------


@dataclass(slots=True)
class Rule:
    table: str  # UNKNOWN_TABLE when the dump has no "*table" header before it
    chain: str
    rule: str  # the exact "-A CHAIN ..." line, without counters
    line: int  # 1-based line number in the input
    comments: tuple[str, ...] = ()  # the text of each "-m comment --comment ..." (unquoted)
    target: str | None = None  # the "-j" / "-g" target, if any
    owner: str | None = None  # the OWNERS entry that claims it; None: user-installed


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
class Owner:
    """One allow-list entry: who installs the rules it claims, in which tables, and how to tell.

    `tables` is None for "every table". `match` gets a Rule (its chain, exact line, comments and
    target). To accept more, add an Owner to OWNERS (and record why in the audit log).
    """

    name: str
    allows: str  # the allow-list entry, in words
    tables: frozenset[str] | None
    match: Callable[[Rule], bool]


def in_or_jumping_to(*chains: str, prefixes: tuple[str, ...] = ()) -> Callable[[Rule], bool]:
    """Rules in one of these chains (exact names, or names starting with a prefix), or jumping
    to one."""
    names = frozenset(chains)

    def match(rule: Rule) -> bool:
        for name in (rule.chain, rule.target):
            if name is not None and (name in names or name.startswith(prefixes)):
                return True
        return False

    return match


def comment_contains(text: str) -> Callable[[Rule], bool]:
    return lambda rule: any(text in c for c in rule.comments)


def chain_prefix(prefix: str) -> Callable[[Rule], bool]:
    return lambda rule: rule.chain.startswith(prefix)


def line_matches(pattern: str) -> Callable[[Rule], bool]:
    """The whole rule line (without counters) matches this regular expression."""
    regex = re.compile(pattern)
    return lambda rule: regex.fullmatch(rule.rule) is not None


def _tables(*names: str) -> frozenset[str]:
    return frozenset(names)


_LOCALDNS_COMMENT = (
    r"""(?:-m comment --comment (?:"localdns: skip conntrack"|'localdns: skip conntrack') )"""
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
    # raw
    Owner(
        "AKS node setup (localdns)",
        "PREROUTING/OUTPUT NOTRACK of tcp/udp port 53 to 169.254.10.10/32 or 169.254.10.11/32 "
        'with comment "localdns: skip conntrack"',
        _tables("raw"),
        line_matches(
            r"-A (?:PREROUTING|OUTPUT) -d 169\.254\.10\.1[01]/32 -p (?:tcp|udp) "
            rf"{_LOCALDNS_COMMENT}?(?:-m (?:tcp|udp) )?{_LOCALDNS_COMMENT}?--dport 53 -j NOTRACK"
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


def owner_of(rule: Rule, owners: Iterable[Owner] = OWNERS) -> str | None:
    for owner in owners:
        if (
            owner.tables is None or rule.table in owner.tables or rule.table == UNKNOWN_TABLE
        ) and owner.match(rule):
            return owner.name
    return None


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
_VERBOSE_COUNTERS = re.compile(r"(-[AIP] \S+(?: \S+)?) -c \d+ \d+(?= |$)")
_CHAIN_NAME = re.compile(r"(?!-)[^\s\"'\\]{1,64}")  # iptables: no leading "-"
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffd]")


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


class _Parser:
    def __init__(self) -> None:
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
            parts = _VERBOSE_COUNTERS.sub(r"\1", line).split()
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
            line = _VERBOSE_COUNTERS.sub(r"\1", line, count=1)
        if line[:3] != "-A " and line[:3] != "-I ":
            self.error(number, f"unrecognised line: {line[:80]!r}")
            return
        spec = line[3:].lstrip()
        chain_name, _, rest = spec.partition(" ")
        if not _CHAIN_NAME.fullmatch(chain_name):
            self.error(number, f"rule without a chain name: {line[:80]!r}")
            return
        target: str | None = None
        comments: tuple[str, ...] = ()
        if '"' not in rest and "'" not in rest and "\\" not in rest:
            target, comments = _plain_scan(rest.split())
        else:
            fast = _quoted_scan(rest) if "'" not in rest and "\\" not in rest else None
            if fast is None:
                fast = self.slow_scan(number, rest)
            target, comments = fast
        table = self.current()
        rule = Rule(table.name, chain_name, line, number, comments, target)
        table.chain(chain_name).rules.append(rule)
        self.rules.append(rule)
        self.recognised += 1

    def slow_scan(self, number: int, rest: str) -> tuple[str | None, tuple[str, ...]]:
        words, ok = _words(rest)
        if not ok:
            self.error(number, "unterminated quote in rule")
        target: str | None = None
        comments: list[str] = []
        n = len(words)
        for i in range(n - 1):
            word = words[i]
            if word == "--comment":
                comments.append(_unquote(words[i + 1]))
            elif target is None and word in ("-j", "-g", "--jump", "--goto"):
                target = _unquote(words[i + 1])
        return target, tuple(comments)


def parse(text: str) -> _Parser:
    parser = _Parser()
    if not isinstance(text, str):  # defensive: callers with bytes get a clear error
        parser.error(0, "input is not text")
        return parser
    parser.check_text = _CONTROL.search(text) is not None
    # The hot path, inlined: a plain "-A CHAIN ..." line of canonical iptables-save output.
    # Anything else (or anything odd about such a line) goes through parser.feed.
    fast = not parser.check_text
    rules = parser.rules
    chain_name_ok = _CHAIN_NAME.fullmatch
    counters_ok = _COUNTERS.fullmatch
    table: Table | None = None
    chains: dict[str, Chain] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        try:
            if (
                fast
                and raw[:3] == "-A "
                and raw[-1:] > " "
                and "\\" not in raw
                and "'" not in raw
                and " -c " not in raw
            ):
                chain_name, _, rest = raw[3:].partition(" ")
                scanned = (
                    (_quoted_scan(rest) if '"' in rest else _plain_scan(rest.split()))
                    if chain_name_ok(chain_name)
                    else None
                )
                if scanned is not None:
                    if table is None or parser.table is not table:
                        table = parser.current()
                        chains = table.chains
                    chain = chains.get(chain_name)
                    if chain is None:
                        chain = chains[chain_name] = Chain(chain_name)
                    rule = Rule(table.name, chain_name, raw, number, scanned[1], scanned[0])
                    chain.rules.append(rule)
                    rules.append(rule)
                    parser.recognised += 1
                    continue
            elif fast and raw[:1] == ":":
                parts = raw[1:].split()
                if (
                    len(parts) == 3
                    and chain_name_ok(parts[0])
                    and counters_ok(parts[2])
                    and parser.table is not None
                ):
                    if parser.table is not table:
                        table = parser.table
                        chains = table.chains
                    chain = chains.get(parts[0])
                    if chain is None:
                        chain = chains[parts[0]] = Chain(parts[0])
                    if parts[1] != "-":
                        chain.policy = parts[1]
                    parser.recognised += 1
                    continue
            parser.feed(number, raw)
        except Exception as exc:  # the parser must never raise on input
            parser.error(number, f"could not parse line: {exc}")
    return parser


def analyse(text: str, owners: Iterable[Owner] = OWNERS) -> Analysis:
    """Parse a dump, attribute each rule, and list the rules nobody that AKS accepts owns."""
    owners = tuple(owners)
    parser = parse(text)
    findings: list[Finding] = []
    for rule in parser.rules:
        rule.owner = owner_of(rule, owners)
        if rule.owner is None:
            origin, hint = origin_of(rule)
            findings.append(Finding(rule.table, rule.chain, rule.rule, origin, hint, rule.line))
    return Analysis(parser.tables, parser.rules, findings, parser.errors, parser.recognised)
