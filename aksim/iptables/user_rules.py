"""The user-installed rules of each kind the fleet file can put on a node
(fleetfile.USER_RULE_KINDS), each line recorded as the truth the analyser is tested against."""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import random
from collections.abc import Callable, Sequence

from aksim.fleetfile import RULE_KINDS
from aksim.iptables.dump import Ruleset, UserRule, comment, quote
from aksim.iptables.facts import NodeFacts
from aksim.iptables.kube_proxy import pod_ip


class Writer:
    """Adds one user kind's rules to the node and records each "-A" line as the truth."""

    def __init__(self, kind: str, rules: dict[str, Ruleset], sink: list[UserRule]) -> None:
        self.kind = kind
        self.rules = rules
        self.sink = sink

    def chain(self, table: str, name: str, family: str = "ipv4") -> None:
        self.rules[family][table].chain(name)

    def policy(self, table: str, chain: str, policy: str) -> None:
        self.rules["ipv4"][table].policies[chain] = policy

    def append(self, table: str, chain: str, spec: str, family: str = "ipv4") -> None:
        self._record(family, table, chain, self.rules[family][table].append(chain, spec))

    def insert(self, table: str, chain: str, spec: str, family: str = "ipv4") -> None:
        self._record(family, table, chain, self.rules[family][table].insert(chain, spec))

    def _record(self, family: str, table: str, chain: str, line: str) -> None:
        self.sink.append(UserRule(self.kind, family, table, chain, line))


def _doc_ip(rng: random.Random) -> str:
    """An address from the documentation ranges (RFC 5737): never someone's real host."""
    return f"{rng.choice(('192.0.2', '198.51.100', '203.0.113'))}.{rng.randrange(1, 255)}"


def _cali(chain: str, index: int) -> str:
    """A Calico rule comment: Felix tags each rule with a 16-character hash of its place."""
    digest = hashlib.sha224(f"{chain}:{index}".encode()).digest()
    return comment("cali:" + base64.urlsafe_b64encode(digest).decode()[:16])


# Felix's jumps from the built-in chains carry these fixed hashes on every Calico node.
_CALI_HOOKS = {
    "INPUT": "Cz_u1IQiXIMmKD4c",
    "FORWARD": "wUHhoiAYhphO9Mso",
    "OUTPUT": "tVnHkvAo15HuiPy0",
    "PREROUTING": "6gwbT8clXdHdC1b1",
    "POSTROUTING": "O3lYWMrLQYEMJtB5",
}


def _calico_chain(w: Writer, table: str, chain: str, specs: Sequence[str]) -> None:
    """Felix's rules of one chain; each spec has a {c} where the cali: comment goes."""
    w.chain(table, chain)
    for i, spec in enumerate(specs):
        w.append(table, chain, spec.format(c=_cali(f"{table}/{chain}", i)))


def _calico_hooks(w: Writer, table: str, hooks: Sequence[str]) -> None:
    for hook in hooks:
        w.insert(table, hook, f"{comment('cali:' + _CALI_HOOKS[hook])} -j cali-{hook}")


