"""Likely origins of the rules nobody AKS accepts owns (Calico, Docker, Istio, fail2ban, a custom
chain...), each with how to remove its rules safely."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from preflight.iptables.dump import Rule

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
