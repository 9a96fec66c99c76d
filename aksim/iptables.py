"""One simulated AKS node's iptables, printed as `iptables-save` / `ip6tables-save` print them.

aksim's scan pods (DESIGN.md §5) print these dumps, and Wavegate's analyser (fleet/iptables.py)
reads them. A node's rules are modelled on a real AKS node:

- kubelet (canary and hint chains, KUBE-FIREWALL), and either Cilium's chains (Azure CNI powered
  by Cilium, which replaces kube-proxy) or kube-proxy's iptables-mode chains, one KUBE-SVC chain
  per service port and one KUBE-SEP chain per endpoint;
- AKS node setup: AgentBaker's wireserver and IMDS rules, waagent's security-table rules,
  ip-masq-agent, CNS's SWIFT SNAT rules (Azure CNI with a pod subnet), localdns NOTRACK rules;
- the user-installed rules of each kind the fleet file puts on the node (fleetfile.USER_RULE_KINDS).

Every platform rule is accepted by AKS's allow-list (shared/reference/aks-ebpf-host-routing.md),
so a node without user rule kinds is clean; no user rule is, and `NodeDump.user_rules` lists
every one of them: the truth the analyser is tested against.

Lines are in the canonical form that iptables 1.8 (nf_tables backend) prints: tables in its order,
built-in chains then user chains sorted by name, matches in the order iptables stores them,
comments quoted only when they need it. The output is a pure function of the cluster's seed and
service count, the node's name and the kinds: no clock, no global random state.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import random
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache, lru_cache

from aksim.fleetfile import USER_RULE_KINDS, Cluster, Node, node_ip

IPTABLES_VERSION = "v1.8.9 (nf_tables)"

# iptables-nft-save prints the tables in this order (its built-in table list), whatever order
# they were created in.
TABLE_ORDER = ("mangle", "security", "raw", "filter", "nat")
BUILTIN_CHAINS = {
    "mangle": ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"),
    "security": ("INPUT", "FORWARD", "OUTPUT"),
    "raw": ("PREROUTING", "OUTPUT"),
    "filter": ("INPUT", "FORWARD", "OUTPUT"),
    "nat": ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"),
}

WIRESERVER = "168.63.129.16/32"
IMDS = "169.254.169.254/32"
VNET_CIDR = "10.224.0.0/12"
OVERLAY_POD_CIDR = "10.244.0.0/16"  # overlay and kubenet pod CIDR
POD_SUBNET = "10.225.0.0/16"  # pod subnet of Azure CNI without overlay
SERVICE_PREFIX = "10.0"  # service CIDR 10.0.0.0/16; kube-dns at 10.0.0.10
IMDS_RESTRICTION_COMMENT = (
    "AKS managed: added by AgentBaker ensureIMDSRestriction for IMDS restriction feature"
)


@dataclass(frozen=True)
class UserRule:
    """One user-installed rule line, as it appears in the dump of its family and table."""

    kind: str  # one of fleetfile.USER_RULE_KINDS
    family: str  # "ipv4" | "ipv6"
    table: str
    chain: str
    rule: str  # the exact "-A CHAIN ..." line


@dataclass(frozen=True)
class NodeDump:
    ipv4: str  # iptables-save output
    ipv6: str  # ip6tables-save output
    user_rules: tuple[UserRule, ...]  # every user-installed rule line in either dump


# --- the dump as iptables holds it ------------------------------------------------------------


_BARE = re.compile(r"[A-Za-z0-9_-]+")


def quote(value: str) -> str:
    """A string argument as iptables-save prints it (xtables_save_string): bare when it is made
    only of letters, digits, '-' and '_', else in double quotes with ", \\ and ' escaped."""
    if _BARE.fullmatch(value):
        return value
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("'", "\\'")
    return f'"{escaped}"'


def comment(text: str) -> str:
    return f"-m comment --comment {quote(text)}"


