"""One simulated AKS node's iptables, printed as `iptables-save` / `ip6tables-save` print them.

aksim's scan pods (DESIGN.md §5) print these dumps, and Wavegate's analyser (preflight/iptables/)
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

from aksim.iptables.dump import NodeDump, UserRule
from aksim.iptables.render import render_node

__all__ = ["NodeDump", "UserRule", "render_node"]
