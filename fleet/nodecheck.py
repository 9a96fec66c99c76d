"""What a cluster's nodes say after its acceleration mode changed: read through its Kubernetes
API (fleet/kubernetes.py), the same way the preflight scan connects.

`check_nodes` reads the Linux nodes (Ready, the `kubernetes.azure.com/ebpf-host-routing` label),
AKS's Cilium agents (`k8s-app=cilium` in kube-system, one ready pod per Linux node) and the
warning events AKS raises when eBPF host routing meets iptables rules
(`UnexpectedIPTablesRules`, `BlockedIPTablesRule`). It never raises for the cluster's answers:
a cluster it cannot read gives a `NodeCheck` with `error` set.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import urllib3
from kubernetes import client as k8s
from kubernetes.client.rest import ApiException

from fleet.kubernetes import CannotConnect, connect, explain, list_all

EBPF_LABEL = "kubernetes.azure.com/ebpf-host-routing"
WARNING_REASONS = ("UnexpectedIPTablesRules", "BlockedIPTablesRule")


@dataclass(frozen=True)
class WarningEvent:
    node: str
    reason: str
    count: int
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
    # Linux nodes whose ebpf-host-routing label disagrees with the goal.
    unlabelled: list[str] = field(default_factory=list)
    agents_not_ready: list[str] = field(default_factory=list)
    warnings: list[WarningEvent] = field(default_factory=list)
    error: str = ""

    @property
    def settled(self) -> bool:
        """Every node Ready, labelled as the goal says, with a ready Cilium agent."""
        return not (self.error or self.not_ready or self.unlabelled or self.agents_not_ready)

    def problems(self) -> list[str]:
        """The findings in words, most serious first."""
        said = []
        if self.error:
            said.append(self.error)
        for what, names in (
            ("NotReady", self.not_ready),
            ("without a ready Cilium agent", self.agents_not_ready),
            ("not labelled as the goal says", self.unlabelled),
        ):
            if names:
                said.append(f"{len(names)} node(s) {what}: {_some(names)}")
        said.extend(w.words for w in self.warnings)
        return said

    def disturbances(self) -> dict[str, str]:
        """What a soaking cluster should not show, by key ("node/NotReady",
        "node/<warning reason>"), in words."""
        found = {f"{n}/NotReady": f"node {n} NotReady" for n in self.not_ready}
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


def check_nodes(
    kubeconfig: dict[str, Any],
    *,
    goal: str,
    warnings_since: datetime.datetime | None,
    timeout: float,
    token: Callable[[], str] | None = None,
) -> NodeCheck:
    """Read the cluster's nodes once. `goal` is the acceleration mode the nodes should show;
    warnings last seen before `warnings_since` are left out (None: no warnings are read)."""
    try:
        api = connect(kubeconfig, token)
    except CannotConnect as exc:
        return NodeCheck(error=str(exc))
    try:
        return _check(api, goal, warnings_since, timeout)
    except (ApiException, urllib3.exceptions.HTTPError) as exc:
        return NodeCheck(error=explain(exc, "Reading the cluster's nodes"))
    finally:
        api.close()


def _check(
    api: k8s.ApiClient, goal: str, since: datetime.datetime | None, timeout: float
) -> NodeCheck:
    core = k8s.CoreV1Api(api)
    nodes = list_all(
        core.list_node, label_selector="kubernetes.io/os=linux", _request_timeout=timeout
    )
    found = NodeCheck(nodes=sorted(n["metadata"]["name"] for n in nodes))
    want_label = goal == "BpfVeth"
    for node in nodes:
        name = node["metadata"]["name"]
        if not _ready((node.get("status") or {}).get("conditions")):
            found.not_ready.append(name)
        labels = node["metadata"].get("labels") or {}
        if (labels.get(EBPF_LABEL) == "true") != want_label:
            found.unlabelled.append(name)
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
    if since is not None:
        since = since.replace(microsecond=0)  # events' times are whole seconds
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
                found.warnings.append(
                    WarningEvent(node_name, reason, int(event.get("count") or 1), last)
                )
    found.not_ready.sort()
    found.unlabelled.sort()
    found.warnings.sort(key=lambda w: (w.node, w.reason))
    return found
