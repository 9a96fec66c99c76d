"""aksim's admin API under /_aksim/: the truth about clusters, the PUTs it accepted, faults,
changes to the simulated world, and reset. Documented in aksim/README.md; no auth (local only)."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse as _StarletteJSON
from starlette.responses import Response
from starlette.routing import Route

from aksim import aks
from aksim.fleetfile import RULE_KINDS, WARNING_REASONS
from aksim.iptables import render_node
from aksim.state import ClusterState, PutRecord, Simulator


class JSONResponse(_StarletteJSON):
    """JSON in ASCII: a rule's comment may hold a byte that is no UTF-8 (carried as a surrogate),
    which stays an escape (\\udcff) instead of failing the answer."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, separators=(",", ":")).encode("ascii")


def _bad(message: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def put_json(record: PutRecord) -> dict[str, Any]:
    return {
        "clusterId": record.cluster_id,
        "clientRequestId": record.request_id,
        "at": record.at,
        "mode": record.mode,
        "operationId": record.operation_id,
        "status": record.status,
        "errorCode": record.error_code,
    }


def truth(sim: Simulator, state: ClusterState) -> dict[str, Any]:
    """What aksim knows about a cluster, for tests and benchmarks to compare Wavegate against."""
    spec = state.spec
    refusal = aks.mode_change_refusal(
        spec,
        "BpfVeth",
        acns_enabled=spec.acns,
        nodes_with_user_rules=len(sim.monitor(state)),
    )
    nodes = {n.name: n for n in spec.nodes()}
    user_rules = []
    for name in sim.nodes_with_user_rules(state):
        dump = render_node(spec, nodes[name])
        user_rules.append(
            {
                "node": name,
                "kinds": spec.user_rules[name],
                "rules": [
                    {
                        "kind": r.kind,
                        "family": r.family,
                        "table": r.table,
                        "chain": r.chain,
                        "rule": r.rule,
                    }
                    for r in dump.user_rules
                ],
            }
        )
    op = state.operation
    return {
        "key": spec.key,
        "id": spec.arm_id,
        "accelerationMode": spec.acceleration_mode,
        "provisioningState": spec.provisioning_state,
        "eTag": state.etag,
        "kubernetesVersion": spec.kubernetes_version,
        "tags": spec.tags,
        "private": spec.private,
        "entra": spec.entra,
        "bpfVethAccepted": refusal is None and spec.acceleration_mode != "BpfVeth",
        # What azure-iptables-monitor saw at its last check (AKS refuses on this, not on the
        # truth), and the mode ARM shows (the last PUT's, also while it runs or after it failed).
        "monitorSeesUserRulesOn": sorted(state.monitor_seen),
        "armAccelerationMode": state.desired_mode,
        "refusal": None if refusal is None else {"code": refusal.code, "message": refusal.message},
        "nodesWithUserRules": user_rules,
        "notReady": sorted(state.not_ready),
        "unschedulable": sorted(state.unschedulable),
        "apiDown": state.api_down,
        "denyPrivileged": state.deny_privileged,
        "denyAccess": state.deny_access,
        "operation": None
        if op is None
        else {
            "id": op.id,
            "mode": op.mode,
            "status": op.status(sim.now(), sim.faults.stuck_operations),
            "clientRequestId": op.request_id,
        },
    }


def apply_faults(sim: Simulator, body: dict[str, Any]) -> None:
    """Global faults, and per-cluster ones under "clusters": {key: {apiDown, notReady, …}}."""
    if not isinstance(body, dict):
        raise ValueError("faults must be a JSON object")
    with sim.lock:
        sim.faults.update(body)
        if "lroFailureRate" in body:
            sim.failure_debt = 0.0  # the count of failing operations starts afresh
        for key, change in (body.get("clusters") or {}).items():
            state = sim.clusters.get(key)
            if state is None:
                raise ValueError(f"no cluster {key!r}")
            apply_change(sim, state, change)


def apply_change(sim: Simulator, state: ClusterState, change: dict[str, Any]) -> None:
    """Change the simulated world, as if someone had done it in Azure or on the nodes."""
    known = {
        "kubernetesVersion",
        "tags",
        "delete",
        "userRules",
        "notReady",
        "unschedulable",
        "apiDown",
        "denyPrivileged",
        "denyAccess",
        "warnings",
        "events",
        "powerState",
        "nodeDisruptionPolicy",
        "acns",
        "ebpfLabel",
        "failOperations",
        "maintenance",
    }
    unknown = set(change) - known
    if unknown:
        raise ValueError(f"unknown change(s): {', '.join(sorted(unknown))}")
    spec = state.spec
    node_names = {n.name for n in spec.nodes()}

    def nodes(field: str) -> set[str]:
        names = set(change[field])
        missing = names - node_names
        if missing:
            raise ValueError(f"{field}: no node(s) {', '.join(sorted(missing))} in {spec.key}")
        return names

    if "userRules" in change:
        for name, kinds in change["userRules"].items():
            if name not in node_names:
                raise ValueError(f"userRules: no node {name!r} in {spec.key}")
            bad = set(kinds) - set(RULE_KINDS)
            if bad:
                raise ValueError(
                    f"userRules: unknown kind(s) {sorted(bad)}; known: {list(RULE_KINDS)}"
                )
    if "warnings" in change:
        for name, reasons in change["warnings"].items():
            if name not in node_names or set(reasons) - set(WARNING_REASONS):
                raise ValueError(f"warnings: bad node {name!r} or reasons {reasons}")
    if "events" in change:
        for event in change["events"]:
            if not isinstance(event, dict) or event.get("node") not in node_names:
                raise ValueError(f"events: give {{node, reason, message}} of a node: {event!r}")
            if event.get("type", "Warning") not in ("Normal", "Warning"):
                raise ValueError(f"events: type is Normal or Warning, not {event['type']!r}")
    changed_etag = False
    if "kubernetesVersion" in change:
        spec.kubernetes_version = str(change["kubernetesVersion"])
        for pool in spec.pools:
            pool.orchestrator_version = spec.kubernetes_version
        changed_etag = True
    if "tags" in change:
        spec.tags = {str(k): str(v) for k, v in change["tags"].items()}
        changed_etag = True
    if "powerState" in change:
        spec.power_state = str(change["powerState"])
        changed_etag = True
    if "nodeDisruptionPolicy" in change:
        spec.node_disruption_policy = str(change["nodeDisruptionPolicy"])
    if "maintenance" in change:
        # A sub-resource of the cluster: replacing its configurations leaves the ETag alone.
        configs = change["maintenance"]
        if not isinstance(configs, dict) or not all(isinstance(p, dict) for p in configs.values()):
            raise ValueError("maintenance: give {configuration name: its ARM properties}")
        spec.maintenance = {str(name): dict(props) for name, props in configs.items()}
    if "acns" in change:
        spec.acns = bool(change["acns"])
        changed_etag = True
    if "userRules" in change:
        sim.monitor(state)  # its checks until now saw the rules as they were
        for name, kinds in change["userRules"].items():
            if kinds:
                spec.user_rules[name] = sorted(kinds)
            else:
                spec.user_rules.pop(name, None)
    if "warnings" in change:
        for name, reasons in change["warnings"].items():
            spec.warnings[name] = list(reasons)
            if state.enabled_at is not None:
                for reason in reasons:
                    sim.emit_warning(state, name, reason, sim.now())
    if "events" in change:
        for event in change["events"]:
            sim.record_event(
                state,
                event["node"],
                str(event.get("reason") or "Unknown"),
                str(event.get("message") or ""),
                kind=event.get("type", "Warning"),
                component=str(event.get("component") or "kubelet"),
                at=sim.now(),
            )
    if "notReady" in change:
        state.not_ready = nodes("notReady")
    if "unschedulable" in change:
        state.unschedulable = nodes("unschedulable")
    if "apiDown" in change:
        state.api_down = bool(change["apiDown"])
    if "denyPrivileged" in change:
        state.deny_privileged = bool(change["denyPrivileged"])
    if "denyAccess" in change:
        state.deny_access = bool(change["denyAccess"])
    if "ebpfLabel" in change:
        state.ebpf_label = bool(change["ebpfLabel"])
    if "failOperations" in change:
        state.fail_operations = int(change["failOperations"])
    if change.get("delete"):
        state.deleted = True
    if changed_etag:
        sim.touch(state)


def routes(sim: Simulator) -> list[Route]:
    async def read_json(request: Request) -> Any:
        raw = await request.body()
        return json.loads(raw) if raw else {}

    def puts(request: Request) -> Response:
        records = list(sim.puts)
        return JSONResponse(
            {
                "accepted": [put_json(r) for r in records if r.operation_id],
                "refused": [put_json(r) for r in records if not r.operation_id],
            }
        )

    def clusters(request: Request) -> Response:
        return JSONResponse(
            {
                "clusters": [
                    {"key": s.spec.key, "id": s.spec.arm_id, "deleted": s.deleted}
                    for s in sim.clusters.values()
                ]
            }
        )

    def cluster(request: Request) -> Response:
        state = sim.clusters.get(request.path_params["key"])
        if state is None:
            return _bad(f"no cluster {request.path_params['key']!r}", 404)
        sim.settle(state)
        body = truth(sim, state)
        body["deleted"] = state.deleted
        return JSONResponse(body)

    async def change(request: Request) -> Response:
        state = sim.clusters.get(request.path_params["key"])
        if state is None:
            return _bad(f"no cluster {request.path_params['key']!r}", 404)
        try:
            body = await read_json(request)
            if not isinstance(body, dict):
                raise ValueError("the change must be a JSON object")
            with sim.lock:
                apply_change(sim, state, body)
        except (ValueError, TypeError, AttributeError) as exc:
            return _bad(str(exc))
        body = truth(sim, state)
        body["deleted"] = state.deleted
        return JSONResponse(body)

    async def faults(request: Request) -> Response:
        if request.method == "PUT":
            try:
                apply_faults(sim, await read_json(request))
            except (ValueError, TypeError, AttributeError) as exc:
                return _bad(str(exc))
        return JSONResponse(sim.faults.to_dict())

    def reset(request: Request) -> Response:
        sim.reset()
        return JSONResponse({"reset": True, "clusters": len(sim.clusters)})

    def stats(request: Request) -> Response:
        return JSONResponse(dict(sim.requests))

    def health(request: Request) -> Response:
        return JSONResponse({"ok": True, "clusters": len(sim.clusters)})

    return [
        Route("/healthz", health, methods=["GET"]),
        Route("/puts", puts, methods=["GET"]),
        Route("/stats", stats, methods=["GET"]),
        Route("/clusters", clusters, methods=["GET"]),
        Route("/clusters/{key}", cluster, methods=["GET"]),
        Route("/clusters/{key}/change", change, methods=["POST"]),
        Route("/faults", faults, methods=["GET", "PUT"]),
        Route("/reset", reset, methods=["POST"]),
    ]
