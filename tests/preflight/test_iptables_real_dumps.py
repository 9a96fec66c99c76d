"""preflight.iptables on what Debian's real iptables prints, not on text we wrote ourselves.

Each backend (iptables-nft, iptables-legacy) builds the same rule sets with its own commands,
IPv4 and IPv6, inside a network namespace of its own (`unshare -n`: the host's rules are never
touched, and the namespace goes when its shell exits). The rules are typed the way people and
tools type them (no `-m tcp`, no `/32`, `--uid-owner root`, bare comments, comments after the
port), so the dumps carry iptables' own normalisation. Every dump form a node can give
(`iptables-save`, `iptables-save -c`, `iptables -t TABLE -S`, `iptables -t TABLE -S -v`) must
give exactly the expected verdict for every rule: its owner, or its origin as a user rule.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from preflight.iptables import OWNERS, UNKNOWN_TABLE, Analysis, Owner, analyse, owner_of

ROOT = Path(__file__).resolve().parents[2]
SBIN_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
BACKENDS = ("nft", "legacy")
FAMILIES = ("ipv4", "ipv6")
TABLES = ("filter", "nat", "mangle", "raw", "security")
BUILTIN = {
    "filter": {"INPUT", "FORWARD", "OUTPUT"},
    "nat": {"PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"},
    "mangle": {"PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"},
    "raw": {"PREROUTING", "OUTPUT"},
    "security": {"INPUT", "FORWARD", "OUTPUT"},
}
TARGETS = {
    "ACCEPT", "DROP", "RETURN", "REJECT", "LOG", "MARK", "MASQUERADE", "SNAT", "DNAT", "REDIRECT",
    "CT", "NOTRACK", "TPROXY", "TCPMSS",
}  # fmt: skip
V4, V6, BOTH = ("ipv4",), ("ipv6",), FAMILIES


@dataclass(frozen=True)
class Spec:
    """One rule as typed after `iptables -t TABLE`, and the verdict it must get: "owner: X"
    for an owned rule, "user: ORIGIN" for a user-installed one."""

    table: str
    typed: str  # shell words: "-A CHAIN ...", or "-N CHAIN" for a chain with no rules
    verdict: str
    families: tuple[str, ...] = BOTH

    @property
    def chain(self) -> str:
        return self.typed.split()[1]


def owned(owner: str, table: str, typed: str, families: tuple[str, ...] = BOTH) -> Spec:
    return Spec(table, typed, f"owner: {owner}", families)


def user(origin: str, table: str, typed: str, families: tuple[str, ...] = BOTH) -> Spec:
    return Spec(table, typed, f"user: {origin}", families)


KP, KUBELET, CILIUM = "kube-proxy", "kubelet", "Cilium"
WIRESERVER, DHCP, SWIFT = (
    "AKS node setup (wireserver)",
    "AKS node setup (DHCP client)",
    "AKS node setup (SWIFT)",
)
LOCALDNS, WAAGENT = "AKS node setup (localdns)", "AKS node setup (waagent)"
AGENTBAKER, MASQ = "AKS node setup (AgentBaker)", "AKS node setup (ip-masq-agent)"
DNS_SVC, DNS_SEP1, DNS_SEP2 = (
    "KUBE-SVC-TCOU7JCQXEZGVUNU",
    "KUBE-SEP-IT2ZTR26TO4XFPTO",
    "KUBE-SEP-YIL6JZP7A3QYXJU2",
)
WEB_EXT, WEB_SVC, WEB_SEP = (
    "KUBE-EXT-NPX46M4PTMTKRN6Y",
    "KUBE-SVC-NPX46M4PTMTKRN6Y",
    "KUBE-SEP-ZXMNUKOKXUTL2MK2",
)
KIND_COMMENT = (
    "kind-masq-agent: ensure nat POSTROUTING directs relevant traffic to the kind-masq-agent chain"
)
MASQ_COMMENT = "ip-masq-agent: ensure nat POSTROUTING directs all non-LOCAL destination traffic to our custom IP-MASQ-AGENT chain"

SPECS: tuple[Spec, ...] = (
    # kube-proxy (iptables mode) and kubelet
    owned(KP, "nat", '-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES'),
    owned(KP, "nat", '-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES'),
    owned(KP, "nat", '-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING'),
    owned(KP, "nat", "-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000"),
    owned(KP, "nat", "-A KUBE-MARK-DROP -j MARK --set-xmark 0x8000/0x8000"),
    owned(KP, "nat", "-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN"),
    owned(KP, "nat", "-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000"),
    owned(KP, "nat", '-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully'),
    owned(KP, "nat", f'-A KUBE-SERVICES -d 10.0.0.10/32 -p udp -m comment --comment "kube-system/kube-dns:dns cluster IP" --dport 53 -j {DNS_SVC}', V4),
    owned(KP, "nat", f'-A KUBE-SERVICES -d fd00::a -p udp -m comment --comment "kube-system/kube-dns:dns cluster IP" -m udp --dport 53 -j {DNS_SVC}', V6),
    owned(KP, "nat", '-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS'),
    owned(KP, "nat", f'-A KUBE-NODEPORTS -p tcp -m comment --comment "default/web:http" --dport 30080 -j {WEB_EXT}'),
    owned(KP, "nat", f'-A {WEB_EXT} -m comment --comment "masquerade traffic for default/web:http external destinations" -j KUBE-MARK-MASQ'),
    owned(KP, "nat", f"-A {WEB_EXT} -j {WEB_SVC}"),
    owned(KP, "nat", f'-A {WEB_SVC} -m comment --comment "default/web:http -> 10.244.1.9:8080" -j {WEB_SEP}', V4),
    owned(KP, "nat", f'-A {WEB_SVC} -m comment --comment "default/web:http -> [fd00:10:244:1::9]:8080" -j {WEB_SEP}', V6),
    owned(KP, "nat", f'-A {WEB_SEP} -s 10.244.1.9 -m comment --comment "default/web:http" -j KUBE-MARK-MASQ', V4),
    owned(KP, "nat", f'-A {WEB_SEP} -p tcp -m comment --comment "default/web:http" -m tcp -j DNAT --to-destination 10.244.1.9:8080', V4),
    owned(KP, "nat", f'-A {WEB_SEP} -s fd00:10:244:1::9 -m comment --comment "default/web:http" -j KUBE-MARK-MASQ', V6),
    owned(KP, "nat", f'-A {WEB_SEP} -p tcp -m comment --comment "default/web:http" -m tcp -j DNAT --to-destination [fd00:10:244:1::9]:8080', V6),
    owned(KP, "nat", f'-A {DNS_SVC} ! -s 10.244.0.0/16 -d 10.0.0.10/32 -p udp -m comment --comment "kube-system/kube-dns:dns cluster IP" -m udp --dport 53 -j KUBE-MARK-MASQ', V4),
    owned(KP, "nat", f'-A {DNS_SVC} -m comment --comment "kube-system/kube-dns:dns -> 10.244.0.5:53" -m statistic --mode random --probability 0.5 -j {DNS_SEP1}', V4),
    owned(KP, "nat", f'-A {DNS_SVC} -m comment --comment "kube-system/kube-dns:dns -> 10.244.1.7:53" -j {DNS_SEP2}', V4),
    owned(KP, "nat", f'-A {DNS_SEP1} -s 10.244.0.5/32 -m comment --comment "kube-system/kube-dns:dns" -j KUBE-MARK-MASQ', V4),
    owned(KP, "nat", f'-A {DNS_SEP1} -p udp -m comment --comment "kube-system/kube-dns:dns" -m udp -j DNAT --to-destination 10.244.0.5:53', V4),
    owned(KP, "nat", f'-A {DNS_SEP2} -p udp -m comment --comment "kube-system/kube-dns:dns" -j DNAT --to-destination 10.244.1.7:53', V4),
    owned(KP, "nat", f'-A {DNS_SVC} -m comment --comment "kube-system/kube-dns:dns -> [fd00:10:244::5]:53" -j {DNS_SEP1}', V6),
    owned(KP, "nat", f'-A {DNS_SEP1} -p udp -m comment --comment "kube-system/kube-dns:dns" -j DNAT --to-destination [fd00:10:244::5]:53', V6),
    owned(KP, "filter", '-A INPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer firewall" -j KUBE-PROXY-FIREWALL'),
    owned(KP, "filter", '-A INPUT -m comment --comment "kubernetes health check service ports" -j KUBE-NODEPORTS'),
    owned(KP, "filter", '-A INPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes externally-visible service portals" -j KUBE-EXTERNAL-SERVICES'),
    owned(KP, "filter", '-A FORWARD -m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD'),
    owned(KP, "filter", '-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES'),
    owned(KP, "filter", '-A OUTPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" -j KUBE-SERVICES'),
    owned(KP, "filter", "-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP"),
    owned(KP, "filter", '-A KUBE-FORWARD -m comment --comment "kubernetes forwarding rules" -m mark --mark 0x4000/0x4000 -j ACCEPT'),
    owned(KP, "filter", '-A KUBE-FORWARD -m comment --comment "kubernetes forwarding conntrack rule" -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT'),
    owned(KP, "filter", '-A KUBE-SERVICES -d 10.0.5.5/32 -p tcp -m comment --comment "default/idle:http has no endpoints" -m tcp --dport 80 -j REJECT', V4),
    owned(KP, "mangle", "-N KUBE-PROXY-CANARY"),
    owned(KP, "mangle", "-N KUBE-KUBELET-CANARY"),
    owned(KUBELET, "filter", "-A INPUT -j KUBE-FIREWALL"),
    owned(KUBELET, "filter", "-A OUTPUT -j KUBE-FIREWALL"),
    owned(KUBELET, "filter", '-A KUBE-FIREWALL ! -s 127.0.0.0/8 -d 127.0.0.0/8 -m comment --comment "block incoming localnet connections" -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP', V4),
    owned(KUBELET, "filter", '-A KUBE-FIREWALL -m comment --comment "kubernetes firewall for dropping marked packets" -m mark --mark 0x8000/0x8000 -j DROP', V6),
    # Cilium
    owned(CILIUM, "filter", '-A INPUT -m comment --comment "cilium-feeder: CILIUM_INPUT" -j CILIUM_INPUT'),
    owned(CILIUM, "filter", '-A FORWARD -m comment --comment "cilium-feeder: CILIUM_FORWARD" -j CILIUM_FORWARD'),
    owned(CILIUM, "filter", '-A OUTPUT -m comment --comment "cilium-feeder: CILIUM_OUTPUT" -j CILIUM_OUTPUT'),
    owned(CILIUM, "filter", '-A CILIUM_INPUT -m mark --mark 0x200/0xf00 -m comment --comment "cilium: ACCEPT for proxy traffic" -j ACCEPT'),
    owned(CILIUM, "filter", '-A CILIUM_FORWARD -o cilium_host -m comment --comment "cilium: any->cluster on cilium_host forward accept" -j ACCEPT'),
    owned(CILIUM, "filter", '-A CILIUM_OUTPUT -m mark ! --mark 0xe00/0xf00 -m mark ! --mark 0xd00/0xf00 -m comment --comment "cilium: host->any mark as from host" -j MARK --set-xmark 0xc00/0xf00'),
    owned(CILIUM, "raw", '-A PREROUTING -m comment --comment "cilium-feeder: CILIUM_PRE_raw" -j CILIUM_PRE_raw'),
    owned(CILIUM, "raw", '-A OUTPUT -m comment --comment "cilium-feeder: CILIUM_OUTPUT_raw" -j CILIUM_OUTPUT_raw'),
    owned(CILIUM, "raw", '-A CILIUM_PRE_raw -m mark --mark 0x200/0xf00 -m comment --comment "cilium: NOTRACK for proxy traffic" -j CT --notrack'),
    owned(CILIUM, "raw", '-A CILIUM_OUTPUT_raw -o lxc+ -m mark --mark 0xa00/0xfffffeff -m comment --comment "cilium: NOTRACK for proxy return traffic" -j CT --notrack'),
    owned(CILIUM, "mangle", '-A PREROUTING -m comment --comment "cilium-feeder: CILIUM_PRE_mangle" -j CILIUM_PRE_mangle'),
    owned(CILIUM, "mangle", '-A CILIUM_PRE_mangle -p tcp -m mark --mark 0x7a3c0200 -m comment --comment "cilium: TPROXY to host cilium-dns-egress proxy" -j TPROXY --on-port 15260 --on-ip 127.0.0.1 --tproxy-mark 0x200/0xffffffff', V4),
    owned(CILIUM, "nat", '-A POSTROUTING -m comment --comment "cilium-feeder: CILIUM_POST_nat" -j CILIUM_POST_nat'),
    owned(CILIUM, "nat", '-A CILIUM_POST_nat -s 10.0.0.0/8 ! -d 10.0.0.0/8 ! -o cilium_+ -m comment --comment "cilium masquerade non-cluster" -j MASQUERADE', V4),
    owned(CILIUM, "nat", "-A CILIUM_POST_nat -s fd00:10:244::/48 ! -o cilium_+ -j MASQUERADE", V6),
    # the AKS node's own rules (the reference's allow-list)
    owned(WIRESERVER, "filter", "-A FORWARD -d 168.63.129.16/32 -p tcp --dport 80 -j DROP", V4),
    owned(WIRESERVER, "filter", "-A FORWARD -d 168.63.129.16 -p tcp -m tcp --dport 32526 -j DROP", V4),
    owned(WIRESERVER, "mangle", "-A FORWARD -d 168.63.129.16 -p tcp --dport 80 -j DROP", V4),
    owned(WIRESERVER, "mangle", "-A FORWARD -d 168.63.129.16/32 -p tcp --dport 32526 -j DROP", V4),
    # the allow-list is the same for ip6tables (dual-stack nodes)
    owned(DHCP, "filter", "-A INPUT -p udp --dport 68 -j ACCEPT"),
    owned(SWIFT, "nat", "-A POSTROUTING -j SWIFT", V4),
    owned(SWIFT, "nat", "-A POSTROUTING -j SWIFT-POSTROUTING", V4),
    owned(SWIFT, "nat", "-A SWIFT -s 10.240.0.0/16 -d 168.63.129.16 -j SNAT --to-source 10.240.0.4", V4),
    owned(SWIFT, "nat", "-A SWIFT-POSTROUTING -s 10.240.0.0/16 -d 169.254.169.254 -j SNAT --to-source 10.240.0.4", V4),
    owned(LOCALDNS, "raw", '-A PREROUTING -d 169.254.10.10 -p udp -m comment --comment "localdns: skip conntrack" --dport 53 -j NOTRACK', V4),
    owned(LOCALDNS, "raw", '-A PREROUTING -d 169.254.10.10/32 -p tcp -m comment --comment "localdns: skip conntrack" -m tcp --dport 53 -j NOTRACK', V4),
    owned(LOCALDNS, "raw", "-A OUTPUT -d 169.254.10.11 -p udp --dport 53 -m comment --comment 'localdns: skip conntrack' -j NOTRACK", V4),
    owned(LOCALDNS, "raw", '-A OUTPUT -d 169.254.10.11/32 -p tcp -m tcp --dport 53 -m comment --comment "localdns: skip conntrack" -j NOTRACK', V4),
    owned(WAAGENT, "security", "-A OUTPUT -d 168.63.129.16 -p tcp --dport 53 -j ACCEPT", V4),
    owned(WAAGENT, "security", "-A OUTPUT -d 168.63.129.16/32 -p tcp -m owner --uid-owner root -j ACCEPT", V4),
    owned(WAAGENT, "security", "-A OUTPUT -d 168.63.129.16/32 -p tcp -m conntrack --ctstate NEW,INVALID -j DROP", V4),
    owned(AGENTBAKER, "mangle", '-A FORWARD -d 169.254.169.254/32 -p tcp --dport 80 -m comment --comment "AKS managed: added by AgentBaker ensureIMDSRestriction for IMDS restriction feature" -j DROP', V4),
    owned(AGENTBAKER, "filter", '-A FORWARD -p tcp -m comment --comment "AKS managed: added by AgentBaker for the v6 node" --dport 10250 -j ACCEPT', V6),
    owned(MASQ, "nat", f'-A POSTROUTING -m comment --comment "{MASQ_COMMENT}" -m addrtype ! --dst-type LOCAL -j IP-MASQ-AGENT'),
    owned(MASQ, "nat", '-A IP-MASQ-AGENT -d 10.244.0.0/16 -m comment --comment "ip-masq-agent: local traffic is not subject to MASQUERADE" -j RETURN', V4),
    owned(MASQ, "nat", '-A IP-MASQ-AGENT -d fd00:10:244::/48 -m comment --comment "ip-masq-agent: local traffic is not subject to MASQUERADE" -j RETURN', V6),
    owned(MASQ, "nat", '-A IP-MASQ-AGENT -m comment --comment "ip-masq-agent: outbound traffic is subject to MASQUERADE (must be last in chain)" -j MASQUERADE'),
    # user-installed, one origin after another
    user("Calico", "filter", '-A INPUT -m comment --comment "cali:Cz_u1IQiXIMmKD4c" -j cali-INPUT'),
    user("Calico", "filter", '-A FORWARD -m comment --comment "cali:wUHhoiAYhphO9Mso" -j cali-FORWARD'),
    user("Calico", "filter", '-A FORWARD -m comment --comment "cali:S93hcgKJrXEqnTfs" -m comment --comment "Policy explicitly accepted packet." -m mark --mark 0x10000/0x10000 -j ACCEPT'),
    user("Calico", "filter", '-A cali-INPUT -p udp -m comment --comment "cali:w7ud0UgQSEi_zKuQ" -m comment --comment "Allow IPv4 VXLAN packets from allowed hosts" -m multiport --dports 4789 -j ACCEPT'),
    user("Calico", "filter", "-A cali-FORWARD -m comment --comment cali:vjrMJCRpqwy5oRoX -j MARK --set-xmark 0x0/0xe0000"),
    user("Docker", "nat", "-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER"),
    user("Docker", "nat", "-A OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DOCKER", V4),
    user("Docker", "nat", "-A DOCKER -i docker0 -j RETURN"),
    user("Docker", "filter", "-A FORWARD -j DOCKER-USER"),
    user("Docker", "filter", "-A FORWARD -j DOCKER-ISOLATION-STAGE-1"),
    user("Docker", "filter", "-A DOCKER-USER -j RETURN"),
    user("Docker", "filter", "-A DOCKER-ISOLATION-STAGE-1 -i docker0 ! -o docker0 -j RETURN"),
    user("Istio", "nat", "-A OUTPUT -p tcp -j ISTIO_OUTPUT"),
    user("Istio", "nat", "-A ISTIO_OUTPUT -j ISTIO_REDIRECT"),
    user("Istio", "nat", "-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001"),
    user("Flannel", "nat", '-A POSTROUTING -m comment --comment "flanneld masq" -j FLANNEL-POSTRTG'),
    user("Flannel", "nat", '-A FLANNEL-POSTRTG -m mark --mark 0x4000/0x4000 -m comment --comment "flanneld masq" -j RETURN'),
    user("Flannel", "filter", '-A FORWARD -m comment --comment "flanneld forward" -j FLANNEL-FWD'),
    user("Flannel", "filter", '-A FLANNEL-FWD -s 10.244.0.0/16 -m comment --comment "flanneld forward" -j ACCEPT', V4),
    # Weave's comment names kube-proxy's chain: a look-alike, and single quotes in a comment.
    user("Weave", "filter", "-A FORWARD -o weave -m comment --comment \"NOTE: this must go before '-j KUBE-FORWARD'\" -j WEAVE-NPC"),
    user("Weave", "nat", "-A POSTROUTING -j WEAVE", V4),
    user("Weave", "nat", "-A WEAVE -s 10.32.0.0/12 -d 224.0.0.0/4 -j RETURN", V4),
    user("firewalld", "filter", "-A INPUT -j INPUT_direct"),
    user("firewalld", "filter", "-A INPUT -j IN_public"),
    user("firewalld", "filter", "-A IN_public -j IN_public_allow"),
    user("firewalld", "filter", "-A IN_public_allow -p tcp --dport 22 -m conntrack --ctstate NEW,UNTRACKED -j ACCEPT"),
    user("fail2ban", "filter", "-A INPUT -p tcp -m multiport --dports 22 -j f2b-sshd"),
    user("fail2ban", "filter", "-A f2b-sshd -s 192.0.2.7/32 -j REJECT --reject-with icmp-port-unreachable", V4),
    user("fail2ban", "filter", "-A f2b-sshd -s 2001:db8::7 -j REJECT", V6),
    user("fail2ban", "filter", "-A f2b-sshd -j RETURN"),
    user("ufw", "filter", "-A INPUT -j ufw-before-input", V4),
    user("ufw", "filter", "-A ufw-before-input -i lo -j ACCEPT", V4),
    user("ufw", "filter", "-A ufw-before-input -p udp --sport 67 --dport 68 -j ACCEPT", V4),
    user("ufw", "filter", "-A INPUT -j ufw6-before-input", V6),
    user("ufw", "filter", "-A ufw6-before-input -p ipv6-icmp -j ACCEPT", V6),
    # kind's masquerade agent is a look-alike of ip-masq-agent: not owned
    user("kind", "nat", f'-A POSTROUTING -m addrtype ! --dst-type LOCAL -m comment --comment "{KIND_COMMENT}" -j KIND-MASQ-AGENT'),
    user("kind", "nat", '-A KIND-MASQ-AGENT -d 10.244.0.0/16 -m comment --comment "kind-masq-agent: local traffic is not subject to MASQUERADE" -j RETURN', V4),
    user("kind", "nat", '-A KIND-MASQ-AGENT -m comment --comment "kind-masq-agent: outbound traffic is subject to MASQUERADE (must be last in chain)" -j MASQUERADE'),
    user("MicroK8s", "filter", '-A FORWARD -s 10.1.0.0/16 -m comment --comment "generated for MicroK8s pods" -j ACCEPT', V4),
    user("MicroK8s", "filter", '-A FORWARD -d 10.1.0.0/16 -m comment --comment "generated for MicroK8s pods" -j ACCEPT', V4),
    user("Azure NPM", "filter", "-A FORWARD -m conntrack --ctstate NEW -j AZURE-NPM"),
    user("Azure NPM", "filter", "-A AZURE-NPM -m mark --mark 0x3000 -m comment --comment ACCEPT-on-INGRESS-and-EGRESS-mark-0x3000 -j AZURE-NPM-ACCEPT"),
    user("Azure NPM", "filter", "-A AZURE-NPM-ACCEPT -m comment --comment CLEAR-AZURE-NPM-MARKS -j MARK --set-xmark 0x0/0xffffffff"),
    user("Azure NPM", "filter", "-A AZURE-NPM-ACCEPT -j ACCEPT"),
    user("a custom chain (SECURITY-AGENT)", "filter", "-A INPUT -j SECURITY-AGENT"),
    user("a custom chain (SECURITY-AGENT)", "filter", "-A SECURITY-AGENT -s 203.0.113.0/24 -j DROP", V4),
    user("a custom chain (SECURITY-AGENT)", "filter", "-A SECURITY-AGENT -s 2001:db8:bad::/48 -j DROP", V6),
    user("a custom chain (SECURITY-AGENT)", "filter", "-A SECURITY-AGENT -j LOG --log-prefix 'KUBE-FIREWALL dropped: ' --log-level 4"),
    user("hand-written", "filter", "-A INPUT -p tcp --dport 22 -j ACCEPT"),
    user("hand-written", "filter", '-A INPUT -p tcp -m comment --comment "ssh, see -j KUBE-FIREWALL" --dport 2222 -j ACCEPT'),
    user("hand-written", "filter", "-A OUTPUT -p tcp --dport 25 -j REJECT --reject-with tcp-reset"),
    user("hand-written", "filter", "-A INPUT -s 2001:db8::/32 -j DROP", V6),
    # look-alikes of the AKS node's own rules
    user("hand-written", "filter", "-A INPUT -s 10.0.0.1 -p udp --dport 68 -j ACCEPT", V4),
    user("hand-written", "filter", "-A FORWARD -d 168.63.129.16 -p tcp --dport 443 -j DROP", V4),
    user("hand-written", "mangle", "-A FORWARD -d 168.63.129.16 -p tcp --dport 80 -j ACCEPT", V4),
    user("hand-written", "raw", '-A OUTPUT -d 169.254.10.12 -p udp -m comment --comment "localdns: skip conntrack" --dport 53 -j NOTRACK', V4),
    user("hand-written", "raw", "-A OUTPUT -d 169.254.10.10 -p udp --dport 53 -j NOTRACK", V4),
    user("hand-written", "security", "-A OUTPUT -d 168.63.129.16 -p tcp -m owner --uid-owner 1000 -j ACCEPT", V4),
    user("hand-written", "security", "-A OUTPUT -d 168.63.129.16 -p tcp -m conntrack --ctstate NEW -j DROP", V4),
    user("hand-written", "mangle", "-A FORWARD -p tcp --tcp-flags SYN,RST SYN -j TCPMSS --clamp-mss-to-pmtu"),
    user("hand-written", "nat", "-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE", V4),
)  # fmt: skip


def specs(family: str, table: str | None = None) -> list[Spec]:
    return [
        s
        for s in SPECS
        if family in s.families and s.typed.startswith("-A ") and table in (None, s.table)
    ]


# --- building the rules with real iptables --------------------------------------------------------


def tool(name: str) -> str:
    path = shutil.which(name, path=SBIN_PATH)
    if path is None:
        pytest.skip(f"{name} is not installed (scripts/ensure_test_tools.sh installs it)")
    return path


def build_script(backend: str, out: Path, only_owned: bool = False) -> str:
    """A shell script that types every rule (or only the owned ones) for both families, then
    writes each dump form."""
    chosen = [s for s in SPECS if not only_owned or s.verdict.startswith("owner:")]
    lines = ["set -e"]
    for family in FAMILIES:
        program = f"{'iptables' if family == 'ipv4' else 'ip6tables'}-{backend}"
        ipt, save = (shlex.quote(tool(name)) for name in (program, f"{program}-save"))
        chains: dict[str, list[str]] = {}
        for spec in chosen:
            if family not in spec.families:
                continue
            words = shlex.split(spec.typed)
            jump = words[words.index("-j") + 1] if "-j" in words else None
            names = chains.setdefault(spec.table, [])
            for name in (spec.chain, jump):
                if name and name not in BUILTIN[spec.table] | TARGETS and name not in names:
                    names.append(name)
        for table, names in chains.items():
            lines += [f"{ipt} -t {table} -N {name}" for name in names]
        lines += [f"{ipt} -t {s.table} {s.typed}" for s in specs(family) if s in chosen]

        def into(form: str, family: str = family) -> str:
            return "> " + shlex.quote(str(out / f"{family}-{form}"))

        lines += [f"{save} {into('save')}", f"{save} -c {into('save-c')}"]
        for table in TABLES:
            lines += [
                f"{ipt} -t {table} -S {into(f'S-{table}')}",
                f"{ipt} -t {table} -S -v {into(f'Sv-{table}')}",
            ]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def dumps(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str, str], str]:
    """(backend, family, form) -> text, form one of save, save-c, S-TABLE, Sv-TABLE."""
    unshare = tool("unshare")
    probe = subprocess.run(
        [unshare, "-n", "true"], capture_output=True, text=True, timeout=30, check=False
    )
    if probe.returncode != 0:
        pytest.skip(f"cannot make a network namespace (unshare -n): {probe.stderr.strip()}")
    found: dict[tuple[str, str, str], str] = {}
    for backend in BACKENDS:
        out = tmp_path_factory.mktemp(f"iptables-{backend}")
        script = build_script(backend, out)
        # The namespace lives as long as this shell: nothing is left behind, even on failure.
        done = subprocess.run(
            [unshare, "-n", "sh", "-c", script],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env={**os.environ, "PATH": SBIN_PATH},
        )
        assert done.returncode == 0, f"iptables-{backend} refused a rule:\n{done.stderr}"
        for path in out.iterdir():
            family, form = path.name.split("-", 1)
            found[(backend, family, form)] = path.read_text()
    return found


# --- the verdicts --------------------------------------------------------------------------------


def verdicts(analysis: Analysis) -> Counter[tuple[str, str, str]]:
    owned = Counter(
        (r.table, r.chain, f"owner: {r.owner}") for r in analysis.rules if r.owner is not None
    )
    return owned + Counter((f.table, f.chain, f"user: {f.origin}") for f in analysis.findings)


def expected(family: str, table: str | None = None) -> Counter[tuple[str, str, str]]:
    shown = UNKNOWN_TABLE if table is not None else None
    return Counter((shown or s.table, s.chain, s.verdict) for s in specs(family, table))


def check(
    analysis: Analysis, want: Counter[tuple[str, str, str]], owners: tuple[Owner, ...] = OWNERS
) -> None:
    assert analysis.errors == []
    assert len(analysis.rules) == sum(want.values())
    missing, extra = want - verdicts(analysis), verdicts(analysis) - want
    assert (missing, extra) == (Counter(), Counter()), "\n".join(
        [f"missing {k}" for k in missing] + [f"unexpected {k}" for k in extra]
    )
    # analyse() attributes the whole dump at once; owner_of() is the one-rule reference
    assert [r.owner for r in analysis.rules] == [owner_of(r, owners) for r in analysis.rules]


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("form", ["save", "save-c"])
def test_iptables_save_gives_exactly_the_expected_verdicts(
    dumps: dict[tuple[str, str, str], str], backend: str, family: str, form: str
) -> None:
    text = dumps[(backend, family, form)]
    assert ("\n[0:0] -A " in text) == (form == "save-c")
    analysis = analyse(text)
    check(analysis, expected(family))
    assert analysis.verdict == "blocked"


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("form", ["S", "Sv"])
def test_iptables_dash_s_per_table_gives_exactly_the_expected_verdicts(
    dumps: dict[tuple[str, str, str], str], backend: str, family: str, form: str
) -> None:
    for table in TABLES:
        text = dumps[(backend, family, f"{form}-{table}")]
        assert text.startswith("-P ")
        check(analyse(text), expected(family, table))


def test_the_rule_set_covers_every_origin_and_owner() -> None:
    origins = {s.verdict for s in SPECS}
    for name in (
        "Calico", "Docker", "Istio", "Flannel", "Weave", "firewalld", "fail2ban", "ufw", "kind",
        "MicroK8s", "Azure NPM", "a custom chain (SECURITY-AGENT)", "hand-written",
    ):  # fmt: skip
        assert f"user: {name}" in origins
    owners = (KP, KUBELET, CILIUM, WIRESERVER, DHCP, SWIFT, LOCALDNS, WAAGENT, AGENTBAKER, MASQ)
    for owner in owners:
        assert f"owner: {owner}" in origins


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_administrators_extension_accepts_exactly_its_rules(
    dumps: dict[tuple[str, str, str], str], backend: str
) -> None:
    """An extension stored as data (Owner.from_spec) takes the security agent's rules, in its
    chain and jumping to it, out of the findings, and nothing else."""
    agent = Owner.from_spec(
        "our security agent", "reviewed", tables=["filter"], chain="SECURITY-AGENT"
    )
    for family in FAMILIES:
        want = expected(family)
        for key in [k for k in want if k[2] == "user: a custom chain (SECURITY-AGENT)"]:
            want[(key[0], key[1], "owner: our security agent")] = want.pop(key)
        owners = (*OWNERS, agent)
        check(analyse(dumps[(backend, family, "save")], owners), want, owners)


# --- manage.py iptables_check on real dumps ----------------------------------------------------


@pytest.fixture(scope="module")
def clean_real_dump(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """iptables-nft-save of a node with only the rules AKS accepts."""
    out = tmp_path_factory.mktemp("iptables-clean")
    done = subprocess.run(
        [tool("unshare"), "-n", "sh", "-c", build_script("nft", out, only_owned=True)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "PATH": SBIN_PATH},
    )
    if done.returncode != 0:
        pytest.skip(f"cannot build rules in a network namespace: {done.stderr.strip()}")
    return out / "ipv4-save"


def iptables_check(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "iptables_check", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )


def test_the_command_passes_a_real_clean_dump(clean_real_dump: Path) -> None:
    done = iptables_check(str(clean_real_dump), "--json")

    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout) == {"verdict": "clean", "findings": [], "errors": []}


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_command_lists_every_user_rule_of_a_real_dump_from_stdin(
    dumps: dict[tuple[str, str, str], str], backend: str
) -> None:
    text = dumps[(backend, "ipv4", "save-c")]

    done = iptables_check("-", "--json", stdin=text)

    assert done.returncode == 3, done.stderr
    report = json.loads(done.stdout)
    assert report["verdict"] == "blocked"
    assert report["errors"] == []
    want = Counter(
        (s.table, s.chain, s.verdict) for s in specs("ipv4") if s.verdict.startswith("user:")
    )
    got = Counter((f["table"], f["chain"], f"user: {f['origin']}") for f in report["findings"])
    assert got == want
    assert all(f["rule"] in text and f["hint"] for f in report["findings"])


def test_a_real_dump_cut_short_by_garbage_still_shows_its_blockers_and_the_bad_lines(
    dumps: dict[tuple[str, str, str], str], tmp_path: Path
) -> None:
    readable = "\n".join(dumps[("nft", "ipv4", "save")].splitlines()[:60]) + "\n"
    damaged = tmp_path / "damaged.txt"
    damaged.write_bytes(readable.encode() + b"\x00\xff\xfe garbage \x01\x02\n" * 3)

    done = iptables_check(str(damaged), "--json")

    assert done.returncode == 3, done.stdout + done.stderr  # a damaged tail hides no rule
    report = json.loads(done.stdout)
    # the garbage lines, and (issue 14 §2) the table they cut short, at its header
    lines = readable.splitlines()
    cut = max(n for n, line in enumerate(lines, 1) if line.startswith("*"))
    assert [e["line"] for e in report["errors"]] == sorted([cut, 61, 62, 63])
    assert (
        report["findings"]
        == json.loads(iptables_check("-", "--json", stdin=readable).stdout)["findings"]
    )
