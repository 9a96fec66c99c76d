"""Each simulated AKS cluster's Kubernetes API, under /k8s/<cluster key>/: version, nodes,
namespaces, DaemonSets and their pods (a scan pod's log is its node's iptables dump), events and
CiliumNodes, with the API server's JSON shapes and `Status` error bodies."""

from __future__ import annotations

import asyncio
import base64
import binascii
import copy
import datetime
import hashlib
import hmac
import ipaddress
import json
import re
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from aksim.fleetfile import Cluster, Node, node_ip
from aksim.state import USER_RULES_LABEL, ClusterState, KubeEvent, Simulator

# Entra ID: the AKS server application every cluster token is issued for, and the Azure CLI
# client that kubelogin signs in with (both are the same in every tenant).
AKS_SERVER_APP_ID = "6dae42f8-4368-4678-94ff-3960e28e3630"
AZURE_CLI_CLIENT_ID = "80faf920-1908-4b52-b5ef-a8e7bedfc67a"
KUBELOGIN_HINT = (
    "\nkubelogin is not installed which is required to connect to AAD enabled cluster.\n\n"
    "To learn more, please go to https://aka.ms/aks/kubelogin\n"
)

SCAN_LABEL = "wavegate.io/scan"
SCAN_LABEL_VALUE = "iptables"
BUILTIN_NAMESPACES = ("default", "kube-node-lease", "kube-public", "kube-system")
# The API server refuses to delete these three.
IMMORTAL_NAMESPACES = ("default", "kube-public", "kube-system")
# A new DaemonSet's pods pull and start for this long (divided by --time-scale) before they run,
# so a client that reads logs without waiting for Running sees what it would see on AKS.
POD_START_SECONDS = 2.0
# Each cluster "was created" on a day after this one picked by its seed: stable timestamps.
EPOCH = datetime.datetime(2025, 3, 1, tzinfo=datetime.UTC).timestamp()
# Kubernetes' own alphabet for generated name suffixes (no vowels, no look-alikes).
NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_UID_NAMESPACE = uuid.UUID("0e4f7a1c-6c2b-4d0a-9a57-5b8c1d2e3f40")
_ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


# --- errors: every failure is a `kind: Status` body ---------------------------------------------
class ApiError(Exception):
    """An answer other than success; `response()` is the Status body the API server sends."""

    def __init__(
        self, code: int, reason: str, message: str, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details

    def response(self) -> JSONResponse:
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
        }
        if self.details is not None:
            body["details"] = self.details
        body["code"] = self.code
        return JSONResponse(body, status_code=self.code)

    @classmethod
    def not_found(cls, resource: str, name: str, group: str = "") -> ApiError:
        qualified = f"{resource}.{group}" if group else resource
        details = {"name": name, "kind": resource}
        if group:
            details = {"name": name, "group": group, "kind": resource}
        return cls(404, "NotFound", f'{qualified} "{name}" not found', details)

    @classmethod
    def no_such_path(cls) -> ApiError:
        return cls(404, "NotFound", "the server could not find the requested resource", {})

    @classmethod
    def bad_request(cls, message: str) -> ApiError:
        return cls(400, "BadRequest", message)

    @classmethod
    def invalid(cls, kind: str, group: str, name: str, field_path: str, problem: str) -> ApiError:
        qualified = f"{kind}.{group}" if group else kind
        message = f'{qualified} "{name}" is invalid: {field_path}: {problem}'
        cause = {"reason": "FieldValueInvalid", "message": problem, "field": field_path}
        details: dict[str, Any] = {"name": name, "kind": kind, "causes": [cause]}
        if group:
            details["group"] = group
        return cls(422, "Invalid", message, details)


UNAUTHORIZED = ApiError(401, "Unauthorized", "Unauthorized")
TIMEOUT = ApiError(
    504,
    "Timeout",
    "Timeout: request did not complete within requested timeout - context deadline exceeded",
    {},
)


# --- small pure helpers -------------------------------------------------------------------------
def _timestamp(moment: float) -> str:
    stamp = datetime.datetime.fromtimestamp(int(moment), datetime.UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_timestamp(text: str) -> float:
    return (
        datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ")
        .replace(tzinfo=datetime.UTC)
        .timestamp()
    )


def _uid(*parts: str) -> str:
    return str(uuid.uuid5(_UID_NAMESPACE, "/".join(parts)))


def _suffix(length: int, *parts: str) -> str:
    """A stable suffix in Kubernetes' generated-name alphabet."""
    digest = hashlib.sha256("/".join(parts).encode()).digest()
    return "".join(NAME_ALPHABET[b % len(NAME_ALPHABET)] for b in digest[:length])


def _hex(length: int, *parts: str) -> str:
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:length]


def _minor(version: str) -> int:
    return int(version.split(".")[1])


def _created(spec: Cluster) -> float:
    return EPOCH + (spec.seed % 365) * 86400.0


# --- selectors ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Requirement:
    """One term of a label selector: `key op values`."""

    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!exists"
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        value = labels.get(self.key)
        if self.op == "exists":
            return value is not None
        if self.op == "!exists":
            return value is None
        if self.op in ("=", "in"):
            return value is not None and value in self.values
        return value is None or value not in self.values  # "!=" and "notin"


_KEY = r"[A-Za-z0-9][-A-Za-z0-9_./]*"
_VALUE = r"[-A-Za-z0-9_.]*"
_SET_TERM = re.compile(rf"^\s*({_KEY})\s+(in|notin)\s+\(([^)]*)\)\s*$")
_EQ_TERM = re.compile(rf"^\s*({_KEY})\s*(==|=|!=)\s*({_VALUE})\s*$")
_EXISTS_TERM = re.compile(rf"^\s*(!?)\s*({_KEY})\s*$")


def _split_terms(text: str) -> list[str]:
    """Split on commas outside parentheses (`a in (x,y),b=c`)."""
    terms, depth, start = [], 0, 0
    for i, char in enumerate(text):
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "," and depth == 0:
            terms.append(text[start:i])
            start = i + 1
    terms.append(text[start:])
    return [t for t in terms if t.strip()]


