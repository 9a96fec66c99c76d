"""CiliumNodes, served only where the dataplane is Cilium (elsewhere the CRD is not installed)."""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse, Response

from aksim.kube.errors import ApiError
from aksim.kube.metadata import stable_uid, timestamp
from aksim.kube.node_views import NodeView
from aksim.kube.nodes import node_created
from aksim.kube.request import Call
from aksim.kube.selectors import (
    fields_match,
    labels_match,
    parse_field_selector,
    parse_label_selector,
)
from aksim.state import USER_RULES_LABEL


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
            "uid": stable_uid(spec.key, "ciliumnode", view.name),
            "resourceVersion": str(call.state.resource_version),
            "generation": 1,
            "creationTimestamp": timestamp(node_created(spec, view.node) + 40),
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
            "bootid": stable_uid(spec.key, "boot", view.name, str(view.ebpf)),
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
    with_rules = set(call.sim.monitor(call.state))
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
            with_rules = set(call.sim.monitor(call.state))
            return JSONResponse(cilium_node_json(call, view, with_rules))
    raise ApiError.not_found("ciliumnodes", name, "cilium.io")