class _Table:
    """One table's chains and rules, printed in iptables-save's canonical order."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.builtins = BUILTIN_CHAINS[name]
        self.policies = dict.fromkeys(self.builtins, "ACCEPT")
        # Rules inserted at the top (iptables -I CHAIN 1) and appended (-A), per chain.
        self.head: dict[str, list[str]] = {c: [] for c in self.builtins}
        self.tail: dict[str, list[str]] = {c: [] for c in self.builtins}
        # A table shows in the dump once something created it (iptables-nft creates on use).
        self.present = False

    def chain(self, name: str) -> None:
        self.present = True
        if name not in self.tail:
            self.head[name] = []
            self.tail[name] = []

    def append(self, chain: str, spec: str) -> str:
        self.chain(chain)
        line = f"-A {chain} {spec}"
        self.tail[chain].append(line)
        return line

    def insert(self, chain: str, spec: str) -> str:
        """Like `iptables -I CHAIN 1`: the rule goes before every rule already there."""
        self.chain(chain)
        line = f"-A {chain} {spec}"
        self.head[chain].insert(0, line)
        return line

    def extend(self, chain: str, lines: Iterable[str]) -> None:
        """Append ready-made "-A" lines (kube-proxy's service rules, built once per cluster)."""
        self.chain(chain)
        self.tail[chain].extend(lines)

    def render(self, out: list[str], program: str, stamp: str) -> None:
        users = sorted(c for c in self.tail if c not in self.policies)
        out.append(f"# Generated by {program} {IPTABLES_VERSION} on {stamp}")
        out.append(f"*{self.name}")
        out.extend(f":{c} {self.policies[c]} [0:0]" for c in self.builtins)
        out.extend(f":{c} - [0:0]" for c in users)
        for name in (*self.builtins, *users):
            out.extend(self.head[name])
            out.extend(self.tail[name])
        out.append("COMMIT")
        out.append(f"# Completed on {stamp}")


class _Ruleset:
    """All tables of one address family on one node."""

    def __init__(self, family: str) -> None:
        self.family = family
        self.tables = {name: _Table(name) for name in TABLE_ORDER}

    def __getitem__(self, table: str) -> _Table:
        return self.tables[table]

    def render(self, stamp: str) -> str:
        program = "iptables-save" if self.family == "ipv4" else "ip6tables-save"
        out: list[str] = []
        for table in self.tables.values():
            if table.present:
                table.render(out, program, stamp)
        return "\n".join(out) + "\n"


def _rng(*parts: object) -> random.Random:
    """A private random stream named by its parts: a simulation's variation, not a secret."""
    return random.Random(":".join(str(p) for p in parts))


# --- what the node is --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Facts:
    """The node's addresses and the cluster's platform features, drawn once from the seeds."""

    cilium: bool  # Cilium replaces kube-proxy
    l7_proxy: bool  # Cilium's DNS/L7 proxy (ACNS FQDN policies): TPROXY and NOTRACK rules
    dns_proxy_port: int
    swift: str | None  # "SWIFT" (older CNS) | "SWIFT-POSTROUTING" (newer CNS) | None
    localdns: bool
    imds_table: str | None  # where AgentBaker's IMDS restriction rule sits, if enabled
    node_ip: str
    pod_cidr: str
    api_server_ip: str
    stamp: str


def _node_facts(cluster: Cluster, node: Node) -> _Facts:
    # Cluster-wide choices come from the cluster's seed alone, so every node of a cluster agrees.
    crng = _rng(cluster.seed, "cluster")
    localdns = crng.random() < 0.6
    imds_table = crng.choice(["mangle", "filter", None, None])
    swift_chain = crng.choice(["SWIFT", "SWIFT-POSTROUTING"])
    api_server_ip = (
        f"20.{crng.randrange(30, 240)}.{crng.randrange(0, 256)}.{crng.randrange(1, 255)}"
    )
    rng = _rng(cluster.seed, node.name)
    cilium = cluster.network_dataplane == "cilium"
    overlay = cluster.network_plugin == "kubenet" or cluster.network_plugin_mode == "overlay"
    swift = cluster.network_plugin == "azure" and cluster.network_plugin_mode != "overlay"
    stamp = datetime(2026, 11, 2, 6, 0, 0) + timedelta(seconds=rng.randrange(0, 28 * 86400))
    return _Facts(
        cilium=cilium,
        l7_proxy=cilium and cluster.acns,
        dns_proxy_port=rng.randrange(32768, 61000),
        swift=swift_chain if swift else None,
        localdns=localdns,
        imds_table=imds_table,
        node_ip=node_ip([n.name for n in cluster.nodes()].index(node.name)),
        pod_cidr=OVERLAY_POD_CIDR if overlay else POD_SUBNET,
        api_server_ip=api_server_ip,
        stamp=stamp.ctime(),  # iptables-save prints ctime(3): "Mon Nov  2 06:00:00 2026"
    )


# --- kubelet and kube-proxy --------------------------------------------------------------------


def _kubelet(v4: _Ruleset, v6: _Ruleset) -> None:
    # kubelet (1.28+) keeps only its canaries, the iptables hint and the localnet firewall.
    for rules in (v4, v6):
        rules["mangle"].chain("KUBE-IPTABLES-HINT")
        for table in ("mangle", "nat", "filter"):
            rules[table].chain("KUBE-KUBELET-CANARY")
    filt = v4["filter"]
    filt.append("INPUT", "-j KUBE-FIREWALL")
    filt.append("OUTPUT", "-j KUBE-FIREWALL")
    filt.append(
        "KUBE-FIREWALL",
        "! -s 127.0.0.0/8 -d 127.0.0.0/8 "
        + comment("block incoming localnet connections")
        + " -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP",
    )


def _kube_proxy_frame(rules: _Ruleset) -> None:
    """kube-proxy's fixed chains and jumps, the same with or without services (either family)."""
    for table in ("mangle", "nat", "filter"):
        rules[table].chain("KUBE-PROXY-CANARY")
    nat = rules["nat"]
    for chain in ("KUBE-MARK-MASQ", "KUBE-NODEPORTS", "KUBE-POSTROUTING", "KUBE-SERVICES"):
        nat.chain(chain)
    portals = comment("kubernetes service portals")
    nat.append("PREROUTING", f"{portals} -j KUBE-SERVICES")
    nat.append("OUTPUT", f"{portals} -j KUBE-SERVICES")
    nat.append("POSTROUTING", comment("kubernetes postrouting rules") + " -j KUBE-POSTROUTING")
    nat.append("KUBE-MARK-MASQ", "-j MARK --set-xmark 0x4000/0x4000")
    nat.append("KUBE-POSTROUTING", "-m mark ! --mark 0x4000/0x4000 -j RETURN")
    nat.append("KUBE-POSTROUTING", "-j MARK --set-xmark 0x4000/0x0")
    nat.append(
        "KUBE-POSTROUTING",
        comment("kubernetes service traffic requiring SNAT") + " -j MASQUERADE --random-fully",
    )
    filt = rules["filter"]
    for chain in (
        "KUBE-EXTERNAL-SERVICES",
        "KUBE-FORWARD",
        "KUBE-NODEPORTS",
        "KUBE-PROXY-FIREWALL",
        "KUBE-SERVICES",
    ):
        filt.chain(chain)
    new = "-m conntrack --ctstate NEW"
    lb_firewall = comment("kubernetes load balancer firewall")
    external = comment("kubernetes externally-visible service portals")
    filt.append("INPUT", f"{new} {lb_firewall} -j KUBE-PROXY-FIREWALL")
    filt.append("INPUT", comment("kubernetes health check service ports") + " -j KUBE-NODEPORTS")
    filt.append("INPUT", f"{new} {external} -j KUBE-EXTERNAL-SERVICES")
    filt.append("FORWARD", f"{new} {lb_firewall} -j KUBE-PROXY-FIREWALL")
    filt.append("FORWARD", comment("kubernetes forwarding rules") + " -j KUBE-FORWARD")
    filt.append("FORWARD", f"{new} {portals} -j KUBE-SERVICES")
    filt.append("FORWARD", f"{new} {external} -j KUBE-EXTERNAL-SERVICES")
    filt.append("OUTPUT", f"{new} {lb_firewall} -j KUBE-PROXY-FIREWALL")
    filt.append("OUTPUT", f"{new} {portals} -j KUBE-SERVICES")
    # kube-proxy 1.29+ also counts these drops with -m nfacct; that needs a named nfacct object,
    # which iptables-restore cannot create, so the simulator keeps the older form.
    filt.append("KUBE-FORWARD", "-m conntrack --ctstate INVALID -j DROP")
    filt.append(
        "KUBE-FORWARD",
        comment("kubernetes forwarding rules") + " -m mark --mark 0x4000/0x4000 -j ACCEPT",
    )
    filt.append(
        "KUBE-FORWARD",
        comment("kubernetes forwarding conntrack rule")
        + " -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
    )


def _kube_proxy(rules: _Ruleset, services: _ServiceRules | None) -> None:
    _kube_proxy_frame(rules)
    nat, filt = rules["nat"], rules["filter"]
    if services is not None:
        for chain, lines in services.nat:
            nat.extend(chain, lines)
        filt.extend("KUBE-SERVICES", services.filter_services)
    # This one must stay last in KUBE-SERVICES, after every service's rules.
    nat.append(
        "KUBE-SERVICES",
        comment("kubernetes service nodeports; NOTE: this must be the last rule in this chain")
        + " -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS",
    )


@dataclass(frozen=True)
class _ServicePort:
    namespace: str
    name: str
    port_name: str
    protocol: str  # tcp | udp
    cluster_ip: str
    port: int
    target_port: int
    endpoints: tuple[str, ...]  # pod (or API server) IPs
    node_port: int | None
    lb_ip: str | None

    @property
    def spn(self) -> str:
        """kube-proxy's ServicePortName: "ns/name:port", or "ns/name" for an unnamed port."""
        base = f"{self.namespace}/{self.name}"
        return f"{base}:{self.port_name}" if self.port_name else base


@dataclass(frozen=True)
class _ServiceRules:
    nat: tuple[tuple[str, tuple[str, ...]], ...]  # (chain, its "-A" lines) in kube-proxy's order
    filter_services: tuple[str, ...]  # filter KUBE-SERVICES: REJECT for ports without endpoints


_NAMESPACES = (
    "default",
    "payments",
    "checkout",
    "catalog",
    "identity",
    "monitoring",
    "ingress-nginx",
    "orders",
    "search",
    "web",
    "platform",
    "data",
)
_NAMES = (
    "api",
    "web",
    "frontend",
    "backend",
    "worker",
    "redis",
    "postgres",
    "grafana",
    "prometheus",
    "cart",
    "auth",
    "gateway",
    "inventory",
    "notifications",
    "billing",
    "search-indexer",
    "rabbitmq",
    "kafka",
)
# (port name, port, target port); "" is an unnamed port.
_PORTS = (
    ("http", 80, 8080),
    ("https", 443, 8443),
    ("grpc", 9090, 9090),
    ("metrics", 9100, 9100),
    ("", 80, 8080),
    ("", 8080, 8080),
)


def _pod_ip(rng: random.Random, pod_cidr: str) -> str:
    bits = rng.getrandbits(14)  # one draw for both octets: this runs per endpoint
    return f"{pod_cidr.rsplit('.', 2)[0]}.{bits >> 8}.{2 + (bits & 0xFF) % 253}"


def _service_ip(rng: random.Random) -> str:
    bits = rng.getrandbits(16)  # one draw for both octets: this runs per service
    return f"{SERVICE_PREFIX}.{bits >> 8}.{1 + (bits & 0xFF) % 254}"


def _system_service_ports(rng: random.Random, pod_cidr: str, api_ip: str) -> list[_ServicePort]:
    coredns = (_pod_ip(rng, pod_cidr), _pod_ip(rng, pod_cidr))
    metrics = (_pod_ip(rng, pod_cidr), _pod_ip(rng, pod_cidr))
    metrics_ip = _service_ip(rng)
    dns_ip = f"{SERVICE_PREFIX}.0.10"

    def port(
        ns: str, name: str, pname: str, proto: str, ip: str, p: int, tp: int, eps: tuple[str, ...]
    ) -> _ServicePort:
        return _ServicePort(ns, name, pname, proto, ip, p, tp, eps, None, None)

    return [
        port("default", "kubernetes", "https", "tcp", f"{SERVICE_PREFIX}.0.1", 443, 443, (api_ip,)),
        port("kube-system", "kube-dns", "dns", "udp", dns_ip, 53, 53, coredns),
        port("kube-system", "kube-dns", "dns-tcp", "tcp", dns_ip, 53, 53, coredns),
        port("kube-system", "metrics-server", "", "tcp", metrics_ip, 443, 4443, metrics),
    ]


@lru_cache(maxsize=8)
def _service_ports(seed: int, count: int, pod_cidr: str, api_ip: str) -> tuple[_ServicePort, ...]:
    """The cluster's service ports: the same on every node, as kube-proxy programs them all."""
    rng = _rng(seed, "services")
    ports = _system_service_ports(rng, pod_cidr, api_ip)[:count]
    taken_ips = {p.cluster_ip for p in ports}
    taken_names: set[tuple[str, str]] = set()
    node_ports = iter(rng.sample(range(30000, 32768), min(count, 2768)))
    while len(ports) < count:
        namespace, name = rng.choice(_NAMESPACES), rng.choice(_NAMES)
        if (namespace, name) in taken_names:
            name = f"{name}-{len(ports)}"
        taken_names.add((namespace, name))
        cluster_ip = _service_ip(rng)
        while cluster_ip in taken_ips:
            cluster_ip = _service_ip(rng)
        taken_ips.add(cluster_ip)
        port_name, port, target = rng.choice(_PORTS)
        roll = rng.random()
        endpoints = (
            ()
            if roll < 0.03
            else tuple(_pod_ip(rng, pod_cidr) for _ in range(rng.choice((1, 2, 2, 3))))
        )
        exposed = endpoints and roll > 0.94  # a few NodePort / LoadBalancer services
        lb_ip = (
            f"20.{rng.randrange(30, 240)}.{rng.randrange(0, 256)}.{rng.randrange(1, 255)}"
            if exposed and rng.random() < 0.7
            else None
        )
        ports.append(
            _ServicePort(
                namespace,
                name,
                port_name,
                "tcp",
                cluster_ip,
                port,
                target,
                endpoints,
                next(node_ports, None) if exposed else None,
                lb_ip,
            )
        )
    return tuple(ports)


_B32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_B32_PAIRS = [a + b for a in _B32 for b in _B32]


def _hash16(text: str) -> str:
    """kube-proxy's chain suffix: the first 16 base32 characters of a SHA-256.

    Those are the digest's first 80 bits, encoded here ten bits at a time: the same text as
    base64.b32encode(digest)[:16], several times faster (that one is pure Python), which counts
    when a cluster has thousands of service ports.
    """
    bits = int.from_bytes(hashlib.sha256(text.encode()).digest()[:10], "big")
    return "".join([_B32_PAIRS[(bits >> shift) & 0x3FF] for shift in range(70, -1, -10)])


@cache
def _probability(remaining: int) -> str:
    """The statistic match's probability as iptables-save prints it.

    kube-proxy writes 1/remaining with 10 decimals; the match keeps it as a 31-bit fraction
    (lround(p * 2^31)) and iptables-save prints that back with 11 decimals.
    """
    fraction = float(f"{1.0 / remaining:.10f}")
    stored = int(fraction * 0x80000000 + 0.5)
    return f"{stored / 0x80000000:.11f}"


@lru_cache(maxsize=8)
def _service_rules(seed: int, count: int, pod_cidr: str, api_ip: str) -> _ServiceRules:
    """kube-proxy's per-service rules (KUBE-SERVICES, KUBE-SVC-*, KUBE-SEP-*, KUBE-EXT-*).

    Built once per cluster and shared by all its nodes: this is where a big dump's time goes.
    A scan renders a cluster's nodes one after another, so a few clusters' worth of cache is
    enough (2,000 services are a few MB of text).
    """
    nat: dict[str, list[str]] = {"KUBE-SERVICES": [], "KUBE-NODEPORTS": []}
    rejects: list[str] = []
    # Service port names are DNS labels: no quote or backslash to escape, and every comment
    # kube-proxy writes has a space or a '/', so iptables-save always quotes it. Writing the
    # quotes here, not through comment(), saves a third of the time on big clusters.
    for sp in _service_ports(seed, count, pod_cidr, api_ip):
        spn, proto = sp.spn, sp.protocol
        dest = f"-d {sp.cluster_ip}/32 -p {proto}"
        dport = f"-m {proto} --dport {sp.port}"
        cluster_ip_comment = f'-m comment --comment "{spn} cluster IP"'
        if not sp.endpoints:
            rejects.append(
                f'-A KUBE-SERVICES {dest} -m comment --comment "{spn} has no endpoints" {dport} '
                "-j REJECT --reject-with icmp-port-unreachable"
            )
            continue
        hash_ = _hash16(spn + proto)
        svc = f"KUBE-SVC-{hash_}"
        nat["KUBE-SERVICES"].append(
            f"-A KUBE-SERVICES {dest} {cluster_ip_comment} {dport} -j {svc}"
        )
        rules = [f"-A {svc} ! -s {pod_cidr} {dest} {cluster_ip_comment} {dport} -j KUBE-MARK-MASQ"]
        name_comment = f'-m comment --comment "{spn}"'
        for i, ip in enumerate(sp.endpoints):
            endpoint = f"{ip}:{sp.target_port}"
            sep = f"KUBE-SEP-{_hash16(spn + proto + endpoint)}"
            left = len(sp.endpoints) - i
            chance = (
                f" -m statistic --mode random --probability {_probability(left)}"
                if left > 1
                else ""
            )
            rules.append(f'-A {svc} -m comment --comment "{spn} -> {endpoint}"{chance} -j {sep}')
            nat[sep] = [
                f"-A {sep} -s {ip}/32 {name_comment} -j KUBE-MARK-MASQ",
                f"-A {sep} -p {proto} {name_comment} -m {proto} "
                f"-j DNAT --to-destination {endpoint}",
            ]
        nat[svc] = rules
        if sp.node_port is not None:
            ext = f"KUBE-EXT-{hash_}"
            nat[ext] = [
                f'-A {ext} -m comment --comment "masquerade traffic for {spn} external '
                'destinations" -j KUBE-MARK-MASQ',
                f"-A {ext} -j {svc}",
            ]
            nat["KUBE-NODEPORTS"].append(
                f"-A KUBE-NODEPORTS -p {proto} {name_comment} -m {proto} "
                f"--dport {sp.node_port} -j {ext}"
            )
            if sp.lb_ip:
                nat["KUBE-SERVICES"].append(
                    f"-A KUBE-SERVICES -d {sp.lb_ip}/32 -p {proto} "
                    f'-m comment --comment "{spn} loadbalancer IP" {dport} -j {ext}'
                )
    return _ServiceRules(
        nat=tuple((chain, tuple(lines)) for chain, lines in nat.items()),
        filter_services=tuple(rejects),
    )


# --- Cilium ------------------------------------------------------------------------------------

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


def _cilium(v4: _Ruleset, facts: _Facts) -> None:
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


def _cilium_proxy(v4: _Ruleset, port: int) -> None:
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


# --- AKS node setup ----------------------------------------------------------------------------


def _agentbaker(v4: _Ruleset, facts: _Facts) -> None:
    """AgentBaker's boot-time rules: pods may not reach wireserver; the DHCP client port."""
    wireserver = f"-d {WIRESERVER} -p tcp -m tcp --dport"
    for port in (32526, 80):
        v4["filter"].append("FORWARD", f"{wireserver} {port} -j DROP")
    for port in (80, 32526):
        v4["mangle"].append("FORWARD", f"{wireserver} {port} -j DROP")
    v4["filter"].append("INPUT", "-p udp -m udp --dport 68 -j ACCEPT")
    if facts.imds_table:
        v4[facts.imds_table].insert(
            "FORWARD",
            f"! -s {facts.node_ip}/32 -d {IMDS} -p tcp -m tcp --dport 80 "
            + comment(IMDS_RESTRICTION_COMMENT)
            + " -j DROP",
        )


def _waagent(v4: _Ruleset) -> None:
    """The Azure guest agent's security-table rules: only root may connect to wireserver."""
    sec = v4["security"]
    sec.append("OUTPUT", f"-d {WIRESERVER} -p tcp -m tcp --dport 53 -j ACCEPT")
    sec.append("OUTPUT", f"-d {WIRESERVER} -p tcp -m owner --uid-owner 0 -j ACCEPT")
    sec.append("OUTPUT", f"-d {WIRESERVER} -p tcp -m conntrack --ctstate INVALID,NEW -j DROP")


def _localdns(v4: _Ruleset) -> None:
    raw = v4["raw"]
    for chain in ("PREROUTING", "OUTPUT"):
        for listener in ("169.254.10.10", "169.254.10.11"):
            for proto in ("udp", "tcp"):
                raw.append(
                    chain,
                    f"-d {listener}/32 -p {proto} {comment('localdns: skip conntrack')} "
                    f"-m {proto} --dport 53 -j NOTRACK",
                )


def _ip_masq_agent(v4: _Ruleset, facts: _Facts) -> None:
    nat = v4["nat"]
    nat.append(
        "POSTROUTING",
        comment(
            "ip-masq-agent: ensure nat POSTROUTING directs all non-LOCAL destination traffic "
            "to our custom IP-MASQ-AGENT chain"
        )
        + " -m addrtype ! --dst-type LOCAL -j IP-MASQ-AGENT",
    )
    local = comment("ip-masq-agent: local traffic is not subject to MASQUERADE")
    for cidr in dict.fromkeys((facts.pod_cidr, VNET_CIDR, "169.254.0.0/16")):
        nat.append("IP-MASQ-AGENT", f"-d {cidr} {local} -j RETURN")
    nat.append(
        "IP-MASQ-AGENT",
        comment("ip-masq-agent: outbound traffic is subject to MASQUERADE (must be last in chain)")
        + " -j MASQUERADE",
    )


def _swift(v4: _Ruleset, facts: _Facts) -> None:
    """CNS's SNAT of pod-subnet traffic to Azure DNS and IMDS to the node's primary IP."""
    if facts.swift is None:
        return
    chain = facts.swift
    nat = v4["nat"]
    nat.append("POSTROUTING", f"-j {chain}")
    # The newer chain (SWIFT-POSTROUTING) leaves node-local destinations alone.
    local = " -m addrtype ! --dst-type LOCAL" if chain == "SWIFT-POSTROUTING" else ""
    snat = f"-j SNAT --to-source {facts.node_ip}"
    for dest, proto, port in ((WIRESERVER, "udp", 53), (WIRESERVER, "tcp", 53), (IMDS, "tcp", 80)):
        nat.append(
            chain,
            f"-s {facts.pod_cidr} -d {dest} -p {proto}{local} -m {proto} --dport {port} {snat}",
        )


def _platform(cluster: Cluster, facts: _Facts, v4: _Ruleset, v6: _Ruleset) -> None:
    _kubelet(v4, v6)
    if facts.cilium:
        _cilium(v4, facts)
    else:
        services = _service_rules(
            cluster.seed, cluster.services, facts.pod_cidr, facts.api_server_ip
        )
        _kube_proxy(v4, services)
        _kube_proxy(v6, None)  # kube-proxy runs both families; no IPv6 services here
    _agentbaker(v4, facts)
    _waagent(v4)
    if facts.localdns:
        _localdns(v4)
    _swift(v4, facts)
    _ip_masq_agent(v4, facts)


# --- user-installed rules ----------------------------------------------------------------------


class _Writer:
    """Adds one user kind's rules to the node and records each "-A" line as the truth."""

    def __init__(self, kind: str, rules: dict[str, _Ruleset], sink: list[UserRule]) -> None:
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


def _calico_chain(w: _Writer, table: str, chain: str, specs: Sequence[str]) -> None:
    """Felix's rules of one chain; each spec has a {c} where the cali: comment goes."""
    w.chain(table, chain)
    for i, spec in enumerate(specs):
        w.append(table, chain, spec.format(c=_cali(f"{table}/{chain}", i)))


def _calico_hooks(w: _Writer, table: str, hooks: Sequence[str]) -> None:
    for hook in hooks:
        w.insert(table, hook, f"{comment('cali:' + _CALI_HOOKS[hook])} -j cali-{hook}")


def _calico(w: _Writer, rng: random.Random, facts: _Facts) -> None:
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


def _calico_nat_mangle_raw(w: _Writer) -> None:
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


def _docker(w: _Writer, rng: random.Random, facts: _Facts) -> None:
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


def _istio(w: _Writer, rng: random.Random, facts: _Facts) -> None:
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


def _fail2ban(w: _Writer, rng: random.Random, facts: _Facts) -> None:
    """fail2ban's sshd jail (iptables-multiport action) with a few banned addresses."""
    w.chain("filter", "f2b-sshd")
    w.insert("filter", "INPUT", "-p tcp -m multiport --dports 22 -j f2b-sshd")
    for ip in sorted({_doc_ip(rng) for _ in range(rng.randint(1, 4))}):
        w.append("filter", "f2b-sshd", f"-s {ip}/32 -j REJECT --reject-with icmp-port-unreachable")
    w.append("filter", "f2b-sshd", "-j RETURN")


def _handwritten(w: _Writer, rng: random.Random, facts: _Facts) -> None:
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


def _security_agent(w: _Writer, rng: random.Random, facts: _Facts) -> None:
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


def _azure_npm(w: _Writer, rng: random.Random, facts: _Facts) -> None:
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
        pod, port = _pod_ip(rng, facts.pod_cidr), rng.choice((80, 443, 8080, 5432, 6379))
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


_USER_KINDS: dict[str, Callable[[_Writer, random.Random, _Facts], None]] = {
    "calico": _calico,
    "docker": _docker,
    "istio": _istio,
    "fail2ban": _fail2ban,
    "handwritten": _handwritten,
    "security-agent": _security_agent,
    "azure-npm": _azure_npm,
}
if set(_USER_KINDS) != set(USER_RULE_KINDS):  # a kind added to the fleet file needs rules here
    raise RuntimeError("aksim.iptables does not render every fleetfile.USER_RULE_KINDS kind")


# --- the entry point ---------------------------------------------------------------------------


def _kinds(kinds: Sequence[str]) -> list[str]:
    unknown = [k for k in kinds if k not in _USER_KINDS]
    if unknown:
        raise ValueError(f"unknown user rule kinds {unknown}; known: {list(USER_RULE_KINDS)}")
    return list(dict.fromkeys(kinds))


def render_node(cluster: Cluster, node: Node, user_kinds: Sequence[str] | None = None) -> NodeDump:
    """The node's `iptables-save` and `ip6tables-save` output, and its user-installed rules.

    `user_kinds` defaults to what the fleet file puts on the node. Windows nodes have no
    iptables: they raise ValueError (the scan only targets Linux nodes).
    """
    if not node.linux:
        raise ValueError(f"node {node.name} runs {node.pool.os_type}: it has no iptables")
    kinds = _kinds(cluster.user_rules.get(node.name, []) if user_kinds is None else user_kinds)
    facts = _node_facts(cluster, node)
    v4, v6 = _Ruleset("ipv4"), _Ruleset("ipv6")
    _platform(cluster, facts, v4, v6)
    truth: list[UserRule] = []
    writer_rules = {"ipv4": v4, "ipv6": v6}
    for kind in kinds:
        # Each kind draws from its own stream: its rules do not depend on the node's other kinds.
        rng = _rng(cluster.seed, node.name, kind)
        _USER_KINDS[kind](_Writer(kind, writer_rules, truth), rng, facts)
    return NodeDump(
        ipv4=v4.render(facts.stamp), ipv6=v6.render(facts.stamp), user_rules=tuple(truth)
    )