def parse_label_selector(text: str | None) -> list[Requirement]:
    requirements = []
    for term in _split_terms(text or ""):
        if m := _SET_TERM.match(term):
            values = tuple(v.strip() for v in m.group(3).split(",") if v.strip())
            requirements.append(Requirement(m.group(1), m.group(2), values))
        elif m := _EQ_TERM.match(term):
            op = "!=" if m.group(2) == "!=" else "="
            requirements.append(Requirement(m.group(1), op, (m.group(3),)))
        elif m := _EXISTS_TERM.match(term):
            requirements.append(Requirement(m.group(2), "!exists" if m.group(1) else "exists"))
        else:
            raise ApiError.bad_request(f"unable to parse requirement: invalid selector: {term!r}")
    return requirements


def labels_match(requirements: Iterable[Requirement], labels: Mapping[str, str]) -> bool:
    return all(r.matches(labels) for r in requirements)


def parse_field_selector(text: str | None, supported: Iterable[str]) -> list[tuple[str, bool, str]]:
    """`a=b,c!=d` as (field, equal?, value); an unsupported field is a 400, as on the server."""
    allowed = set(supported)
    terms = []
    for term in _split_terms(text or ""):
        m = re.match(r"^\s*([A-Za-z0-9_.]+)\s*(==|=|!=)\s*(.*?)\s*$", term)
        if m is None:
            raise ApiError.bad_request(f"invalid selector: '{text}'; can't understand '{term}'")
        if m.group(1) not in allowed:
            raise ApiError.bad_request(f"field label not supported: {m.group(1)}")
        terms.append((m.group(1), m.group(2) != "!=", m.group(3)))
    return terms


def _field(obj: Mapping[str, Any], path: str) -> str:
    value: Any = obj
    for part in path.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def fields_match(terms: Iterable[tuple[str, bool, str]], obj: Mapping[str, Any]) -> bool:
    return all((_field(obj, path) == value) == equal for path, equal, value in terms)


# --- a request, as the handlers see it ----------------------------------------------------------
@dataclass
class Call:
    sim: Simulator
    state: ClusterState
    params: dict[str, str]
    query: Mapping[str, str]
    body: bytes
    _nodes: list[NodeView] | None = field(default=None, repr=False)

    def json_body(self) -> dict[str, Any]:
        try:
            body = json.loads(self.body or b"null")
        except ValueError as exc:
            raise ApiError.bad_request(
                f"the body of the request was in an unknown format: {exc}"
            ) from None
        if not isinstance(body, dict):
            raise ApiError.bad_request("the body of the request was in an unknown format")
        return body

    def nodes(self) -> list[NodeView]:
        if self._nodes is None:
            self._nodes = node_views(self.sim, self.state)
        return self._nodes

    def list_response(
        self, kind: str, api_version: str, items: list[dict[str, Any]]
    ) -> JSONResponse:
        """A list body, paged by `limit` and `continue` as the server pages."""
        offset = _continue_offset(self.query.get("continue"))
        limit_text = self.query.get("limit") or "0"
        limit = int(limit_text) if limit_text.isdigit() else 0
        metadata: dict[str, Any] = {"resourceVersion": str(self.state.resource_version)}
        page = items[offset:]
        if limit > 0 and len(page) > limit:
            page = page[:limit]
            metadata["continue"] = base64.b64encode(
                json.dumps({"offset": offset + limit}).encode()
            ).decode()
            metadata["remainingItemCount"] = len(items) - offset - limit
        return JSONResponse(
            {"kind": kind, "apiVersion": api_version, "metadata": metadata, "items": page}
        )


def _continue_offset(token: str | None) -> int:
    if not token:
        return 0
    try:
        return int(json.loads(base64.b64decode(token))["offset"])
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise ApiError.bad_request("continue key is not valid: unable to decode") from None


def _strip_kind(obj: dict[str, Any]) -> dict[str, Any]:
    """Items of a built-in list carry no kind/apiVersion of their own."""
    return {k: v for k, v in obj.items() if k not in ("kind", "apiVersion")}


# --- nodes --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class NodeView:
    """A node as the API shows it right now."""

    node: Node
    position: int  # index in the cluster's node list: picks its IPs
    uid: str
    labels: dict[str, str]
    ready: bool
    taints: list[dict[str, str]]
    ebpf: bool

    @property
    def name(self) -> str:
        return self.node.name

    @property
    def ip(self) -> str:
        return node_ip(self.position)

    @property
    def pod_cidr(self) -> str:
        return str(ipaddress.IPv4Network(f"10.244.{self.position % 256}.0/24"))

    def pod_ip(self, salt: str) -> str:
        return f"10.244.{self.position % 256}.{10 + int(_hex(4, salt), 16) % 240}"


def node_uid(spec: Cluster, name: str) -> str:
    return _uid(spec.key, "node", name)


def node_views(sim: Simulator, state: ClusterState) -> list[NodeView]:
    spec = state.spec
    has_user_pool = any(p.mode == "User" for p in spec.pools)
    views = []
    for position, node in enumerate(spec.nodes()):
        ready = sim.node_ready(state, node)
        views.append(
            NodeView(
                node=node,
                position=position,
                uid=node_uid(spec, node.name),
                labels=sim.node_labels(state, node),
                ready=ready,
                taints=_taints(node, ready, has_user_pool),
                ebpf=sim.node_has_ebpf(state, node),
            )
        )
    return views


def _taints(node: Node, ready: bool, has_user_pool: bool) -> list[dict[str, str]]:
    taints = []
    # Many AKS clusters keep workloads off their system pool this way; the scan must tolerate it.
    if node.pool.mode == "System" and has_user_pool and node.linux:
        taints.append({"key": "CriticalAddonsOnly", "value": "true", "effect": "NoSchedule"})
    if not ready:
        for effect in ("NoSchedule", "NoExecute"):
            taints.append({"key": "node.kubernetes.io/not-ready", "effect": effect})
    return taints


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
    heartbeat = _timestamp(now - (now % 10))
    since = _timestamp(created)

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


