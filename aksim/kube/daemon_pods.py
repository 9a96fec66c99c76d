"""The pods of a DaemonSet, derived on every read from its template and the nodes as they are
now: which nodes it runs on, each pod's phase, and the pod JSON with its status."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aksim.kube.metadata import name_suffix, parse_timestamp, stable_hex, stable_uid, timestamp
from aksim.kube.node_views import NodeView
from aksim.kube.request import Call
from aksim.kube.selectors import labels_match, selector_requirements

SCAN_LABEL = "wavegate.io/scan"
SCAN_LABEL_VALUE = "iptables"
# A new DaemonSet's pods pull and start for this long (divided by --time-scale) before they run,
# so a client that reads logs without waiting for Running sees what it would see on AKS.
POD_START_SECONDS = 2.0


# A DaemonSet's pods tolerate these even when its template does not (the controller adds them).
_DAEMON_TOLERATIONS = [
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/disk-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/pid-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"},
]
_HOST_NETWORK_TOLERATION = {
    "key": "node.kubernetes.io/network-unavailable",
    "operator": "Exists",
    "effect": "NoSchedule",
}


def _tolerates(toleration: Mapping[str, Any], taint: Mapping[str, str]) -> bool:
    if toleration.get("effect") and toleration["effect"] != taint["effect"]:
        return False
    if toleration.get("operator") == "Exists":
        return not toleration.get("key") or toleration["key"] == taint["key"]
    return toleration.get("key") == taint["key"] and (toleration.get("value") or "") == (
        taint.get("value") or ""
    )


def _pod_tolerations(pod_spec: Mapping[str, Any]) -> list[dict[str, Any]]:
    tolerations = list(pod_spec.get("tolerations") or [])
    for extra in _DAEMON_TOLERATIONS + (
        [_HOST_NETWORK_TOLERATION] if pod_spec.get("hostNetwork") else []
    ):
        if extra not in tolerations:
            tolerations.append(extra)
    return tolerations


def _node_affinity_ok(pod_spec: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    required = ((pod_spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {}
    terms = required.get("nodeSelectorTerms") or []
    if not terms:
        return True
    return any(
        labels_match(selector_requirements({"matchExpressions": t.get("matchExpressions")}), labels)
        for t in terms
    )


def _should_run(pod_spec: Mapping[str, Any], view: NodeView) -> bool:
    """The DaemonSet controller's test: node selector, required node affinity, taints."""
    node_selector = pod_spec.get("nodeSelector") or {}
    if any(view.labels.get(k) != v for k, v in node_selector.items()):
        return False
    if not _node_affinity_ok(pod_spec, view.labels):
        return False
    tolerations = _pod_tolerations(pod_spec)
    return all(
        any(_tolerates(t, taint) for t in tolerations)
        for taint in view.taints
        if taint["effect"] in ("NoSchedule", "NoExecute")
    )


@dataclass(frozen=True)
class DaemonPod:
    name: str
    namespace: str
    node: NodeView
    phase: str  # "running" | "creating" | "unschedulable" | "pull-failed" | "init-blocked"
    started: float
    containers: list[str]
    scan: bool


def _pod_phase(call: Call, view: NodeView, created: float) -> tuple[str, float]:
    started = created + POD_START_SECONDS / call.sim.time_scale
    if view.name in call.state.unschedulable:
        return "unschedulable", started
    if not view.ready:
        return "creating", started
    if not view.node.linux:
        return "pull-failed", started  # a Linux image has no Windows variant
    if call.sim.now() < started:
        return "creating", started
    return "running", started


def daemon_pods(call: Call, ds: dict[str, Any]) -> list[tuple[dict[str, Any], DaemonPod]]:
    """(pod object, summary) for each node the DaemonSet wants, ordered by pod name."""
    metadata = ds["metadata"]
    template = ds["spec"]["template"]
    pod_spec = template["spec"]
    labels = (template.get("metadata") or {}).get("labels") or {}
    created = parse_timestamp(metadata["creationTimestamp"])
    pods = []
    for view in call.nodes():
        if not _should_run(pod_spec, view):
            continue
        phase, started = _pod_phase(call, view, created)
        if phase == "running" and view.agent_blocked and labels.get("k8s-app") == "cilium":
            phase = "init-blocked"  # azure-iptables-monitor's init container holds the agent
        pod = DaemonPod(
            name=f"{metadata['name']}-{name_suffix(5, metadata['uid'], view.name)}",
            namespace=metadata["namespace"],
            node=view,
            phase=phase,
            started=started,
            containers=[c["name"] for c in pod_spec["containers"]],
            scan=labels.get(SCAN_LABEL) == SCAN_LABEL_VALUE,
        )
        pods.append((_pod_json(call, ds, pod), pod))
    return sorted(pods, key=lambda p: p[1].name)


def _revision_hash(ds: Mapping[str, Any]) -> str:
    return name_suffix(10, json.dumps(ds["spec"]["template"], sort_keys=True))


def _qos_class(pod_spec: Mapping[str, Any]) -> str:
    resources = [c.get("resources") or {} for c in pod_spec["containers"]]
    if not any(r.get("requests") or r.get("limits") for r in resources):
        return "BestEffort"
    guaranteed = all(
        r.get("limits") and r.get("requests", r["limits"]) == r["limits"] for r in resources
    )
    return "Guaranteed" if guaranteed else "Burstable"


