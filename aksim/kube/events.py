"""Events: the warnings AKS raises on nodes once something adds rules after enablement."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from aksim.kube.metadata import timestamp
from aksim.kube.node_views import node_uid
from aksim.kube.request import Call
from aksim.kube.selectors import (
    fields_match,
    labels_match,
    parse_field_selector,
    parse_label_selector,
)
from aksim.state import KubeEvent

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
            "creationTimestamp": timestamp(event.first),
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
        "firstTimestamp": timestamp(event.first),
        "lastTimestamp": timestamp(event.last),
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
        call.sim.monitor(call.state)
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