def _node_created(spec: Cluster, node: Node) -> float:
    pool_index = spec.pools.index(node.pool)
    return _created(spec) + 600 + pool_index * 3600 + node.index * 60


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
    created = _node_created(spec, node)
    os_image, kernel, runtime = _os_info(node, _minor(spec.kubernetes_version))
    capacity, allocatable = _capacity(node.pool.vm_size, _max_pods(spec))
    node_spec: dict[str, Any] = {"providerID": _provider_id(spec, node)}
    if spec.network_plugin == "kubenet" or spec.network_plugin_mode == "overlay":
        node_spec["podCIDR"] = view.pod_cidr
        node_spec["podCIDRs"] = [view.pod_cidr]
    if view.taints:
        node_spec["taints"] = view.taints
    # A reimage (the BpfVeth roll) boots the node again: a new boot id.
    boot = _uid(spec.key, "boot", node.name, str(view.ebpf))
    return {
        "kind": "Node",
        "apiVersion": "v1",
        "metadata": {
            "name": node.name,
            "uid": view.uid,
            "resourceVersion": str(call.state.resource_version),
            "creationTimestamp": _timestamp(created),
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
                "machineID": _hex(32, spec.key, "machine", node.name),
                "systemUUID": _uid(spec.key, "vm", node.name),
                "bootID": boot,
                "kernelVersion": kernel,
                "osImage": os_image,
                "containerRuntimeVersion": runtime,
                "kubeletVersion": f"v{node.pool.orchestrator_version}",
                # The kubelet stopped reporting it (DisableNodeKubeProxyVersion) in 1.31.
                "kubeProxyVersion": ""
                if _minor(spec.kubernetes_version) >= 31
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
            items.append(_strip_kind(obj))
    return call.list_response("NodeList", "v1", items)


def _find_node(call: Call, name: str) -> NodeView:
    for view in call.nodes():
        if view.name == name:
            return view
    raise ApiError.not_found("nodes", name)


def get_node(call: Call) -> Response:
    return JSONResponse(node_json(call, _find_node(call, call.params["name"])))


# --- CiliumNodes (only where the dataplane is Cilium) -------------------------------------------
def _require_cilium(call: Call) -> None:
    if call.state.spec.network_dataplane != "cilium":
        raise ApiError.no_such_path()  # the CRD is not installed


def cilium_node_json(call: Call, view: NodeView, with_rules: set[str]) -> dict[str, Any]:
    spec = call.state.spec
    labels = dict(view.labels)
    labels[USER_RULES_LABEL] = "true" if view.name in with_rules else "false"
    overlay = spec.network_plugin_mode == "overlay"
    return {
        "apiVersion": "cilium.io/v2",
        "kind": "CiliumNode",
        "metadata": {
            "name": view.name,
            "uid": _uid(spec.key, "ciliumnode", view.name),
            "resourceVersion": str(call.state.resource_version),
            "generation": 1,
            "creationTimestamp": _timestamp(_node_created(spec, view.node) + 40),
            "labels": labels,
            "ownerReferences": [
                {"apiVersion": "v1", "kind": "Node", "name": view.name, "uid": view.uid}
            ],
        },
        "spec": {
            "addresses": [
                {"ip": view.ip, "type": "InternalIP"},
                {"ip": view.pod_ip("cilium-internal"), "type": "CiliumInternalIP"},
            ],
            "alibaba-cloud": {},
            "azure": {},
            "bootid": _uid(spec.key, "boot", view.name, str(view.ebpf)),
            "encryption": {},
            "eni": {},
            "health": {"ipv4": view.pod_ip("cilium-health")},
            "ingress": {},
            "ipam": {"podCIDRs": [view.pod_cidr]} if overlay else {},
        },
        "status": {
            "alibaba-cloud": {},
            "azure": {},
            "eni": {},
            "ipam": {"operator-status": {}},
        },
    }


def _linux_views(call: Call) -> list[NodeView]:
    return sorted((v for v in call.nodes() if v.node.linux), key=lambda v: v.name)


def list_cilium_nodes(call: Call) -> Response:
    _require_cilium(call)
    selector = parse_label_selector(call.query.get("labelSelector"))
    fields = parse_field_selector(call.query.get("fieldSelector"), ("metadata.name",))
    with_rules = set(call.sim.nodes_with_user_rules(call.state))
    items = []
    for view in _linux_views(call):
        obj = cilium_node_json(call, view, with_rules)
        if labels_match(selector, obj["metadata"]["labels"]) and fields_match(fields, obj):
            items.append(obj)  # custom resources keep kind/apiVersion in lists
    return call.list_response("CiliumNodeList", "cilium.io/v2", items)


def get_cilium_node(call: Call) -> Response:
    _require_cilium(call)
    name = call.params["name"]
    for view in _linux_views(call):
        if view.name == name:
            with_rules = set(call.sim.nodes_with_user_rules(call.state))
            return JSONResponse(cilium_node_json(call, view, with_rules))
    raise ApiError.not_found("ciliumnodes", name, "cilium.io")


# --- namespaces ---------------------------------------------------------------------------------
def _namespace_json(
    call: Call, name: str, labels: Mapping[str, str], created: float
) -> dict[str, Any]:
    return {
        "kind": "Namespace",
        "apiVersion": "v1",
        "metadata": {
            "name": name,
            "uid": _uid(call.state.spec.key, "namespace", name, str(created)),
            "resourceVersion": call.state.next_resource_version(),
            "creationTimestamp": _timestamp(created),
            "labels": {**labels, "kubernetes.io/metadata.name": name},
        },
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"},
    }


def _namespaces(call: Call) -> dict[str, dict[str, Any]]:
    """Name -> namespace object; the built-in ones appear the first time anyone asks."""
    objects = call.state.objects
    if ("Namespace", "", "default") not in objects:
        created = _created(call.state.spec)
        for name in BUILTIN_NAMESPACES:
            objects[("Namespace", "", name)] = _namespace_json(call, name, {}, created)
    return {key[2]: obj for key, obj in objects.items() if key[0] == "Namespace"}


def _require_namespace(call: Call, name: str) -> dict[str, Any]:
    namespace = _namespaces(call).get(name)
    if namespace is None:
        raise ApiError.not_found("namespaces", name)
    return namespace


NAMESPACE_FIELDS = ("metadata.name", "status.phase")


def list_namespaces(call: Call) -> Response:
    selector = parse_label_selector(call.query.get("labelSelector"))
    fields = parse_field_selector(call.query.get("fieldSelector"), NAMESPACE_FIELDS)
    with call.sim.lock:
        namespaces = sorted(_namespaces(call).items())
    items = [
        _strip_kind(obj)
        for _, obj in namespaces
        if labels_match(selector, obj["metadata"]["labels"]) and fields_match(fields, obj)
    ]
    return call.list_response("NamespaceList", "v1", items)


def get_namespace(call: Call) -> Response:
    with call.sim.lock:
        return JSONResponse(_require_namespace(call, call.params["name"]))


def _object_name(body: Mapping[str, Any], kind: str, group: str, seed: str) -> str:
    """metadata.name, or generateName plus a suffix; validated as the server validates."""
    metadata = body.get("metadata") or {}
    name = metadata.get("name") or ""
    if not name and metadata.get("generateName"):
        name = metadata["generateName"] + _suffix(5, seed, str(time.time_ns()))
    if not name:
        raise ApiError.invalid(
            kind, group, "", "metadata.name", "Required value: name or generateName is required"
        )
    pattern = _DNS_LABEL if kind == "Namespace" else _DNS_SUBDOMAIN
    if len(name) > (63 if kind == "Namespace" else 253) or not pattern.match(name):
        if kind == "Namespace":
            rule = (
                "a lowercase RFC 1123 label must consist of lower case alphanumeric characters "
                "or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  "
                "or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
            )
        else:
            rule = (
                "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                "characters, '-' or '.', and must start and end with an alphanumeric character "
                "(e.g. 'example.com', regex used for validation is "
                "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
            )
        raise ApiError.invalid(
            kind, group, name, "metadata.name", f'Invalid value: "{name}": {rule}'
        )
    return name


def create_namespace(call: Call) -> Response:
    body = call.json_body()
    name = _object_name(body, "Namespace", "", call.state.spec.key)
    labels = (body.get("metadata") or {}).get("labels") or {}
    with call.sim.lock:
        if name in _namespaces(call):
            raise ApiError(
                409,
                "AlreadyExists",
                f'namespaces "{name}" already exists',
                {"name": name, "kind": "namespaces"},
            )
        obj = _namespace_json(call, name, labels, call.sim.now())
        annotations = (body.get("metadata") or {}).get("annotations")
        if annotations:
            obj["metadata"]["annotations"] = dict(annotations)
        call.state.objects[("Namespace", "", name)] = obj
    return JSONResponse(obj, status_code=201)


def delete_namespace(call: Call) -> Response:
    name = call.params["name"]
    with call.sim.lock:
        namespace = _require_namespace(call, name)
        if name in IMMORTAL_NAMESPACES:
            raise ApiError(
                403,
                "Forbidden",
                f'namespaces "{name}" is forbidden: this namespace may not be deleted',
                {"name": name, "kind": "namespaces"},
            )
        # The namespace controller empties it and removes it; aksim does so at once, and
        # answers with the namespace as it looked when deletion began.
        for key in [k for k in call.state.objects if k[1] == name or k == ("Namespace", "", name)]:
            del call.state.objects[key]
        answer = copy.deepcopy(namespace)
        answer["metadata"]["resourceVersion"] = call.state.next_resource_version()
        answer["metadata"]["deletionTimestamp"] = _timestamp(call.sim.now())
        answer["status"] = {"phase": "Terminating"}
    return JSONResponse(answer)


# --- DaemonSets ---------------------------------------------------------------------------------
def _image_pull_policy(image: str) -> str:
    if "@" in image:
        return "IfNotPresent"
    tag = image.rsplit("/", 1)[-1].partition(":")[2]
    return "Always" if tag in ("", "latest") else "IfNotPresent"


def _default_pod_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """The defaults the API server fills into a pod template."""
    spec = dict(spec)
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    containers = []
    for container in spec.get("containers") or []:
        container = dict(container)
        container.setdefault("resources", {})
        container.setdefault("terminationMessagePath", "/dev/termination-log")
        container.setdefault("terminationMessagePolicy", "File")
        container.setdefault("imagePullPolicy", _image_pull_policy(container.get("image", "")))
        containers.append(container)
    spec["containers"] = containers
    return spec


def _validate_daemonset(name: str, spec: Mapping[str, Any]) -> None:
    def invalid(path: str, problem: str) -> ApiError:
        return ApiError.invalid("DaemonSet", "apps", name, path, problem)

    template = spec.get("template") or {}
    labels = (template.get("metadata") or {}).get("labels") or {}
    selector = spec.get("selector")
    if not selector:
        raise invalid("spec.selector", "Required value")
    if not _selector_matches(selector, labels):
        raise invalid(
            "spec.template.metadata.labels",
            f"Invalid value: {json.dumps(labels)}: `selector` does not match template `labels`",
        )
    containers = (template.get("spec") or {}).get("containers") or []
    if not containers:
        raise invalid("spec.template.spec.containers", "Required value")
    for i, container in enumerate(containers):
        if not container.get("image"):
            raise invalid(f"spec.template.spec.containers[{i}].image", "Required value")


def _selector_requirements(selector: Mapping[str, Any]) -> list[Requirement]:
    """A LabelSelector object (matchLabels, matchExpressions) as requirements."""
    ops = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!exists"}
    requirements = [
        Requirement(k, "=", (v,)) for k, v in (selector.get("matchLabels") or {}).items()
    ]
    for expr in selector.get("matchExpressions") or []:
        op = ops.get(expr.get("operator", ""))
        if op is None:
            raise ApiError.bad_request(
                f"{expr.get('operator')!r} is not a valid label selector operator"
            )
        requirements.append(Requirement(expr["key"], op, tuple(expr.get("values") or ())))
    return requirements


def _selector_matches(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    return labels_match(_selector_requirements(selector), labels)


def _admit_unprivileged(name: str, pod_spec: Mapping[str, Any]) -> None:
    """Azure Policy's "no privileged containers" and "no host namespaces" constraints, enforced
    by Gatekeeper's validating webhook, as AKS answers when the policy denies."""
    problems = []
    for container in pod_spec.get("containers") or []:
        if (container.get("securityContext") or {}).get("privileged"):
            problems.append(
                "[azurepolicy-k8sazurev2noprivilege-4b9c1f0e] Privileged container is not "
                f"allowed: {container.get('name')}, securityContext: "
                '{"privileged": true}'
            )
    if pod_spec.get("hostPID") or pod_spec.get("hostNetwork"):
        problems.append(
            "[azurepolicy-k8sazurev3hostnetworkingports-6a0d3e2b] Sharing the host namespace "
            "is not allowed"
        )
    if problems:
        raise ApiError(
            403,
            "Forbidden",
            'admission webhook "validation.gatekeeper.sh" denied the request: '
            + "\n".join(problems),
            {"name": name, "group": "apps", "kind": "daemonsets"},
        )


def create_daemonset(call: Call) -> Response:
    body = call.json_body()
    namespace = call.params["namespace"]
    metadata = dict(body.get("metadata") or {})
    if metadata.get("namespace") not in (None, namespace):
        raise ApiError.bad_request(
            "the namespace of the provided object does not match the namespace sent on the request"
        )
    name = _object_name(body, "DaemonSet", "apps", namespace)
    spec = dict(body.get("spec") or {})
    _validate_daemonset(name, spec)
    template = dict(spec["template"])
    template["spec"] = _default_pod_spec(template.get("spec") or {})
    if call.state.deny_privileged:
        _admit_unprivileged(name, template["spec"])
    spec["template"] = template
    spec.setdefault(
        "updateStrategy",
        {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}},
    )
    spec.setdefault("revisionHistoryLimit", 10)
    with call.sim.lock:
        _require_namespace(call, namespace)
        key = ("DaemonSet", namespace, name)
        if key in call.state.objects:
            raise ApiError(
                409,
                "AlreadyExists",
                f'daemonsets.apps "{name}" already exists',
                {"name": name, "group": "apps", "kind": "daemonsets"},
            )
        metadata.update(
            name=name,
            namespace=namespace,
            uid=str(uuid.uuid4()),
            resourceVersion=call.state.next_resource_version(),
            generation=1,
            creationTimestamp=_timestamp(call.sim.now()),
        )
        annotations = dict(metadata.get("annotations") or {})
        annotations["deprecated.daemonset.template.generation"] = "1"
        metadata["annotations"] = annotations
        obj = {"kind": "DaemonSet", "apiVersion": "apps/v1", "metadata": metadata, "spec": spec}
        call.state.objects[key] = obj
        answer = daemonset_json(call, obj)
    return JSONResponse(answer, status_code=201)


CILIUM_AGENT = "cilium"


def _cilium_agent(call: Call) -> dict[str, Any]:
    """AKS's own Cilium agent DaemonSet in kube-system (k8s-app=cilium), one pod per Linux node;
    a pod is ready while its node is."""
    spec = call.state.spec
    return {
        "kind": "DaemonSet",
        "apiVersion": "apps/v1",
        "metadata": {
            "name": CILIUM_AGENT,
            "namespace": "kube-system",
            "uid": _uid(spec.key, "daemonset", CILIUM_AGENT),
            "resourceVersion": "1",
            "generation": 1,
            "creationTimestamp": _timestamp(_created(spec)),
            "labels": {"k8s-app": "cilium", "kubernetes.azure.com/managedby": "aks"},
            "annotations": {"deprecated.daemonset.template.generation": "1"},
        },
        "spec": {
            "selector": {"matchLabels": {"k8s-app": "cilium"}},
            "template": {
                "metadata": {"labels": {"k8s-app": "cilium"}},
                "spec": _default_pod_spec(
                    {
                        "hostNetwork": True,
                        "priorityClassName": "system-node-critical",
                        "nodeSelector": {"kubernetes.io/os": "linux"},
                        "tolerations": [{"operator": "Exists"}],
                        "containers": [
                            {
                                "name": "cilium-agent",
                                "image": "mcr.microsoft.com/oss/cilium/cilium:1.17.7",
                            }
                        ],
                    }
                ),
            },
            "updateStrategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": "10%", "maxSurge": 0},
            },
            "revisionHistoryLimit": 10,
        },
    }