def _pod_json(call: Call, ds: dict[str, Any], pod: DaemonPod) -> dict[str, Any]:
    metadata = ds["metadata"]
    template = ds["spec"]["template"]
    template_meta = template.get("metadata") or {}
    pod_spec = dict(template["spec"])
    view = pod.node
    pod_spec["tolerations"] = _pod_tolerations(pod_spec)
    # The controller pins each pod to its node through affinity; the scheduler sets nodeName.
    pod_spec["affinity"] = {
        **(pod_spec.get("affinity") or {}),
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {
                        "matchFields": [
                            {"key": "metadata.name", "operator": "In", "values": [view.name]}
                        ]
                    }
                ]
            }
        },
    }
    pod_spec.setdefault("serviceAccountName", "default")
    pod_spec.setdefault("serviceAccount", pod_spec["serviceAccountName"])
    pod_spec.setdefault("enableServiceLinks", True)
    pod_spec.setdefault("priority", 0)
    pod_spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
    if pod.phase != "unschedulable":
        pod_spec["nodeName"] = view.name
    labels = {
        **(template_meta.get("labels") or {}),
        "controller-revision-hash": _revision_hash(ds),
        "pod-template-generation": str(metadata["generation"]),
    }
    pod_meta: dict[str, Any] = {
        "name": pod.name,
        "generateName": f"{metadata['name']}-",
        "namespace": pod.namespace,
        "uid": stable_uid(metadata["uid"], "pod", view.name),
        "resourceVersion": str(call.state.resource_version),
        "creationTimestamp": metadata["creationTimestamp"],
        "labels": labels,
        "ownerReferences": [
            {
                "apiVersion": "apps/v1",
                "kind": "DaemonSet",
                "name": metadata["name"],
                "uid": metadata["uid"],
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ],
    }
    if template_meta.get("annotations"):
        pod_meta["annotations"] = dict(template_meta["annotations"])
    return {
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": pod_meta,
        "spec": pod_spec,
        "status": _pod_status(call, pod, pod_spec),
    }


def _unschedulable_message(total: int) -> str:
    others = total - 1
    nodes = f"0/{total} nodes are available: 1 Insufficient cpu"
    victims = f"0/{total} nodes are available: 1 No preemption victims found for incoming pod"
    if others:
        nodes += f", {others} node(s) didn't satisfy plugin(s) [NodeAffinity]"
        victims += f", {others} Preemption is not helpful for scheduling"
    return f"{nodes}. preemption: {victims}."


def _pod_status(call: Call, pod: DaemonPod, pod_spec: Mapping[str, Any]) -> dict[str, Any]:
    created = pod.started - POD_START_SECONDS / call.sim.time_scale
    since = timestamp(created)
    qos = _qos_class(pod_spec)

    def condition(kind: str, status: str, **extra: str) -> dict[str, Any]:
        return {
            "type": kind,
            "status": status,
            "lastProbeTime": None,
            "lastTransitionTime": since,
            **extra,
        }

    if pod.phase == "unschedulable":
        return {
            "phase": "Pending",
            "qosClass": qos,
            "conditions": [
                condition(
                    "PodScheduled",
                    "False",
                    reason="Unschedulable",
                    message=_unschedulable_message(len(call.nodes())),
                )
            ],
        }
    view = pod.node
    ip = view.ip if pod_spec.get("hostNetwork") else view.pod_ip(pod.name)
    running = pod.phase == "running"
    flag = "True" if running else "False"
    not_ready = (
        {}
        if running
        else {
            "reason": "ContainersNotReady",
            "message": f"containers with unready status: [{' '.join(pod.containers)}]",
        }
    )
    initializing = {
        "reason": "ContainersNotInitialized",
        "message": "containers with incomplete status: [iptables-monitor]",
    }
    waiting_reason = {"creating": "ContainerCreating", "init-blocked": "PodInitializing"}.get(
        pod.phase, "ImagePullBackOff"
    )
    statuses = []
    for container in pod_spec["containers"]:
        image = container["image"]
        state: dict[str, Any] = (
            {"running": {"startedAt": timestamp(pod.started)}}
            if running
            else {"waiting": {"reason": waiting_reason}}
        )
        statuses.append(
            {
                "name": container["name"],
                "state": state,
                "lastState": {},
                "ready": running,
                "restartCount": 0,
                "image": image,
                "imageID": image
                if "@" in image
                else f"{image.split(':')[0]}@sha256:{stable_hex(64, image)}",
                "started": running,
                **(
                    {"containerID": f"containerd://{stable_hex(64, pod.name, container['name'])}"}
                    if running
                    else {}
                ),
            }
        )
    status: dict[str, Any] = {
        "phase": "Running" if running else "Pending",
        "conditions": [
            condition("PodReadyToStartContainers", flag),
            condition("Initialized", "False", **initializing)
            if pod.phase == "init-blocked"
            else condition("Initialized", "True"),
            condition("Ready", flag, **not_ready),
            condition("ContainersReady", flag, **not_ready),
            condition("PodScheduled", "True"),
        ],
        "hostIP": view.ip,
        "hostIPs": [{"ip": view.ip}],
        "startTime": since,
        "containerStatuses": statuses,
        "qosClass": qos,
    }
    if running or pod_spec.get("hostNetwork"):
        status["podIP"] = ip
        status["podIPs"] = [{"ip": ip}]
    return status
