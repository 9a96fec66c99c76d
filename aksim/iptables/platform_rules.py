"""The rules every AKS node has before anyone adds theirs: kubelet's, Cilium's or kube-proxy's,
and AKS node setup's (AgentBaker, waagent, localdns, ip-masq-agent, CNS's SWIFT SNAT)."""

from __future__ import annotations

from aksim.fleetfile import Cluster
from aksim.iptables.cilium import cilium_rules
from aksim.iptables.dump import Ruleset, comment
from aksim.iptables.facts import NodeFacts
from aksim.iptables.kube_proxy import kube_proxy_rules, service_rules

WIRESERVER = "168.63.129.16/32"
IMDS = "169.254.169.254/32"
VNET_CIDR = "10.224.0.0/12"
IMDS_RESTRICTION_COMMENT = (
    "AKS managed: added by AgentBaker ensureIMDSRestriction for IMDS restriction feature"
)


def _kubelet(v4: Ruleset, v6: Ruleset) -> None:
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


def _agentbaker(v4: Ruleset, facts: NodeFacts) -> None:
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


def _waagent(v4: Ruleset) -> None:
    """The Azure guest agent's security-table rules: only root may connect to wireserver."""
    sec = v4["security"]
    sec.append("OUTPUT", f"-d {WIRESERVER} -p tcp -m tcp --dport 53 -j ACCEPT")
    sec.append("OUTPUT", f"-d {WIRESERVER} -p tcp -m owner --uid-owner 0 -j ACCEPT")
    sec.append("OUTPUT", f"-d {WIRESERVER} -p tcp -m conntrack --ctstate INVALID,NEW -j DROP")


def _localdns(v4: Ruleset) -> None:
    raw = v4["raw"]
    for chain in ("PREROUTING", "OUTPUT"):
        for listener in ("169.254.10.10", "169.254.10.11"):
            for proto in ("udp", "tcp"):
                raw.append(
                    chain,
                    f"-d {listener}/32 -p {proto} {comment('localdns: skip conntrack')} "
                    f"-m {proto} --dport 53 -j NOTRACK",
                )


def _ip_masq_agent(v4: Ruleset, facts: NodeFacts) -> None:
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


def _swift(v4: Ruleset, facts: NodeFacts) -> None:
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


def platform_rules(cluster: Cluster, facts: NodeFacts, v4: Ruleset, v6: Ruleset) -> None:
    _kubelet(v4, v6)
    if facts.cilium:
        cilium_rules(v4, facts)
    else:
        services = service_rules(
            cluster.seed, cluster.services, facts.pod_cidr, facts.api_server_ip
        )
        kube_proxy_rules(v4, services)
        kube_proxy_rules(v6, None)  # kube-proxy runs both families; no IPv6 services here
    _agentbaker(v4, facts)
    _waagent(v4)
    if facts.localdns:
        _localdns(v4)
    _swift(v4, facts)
    _ip_masq_agent(v4, facts)
