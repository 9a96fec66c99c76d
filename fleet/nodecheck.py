"""What a cluster's nodes say after its acceleration mode changed: read through its Kubernetes
API (fleet/kubernetes.py), the same way the preflight scan connects.

`check_nodes` reads what AKS is known to show (shared/reference/aks-ebpf-host-routing.md,
"Checked against public sources"): the Linux nodes (Ready; reimaged or re-created since the
change began, which a change of acceleration mode always does; free of Cilium's
`node.cilium.io/agent-not-ready` taint), AKS's Cilium agents (`k8s-app=cilium` in kube-system,
one ready pod per Linux node: with user rules under eBPF host routing, the iptables monitor's
init container keeps the agent from starting), the CiliumNodes the monitor labels
`kubernetes.azure.com/user-iptables-rules=true`, and the warning events it raises
(`UnexpectedIPTablesRules`, `BlockedIPTablesRule`; a new event per check, so they are told apart
by node and reason, never by a count). The `kubernetes.azure.com/ebpf-host-routing` label is
shown where present and never required: its value is not documented. It never raises for the
cluster's answers: a cluster it cannot read gives a `NodeCheck` with `error` set.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import urllib3
from kubernetes import client as k8s
from kubernetes.client.rest import ApiException

from fleet.kubernetes import CannotConnect, connect, explain, labelled_user_rules, list_all

EBPF_LABEL = "kubernetes.azure.com/ebpf-host-routing"
AGENT_NOT_READY_TAINT = "node.cilium.io/agent-not-ready"
WARNING_REASONS = ("UnexpectedIPTablesRules", "BlockedIPTablesRule")


@dataclass(frozen=True)
class WarningEvent:
    node: str
    reason: str
    count: int  # events of this reason on this node (the monitor creates one per check)
    last: datetime.datetime

    @property
    def key(self) -> str:
        return f"{self.node}/{self.reason}"

    @property
    def words(self) -> str:
        times = "once" if self.count == 1 else f"{self.count} times"
        return f"warning {self.reason} on {self.node} ({times})"


@dataclass
class NodeCheck:
    nodes: list[str] = field(default_factory=list)
    not_ready: list[str] = field(default_factory=list)
    # Linux nodes not reimaged nor re-created since the change began (Ready since before it).
    not_reimaged: list[str] = field(default_factory=list)
    tainted: list[str] = field(default_factory=list)  # Cilium's agent-not-ready taint
    agents_not_ready: list[str] = field(default_factory=list)
    # CiliumNodes azure-iptables-monitor labelled as holding user-installed iptables rules.
    user_rules: list[str] = field(default_factory=list)
    # Linux nodes with the ebpf-host-routing label (shown, never required).
    labelled: list[str] = field(default_factory=list)
    warnings: list[WarningEvent] = field(default_factory=list)
    error: str = ""

    @property
    def settled(self) -> bool:
        """Every node Ready, reimaged since the change began, untainted, with a ready Cilium
        agent."""
        return not (
            self.error
            or self.not_ready
            or self.not_reimaged
            or self.tainted
            or self.agents_not_ready
        )

    @property
    def iptables_findings(self) -> bool:
        """AKS says user rules meet eBPF host routing on some node: not a matter of waiting."""
        return bool(self.warnings or self.user_rules)

    def problems(self) -> list[str]:
        """The findings in words, most serious first."""
        said = []
        if self.error:
            said.append(self.error)
        if self.user_rules:
            said.append(
                f"{len(self.user_rules)} node(s) labelled by AKS's iptables monitor as holding "
                f"user-installed iptables rules: {_some(self.user_rules)}"
            )
        for what, names in (
            ("NotReady", self.not_ready),
            ("without a ready Cilium agent", self.agents_not_ready),
            (f"tainted {AGENT_NOT_READY_TAINT}", self.tainted),
            ("not yet reimaged since the change began", self.not_reimaged),
        ):
            if names:
                said.append(f"{len(names)} node(s) {what}: {_some(names)}")
        said.extend(w.words for w in self.warnings)
        return said

    def label_note(self) -> str:
        """What the nodes say of the ebpf-host-routing label, for the record."""
        if not self.nodes:
            return ""
        return (
            f"{len(self.labelled)} of {len(self.nodes)} Linux node(s) carry the {EBPF_LABEL} "
            "label (shown for information; Wavegate does not require it)."
        )

    def disturbances(self) -> dict[str, str]:
        """What a soaking cluster should not show, by key ("node/NotReady", "node/<warning
        reason>", "node/UserIPTablesRules", "node/AgentNotReady"), in words."""
        found = {f"{n}/NotReady": f"node {n} NotReady" for n in self.not_ready}
        found.update(
            (f"{n}/UserIPTablesRules", f"node {n} labelled with user-installed iptables rules")
            for n in self.user_rules
        )
        found.update(
            (f"{n}/AgentNotReady", f"node {n} without a ready Cilium agent")
            # a NotReady node's agent is not ready either: said once, as NotReady
            for n in sorted((set(self.agents_not_ready) | set(self.tainted)) - set(self.not_ready))
        )
        found.update((w.key, w.words) for w in self.warnings)
        return found


def _some(names: list[str], shown: int = 5) -> str:
    more = len(names) - shown
    return ", ".join(names[:shown]) + (f" and {more} more" if more > 0 else "")


def _ready(conditions: list[dict[str, Any]] | None) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions or [])


