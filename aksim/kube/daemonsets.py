"""DaemonSets: the ones clients create (admitted and defaulted as AKS does) and AKS's own Cilium
agent, with the status their pods give them."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any

from starlette.responses import JSONResponse, Response

from aksim.kube.daemon_pods import daemon_pods
from aksim.kube.errors import ApiError
from aksim.kube.metadata import cluster_created, stable_uid, timestamp
from aksim.kube.namespaces import namespace_objects, object_name, require_namespace
from aksim.kube.request import Call, strip_kind
from aksim.kube.selectors import (
    fields_match,
    labels_match,
    parse_field_selector,
    parse_label_selector,
    selector_matches,
)


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
    if not selector_matches(selector, labels):
        raise invalid(
            "spec.template.metadata.labels",
            f"Invalid value: {json.dumps(labels)}: `selector` does not match template `labels`",
        )
    pod_spec = template.get("spec") or {}
    # As the API server's DaemonSet validation: its pods restart always and have no deadline
    # (a pod past activeDeadlineSeconds would fail, and the controller start it again).
    restart = pod_spec.get("restartPolicy")
    if restart not in (None, "Always"):
        raise ApiError.invalid(
            "DaemonSet",
            "apps",
            name,
            "spec.template.spec.restartPolicy",
            f'Unsupported value: "{restart}": supported values: "Always"',
            "FieldValueNotSupported",
        )
    if pod_spec.get("activeDeadlineSeconds") is not None:
        raise ApiError.invalid(
            "DaemonSet",
            "apps",
            name,
            "spec.template.spec.activeDeadlineSeconds",
            "Forbidden: activeDeadlineSeconds in DaemonSet is not Supported",
            "FieldValueForbidden",
        )
    containers = pod_spec.get("containers") or []
    if not containers:
        raise invalid("spec.template.spec.containers", "Required value")
    for i, container in enumerate(containers):
        if not container.get("image"):
            raise invalid(f"spec.template.spec.containers[{i}].image", "Required value")


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
    name = object_name(body, "DaemonSet", "apps", namespace)
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
        require_namespace(call, namespace)
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
            creationTimestamp=timestamp(call.sim.now()),
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
            "uid": stable_uid(spec.key, "daemonset", CILIUM_AGENT),
            "resourceVersion": "1",
            "generation": 1,
            "creationTimestamp": timestamp(cluster_created(spec)),
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


def stored_daemonsets(call: Call, namespace: str | None) -> list[dict[str, Any]]:
    key = ("DaemonSet", "kube-system", CILIUM_AGENT)
    if call.state.spec.network_dataplane == "cilium" and key not in call.state.objects:
        namespace_objects(call)  # kube-system first
        call.state.objects[key] = _cilium_agent(call)
    found = [
        obj
        for (kind, ns, _), obj in call.state.objects.items()
        if kind == "DaemonSet" and (namespace is None or ns == namespace)
    ]
    return sorted(found, key=lambda o: (o["metadata"]["namespace"], o["metadata"]["name"]))


def daemonset_json(call: Call, obj: dict[str, Any]) -> dict[str, Any]:
    """The stored DaemonSet with its status as the controller would report it now."""
    pods = [pod for _, pod in daemon_pods(call, obj)]
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
        stored = stored_daemonsets(call, call.params.get("namespace"))
    items = [
        strip_kind(daemonset_json(call, obj))
        for obj in stored
        if labels_match(selector, obj["metadata"].get("labels") or {}) and fields_match(fields, obj)
    ]
    return call.list_response("DaemonSetList", "apps/v1", items)


def _find_daemonset(call: Call) -> dict[str, Any]:
    name = call.params["name"]
    stored_daemonsets(call, call.params["namespace"])  # the built-in ones appear
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
            "deletionTimestamp": timestamp(call.sim.now()),
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