def _daemonsets(call: Call, namespace: str | None) -> list[dict[str, Any]]:
    key = ("DaemonSet", "kube-system", CILIUM_AGENT)
    if call.state.spec.network_dataplane == "cilium" and key not in call.state.objects:
        _namespaces(call)  # kube-system first
        call.state.objects[key] = _cilium_agent(call)
    found = [
        obj
        for (kind, ns, _), obj in call.state.objects.items()
        if kind == "DaemonSet" and (namespace is None or ns == namespace)
    ]
    return sorted(found, key=lambda o: (o["metadata"]["namespace"], o["metadata"]["name"]))


def daemonset_json(call: Call, obj: dict[str, Any]) -> dict[str, Any]:
    """The stored DaemonSet with its status as the controller would report it now."""
    pods = [pod for _, pod in _daemon_pods(call, obj)]
    desired = len(pods)
    ready = sum(1 for pod in pods if pod.phase == "running")
    status: dict[str, Any] = {
        "currentNumberScheduled": desired,
        "numberMisscheduled": 0,
        "desiredNumberScheduled": desired,
        "numberReady": ready,
        "observedGeneration": obj["metadata"]["generation"],
    }
    # These are omitempty on the server: absent, not 0, when nothing counts.
    for name, value in (
        ("updatedNumberScheduled", desired),
        ("numberAvailable", ready),
        ("numberUnavailable", desired - ready),
    ):
        if value:
            status[name] = value
    return {**obj, "status": status}


