"""Namespaces (the built-in ones appear the first time anyone asks), and the validation of the
names of created objects."""

from __future__ import annotations

import copy
import re
import time
from collections.abc import Mapping
from typing import Any

from starlette.responses import JSONResponse, Response

from aksim.kube.errors import ApiError
from aksim.kube.metadata import cluster_created, name_suffix, stable_uid, timestamp
from aksim.kube.request import Call, strip_kind
from aksim.kube.selectors import (
    fields_match,
    labels_match,
    parse_field_selector,
    parse_label_selector,
)

BUILTIN_NAMESPACES = ("default", "kube-node-lease", "kube-public", "kube-system")
# The API server refuses to delete these three.
IMMORTAL_NAMESPACES = ("default", "kube-public", "kube-system")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def _namespace_json(
    call: Call, name: str, labels: Mapping[str, str], created: float
) -> dict[str, Any]:
    return {
        "kind": "Namespace",
        "apiVersion": "v1",
        "metadata": {
            "name": name,
            "uid": stable_uid(call.state.spec.key, "namespace", name, str(created)),
            "resourceVersion": call.state.next_resource_version(),
            "creationTimestamp": timestamp(created),
            "labels": {**labels, "kubernetes.io/metadata.name": name},
        },
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"},
    }


def namespace_objects(call: Call) -> dict[str, dict[str, Any]]:
    """Name -> namespace object; the built-in ones appear the first time anyone asks."""
    objects = call.state.objects
    if ("Namespace", "", "default") not in objects:
        created = cluster_created(call.state.spec)
        for name in BUILTIN_NAMESPACES:
            objects[("Namespace", "", name)] = _namespace_json(call, name, {}, created)
    return {key[2]: obj for key, obj in objects.items() if key[0] == "Namespace"}


def require_namespace(call: Call, name: str) -> dict[str, Any]:
    namespace = namespace_objects(call).get(name)
    if namespace is None:
        raise ApiError.not_found("namespaces", name)
    return namespace


NAMESPACE_FIELDS = ("metadata.name", "status.phase")


def list_namespaces(call: Call) -> Response:
    selector = parse_label_selector(call.query.get("labelSelector"))
    fields = parse_field_selector(call.query.get("fieldSelector"), NAMESPACE_FIELDS)
    with call.sim.lock:
        namespaces = sorted(namespace_objects(call).items())
    items = [
        strip_kind(obj)
        for _, obj in namespaces
        if labels_match(selector, obj["metadata"]["labels"]) and fields_match(fields, obj)
    ]
    return call.list_response("NamespaceList", "v1", items)


def get_namespace(call: Call) -> Response:
    with call.sim.lock:
        return JSONResponse(require_namespace(call, call.params["name"]))


def object_name(body: Mapping[str, Any], kind: str, group: str, seed: str) -> str:
    """metadata.name, or generateName plus a suffix; validated as the server validates."""
    metadata = body.get("metadata") or {}
    name = metadata.get("name") or ""
    if not name and metadata.get("generateName"):
        name = metadata["generateName"] + name_suffix(5, seed, str(time.time_ns()))
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
    name = object_name(body, "Namespace", "", call.state.spec.key)
    labels = (body.get("metadata") or {}).get("labels") or {}
    with call.sim.lock:
        if name in namespace_objects(call):
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
        namespace = require_namespace(call, name)
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
        answer["metadata"]["deletionTimestamp"] = timestamp(call.sim.now())
        answer["status"] = {"phase": "Terminating"}
    return JSONResponse(answer)