def _calico(w: Writer, rng: random.Random, facts: NodeFacts) -> None:
    """Calico's Felix (iptables dataplane), with a few workload interfaces on this node."""
    workloads = [f"cali{rng.getrandbits(44):011x}" for _ in range(rng.randint(1, 3))]
    accepted = "{c} -m mark --mark 0x10000/0x10000 -j ACCEPT"
    _calico_hooks(w, "filter", ("INPUT", "FORWARD", "OUTPUT"))
    for chain in (
        "cali-cidr-block",
        "cali-from-hep-forward",
        "cali-from-host-endpoint",
        "cali-to-hep-forward",
        "cali-to-host-endpoint",
    ):
        w.chain("filter", chain)  # empty until host endpoints or blocked CIDRs are configured
    _calico_chain(
        w,
        "filter",
        "cali-FORWARD",
        [
            "{c} -j MARK --set-xmark 0x0/0xe0000",
            "{c} -m mark --mark 0x0/0x10000 -j cali-from-hep-forward",
            "-i cali+ {c} -j cali-from-wl-dispatch",
            "-o cali+ {c} -j cali-to-wl-dispatch",
            "{c} -j cali-to-hep-forward",
            "{c} -j cali-cidr-block",
        ],
    )
    _calico_chain(
        w,
        "filter",
        "cali-INPUT",
        [
            "-i cali+ {c} -g cali-wl-to-host",
            accepted,
            "{c} -j MARK --set-xmark 0x0/0xf0000",
            "{c} -j cali-from-host-endpoint",
            accepted,
        ],
    )
    _calico_chain(
        w,
        "filter",
        "cali-OUTPUT",
        [
            accepted,
            "-o cali+ {c} -j RETURN",
            "{c} -j MARK --set-xmark 0x0/0xf0000",
            "{c} -m conntrack ! --ctstate DNAT -j cali-to-host-endpoint",
            accepted,
        ],
    )
    _calico_chain(w, "filter", "cali-wl-to-host", ["{c} -j cali-from-wl-dispatch", "{c} -j ACCEPT"])
    _calico_chain(
        w,
        "filter",
        "cali-from-wl-dispatch",
        [f"-i {wl} {{c}} -g cali-fw-{wl}" for wl in workloads] + ["{c} -j DROP"],
    )
    _calico_chain(
        w,
        "filter",
        "cali-to-wl-dispatch",
        [f"-o {wl} {{c}} -g cali-tw-{wl}" for wl in workloads] + ["{c} -j DROP"],
    )
    for wl in workloads:
        for direction in ("fw", "tw"):
            _calico_chain(
                w,
                "filter",
                f"cali-{direction}-{wl}",
                [
                    "{c} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
                    "{c} -m conntrack --ctstate INVALID -j DROP",
                    "{c} -j MARK --set-xmark 0x0/0x10000",
                    "{c} -j ACCEPT",
                ],
            )
    _calico_nat_mangle_raw(w)


def _calico_nat_mangle_raw(w: Writer) -> None:
    _calico_hooks(w, "nat", ("PREROUTING", "OUTPUT", "POSTROUTING"))
    for chain in ("cali-fip-dnat", "cali-fip-snat", "cali-nat-outgoing"):
        w.chain("nat", chain)
    _calico_chain(w, "nat", "cali-PREROUTING", ["{c} -j cali-fip-dnat"])
    _calico_chain(w, "nat", "cali-OUTPUT", ["{c} -j cali-fip-dnat"])
    _calico_chain(
        w,
        "nat",
        "cali-POSTROUTING",
        [
            "{c} -j cali-fip-snat",
            "{c} -j cali-nat-outgoing",
            "-o vxlan.calico {c} -m addrtype ! --src-type LOCAL --limit-iface-out "
            "-m addrtype --src-type LOCAL -j MASQUERADE --random-fully",
        ],
    )
    _calico_hooks(w, "mangle", ("PREROUTING",))
    w.chain("mangle", "cali-from-host-endpoint")
    _calico_chain(
        w,
        "mangle",
        "cali-PREROUTING",
        [
            "{c} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
            "{c} -m mark --mark 0x10000/0x10000 -j ACCEPT",
            "{c} -j cali-from-host-endpoint",
            "{c} -m mark --mark 0x10000/0x10000 -j ACCEPT",
        ],
    )
    _calico_hooks(w, "raw", ("PREROUTING", "OUTPUT"))
    w.chain("raw", "cali-from-host-endpoint")
    w.chain("raw", "cali-to-host-endpoint")
    _calico_chain(
        w,
        "raw",
        "cali-PREROUTING",
        [
            "{c} -j MARK --set-xmark 0x0/0xf0000",
            "-i cali+ {c} -j MARK --set-xmark 0x40000/0x40000",
            "{c} -m mark --mark 0x0/0x40000 -j cali-from-host-endpoint",
            "{c} -m mark --mark 0x10000/0x10000 -j ACCEPT",
        ],
    )
    _calico_chain(
        w,
        "raw",
        "cali-OUTPUT",
        [
            "{c} -j MARK --set-xmark 0x0/0xf0000",
            "{c} -j cali-to-host-endpoint",
            "{c} -m mark --mark 0x10000/0x10000 -j ACCEPT",
        ],
    )


