"""The Azure Resource Manager side of aksim: subscriptions, Resource Graph, managed clusters
(list, get, PUT as a long-running operation), agent pools, maintenance configurations and user
credentials, with ARM's JSON shapes, error bodies, ETags and throttling."""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import yaml
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from aksim import aks, graph, kube, operations, tls
from aksim.state import ClusterState, PutRecord, Simulator
from aksim.throttle import ARM_LIMITS, GRAPH_LIMIT, global_limit

PROVIDER = "providers/Microsoft.ContainerService"
CLUSTER_PATH = (
    "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.ContainerService"
    "/managedClusters/{name}"
)
GRAPH_DEFAULT_TOP = 1000
GRAPH_MAX_TOP = 1000
# An accepted PUT of an existing cluster: recorded `az aks update`s answer 200 with an
# Azure-AsyncOperation header only (201 is what a PUT that creates the cluster answers).
UPDATE_STATUS = 200


_CHALLENGE = (
    'Bearer authorization_uri="https://login.microsoftonline.com/common", error="invalid_token"'
)


def error(
    status: int,
    code: str,
    message: str,
    headers: dict[str, str] | None = None,
    *,
    target: str | None = None,
    details: list[dict[str, Any]] | None = None,
    additional_info: list[dict[str, Any]] | None = None,
) -> JSONResponse:
    """ARM's error body: {"error": {code, message, target?, details?, additionalInfo?}}."""
    body: dict[str, Any] = {"code": code, "message": message}
    if target is not None:
        body["target"] = target
    if details is not None:
        body["details"] = list(details)
    if additional_info is not None:
        body["additionalInfo"] = list(additional_info)
    return JSONResponse({"error": body}, status_code=status, headers=headers)


def _iso(moment: float) -> str:
    stamp = datetime.datetime.fromtimestamp(moment, datetime.UTC)
    return stamp.isoformat(timespec="microseconds").replace("+00:00", "Z")


def _fqdn_hash(state: ClusterState) -> str:
    return hashlib.sha256(state.spec.key.encode()).hexdigest()[:8]


