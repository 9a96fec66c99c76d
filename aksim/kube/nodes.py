"""Nodes: their JSON as the API server shows it (capacity, conditions, node info), list and get."""

from __future__ import annotations

import re
from typing import Any

from starlette.responses import JSONResponse, Response

from aksim.fleetfile import Cluster, Node
from aksim.kube.errors import ApiError
from aksim.kube.metadata import (
    cluster_created,
    minor_version,
    stable_hex,
    stable_uid,
    timestamp,
)
from aksim.kube.node_views import NodeView
from aksim.kube.request import Call, strip_kind
from aksim.kube.selectors import (
    fields_match,
    labels_match,
    parse_field_selector,
    parse_label_selector,
)


def _os_info(node: Node, k8s_minor: int) -> tuple[str, str, str]:
    """(osImage, kernelVersion, containerRuntimeVersion) for the pool's OS SKU."""
    sku = node.pool.os_sku
    if sku == "Ubuntu":
        sku = "Ubuntu2404" if k8s_minor >= 35 else "Ubuntu2204"
    if sku == "AzureLinux":
        sku = "AzureLinux3" if k8s_minor >= 32 else "AzureLinux2"
    table = {
        "Ubuntu2204": ("Ubuntu 22.04.5 LTS", "5.15.0-1092-azure", "containerd://1.7.27-1"),
        "Ubuntu2404": ("Ubuntu 24.04.2 LTS", "6.8.0-1031-azure", "containerd://1.7.27-1"),
        "AzureLinux2": ("CBL-Mariner/Linux", "5.15.186.1-1.cm2", "containerd://1.6.26"),
        "AzureLinux3": ("Microsoft Azure Linux 3.0", "6.6.96.1-1.azl3", "containerd://1.7.26"),
        "Windows2019": (
            "Windows Server 2019 Datacenter",
            "10.0.17763.7558",
            "containerd://1.7.20+azure",
        ),
        "Windows2022": (
            "Windows Server 2022 Datacenter",
            "10.0.20348.3932",
            "containerd://1.7.20+azure",
        ),
        "Windows2025": (
            "Windows Server 2025 Datacenter",
            "10.0.26100.4652",
            "containerd://1.7.20+azure",
        ),
    }
    if sku in table:
        return table[sku]
    if node.linux:
        return table["Ubuntu2204"]
    return table["Windows2022"]


def _capacity(vm_size: str, max_pods: int) -> tuple[dict[str, str], dict[str, str]]:
    """Capacity and allocatable for a VM size such as Standard_D4s_v5."""
    m = re.match(r"Standard_([A-Z]+)(\d+)", vm_size)
    family, cpus = (m.group(1), int(m.group(2))) if m else ("D", 2)
    gib_per_cpu = {"E": 8, "F": 2, "M": 28, "L": 8}.get(family[0], 4)
    memory_ki = cpus * gib_per_cpu * 1024 * 1024 - 380_000  # what the VM reports, less firmware
    capacity = {
        "cpu": str(cpus),
        "ephemeral-storage": "129886128Ki",
        "hugepages-1Gi": "0",
        "hugepages-2Mi": "0",
        "memory": f"{memory_ki}Ki",
        "pods": str(max_pods),
    }
    # AKS reserves CPU and memory for the kubelet and the OS (kube-reserved + eviction threshold).
    allocatable = dict(capacity)
    allocatable["cpu"] = f"{cpus * 1000 - (60 + 20 * cpus)}m"
    allocatable["memory"] = f"{int(memory_ki * 0.8)}Ki"
    allocatable["ephemeral-storage"] = "119703055367"
    return capacity, allocatable


def _max_pods(spec: Cluster) -> int:
    return 110 if spec.network_plugin == "kubenet" else 250


def _node_conditions(view: NodeView, created: float, now: float) -> list[dict[str, Any]]:
    heartbeat = timestamp(now - (now % 10))
    # A reimaged node registers again: its conditions changed when it came back.
    since = timestamp(max(created, view.reimaged_at or created))

    def condition(kind: str, status: str, reason: str, message: str) -> dict[str, Any]:
        return {
            "type": kind,
            "status": status,
            "lastHeartbeatTime": heartbeat,
            "lastTransitionTime": since,
            "reason": reason,
            "message": message,
        }

    if view.ready:
        ready = condition("Ready", "True", "KubeletReady", "kubelet is posting ready status")
    else:
        ready = condition(
            "Ready",
            "False",
            "KubeletNotReady",
            "container runtime network not ready: NetworkReady=false "
            "reason:NetworkPluginNotReady message:Network plugin returns error: "
            "cni plugin not initialized",
        )
        ready["lastTransitionTime"] = heartbeat
    return [
        condition(
            "MemoryPressure",
            "False",
            "KubeletHasSufficientMemory",
            "kubelet has sufficient memory available",
        ),
        condition(
            "DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"
        ),
        condition(
            "PIDPressure",
            "False",
            "KubeletHasSufficientPID",
            "kubelet has sufficient PID available",
        ),
        ready,
    ]