def _docker(w: Writer, rng: random.Random, facts: NodeFacts) -> None:
    """A Docker Engine someone installed on the node, with one container publishing a port."""
    container = f"172.17.0.{rng.randrange(2, 30)}"
    host_port = rng.choice((8080, 8000, 5000, 9000, 3000, 8888))
    port = rng.choice((80, 8080, 5000, 3000))
    for chain in ("DOCKER", "DOCKER-ISOLATION-STAGE-1", "DOCKER-ISOLATION-STAGE-2", "DOCKER-USER"):
        w.chain("filter", chain)
    w.policy("filter", "FORWARD", "DROP")  # dockerd sets it; pods' forwarded traffic suffers
    for spec in (
        "-j DOCKER-USER",
        "-j DOCKER-ISOLATION-STAGE-1",
        "-o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
        "-o docker0 -j DOCKER",
        "-i docker0 ! -o docker0 -j ACCEPT",
        "-i docker0 -o docker0 -j ACCEPT",
    ):
        w.append("filter", "FORWARD", spec)
    w.append(
        "filter",
        "DOCKER",
        f"-d {container}/32 ! -i docker0 -o docker0 -p tcp -m tcp --dport {port} -j ACCEPT",
    )
    w.append(
        "filter", "DOCKER-ISOLATION-STAGE-1", "-i docker0 ! -o docker0 -j DOCKER-ISOLATION-STAGE-2"
    )
    w.append("filter", "DOCKER-ISOLATION-STAGE-1", "-j RETURN")
    w.append("filter", "DOCKER-ISOLATION-STAGE-2", "-o docker0 -j DROP")
    w.append("filter", "DOCKER-ISOLATION-STAGE-2", "-j RETURN")
    w.append("filter", "DOCKER-USER", "-j RETURN")
    w.chain("nat", "DOCKER")
    w.append("nat", "PREROUTING", "-m addrtype --dst-type LOCAL -j DOCKER")
    w.append("nat", "OUTPUT", "! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DOCKER")
    w.append("nat", "POSTROUTING", "-s 172.17.0.0/16 ! -o docker0 -j MASQUERADE")
    w.append(
        "nat",
        "POSTROUTING",
        f"-s {container}/32 -d {container}/32 -p tcp -m tcp --dport {port} -j MASQUERADE",
    )
    w.append("nat", "DOCKER", "-i docker0 -j RETURN")
    w.append(
        "nat",
        "DOCKER",
        f"! -i docker0 -p tcp -m tcp --dport {host_port} "
        f"-j DNAT --to-destination {container}:{port}",
    )


def _istio(w: Writer, rng: random.Random, facts: NodeFacts) -> None:
    """istio-init's sidecar redirection, run in the host's network namespace by mistake."""
    for chain in ("ISTIO_INBOUND", "ISTIO_IN_REDIRECT", "ISTIO_OUTPUT", "ISTIO_REDIRECT"):
        w.chain("nat", chain)
    w.append("nat", "PREROUTING", "-p tcp -j ISTIO_INBOUND")
    w.append("nat", "OUTPUT", "-p tcp -j ISTIO_OUTPUT")
    excluded = [15008, 15090, 15021, 15020, *rng.sample((22, 9100, 10255, 4194), rng.randint(0, 2))]
    for port in excluded:
        w.append("nat", "ISTIO_INBOUND", f"-p tcp -m tcp --dport {port} -j RETURN")
    w.append("nat", "ISTIO_INBOUND", "-p tcp -j ISTIO_IN_REDIRECT")
    w.append("nat", "ISTIO_IN_REDIRECT", "-p tcp -j REDIRECT --to-ports 15006")
    for spec in (
        "-s 127.0.0.6/32 -o lo -j RETURN",
        "! -d 127.0.0.1/32 -o lo -p tcp -m owner --uid-owner 1337 -j ISTIO_IN_REDIRECT",
        "-o lo -m owner ! --uid-owner 1337 -j RETURN",
        "-m owner --uid-owner 1337 -j RETURN",
        "! -d 127.0.0.1/32 -o lo -p tcp -m owner --gid-owner 1337 -j ISTIO_IN_REDIRECT",
        "-o lo -m owner ! --gid-owner 1337 -j RETURN",
        "-m owner --gid-owner 1337 -j RETURN",
        "-d 127.0.0.1/32 -j RETURN",
        "-j ISTIO_REDIRECT",
    ):
        w.append("nat", "ISTIO_OUTPUT", spec)
    w.append("nat", "ISTIO_REDIRECT", "-p tcp -j REDIRECT --to-ports 15001")