class Arm:
    """The ARM endpoints over one Simulator."""

    def __init__(self, sim: Simulator, certificates: tls.Certificates, base_url: str) -> None:
        self.sim = sim
        self.certificates = certificates
        self.base_url = base_url
        self.buckets = sim.buckets
        self.operations = operations.Operations(self)
        self._json_cache: dict[str, tuple[str, dict[str, Any]]] = {}
        self._graph_cache: dict[tuple[str, tuple[str, ...]], tuple[int, list[dict[str, Any]]]] = {}
        # Per cluster, the rows Resource Graph has or will have indexed: (visible from, ETag, row).
        self._graph_history: dict[str, list[tuple[float, str, dict[str, Any]]]] = {}

    # --- plumbing --------------------------------------------------------------------------
    def guard(self, request: Request, kind: str, subscription: str | None) -> Response | None:
        """Authentication, api-version and throttling: an error response, or None to go on."""
        header = request.headers.get("authorization", "")
        if not header.lower().startswith("bearer ") or not header[7:].strip():
            return error(
                401,
                "AuthenticationFailed",
                "Authentication failed. The 'Authorization' header is missing.",
                {"WWW-Authenticate": _CHALLENGE},
            )
        if not request.query_params.get("api-version"):
            return error(
                400,
                "MissingApiVersionParameter",
                "The api-version query parameter (?api-version=) is required for all requests.",
            )
        if subscription is not None and subscription not in self.sim.subscriptions:
            return error(
                404,
                "SubscriptionNotFound",
                f"The subscription '{subscription}' could not be found.",
            )
        self.sim.requests[kind] += 1
        if not self.sim.faults.throttling:
            return None
        principal = hashlib.sha256(header.encode()).hexdigest()[:16]
        scope = subscription or "tenant"
        verdict = self.buckets.take((scope, principal, kind), ARM_LIMITS[kind])
        overall = verdict
        if verdict.allowed:  # ARM turns the request away before it counts subscription-wide
            overall = self.buckets.take((scope, "*", kind), global_limit(kind))
        request.state.ratelimit = (kind, verdict.remaining, overall.remaining)
        if not overall.allowed:
            self.sim.requests["throttled"] += 1
            return error(
                429,
                "SubscriptionRequestsThrottled",
                f"Number of '{kind[:-1]}' requests for subscription '{subscription}' exceeded "
                f"the limit for all callers. Please try again after '{overall.retry_after}' "
                "seconds after additional tokens are available. Refer to "
                "https://aka.ms/arm-throttling for additional information.",
                {
                    "Retry-After": str(overall.retry_after),
                    f"x-ms-ratelimit-remaining-subscription-global-{kind}": "0",
                },
            )
        if not verdict.allowed:
            self.sim.requests["throttled"] += 1
            return error(
                429,
                "SubscriptionRequestsThrottled",
                f"Number of '{kind[:-1]}' requests for subscription '{subscription}' actor "
                f"'{principal}' exceeded. Please try again after '{verdict.retry_after}' seconds "
                "after additional tokens are available. Refer to "
                "https://aka.ms/arm-throttling for additional information.",
                {
                    "Retry-After": str(verdict.retry_after),
                    f"x-ms-ratelimit-remaining-subscription-{kind}": "0",
                },
            )
        return None

    def reply(
        self, request: Request, body: Any, status: int = 200, headers: dict[str, str] | None = None
    ) -> Response:
        """A JSON answer (no body when `body` is None) with ARM's request and quota headers.
        As recorded from ARM: every answer shows the subscription-wide count left; writes
        also show the caller's own."""
        headers = dict(headers or {})
        ratelimit = getattr(request.state, "ratelimit", None)
        if ratelimit:
            kind, remaining, overall = ratelimit
            headers[f"x-ms-ratelimit-remaining-subscription-global-{kind}"] = str(overall)
            if kind != "reads":
                headers[f"x-ms-ratelimit-remaining-subscription-{kind}"] = str(remaining)
        request_id = request.headers.get("x-ms-client-request-id")
        if request_id:
            headers["x-ms-client-request-id"] = request_id
        headers.setdefault("x-ms-request-id", str(uuid.uuid4()))
        if body is None:
            return Response(status_code=status, headers=headers)
        return JSONResponse(body, status_code=status, headers=headers)

    def next_link(self, request: Request, offset: int) -> str:
        query = dict(request.query_params)
        query["$skiptoken"] = str(offset)
        return f"{self.base_url}{request.url.path}?{urlencode(query)}"

    def page(self, request: Request, items: list[Any], render: Callable[[Any], Any]) -> Response:
        try:
            offset = int(request.query_params.get("$skiptoken", "0"))
        except ValueError:
            return error(400, "InvalidSkipToken", "The $skiptoken is not valid.")
        size = self.sim.page_size
        chunk = items[offset : offset + size]
        body: dict[str, Any] = {"value": [render(item) for item in chunk]}
        if offset + size < len(items):
            body["nextLink"] = self.next_link(request, offset + size)
        return self.reply(request, body)

    # --- shapes ----------------------------------------------------------------------------
    def subscription_json(self, sub: Any) -> dict[str, Any]:
        return {
            "id": f"/subscriptions/{sub.id}",
            "authorizationSource": "RoleBased",
            "managedByTenants": [],
            "subscriptionId": sub.id,
            "tenantId": self.sim.fleet.tenant_id,
            "displayName": sub.name,
            "state": "Enabled",
            "subscriptionPolicies": {
                "locationPlacementId": "Public_2014-09-01",
                "quotaId": "EnterpriseAgreement_2014-09-01",
                "spendingLimit": "Off",
            },
        }

    def pool_profile(self, state: ClusterState, pool: Any) -> dict[str, Any]:
        spec = state.spec
        # A pool's own ETag (readOnly in the API): new whenever the cluster's is.
        pool_etag = uuid.UUID(
            bytes=hashlib.sha256(f"{state.etag}/{pool.name}".encode()).digest()[:16]
        )
        return {
            "name": pool.name,
            "eTag": str(pool_etag),
            "count": pool.count,
            "vmSize": pool.vm_size,
            "osDiskSizeGB": 128,
            "osDiskType": "Managed",
            "kubeletDiskType": "OS",
            "maxPods": 250 if spec.network_plugin_mode == "overlay" else 30,
            "type": "VirtualMachineScaleSets",
            "enableAutoScaling": False,
            "provisioningState": "Updating"
            if spec.provisioning_state == "Updating"
            else "Succeeded",
            "powerState": {"code": spec.power_state},
            "orchestratorVersion": pool.orchestrator_version,
            "currentOrchestratorVersion": pool.orchestrator_version,
            "enableNodePublicIP": False,
            "mode": pool.mode,
            "osType": pool.os_type,
            "osSKU": pool.os_sku,
            "nodeImageVersion": pool.node_image_version,
            "upgradeSettings": {"maxSurge": "10%"},
            "enableFIPS": False,
            "securityProfile": {"enableVTPM": False, "enableSecureBoot": False},
        }

    def cluster_properties(self, state: ClusterState) -> dict[str, Any]:
        spec = state.spec
        overlay = spec.network_plugin_mode == "overlay" or spec.network_plugin == "kubenet"
        network: dict[str, Any] = {
            "networkPlugin": spec.network_plugin,
            "loadBalancerSku": "standard",
            "serviceCidr": "10.0.0.0/16",
            "dnsServiceIP": "10.0.0.10",
            "outboundType": "loadBalancer",
            "serviceCidrs": ["10.0.0.0/16"],
            "ipFamilies": ["IPv4"],
            "loadBalancerProfile": {
                "managedOutboundIPs": {"count": 1},
                "backendPoolType": "nodeIPConfiguration",
            },
        }
        if spec.network_plugin_mode:
            network["networkPluginMode"] = spec.network_plugin_mode
        if spec.network_policy:
            network["networkPolicy"] = spec.network_policy
        if spec.network_dataplane:
            network["networkDataplane"] = spec.network_dataplane
        if overlay:
            network["podCidr"] = "10.244.0.0/16"
            network["podCidrs"] = ["10.244.0.0/16"]
        mode = state.desired_mode  # ARM shows the target mode from the PUT on
        if spec.acns or mode != "None":
            network["advancedNetworking"] = {
                "enabled": spec.acns,
                "observability": {"enabled": spec.acns},
                "security": {"enabled": spec.acns},
                "performance": {"accelerationMode": mode},
            }
        dns_prefix = f"{spec.name}-dns"
        host = f"{dns_prefix}-{_fqdn_hash(state)}"
        properties: dict[str, Any] = {
            "provisioningState": spec.provisioning_state,
            "powerState": {"code": spec.power_state},
            "kubernetesVersion": spec.kubernetes_version,
            "currentKubernetesVersion": spec.kubernetes_version,
            "dnsPrefix": dns_prefix,
            "azurePortalFQDN": f"{host}.portal.hcp.{spec.location}.azmk8s.io",
            "agentPoolProfiles": [self.pool_profile(state, p) for p in spec.pools],
            "servicePrincipalProfile": {"clientId": "msi"},
            "nodeResourceGroup": f"MC_{spec.resource_group}_{spec.name}_{spec.location}",
            "enableRBAC": True,
            "supportPlan": "KubernetesOfficial",
            "networkProfile": network,
            "maxAgentPools": 100,
            "autoUpgradeProfile": {"upgradeChannel": "patch", "nodeOSUpgradeChannel": "NodeImage"},
            "disableLocalAccounts": spec.entra,
            "storageProfile": {
                "diskCSIDriver": {"enabled": True},
                "fileCSIDriver": {"enabled": True},
            },
            "oidcIssuerProfile": {"enabled": False},
        }
        if spec.private:
            properties["privateFQDN"] = kube.private_fqdn(spec)
            properties["apiServerAccessProfile"] = {
                "enablePrivateCluster": True,
                "privateDNSZone": "system",
                "enablePrivateClusterPublicFQDN": False,
            }
        else:
            properties["fqdn"] = f"{host}.hcp.{spec.location}.azmk8s.io"
        if spec.entra:
            properties["aadProfile"] = {
                "managed": True,
                "enableAzureRBAC": True,
                "tenantID": self.sim.fleet.tenant_id,
            }
        return properties

    def cluster_json(self, state: ClusterState) -> dict[str, Any]:
        """The cluster as ARM shows it; cached until its ETag changes (every change does)."""
        cached = self._json_cache.get(state.spec.key)
        if cached is not None and cached[0] == state.etag:
            return cached[1]
        body = self._render_cluster(state)
        self._json_cache[state.spec.key] = (state.etag, body)
        return body

    def _render_cluster(self, state: ClusterState) -> dict[str, Any]:
        spec = state.spec
        return {
            "id": spec.arm_id,
            "location": spec.location,
            "name": spec.name,
            "type": "Microsoft.ContainerService/ManagedClusters",
            "tags": dict(spec.tags),
            "eTag": state.etag,
            "sku": {
                "name": "Base",
                "tier": "Standard" if spec.tags.get("env") == "prod" else "Free",
            },
            "kind": "Base",
            "identity": {
                "type": "SystemAssigned",
                "principalId": str(uuid.UUID(int=spec.seed ^ 0x5A5A)),
                "tenantId": self.sim.fleet.tenant_id,
            },
            "properties": self.cluster_properties(state),
        }

    def graph_row(self, state: ClusterState) -> dict[str, Any]:
        arm = self.cluster_json(state)
        spec = state.spec
        return {
            "id": arm["id"],
            "name": arm["name"],
            "type": "microsoft.containerservice/managedclusters",
            "tenantId": self.sim.fleet.tenant_id,
            "kind": "Base",
            "location": spec.location,
            "resourceGroup": spec.resource_group.lower(),  # Resource Graph lower-cases it
            "subscriptionId": spec.subscription_id,
            "managedBy": "",
            "sku": arm["sku"],
            "plan": None,
            "properties": arm["properties"],
            "tags": arm["tags"],
            "identity": arm["identity"],
            "zones": None,
            "extendedLocation": None,
        }

    # --- subscriptions ---------------------------------------------------------------------
    def list_subscriptions(self, request: Request) -> Response:
        refused = self.guard(request, "reads", None)
        if refused:
            return refused
        return self.page(request, list(self.sim.subscriptions.values()), self.subscription_json)

    def get_subscription(self, request: Request) -> Response:
        sub = request.path_params["sub"]
        refused = self.guard(request, "reads", sub)
        if refused:
            return refused
        return self.reply(request, self.subscription_json(self.sim.subscriptions[sub]))

    # --- Resource Graph --------------------------------------------------------------------
    def resources(self, request: Request, body: dict[str, Any]) -> Response:
        header = request.headers.get("authorization", "")
        refused = self.guard(request, "reads", None)
        if refused and refused.status_code != 429:
            return refused
        user = hashlib.sha256(header.encode()).hexdigest()[:16]
        self.sim.requests["graph"] += 1
        quota = {"remaining": "15", "resets": "00:00:05"}
        if self.sim.faults.throttling:
            verdict = self.buckets.take(("graph", user), GRAPH_LIMIT)
            seconds = int(verdict.resets_after + 0.999)
            quota = {"remaining": str(verdict.remaining), "resets": f"00:00:{seconds:02d}"}
            if not verdict.allowed:
                return error(
                    429,
                    "RateLimiting",
                    "Please provide below info when asking for support: timestamp = "
                    f"{_iso(self.sim.now())}, correlationId = {uuid.uuid4()}.",
                    {
                        "Retry-After": str(verdict.retry_after),
                        "x-ms-user-quota-remaining": "0",
                        "x-ms-user-quota-resets-after": quota["resets"],
                    },
                )
        headers = {
            "x-ms-user-quota-remaining": quota["remaining"],
            "x-ms-user-quota-resets-after": quota["resets"],
        }
        try:
            query = graph.parse(str(body.get("query", "")))
        except graph.QueryError as exc:
            return JSONResponse(exc.body(), status_code=400, headers=headers)
        scope = body.get("subscriptions") or list(self.sim.subscriptions)
        options = body.get("options") or {}
        try:
            top = min(int(options.get("$top", GRAPH_DEFAULT_TOP)), GRAPH_MAX_TOP)
            skip = int(options.get("$skip", 0))
            offset = (
                int(base64.urlsafe_b64decode(options["$skipToken"]).decode())
                if options.get("$skipToken")
                else skip
            )
        except (ValueError, TypeError, UnicodeDecodeError):
            return error(400, "BadRequest", "The $skipToken, $top or $skip option is not valid.")
        rows = self._graph_rows(str(body.get("query", "")), query, scope)
        chunk = rows[offset : offset + top]
        result: dict[str, Any] = {
            "totalRecords": len(rows),
            "count": len(chunk),
            "resultTruncated": "false",
            "data": chunk,
            "facets": [],
        }
        if offset + top < len(rows) and not query.limited:
            result["$skipToken"] = base64.urlsafe_b64encode(str(offset + top).encode()).decode()
        return self.reply(request, result, headers=headers)

    def _graph_rows(self, text: str, query: graph.Query, scope: list[str]) -> list[dict[str, Any]]:
        """The query's result, kept while nothing in scope changes: a client paging through
        10,000 rows asks the same query ten times."""
        seen = [self.graph_seen(s) for s in self._clusters_in(scope)]
        version = hash(tuple((row["id"], etag) for etag, row in seen))
        key = (text, tuple(scope))
        cached = self._graph_cache.get(key)
        if cached is not None and cached[0] == version:
            return cached[1]
        rows = graph.run(query, (row for _, row in seen), scope)
        self._graph_cache = {key: (version, rows)}  # only the latest query is worth keeping
        return rows

    def graph_seen(self, state: ClusterState) -> tuple[str, dict[str, Any]]:
        """(ETag, row) of the cluster as Resource Graph shows it now: it indexes a change
        `graphLagSeconds` (divided by --time-scale) after ARM made it, so a query right after
        a PUT still reads the cluster as it was."""
        history = self._graph_history.setdefault(state.spec.key, [])
        if not history or history[-1][1] != state.etag:
            lag = self.sim.faults.graph_lag_seconds / self.sim.time_scale
            visible = state.etag_changed_at + lag if history else 0.0
            history.append((visible, state.etag, self.graph_row(state)))
        now = self.sim.now()
        while len(history) > 1 and history[1][0] <= now:
            history.pop(0)
        return history[0][1], history[0][2]

    def _clusters_in(self, subscriptions: list[str]) -> list[ClusterState]:
        return self.sim.live_clusters(dict.fromkeys(subscriptions))

    # --- managed clusters ------------------------------------------------------------------
    def list_clusters(self, request: Request) -> Response:
        sub = request.path_params["sub"]
        rg = request.path_params.get("rg")
        refused = self.guard(request, "reads", sub)
        if refused:
            return refused
        states = [
            s
            for s in self._clusters_in([sub])
            if rg is None or s.spec.resource_group.lower() == rg.lower()
        ]
        return self.page(request, states, lambda s: self.versioned(request, s))

    def versioned(self, request: Request, state: ClusterState) -> dict[str, Any]:
        """The cluster as this api-version shows it: the node disruption profile exists only
        in preview api-versions."""
        body = self.cluster_json(state)
        if not request.query_params.get("api-version", "").endswith("-preview"):
            return body
        properties = dict(body["properties"])
        policy = state.spec.node_disruption_policy
        properties["nodeDisruptionProfile"] = {"nodeDisruptionPolicy": policy}
        return {**body, "properties": properties}

    def find(self, request: Request, kind: str) -> ClusterState | Response:
        params = request.path_params
        refused = self.guard(request, kind, params["sub"])
        if refused:
            return refused
        state = self.sim.cluster(params["sub"], params["rg"], params["name"])
        if state is None:
            return error(
                404,
                "ResourceNotFound",
                f"The Resource 'Microsoft.ContainerService/managedClusters/{params['name']}' "
                f"under resource group '{params['rg']}' was not found. For more details please "
                "go to https://aka.ms/ARMResourceNotFoundFix",
            )
        if state.deny_access:
            return self.forbidden(state, kind)
        return state

    def forbidden(self, state: ClusterState, kind: str) -> Response:
        """ARM's answer once the caller's role on the cluster is gone."""
        action = "write" if kind == "writes" else "read"
        scope = state.spec.arm_id
        return error(
            403,
            "AuthorizationFailed",
            "The client 'wavegate' with object id '00000000-0000-0000-0000-000000000000' does "
            f"not have authorization to perform action 'Microsoft.ContainerService/"
            f"managedClusters/{action}' over scope '{scope}' or the scope is invalid. If access "
            "was recently granted, please refresh your credentials.",
        )

    def get_cluster(self, request: Request) -> Response:
        found = self.find(request, "reads")
        if isinstance(found, Response):
            return found
        # The ETag is in the body (`eTag`); recorded GETs of a managed cluster carry no header.
        return self.reply(request, self.versioned(request, found))

    async def put_cluster(self, request: Request) -> Response:
        try:
            body = json.loads(await request.body() or b"{}")
        except json.JSONDecodeError:
            return error(
                400,
                "InvalidRequestContent",
                "The request content was invalid and could not be deserialized.",
            )
        return self._put_cluster(request, body)

    def _put_cluster(self, request: Request, body: Any) -> Response:
        found = self.find(request, "writes")
        request_id = request.headers.get("x-ms-client-request-id", "")
        if isinstance(found, Response):
            if found.status_code == 404:
                return error(
                    400,
                    "OperationNotAllowed",
                    "aksim does not create managed clusters; PUT only updates clusters of the "
                    "fleet file.",
                )
            return found
        state = found
        sim = self.sim
        with sim.lock:
            refusal = self._check_put(request, state, body)
            if isinstance(refusal, Response):
                refusal = _targeted(refusal)
                sim.puts.append(
                    PutRecord(
                        state.spec.arm_id,
                        request_id,
                        sim.now(),
                        _requested_mode(body),
                        None,
                        refusal.status_code,
                        _code(refusal),
                    )
                )
                return refusal
            mode, acns = refusal
            if isinstance(body.get("tags"), dict):
                state.spec.tags = {str(k): str(v) for k, v in body["tags"].items()}
            if acns and not state.spec.acns:
                state.spec.acns = True
            op = sim.start_operation(
                state, mode, request_id, changes_mode=mode != state.spec.acceleration_mode
            )
            sim.puts.append(
                PutRecord(state.spec.arm_id, request_id, op.started, mode, op.id, UPDATE_STATUS)
            )
            headers = self.operations.put_headers(state, op)
            cluster = self.cluster_json(state)
        return self.reply(request, cluster, status=UPDATE_STATUS, headers=headers)

    def _check_put(
        self, request: Request, state: ClusterState, body: Any
    ) -> tuple[str, bool] | Response:
        sim = self.sim
        if not isinstance(body, dict) or not isinstance(body.get("properties"), dict):
            return error(
                400,
                "InvalidRequestContent",
                "The request content must be a managed cluster object with 'properties'.",
            )
        if_match = request.headers.get("if-match")
        if if_match and if_match.strip().strip('"') not in {state.etag, "*"}:
            return error(
                412,
                "PreconditionFailed",
                f"Operation failed with status: 'Precondition Failed'. Details: The ETag "
                f"'{if_match}' does not match the current ETag of managed cluster "
                f"'{state.spec.name}'. Read the cluster again and retry.",
            )
        if not sim.operation_in_progress(state) and sim.background_operation_due():
            sim.start_background(state)  # AKS upgrades the node image by itself
        if sim.operation_in_progress(state):
            op = state.operation
            assert op is not None
            return error(
                409,
                "OperationNotAllowed",
                "Operation is not allowed because there's an in progress update managed cluster "
                f"operation with operation ID '{op.id}' started at {_iso(op.started)}. Please "
                "wait for it to finish before starting a new operation. See "
                "https://aka.ms/aks-pending-operation for more details",
            )
        network = body["properties"].get("networkProfile") or {}
        advanced = network.get("advancedNetworking") or {}
        mode = ((advanced.get("performance") or {}).get("accelerationMode")) or "None"
        acns = bool(advanced.get("enabled", state.spec.acns))
        refusal = aks.mode_change_refusal(
            state.spec,
            mode,
            acns_enabled=acns,
            nodes_with_user_rules=len(sim.monitor(state)),
        )
        if refusal is not None:
            return error(refusal.status, refusal.code, refusal.message)
        return mode, acns

    # --- agent pools, maintenance configurations, credentials -----------------------------
    def child_json(
        self, state: ClusterState, collection: str, name: str, properties: dict[str, Any]
    ) -> dict[str, Any]:
        """A cluster's sub-resource as ARM shows it (agentPools, maintenanceConfigurations)."""
        return {
            "id": f"{state.spec.arm_id}/{collection}/{name}",
            "name": name,
            "type": f"Microsoft.ContainerService/managedClusters/{collection}",
            "properties": properties,
        }

    def agent_pool_json(self, state: ClusterState, pool: Any) -> dict[str, Any]:
        profile = self.pool_profile(state, pool)
        return self.child_json(state, "agentPools", profile.pop("name"), profile)

    def list_agent_pools(self, request: Request) -> Response:
        found = self.find(request, "reads")
        if isinstance(found, Response):
            return found
        return self.reply(
            request, {"value": [self.agent_pool_json(found, p) for p in found.spec.pools]}
        )

    def get_agent_pool(self, request: Request) -> Response:
        found = self.find(request, "reads")
        if isinstance(found, Response):
            return found
        for pool in found.spec.pools:
            if pool.name == request.path_params["pool"]:
                return self.reply(request, self.agent_pool_json(found, pool))
        return error(404, "NotFound", f"Agent pool '{request.path_params['pool']}' was not found.")

    def maintenance_json(
        self, state: ClusterState, name: str, properties: dict[str, Any]
    ) -> dict[str, Any]:
        return self.child_json(state, "maintenanceConfigurations", name, properties)

    def list_maintenance(self, request: Request) -> Response:
        found = self.find(request, "reads")
        if isinstance(found, Response):
            return found
        configs = sorted(found.spec.maintenance.items())
        return self.reply(
            request, {"value": [self.maintenance_json(found, n, p) for n, p in configs]}
        )

    def get_maintenance(self, request: Request) -> Response:
        found = self.find(request, "reads")
        if isinstance(found, Response):
            return found
        name = request.path_params["config"]
        if name not in found.spec.maintenance:
            return error(404, "NotFound", f"Maintenance configuration '{name}' was not found.")
        return self.reply(request, self.maintenance_json(found, name, found.spec.maintenance[name]))

    def list_user_credential(self, request: Request) -> Response:
        found = self.find(request, "writes")  # a POST: ARM counts it as a write
        if isinstance(found, Response):
            return found
        config = kube.kubeconfig(self.sim, found, self.base_url, self.certificates.ca_pem())
        value = base64.b64encode(yaml.safe_dump(config, sort_keys=False).encode()).decode()
        return self.reply(request, {"kubeconfigs": [{"name": "clusterUser", "value": value}]})