def node_created(spec: Cluster, node: Node) -> float:
    pool_index = spec.pools.index(node.pool)
    return cluster_created(spec) + 600 + pool_index * 3600 + node.index * 60


def _provider_id(spec: Cluster, node: Node) -> str:
    group = f"mc_{spec.resource_group}_{spec.name}_{spec.location}".lower()
    if node.linux:
        vmss = f"aks-{node.pool.name}-{node.pool.vmss_id}-vmss"
    else:
        vmss = f"aks{node.pool.name}"
    return (
        f"azure:///subscriptions/{spec.subscription_id}/resourceGroups/{group}/providers/"
        f"Microsoft.Compute/virtualMachineScaleSets/{vmss}/virtualMachines/{node.index}"
    )


def node_json(call: Call, view: NodeView) -> dict[str, Any]:
    spec = call.state.spec
    node = view.node
    created = node_created(spec, node)
    os_image, kernel, runtime = _os_info(node, minor_version(spec.kubernetes_version))
    capacity, allocatable = _capacity(node.pool.vm_size, _max_pods(spec))
    node_spec: dict[str, Any] = {"providerID": _provider_id(spec, node)}
    if spec.network_plugin == "kubenet" or spec.network_plugin_mode == "overlay":
        node_spec["podCIDR"] = view.pod_cidr
        node_spec["podCIDRs"] = [view.pod_cidr]
    if view.taints:
        node_spec["taints"] = view.taints
    # A reimage (the BpfVeth roll) boots the node again: a new boot id.
    boot = stable_uid(spec.key, "boot", node.name, str(view.ebpf))
    return {
        "kind": "Node",
        "apiVersion": "v1",
        "metadata": {
            "name": node.name,
            "uid": view.uid,
            "resourceVersion": str(call.state.resource_version),
            "creationTimestamp": timestamp(created),
            "labels": view.labels,
            "annotations": {
                "node.alpha.kubernetes.io/ttl": "0",
                "volumes.kubernetes.io/controller-managed-attach-detach": "true",
            },
        },
        "spec": node_spec,
        "status": {
            "capacity": capacity,
            "allocatable": allocatable,
            "conditions": _node_conditions(view, created, call.sim.now()),
            "addresses": [
                {"type": "InternalIP", "address": view.ip},
                {"type": "Hostname", "address": node.name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "machineID": stable_hex(32, spec.key, "machine", node.name),
                "systemUUID": stable_uid(spec.key, "vm", node.name),
                "bootID": boot,
                "kernelVersion": kernel,
                "osImage": os_image,
                "containerRuntimeVersion": runtime,
                "kubeletVersion": f"v{node.pool.orchestrator_version}",
                # The kubelet stopped reporting it (DisableNodeKubeProxyVersion) in 1.31.
                "kubeProxyVersion": ""
                if minor_version(spec.kubernetes_version) >= 31
                else f"v{node.pool.orchestrator_version}",
                "operatingSystem": node.pool.os_type.lower(),
                "architecture": "amd64",
            },
        },
    }


NODE_FIELDS = ("metadata.name", "spec.unschedulable")


def list_nodes(call: Call) -> Response:
    selector = parse_label_selector(call.query.get("labelSelector"))
    fields = parse_field_selector(call.query.get("fieldSelector"), NODE_FIELDS)
    items = []
    for view in sorted(call.nodes(), key=lambda v: v.name):
        if not labels_match(selector, view.labels):
            continue
        obj = node_json(call, view)
        if fields_match(fields, obj):
            items.append(strip_kind(obj))
    return call.list_response("NodeList", "v1", items)


def _find_node(call: Call, name: str) -> NodeView:
    for view in call.nodes():
        if view.name == name:
            return view
    raise ApiError.not_found("nodes", name)


def get_node(call: Call) -> Response:
    return JSONResponse(node_json(call, _find_node(call, call.params["name"])))
