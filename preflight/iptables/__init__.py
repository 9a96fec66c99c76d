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

The package's modules follow those steps: `dump` (what a parsed dump holds), `words` (a rule's
target and comments), `owners` (the allow-list), `origins` (hints for the rest) and `parsing`
(`parse` and `analyse`). Callers import from the package itself.
"""

from __future__ import annotations

from preflight.iptables.dump import UNKNOWN_TABLE, Analysis, Chain, Error, Finding, Rule, Table
from preflight.iptables.origins import BUILTIN_CHAINS, ORIGINS, Origin, origin_of
from preflight.iptables.owners import (
    OWNERS,
    WIRESERVER,
    AllOf,
    ChainNames,
    CommentContains,
    LineMatches,
    Owner,
    chain_prefix,
    comment_contains,
    in_or_jumping_to,
    line_matches,
    owner_of,
)
from preflight.iptables.parsing import analyse, parse

__all__ = [
    "BUILTIN_CHAINS",
    "ORIGINS",
    "OWNERS",
    "UNKNOWN_TABLE",
    "WIRESERVER",
    "AllOf",
    "Analysis",
    "Chain",
    "ChainNames",
    "CommentContains",
    "Error",
    "Finding",
    "LineMatches",
    "Origin",
    "Owner",
    "Rule",
    "Table",
    "analyse",
    "chain_prefix",
    "comment_contains",
    "in_or_jumping_to",
    "line_matches",
    "origin_of",
    "owner_of",
    "parse",
]
