"""A node's `iptables-save` and `ip6tables-save` output: the platform's rules, then each user
kind's."""

from __future__ import annotations

from collections.abc import Sequence

from aksim.fleetfile import RULE_KINDS, Cluster, Node
from aksim.iptables.dump import NodeDump, Ruleset, UserRule
from aksim.iptables.facts import node_facts, random_stream
from aksim.iptables.platform_rules import platform_rules
from aksim.iptables.user_rules import RULES_BY_KIND, Writer


def _kinds(kinds: Sequence[str]) -> list[str]:
    unknown = [k for k in kinds if k not in RULES_BY_KIND]
    if unknown:
        raise ValueError(f"unknown user rule kinds {unknown}; known: {list(RULE_KINDS)}")
    return list(dict.fromkeys(kinds))


def render_node(cluster: Cluster, node: Node, user_kinds: Sequence[str] | None = None) -> NodeDump:
    """The node's `iptables-save` and `ip6tables-save` output, and its user-installed rules.

    `user_kinds` defaults to what the fleet file puts on the node. Windows nodes have no
    iptables: they raise ValueError (the scan only targets Linux nodes).
    """
    if not node.linux:
        raise ValueError(f"node {node.name} runs {node.pool.os_type}: it has no iptables")
    kinds = _kinds(cluster.user_rules.get(node.name, []) if user_kinds is None else user_kinds)
    facts = node_facts(cluster, node)
    v4, v6 = Ruleset("ipv4"), Ruleset("ipv6")
    platform_rules(cluster, facts, v4, v6)
    truth: list[UserRule] = []
    writer_rules = {"ipv4": v4, "ipv6": v6}
    for kind in kinds:
        # Each kind draws from its own stream: its rules do not depend on the node's other kinds.
        rng = random_stream(cluster.seed, node.name, kind)
        RULES_BY_KIND[kind](Writer(kind, writer_rules, truth), rng, facts)
    return NodeDump(
        ipv4=v4.render(facts.stamp), ipv6=v6.render(facts.stamp), user_rules=tuple(truth)
    )
