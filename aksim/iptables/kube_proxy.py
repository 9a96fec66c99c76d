"""kube-proxy's iptables-mode chains: the fixed frame, and one KUBE-SVC chain per service port
and one KUBE-SEP chain per endpoint, built once per cluster and shared by all its nodes."""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from functools import cache, lru_cache

from aksim.iptables.dump import Ruleset, comment
from aksim.iptables.facts import random_stream

SERVICE_PREFIX = "10.0"  # service CIDR 10.0.0.0/16; kube-dns at 10.0.0.10


def _kube_proxy_frame(rules: Ruleset) -> None:
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


def kube_proxy_rules(rules: Ruleset, services: _ServiceRules | None) -> None:
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


def pod_ip(rng: random.Random, pod_cidr: str) -> str:
    bits = rng.getrandbits(14)  # one draw for both octets: this runs per endpoint
    return f"{pod_cidr.rsplit('.', 2)[0]}.{bits >> 8}.{2 + (bits & 0xFF) % 253}"


def _service_ip(rng: random.Random) -> str:
    bits = rng.getrandbits(16)  # one draw for both octets: this runs per service
    return f"{SERVICE_PREFIX}.{bits >> 8}.{1 + (bits & 0xFF) % 254}"


def _system_service_ports(rng: random.Random, pod_cidr: str, api_ip: str) -> list[_ServicePort]:
    coredns = (pod_ip(rng, pod_cidr), pod_ip(rng, pod_cidr))
    metrics = (pod_ip(rng, pod_cidr), pod_ip(rng, pod_cidr))
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
    rng = random_stream(seed, "services")
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
            else tuple(pod_ip(rng, pod_cidr) for _ in range(rng.choice((1, 2, 2, 3))))
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
def service_rules(seed: int, count: int, pod_cidr: str, api_ip: str) -> _ServiceRules:
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
