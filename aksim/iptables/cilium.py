"""Cilium's chains (Azure CNI powered by Cilium, which replaces kube-proxy), with its DNS proxy's
rules where ACNS FQDN policies need them."""

from __future__ import annotations

from aksim.iptables.dump import Ruleset, comment
from aksim.iptables.facts import NodeFacts

# (table, built-in chain, Cilium chain) for each feeder jump Cilium installs.
_CILIUM_FEEDERS = (
    ("filter", "INPUT", "CILIUM_INPUT"),
    ("filter", "FORWARD", "CILIUM_FORWARD"),
    ("filter", "OUTPUT", "CILIUM_OUTPUT"),
    ("raw", "PREROUTING", "CILIUM_PRE_raw"),
    ("raw", "OUTPUT", "CILIUM_OUTPUT_raw"),
    ("nat", "PREROUTING", "CILIUM_PRE_nat"),
    ("nat", "OUTPUT", "CILIUM_OUTPUT_nat"),
    ("nat", "POSTROUTING", "CILIUM_POST_nat"),
    ("mangle", "PREROUTING", "CILIUM_PRE_mangle"),
    ("mangle", "POSTROUTING", "CILIUM_POST_mangle"),
)

_CILIUM_FORWARD = (
    ("-o cilium_host", "any->cluster on cilium_host forward accept"),
    ("-i cilium_host", "cluster->any on cilium_host forward accept (nodeport)"),
    ("-i lxc+", "cluster->any on lxc+ forward accept"),
    ("-i cilium_net", "cluster->any on cilium_net forward accept (nodeport)"),
    ("-o lxc+", "any->cluster on lxc+ forward accept"),
    ("-i lxc+", "cluster->any on lxc+ forward accept (nodeport)"),
)


def cilium_rules(v4: Ruleset, facts: NodeFacts) -> None:
    """Cilium 1.16+ (kube-proxy replacement, BPF masquerade): feeders and its own chains.

    Cilium is IPv4-only on a single-stack cluster, so it leaves ip6tables alone.
    """
    for table, builtin, chain in _CILIUM_FEEDERS:
        v4[table].chain(chain)  # declared even when empty: Cilium creates them all
        v4[table].insert(builtin, f"{comment(f'cilium-feeder: {chain}')} -j {chain}")
    filt = v4["filter"]
    if facts.l7_proxy:
        filt.append(
            "CILIUM_INPUT",
            "-m mark --mark 0x200/0xf00 "
            + comment("cilium: ACCEPT for proxy traffic")
            + " -j ACCEPT",
        )
        filt.append(
            "CILIUM_OUTPUT",
            "-m mark --mark 0xa00/0xe00 "
            + comment("cilium: ACCEPT for proxy traffic")
            + " -j ACCEPT",
        )
        filt.append(
            "CILIUM_OUTPUT",
            "-m mark --mark 0x800/0xe00 "
            + comment("cilium: ACCEPT for l7 proxy upstream traffic")
            + " -j ACCEPT",
        )
    not_marks = " ".join(
        f"-m mark ! --mark {m}"
        for m in (
            "0xe00/0xf00",
            "0xd00/0xf00",
            "0x400/0xf00",
            "0xa00/0xe00",
            "0x800/0xe00",
            "0xf00/0xf00",
        )
    )
    filt.append(
        "CILIUM_OUTPUT",
        f"{not_marks} {comment('cilium: host->any mark as from host')} "
        "-j MARK --set-xmark 0xc00/0xf00",
    )
    for match, text in _CILIUM_FORWARD:
        filt.append("CILIUM_FORWARD", f"{match} {comment(f'cilium: {text}')} -j ACCEPT")
    if facts.l7_proxy:
        _cilium_proxy(v4, facts.dns_proxy_port)


def _cilium_proxy(v4: Ruleset, port: int) -> None:
    """The rules that steer traffic into Cilium's DNS proxy (FQDN policies) and skip conntrack."""
    mangle = v4["mangle"]
    mangle.append(
        "CILIUM_PRE_mangle",
        "! -o lo -m socket --transparent -m mark ! --mark 0xe00/0xf00 -m mark ! --mark 0x800/0xf00 "
        + comment("cilium: any->pod redirect proxied traffic to host proxy")
        + " -j MARK --set-xmark 0x200/0xffffffff",
    )
    # Cilium puts the proxy port, in network byte order, in the mark's upper 16 bits.
    mark = ((port & 0xFF) << 24) | ((port >> 8) << 16) | 0x200
    for proto in ("tcp", "udp"):
        mangle.append(
            "CILIUM_PRE_mangle",
            f"-p {proto} -m mark --mark {mark:#x} "
            + comment("cilium: TPROXY to host cilium-dns-egress proxy")
            + f" -j TPROXY --on-port {port} --on-ip 127.0.0.1 --tproxy-mark 0x200/0xffffffff",
        )
    raw = v4["raw"]
    for iface in ("lxc+", "cilium_host"):
        raw.append(
            "CILIUM_OUTPUT_raw",
            f"-o {iface} -m mark --mark 0xa00/0xfffffeff "
            + comment("cilium: NOTRACK for proxy return traffic")
            + " -j CT --notrack",
        )
    for iface in ("lxc+", "cilium_host"):
        raw.append(
            "CILIUM_OUTPUT_raw",
            f"-o {iface} -m mark --mark 0x800/0xe00 "
            + comment("cilium: NOTRACK for L7 proxy upstream traffic")
            + " -j CT --notrack",
        )
    raw.append(
        "CILIUM_PRE_raw",
        "-m mark --mark 0x200/0xf00 "
        + comment("cilium: NOTRACK for proxy traffic")
        + " -j CT --notrack",
    )