DAEMONSET_FIELDS = ("metadata.name", "metadata.namespace")


def list_daemonsets(call: Call) -> Response:
    selector = parse_label_selector(call.query.get("labelSelector"))
    fields = parse_field_selector(call.query.get("fieldSelector"), DAEMONSET_FIELDS)
    with call.sim.lock:
        stored = _daemonsets(call, call.params.get("namespace"))
    items = [
        _strip_kind(daemonset_json(call, obj))
        for obj in stored
        if labels_match(selector, obj["metadata"].get("labels") or {}) and fields_match(fields, obj)
    ]
    return call.list_response("DaemonSetList", "apps/v1", items)


def _find_daemonset(call: Call) -> dict[str, Any]:
    name = call.params["name"]
    _daemonsets(call, call.params["namespace"])  # the built-in ones appear
    obj = call.state.objects.get(("DaemonSet", call.params["namespace"], name))
    if obj is None:
        raise ApiError.not_found("daemonsets", name, "apps")
    return obj


def get_daemonset(call: Call) -> Response:
    with call.sim.lock:
        obj = _find_daemonset(call)
    return JSONResponse(daemonset_json(call, obj))


def _propagation_policy(call: Call) -> str:
    policy = call.query.get("propagationPolicy")
    if not policy and call.body:
        policy = call.json_body().get("propagationPolicy")
    policy = policy or "Background"
    if policy not in ("Foreground", "Background", "Orphan"):
        raise ApiError.bad_request(f'unsupported propagationPolicy "{policy}"')
    return policy