# The fields AKS's refusals of a mode change are about (aksim/aks.py), for the error's target.
MODE_TARGET = "properties.networkProfile.advancedNetworking.performance.accelerationMode"
MODE_REFUSALS = {
    "InvalidParameter",
    "K8sVersionNotSupported",
    "UserInstalledIPTablesRulesFound",
    "OperationBlockedByNodeDisruptionPolicy",
    "OperationOutsideNodeDisruptionWindow",
}


def _targeted(response: Response) -> Response:
    """A refusal of the mode change with the field it is about as its `target`."""
    if response.status_code != 400 or _code(response) not in MODE_REFUSALS:
        return response
    body = json.loads(bytes(response.body))["error"]
    return error(400, body["code"], body["message"], target=MODE_TARGET)


def _requested_mode(body: Any) -> str | None:
    try:
        return body["properties"]["networkProfile"]["advancedNetworking"]["performance"][
            "accelerationMode"
        ]
    except (KeyError, TypeError):
        return None


def _code(response: Response) -> str | None:
    try:
        return json.loads(bytes(response.body))["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return None


def routes(sim: Simulator, certificates: tls.Certificates, base_url: str) -> list[Route]:
    arm = Arm(sim, certificates, base_url)

    async def resources(request: Request) -> Response:
        try:
            body = json.loads(await request.body() or b"{}")
        except json.JSONDecodeError:
            return error(
                400,
                "InvalidRequestContent",
                "The request content was invalid and could not be deserialized.",
            )
        if not isinstance(body, dict):
            return error(400, "InvalidRequestContent", "The request content must be a JSON object.")
        return arm.resources(request, body)

    cluster = CLUSTER_PATH
    location_ops = "/subscriptions/{sub}/providers/Microsoft.ContainerService/locations/{location}"
    return [
        Route("/subscriptions", arm.list_subscriptions, methods=["GET"]),
        Route("/subscriptions/{sub}", arm.get_subscription, methods=["GET"]),
        Route("/providers/Microsoft.ResourceGraph/resources", resources, methods=["POST"]),
        Route(
            "/subscriptions/{sub}/providers/Microsoft.ContainerService/managedClusters",
            arm.list_clusters,
            methods=["GET"],
        ),
        Route(
            "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.ContainerService/managedClusters",
            arm.list_clusters,
            methods=["GET"],
        ),
        Route(cluster, arm.get_cluster, methods=["GET"]),
        Route(cluster, arm.put_cluster, methods=["PUT"]),
        Route(cluster + "/agentPools", arm.list_agent_pools, methods=["GET"]),
        Route(cluster + "/agentPools/{pool}", arm.get_agent_pool, methods=["GET"]),
        Route(cluster + "/maintenanceConfigurations", arm.list_maintenance, methods=["GET"]),
        Route(
            cluster + "/maintenanceConfigurations/{config}", arm.get_maintenance, methods=["GET"]
        ),
        Route(cluster + "/listClusterUserCredential", arm.list_user_credential, methods=["POST"]),
        Route(cluster + "/abort", arm.operations.abort, methods=["POST"]),
        Route(location_ops + "/operations/{op}", arm.operations.status, methods=["GET"]),
        Route(location_ops + "/operationresults/{op}", arm.operations.result, methods=["GET"]),
    ]