def _fail2ban(w: Writer, rng: random.Random, facts: NodeFacts) -> None:
    """fail2ban's sshd jail (iptables-multiport action) with a few banned addresses."""
    w.chain("filter", "f2b-sshd")
    w.insert("filter", "INPUT", "-p tcp -m multiport --dports 22 -j f2b-sshd")
    for ip in sorted({_doc_ip(rng) for _ in range(rng.randint(1, 4))}):
        w.append("filter", "f2b-sshd", f"-s {ip}/32 -j REJECT --reject-with icmp-port-unreachable")
    w.append("filter", "f2b-sshd", "-j RETURN")


def _handwritten(w: Writer, rng: random.Random, facts: NodeFacts) -> None:
    """An administrator's own rules: block a range, open a port, log new SSH connections."""
    blocked = f"{rng.choice(('192.0.2', '198.51.100', '203.0.113'))}.0/24"
    port = rng.choice((3000, 5601, 8443, 9100, 9400, 27017))
    prefix = rng.choice(("ssh-new: ", "SSH-IN ", "audit-ssh: "))
    w.append("filter", "INPUT", f"-s {blocked} -j DROP")
    w.append("filter", "INPUT", f"-p tcp -m tcp --dport {port} -j ACCEPT")
    w.append(
        "filter",
        "INPUT",
        f"-p tcp -m tcp --dport 22 -m conntrack --ctstate NEW -j LOG --log-prefix {quote(prefix)}",
    )
    blocked6 = ipaddress.IPv6Network(f"2001:db8:{rng.randrange(1, 0xFFFF):x}::/48")
    w.append("filter", "INPUT", f"-s {blocked6} -j DROP", family="ipv6")


_SECURITY_VENDORS = ("SECAGENT", "NODEGUARD", "HOSTSHIELD")


def _security_agent(w: Writer, rng: random.Random, facts: NodeFacts) -> None:
    """A host security agent's DaemonSet: its own chains, a blocklist, a jump from INPUT/OUTPUT."""
    vendor = rng.choice(_SECURITY_VENDORS)
    tag = vendor.lower()
    inbound, outbound = f"{vendor}-INPUT", f"{vendor}-OUTPUT"
    w.chain("filter", inbound)
    w.chain("filter", outbound)
    w.insert("filter", "INPUT", f"-j {inbound}")
    w.insert("filter", "OUTPUT", f"-j {outbound}")
    w.append("filter", inbound, "-m conntrack --ctstate RELATED,ESTABLISHED -j RETURN")
    for ip in sorted({_doc_ip(rng) for _ in range(rng.randint(1, 3))}):
        w.append("filter", inbound, f"-s {ip}/32 {comment(f'{tag}: blocklist')} -j DROP")
    w.append(
        "filter",
        inbound,
        f"-p tcp -m tcp --dport 2375 {comment(f'{tag}: deny docker api')} -j DROP",
    )
    w.append("filter", inbound, "-j RETURN")
    w.append(
        "filter", outbound, f"-d {_doc_ip(rng)}/32 {comment(f'{tag}: known C2 address')} -j DROP"
    )
    w.append("filter", outbound, "-j RETURN")