def delete_daemonset(call: Call) -> Response:
    policy = _propagation_policy(call)
    with call.sim.lock:
        obj = _find_daemonset(call)
        answer = daemonset_json(call, obj)
        # Its pods go with it (aksim's pods only exist through their DaemonSet, so Orphan too).
        del call.state.objects[("DaemonSet", call.params["namespace"], call.params["name"])]
        rv = call.state.next_resource_version()
    metadata = obj["metadata"]
    if policy == "Foreground":
        # The server answers with the object, now carrying the foreground finalizer.
        answer["metadata"] = {
            **metadata,
            "resourceVersion": rv,
            "deletionTimestamp": _timestamp(call.sim.now()),
            "deletionGracePeriodSeconds": 0,
            "finalizers": ["foregroundDeletion"],
        }
        return JSONResponse(answer)
    return JSONResponse(
        {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Success",
            "details": {
                "name": metadata["name"],
                "group": "apps",
                "kind": "daemonsets",
                "uid": metadata["uid"],
            },
        }
    )


# --- pods (each DaemonSet's, derived on every read) ---------------------------------------------
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
        labels_match(
            _selector_requirements({"matchExpressions": t.get("matchExpressions")}), labels
        )
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
    phase: str  # "running" | "creating" | "unschedulable" | "pull-failed"
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


