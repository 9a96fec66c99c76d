"""The routes of every cluster's API under /k8s/<cluster key>/: which handler answers which
path, and what a private, stopped or unreachable cluster answers instead."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from aksim.kube.cilium_nodes import get_cilium_node, list_cilium_nodes
from aksim.kube.credentials import authenticated
from aksim.kube.daemonsets import create_daemonset, delete_daemonset, get_daemonset, list_daemonsets
from aksim.kube.errors import TIMEOUT, UNAUTHORIZED, ApiError
from aksim.kube.events import list_events
from aksim.kube.namespaces import create_namespace, delete_namespace, get_namespace, list_namespaces
from aksim.kube.nodes import get_node, list_nodes
from aksim.kube.pods import get_pod, list_pods, pod_log
from aksim.kube.request import Call
from aksim.kube.version import get_version
from aksim.state import Simulator

_ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


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