def _azure_npm(w: Writer, rng: random.Random, facts: NodeFacts) -> None:
    """Chains left behind by Azure Network Policy Manager (iptables mode) after it was removed."""
    for chain in (
        "AZURE-NPM",
        "AZURE-NPM-ACCEPT",
        "AZURE-NPM-EGRESS",
        "AZURE-NPM-INGRESS",
        "AZURE-NPM-INGRESS-ALLOW-MARK",
    ):
        w.chain("filter", chain)
    w.insert("filter", "FORWARD", "-m conntrack --ctstate NEW -j AZURE-NPM")
    w.append("filter", "AZURE-NPM", "-j AZURE-NPM-INGRESS")
    w.append("filter", "AZURE-NPM", "-j AZURE-NPM-EGRESS")
    for mark, text in (
        ("0x3000", "INGRESS-and-EGRESS"),
        ("0x2000", "INGRESS"),
        ("0x1000", "EGRESS"),
    ):
        w.append(
            "filter",
            "AZURE-NPM",
            f"-m mark --mark {mark} {comment(f'ACCEPT-on-{text}-mark-{mark}')} -j AZURE-NPM-ACCEPT",
        )
    w.append(
        "filter",
        "AZURE-NPM",
        "-m conntrack --ctstate RELATED,ESTABLISHED "
        f"{comment('ACCEPT-on-connection-state')} -j ACCEPT",
    )
    w.append(
        "filter",
        "AZURE-NPM-ACCEPT",
        f"{comment('CLEAR-AZURE-NPM-MARKS')} -j MARK --set-xmark 0x0/0xffffffff",
    )
    w.append("filter", "AZURE-NPM-ACCEPT", "-j ACCEPT")
    for _ in range(rng.randint(1, 3)):
        pod, port = pod_ip(rng, facts.pod_cidr), rng.choice((80, 443, 8080, 5432, 6379))
        w.append(
            "filter",
            "AZURE-NPM-INGRESS",
            f"-d {pod}/32 -p tcp -m tcp --dport {port} "
            f"{comment(f'ALLOW-TCP-PORT-{port}-TO-{pod}')} -j AZURE-NPM-INGRESS-ALLOW-MARK",
        )
        w.append(
            "filter", "AZURE-NPM-INGRESS", f"-d {pod}/32 {comment(f'DROP-ALL-TO-{pod}')} -j DROP"
        )
    w.append(
        "filter",
        "AZURE-NPM-INGRESS-ALLOW-MARK",
        f"{comment('SET-INGRESS-ALLOW-MARK-0x2000')} -j MARK --set-xmark 0x2000/0xffffffff",
    )
    w.append("filter", "AZURE-NPM-INGRESS-ALLOW-MARK", "-j AZURE-NPM-EGRESS")
    w.append(
        "filter",
        "AZURE-NPM-EGRESS",
        f"-m mark --mark 0x2000 {comment('ACCEPT-on-INGRESS-mark-0x2000')} -j RETURN",
    )


# The byte 0xff is no UTF-8: the dump carries it as is. In the str the dump is built from, it is
# the surrogate U+DCFF (surrogateescape), written back to 0xff when the log is served.
ODD_COMMENT = "held by ops \udcff\x01 ticket 4711"


def _odd_comment(w: Writer, rng: random.Random, facts: NodeFacts) -> None:
    """One rule whose comment holds a byte that is not UTF-8 and a control character."""
    w.append("filter", "INPUT", f"-s {_doc_ip(rng)}/32 {comment(ODD_COMMENT)} -j DROP")


def _blocklist(w: Writer, rng: random.Random, facts: NodeFacts) -> None:
    """A large block list: 10,000 DROP rules from shared address space (RFC 6598)."""
    w.chain("filter", "BLOCKLIST")
    w.insert("filter", "INPUT", "-j BLOCKLIST")
    network = ipaddress.ip_network("100.64.0.0/10")
    for index in sorted(rng.sample(range(network.num_addresses), 10_000)):
        w.append("filter", "BLOCKLIST", f"-s {network[index]}/32 -j DROP")


RULES_BY_KIND: dict[str, Callable[[Writer, random.Random, NodeFacts], None]] = {
    "calico": _calico,
    "docker": _docker,
    "istio": _istio,
    "fail2ban": _fail2ban,
    "handwritten": _handwritten,
    "security-agent": _security_agent,
    "azure-npm": _azure_npm,
    "odd-comment": _odd_comment,
    "blocklist": _blocklist,
}
if set(RULES_BY_KIND) != set(RULE_KINDS):  # a kind added to the fleet file needs rules here
    raise RuntimeError("aksim.iptables does not render every fleetfile.RULE_KINDS kind")
