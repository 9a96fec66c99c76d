"""Pods (each DaemonSet's) and their logs: a scan pod's log is its node's iptables dump."""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

from starlette.responses import JSONResponse, Response

from aksim.fleetfile import Cluster, Node
from aksim.iptables import render_node
from aksim.kube.daemon_pods import DaemonPod, daemon_pods
from aksim.kube.daemonsets import stored_daemonsets
from aksim.kube.errors import ApiError
from aksim.kube.request import Call, strip_kind
from aksim.kube.selectors import (
    fields_match,
    labels_match,
    parse_field_selector,
    parse_label_selector,
)

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
        stored = stored_daemonsets(call, namespace)
    pods = [p for ds in stored for p in daemon_pods(call, ds)]
    return sorted(pods, key=lambda p: (p[1].namespace, p[1].name))


def list_pods(call: Call) -> Response:
    selector = parse_label_selector(call.query.get("labelSelector"))
    fields = parse_field_selector(call.query.get("fieldSelector"), POD_FIELDS)
    items = [
        strip_kind(obj)
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


def scan_output(spec: Cluster, node: Node) -> str:
    """What a Wavegate scan pod prints (DESIGN.md §5): each family's dump framed, then done."""
    dump = render_node(spec, node)
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


def _trim_log(text: str, query: Mapping[str, str], started: float) -> bytes:
    """The log as the kubelet serves it: bytes as the container wrote them (a byte that is no
    UTF-8 included: `text` carries it as a surrogate), cut to limitBytes exactly."""
    data = text.encode("utf-8", "surrogateescape")
    if query.get("timestamps") in ("true", "1"):
        stamp = datetime.datetime.fromtimestamp(started, datetime.UTC).strftime(
            "%Y-%m-%dT%H:%M:%S.%fZ"
        )
        data = b"".join(stamp.encode() + b" " + line for line in data.splitlines(keepends=True))
    tail = query.get("tailLines")
    if tail is not None and tail.lstrip("-").isdigit() and int(tail) >= 0:
        lines = data.splitlines(keepends=True)
        data = b"".join(lines[len(lines) - int(tail) :]) if int(tail) else b""
    limit = query.get("limitBytes")
    if limit is not None and limit.isdigit() and int(limit) > 0:
        data = data[: int(limit)]
    return data


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
    return Response(_trim_log(text, call.query, pod.started), media_type="text/plain")