def _parse_time(text: str | None) -> datetime.datetime | None:
    if not text:
        return None
    try:
        return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def _transition(conditions: list[dict[str, Any]] | None) -> datetime.datetime | None:
    for condition in conditions or []:
        if condition.get("type") == "Ready":
            return _parse_time(condition.get("lastTransitionTime"))
    return None


def check_nodes(
    kubeconfig: dict[str, Any],
    *,
    goal: str,
    warnings_since: datetime.datetime | None,
    timeout: float,
    changed_since: datetime.datetime | None = None,
    token: Callable[[], str] | None = None,
) -> NodeCheck:
    """Read the cluster's nodes once. `goal` is the acceleration mode being verified;
    warnings last seen before `warnings_since` are left out (None: no warnings are read);
    nodes must have come back from a reimage (or been created) after `changed_since` (None:
    not asked, as when the change did not reimage the nodes)."""
    try:
        api = connect(kubeconfig, token)
    except CannotConnect as exc:
        return NodeCheck(error=str(exc))
    try:
        return _check(api, goal, warnings_since, changed_since, timeout)
    except (ApiException, urllib3.exceptions.HTTPError) as exc:
        return NodeCheck(error=explain(exc, "Reading the cluster's nodes"))
    finally:
        api.close()


def _check(
    api: k8s.ApiClient,
    goal: str,
    since: datetime.datetime | None,
    changed_since: datetime.datetime | None,
    timeout: float,
) -> NodeCheck:
    core = k8s.CoreV1Api(api)
    nodes = list_all(
        core.list_node, label_selector="kubernetes.io/os=linux", _request_timeout=timeout
    )
    found = NodeCheck(nodes=sorted(n["metadata"]["name"] for n in nodes))
    changed = changed_since.replace(microsecond=0) if changed_since else None
    for node in nodes:
        name = node["metadata"]["name"]
        status = node.get("status") or {}
        if not _ready(status.get("conditions")):
            found.not_ready.append(name)
        elif changed is not None:
            back = _transition(status.get("conditions"))
            created = _parse_time(node["metadata"].get("creationTimestamp"))
            if not any(t is not None and t >= changed for t in (back, created)):
                found.not_reimaged.append(name)
        taints = (node.get("spec") or {}).get("taints") or []
        if any(t.get("key") == AGENT_NOT_READY_TAINT for t in taints):
            found.tainted.append(name)
        if (node["metadata"].get("labels") or {}).get(EBPF_LABEL) == "true":
            found.labelled.append(name)
    agents = list_all(
        core.list_namespaced_pod,
        namespace="kube-system",
        label_selector="k8s-app=cilium",
        _request_timeout=timeout,
    )
    ready_agents = {
        (pod.get("spec") or {}).get("nodeName")
        for pod in agents
        if _ready((pod.get("status") or {}).get("conditions"))
    }
    found.agents_not_ready = [n for n in found.nodes if n not in ready_agents]
    if goal == "BpfVeth":
        found.user_rules = labelled_user_rules(api, timeout)
    if since is not None:
        found.warnings = _warnings(core, since.replace(microsecond=0), timeout)
    for names in (found.not_ready, found.not_reimaged, found.tainted, found.labelled):
        names.sort()
    return found


def _warnings(core: k8s.CoreV1Api, since: datetime.datetime, timeout: float) -> list[WarningEvent]:
    """The monitor's warnings since `since`, one per node and reason (it creates a new event at
    each check: counted, never read from a `count` field)."""
    seen: dict[tuple[str, str], WarningEvent] = {}
    for reason in WARNING_REASONS:
        events = list_all(
            core.list_event_for_all_namespaces,
            field_selector=f"type=Warning,reason={reason}",
            _request_timeout=timeout,
        )
        for event in events:
            last = _parse_time(event.get("lastTimestamp") or event.get("eventTime"))
            if last is None or last < since:
                continue
            involved = event.get("involvedObject") or {}
            node_name = str(involved.get("name") or "?")
            key = (node_name, reason)
            before = seen.get(key)
            seen[key] = WarningEvent(
                node_name,
                reason,
                (before.count if before else 0) + int(event.get("count") or 1),
                max(last, before.last) if before else last,
            )
    return sorted(seen.values(), key=lambda w: (w.node, w.reason))