def _daemon_pods(call: Call, ds: dict[str, Any]) -> list[tuple[dict[str, Any], DaemonPod]]:
    """(pod object, summary) for each node the DaemonSet wants, ordered by pod name."""
    metadata = ds["metadata"]
    template = ds["spec"]["template"]
    pod_spec = template["spec"]
    labels = (template.get("metadata") or {}).get("labels") or {}
    created = _parse_timestamp(metadata["creationTimestamp"])
    pods = []
    for view in call.nodes():
        if not _should_run(pod_spec, view):
            continue
        phase, started = _pod_phase(call, view, created)
        pod = DaemonPod(
            name=f"{metadata['name']}-{_suffix(5, metadata['uid'], view.name)}",
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
    return _suffix(10, json.dumps(ds["spec"]["template"], sort_keys=True))


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
        "uid": _uid(metadata["uid"], "pod", view.name),
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
    since = _timestamp(created)
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
    waiting_reason = "ContainerCreating" if pod.phase == "creating" else "ImagePullBackOff"
    statuses = []
    for container in pod_spec["containers"]:
        image = container["image"]
        state: dict[str, Any] = (
            {"running": {"startedAt": _timestamp(pod.started)}}
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
                else f"{image.split(':')[0]}@sha256:{_hex(64, image)}",
                "started": running,
                **(
                    {"containerID": f"containerd://{_hex(64, pod.name, container['name'])}"}
                    if running
                    else {}
                ),
            }
        )
    status: dict[str, Any] = {
        "phase": "Running" if running else "Pending",
        "conditions": [
            condition("PodReadyToStartContainers", flag),
            condition("Initialized", "True"),
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


POD_FIELDS = (
    "metadata.name",
    "metadata.namespace",
    "spec.nodeName",
    "spec.restartPolicy",
    "spec.schedulerName",
    "spec.serviceAccountName",
    "spec.hostNetwork",
    "status.phase",
    "status.podIP",
    "status.nominatedNodeName",
)


def _pods(call: Call, namespace: str | None) -> list[tuple[dict[str, Any], DaemonPod]]:
    with call.sim.lock:
        stored = _daemonsets(call, namespace)
    pods = [p for ds in stored for p in _daemon_pods(call, ds)]
    return sorted(pods, key=lambda p: (p[1].namespace, p[1].name))


def list_pods(call: Call) -> Response:
    selector = parse_label_selector(call.query.get("labelSelector"))
    fields = parse_field_selector(call.query.get("fieldSelector"), POD_FIELDS)
    items = [
        _strip_kind(obj)
        for obj, _ in _pods(call, call.params.get("namespace"))
        if labels_match(selector, obj["metadata"]["labels"]) and fields_match(fields, obj)
    ]
    return call.list_response("PodList", "v1", items)


def _find_pod(call: Call) -> tuple[dict[str, Any], DaemonPod]:
    name = call.params["name"]
    for obj, pod in _pods(call, call.params["namespace"]):
        if pod.name == name:
            return obj, pod
    raise ApiError.not_found("pods", name)


def get_pod(call: Call) -> Response:
    return JSONResponse(_find_pod(call)[0])


# --- pod logs -----------------------------------------------------------------------------------
def scan_output(spec: Cluster, node: Node) -> str:
    """What a Wavegate scan pod prints (DESIGN.md §5): each family's dump framed, then done."""
    from aksim import iptables  # written alongside; imported late so the API serves without it

    dump = iptables.render_node(spec, node)
    lines = []
    for family, text in (("ipv4", dump.ipv4), ("ipv6", dump.ipv6)):
        lines.append(f"### wavegate-scan node={node.name} family={family} begin\n")
        lines.append(text if not text or text.endswith("\n") else text + "\n")
        lines.append(f"### wavegate-scan node={node.name} family={family} end rc=0\n")
    lines.append(f"### wavegate-scan node={node.name} done\n")
    return "".join(lines)


def _log_container(call: Call, pod: DaemonPod) -> str:
    container = call.query.get("container")
    if not container:
        if len(pod.containers) == 1:
            return pod.containers[0]
        raise ApiError.bad_request(
            f"a container name must be specified for pod {pod.name}, "
            f"choose one of: [{' '.join(pod.containers)}]"
        )
    if container not in pod.containers:
        raise ApiError.bad_request(f"container {container} is not valid for pod {pod.name}")
    return container


def _trim_log(text: str, query: Mapping[str, str], started: float) -> str:
    if query.get("timestamps") in ("true", "1"):
        stamp = datetime.datetime.fromtimestamp(started, datetime.UTC).strftime(
            "%Y-%m-%dT%H:%M:%S.%fZ"
        )
        text = "".join(f"{stamp} {line}" for line in text.splitlines(keepends=True))
    tail = query.get("tailLines")
    if tail is not None and tail.lstrip("-").isdigit() and int(tail) >= 0:
        lines = text.splitlines(keepends=True)
        text = "".join(lines[len(lines) - int(tail) :]) if int(tail) else ""
    limit = query.get("limitBytes")
    if limit is not None and limit.isdigit() and int(limit) > 0:
        text = text.encode()[: int(limit)].decode(errors="ignore")
    return text


def pod_log(call: Call) -> Response:
    _, pod = _find_pod(call)
    container = _log_container(call, pod)
    if pod.phase == "unschedulable":
        # No node yet: the API server has no kubelet to ask and answers 204 with no body.
        return Response(status_code=204)
    if pod.phase != "running":
        reason = (
            "ContainerCreating" if pod.phase == "creating" else "trying and failing to pull image"
        )
        raise ApiError.bad_request(
            f'container "{container}" in pod "{pod.name}" is waiting to start: {reason}'
        )
    if call.query.get("previous") in ("true", "1"):
        raise ApiError.bad_request(
            f'previous terminated container "{container}" in pod "{pod.name}" not found'
        )
    text = scan_output(call.state.spec, pod.node.node) if pod.scan else ""
    return PlainTextResponse(_trim_log(text, call.query, pod.started))


# --- events -------------------------------------------------------------------------------------
EVENT_FIELDS = (
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "type",
    "metadata.name",
    "metadata.namespace",
)


def event_json(call: Call, event: KubeEvent) -> dict[str, Any]:
    return {
        "metadata": {
            "name": event.name,
            "namespace": event.namespace,
            "uid": event.uid,
            "resourceVersion": str(call.state.resource_version),
            "creationTimestamp": _timestamp(event.first),
        },
        "involvedObject": {
            "kind": "Node",
            "name": event.node,
            "uid": node_uid(call.state.spec, event.node),
            "apiVersion": "v1",
        },
        "reason": event.reason,
        "message": event.message,
        "source": {"component": event.component, "host": event.node},
        "firstTimestamp": _timestamp(event.first),
        "lastTimestamp": _timestamp(event.last),
        "count": event.count,
        "type": event.type,
        "eventTime": None,
        "reportingComponent": event.component,
        "reportingInstance": event.node,
    }


def list_events(call: Call) -> Response:
    fields = parse_field_selector(call.query.get("fieldSelector"), EVENT_FIELDS)
    selector = parse_label_selector(call.query.get("labelSelector"))
    namespace = call.params.get("namespace")
    with call.sim.lock:
        call.sim.refresh_warnings(call.state)
        events = [e for e in call.state.events if namespace is None or e.namespace == namespace]
        objects = [event_json(call, e) for e in events]
    items = []
    for obj in objects:
        # The server matches the field `source` against the component's name.
        match_view = {**obj, "source": obj["source"]["component"]}
        # Events carry no labels: only a selector of absences can match them.
        if fields_match(fields, match_view) and labels_match(selector, {}):
            items.append(obj)
    items.sort(key=lambda o: (o["metadata"]["namespace"], o["metadata"]["name"]))
    return call.list_response("EventList", "v1", items)


# --- version ------------------------------------------------------------------------------------
def _go_version(minor: int) -> str:
    return {30: "go1.22.12", 31: "go1.23.8", 32: "go1.23.10", 33: "go1.24.4", 34: "go1.24.6"}.get(
        minor, "go1.25.1" if minor > 34 else "go1.22.12"
    )


def get_version(call: Call) -> Response:
    version = call.state.spec.kubernetes_version
    major, minor = version.split(".")[:2]
    return JSONResponse(
        {
            "major": major,
            "minor": minor,
            "emulationMajor": major,
            "emulationMinor": minor,
            "minCompatibilityMajor": major,
            "minCompatibilityMinor": str(int(minor) - 1),
            "gitVersion": f"v{version}",
            "gitCommit": _hex(40, "kubernetes", version),
            "gitTreeState": "clean",
            "buildDate": "2025-07-15T18:20:53Z",
            "goVersion": _go_version(int(minor)),
            "compiler": "gc",
            "platform": "linux/amd64",
        }
    )


# --- authentication -----------------------------------------------------------------------------
def _entra_token_ok(token: str) -> bool:
    """An Entra ID access token for the AKS server app. aksim has no identity provider, so it
    reads the claims without checking the signature."""
    parts = token.split(".")
    if len(parts) != 3:
        return False
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, binascii.Error):
        return False
    if not isinstance(claims, dict):
        return False
    audience = claims.get("aud")
    audiences = audience if isinstance(audience, list) else [audience]
    if AKS_SERVER_APP_ID not in audiences:
        return False
    expires = claims.get("exp")
    return not (isinstance(expires, int | float) and expires < time.time())


def authenticated(state: ClusterState, authorization: str | None) -> bool:
    scheme, _, token = (authorization or "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return False
    if hmac.compare_digest(token.encode(), state.token.encode()):
        return True
    return state.spec.entra and _entra_token_ok(token)


# --- dispatch -----------------------------------------------------------------------------------
Handler = Callable[[Call], Response]

_ENDPOINTS: list[tuple[str, str, Handler]] = [
    ("GET", "/version", get_version),
    ("GET", "/api/v1/nodes", list_nodes),
    ("GET", "/api/v1/nodes/{name}", get_node),
    ("GET", "/api/v1/namespaces", list_namespaces),
    ("POST", "/api/v1/namespaces", create_namespace),
    ("GET", "/api/v1/namespaces/{name}", get_namespace),
    ("DELETE", "/api/v1/namespaces/{name}", delete_namespace),
    ("GET", "/apis/apps/v1/daemonsets", list_daemonsets),
    ("GET", "/apis/apps/v1/namespaces/{namespace}/daemonsets", list_daemonsets),
    ("POST", "/apis/apps/v1/namespaces/{namespace}/daemonsets", create_daemonset),
    ("GET", "/apis/apps/v1/namespaces/{namespace}/daemonsets/{name}", get_daemonset),
    ("DELETE", "/apis/apps/v1/namespaces/{namespace}/daemonsets/{name}", delete_daemonset),
    ("GET", "/api/v1/pods", list_pods),
    ("GET", "/api/v1/namespaces/{namespace}/pods", list_pods),
    ("GET", "/api/v1/namespaces/{namespace}/pods/{name}", get_pod),
    ("GET", "/api/v1/namespaces/{namespace}/pods/{name}/log", pod_log),
    ("GET", "/api/v1/events", list_events),
    ("GET", "/api/v1/namespaces/{namespace}/events", list_events),
    ("GET", "/apis/cilium.io/v2/ciliumnodes", list_cilium_nodes),
    ("GET", "/apis/cilium.io/v2/ciliumnodes/{name}", get_cilium_node),
]


def _compile(template: str) -> re.Pattern[str]:
    return re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", template) + "/?$")


_ROUTES = [(method, _compile(path), handler) for method, path, handler in _ENDPOINTS]


def _match(method: str, path: str) -> tuple[Handler, dict[str, str]]:
    known_path = False
    for route_method, pattern, handler in _ROUTES:
        m = pattern.match(path)
        if m is None:
            continue
        if route_method == method or (method == "HEAD" and route_method == "GET"):
            return handler, m.groupdict()
        known_path = True
    if known_path:
        raise ApiError(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
            {},
        )
    raise ApiError.no_such_path()


_HANG = object()  # the cluster's API is down: the caller waits, then times out


def _answer(
    sim: Simulator, key: str, path: str, request: Request, body: bytes
) -> Response | object:
    state = sim.by_key(key)
    # Private clusters' API servers are only reachable inside their VNet, never from here.
    if state is None or state.spec.private:
        return ApiError.no_such_path().response()
    # A stopped cluster has no API server running: connections go nowhere, as when it is down.
    if state.api_down or state.spec.power_state == "Stopped":
        return _HANG
    if not authenticated(state, request.headers.get("authorization")):
        return UNAUTHORIZED.response()
    try:
        handler, params = _match(request.method, path)
        call = Call(sim, state, params, request.query_params, body)
        return handler(call)
    except ApiError as error:
        return error.response()


def routes(sim: Simulator) -> list[BaseRoute]:
    """The per-cluster Kubernetes APIs, to mount under /k8s."""

    async def endpoint(request: Request) -> Response:
        key = request.path_params["key"]
        path = "/" + request.path_params.get("path", "")
        body = await request.body()
        # Handlers take sim.lock and may render large dumps: keep them off the event loop.
        answer = await run_in_threadpool(_answer, sim, key, path, request, body)
        if answer is _HANG:
            await asyncio.sleep(sim.faults.kube_timeout_seconds)
            return TIMEOUT.response()
        assert isinstance(answer, Response)
        return answer

    return [
        Route("/{key}", endpoint, methods=_ALL_METHODS),
        Route("/{key}/{path:path}", endpoint, methods=_ALL_METHODS),
    ]


# --- kubeconfig (what listClusterUserCredential returns) ----------------------------------------
def private_fqdn(spec: Cluster) -> str:
    """The private API server's name: resolvable only inside the cluster's virtual network."""
    digest = hashlib.sha256(spec.key.encode()).hexdigest()[:8]
    return f"{spec.name}-dns-{digest}.privatelink.{spec.location}.azmk8s.io"


def kubeconfig(sim: Simulator, state: ClusterState, endpoint: str, ca_pem: bytes) -> dict[str, Any]:
    spec = state.spec
    user_name = f"clusterUser_{spec.resource_group}_{spec.name}"
    server = (
        f"https://{private_fqdn(spec)}:443"
        if spec.private
        else f"{endpoint.rstrip('/')}/k8s/{spec.key}"
    )
    user: dict[str, Any]
    if spec.entra:
        user = {
            "exec": {
                "apiVersion": "client.authentication.k8s.io/v1beta1",
                "args": [
                    "get-token",
                    "--environment",
                    "AzurePublicCloud",
                    "--server-id",
                    AKS_SERVER_APP_ID,
                    "--client-id",
                    AZURE_CLI_CLIENT_ID,
                    "--tenant-id",
                    sim.fleet.tenant_id,
                    "--login",
                    "devicecode",
                ],
                "command": "kubelogin",
                "env": None,
                "installHint": KUBELOGIN_HINT,
                "interactiveMode": "IfAvailable",
                "provideClusterInfo": False,
            }
        }
    else:
        user = {"token": state.token}
    return {
        "apiVersion": "v1",
        "clusters": [
            {
                "cluster": {
                    "certificate-authority-data": base64.b64encode(ca_pem).decode(),
                    "server": server,
                },
                "name": spec.name,
            }
        ],
        "contexts": [{"context": {"cluster": spec.name, "user": user_name}, "name": spec.name}],
        "current-context": spec.name,
        "kind": "Config",
        "preferences": {},
        "users": [{"name": user_name, "user": user}],
    }
