"""The one gateway to Azure. Nothing else in Wavegate imports an Azure SDK.

It builds the SDK clients from settings (endpoint, CA bundle, credential), offers the few typed
operations Wavegate needs, and turns Azure's exceptions into Wavegate's own (`AzureError` and
its kinds), each with a message an operator can act on. Production and aksim differ only in
settings: AZURE_ARM_ENDPOINT, AZURE_CA_BUNDLE, AZURE_CREDENTIAL, AZURE_STATIC_TOKEN.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import random
import re
import ssl
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, TypeVar
from urllib.parse import quote

import aiohttp
import requests
import yaml
from azure.core import MatchConditions
from azure.core.credentials import AccessToken, TokenCredential
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceModifiedError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
    map_error,
)
from azure.core.pipeline.policies import SansIOHTTPPolicy
from azure.core.pipeline.transport import AioHttpTransport, RequestsTransport
from azure.core.rest import HttpRequest
from azure.mgmt.containerservice import ContainerServiceClient
from azure.mgmt.containerservice import models as cs_models
from azure.mgmt.containerservice.aio import ContainerServiceClient as AioClient
from azure.mgmt.core.exceptions import ARMErrorFormat
from azure.mgmt.core.polling.arm_polling import ARMPolling
from azure.mgmt.resource.subscriptions import SubscriptionClient
from azure.mgmt.resourcegraph import ResourceGraphClient
from azure.mgmt.resourcegraph.models import QueryRequest, QueryRequestOptions
from django.conf import settings
from requests.adapters import HTTPAdapter

from config import metrics

# The AKS server application: Entra ID clusters accept tokens for this audience.
AKS_SERVER_SCOPE = "6dae42f8-4368-4678-94ff-3960e28e3630/.default"
POOL_SIZE = 64  # connections kept open to ARM, shared by every client of one gateway
GRAPH_PAGE = 1000  # rows per Resource Graph page (its maximum)
GRAPH_SUBSCRIPTIONS_PER_QUERY = 1000
# The node disruption profile exists only in preview api-versions (not in the SDK's models):
# Wavegate reads it with this one through the SDK's generic request path.
PREVIEW_API_VERSION = "2026-02-02-preview"
# Only the fields Wavegate reads: Resource Graph answers grow with every projected value, and
# the SDK walks every value of its untyped rows (whole `properties` cost seconds per 10,000).
CLUSTERS_QUERY = (
    "resources"
    " | where type =~ 'microsoft.containerservice/managedclusters'"
    " | project id, name, subscriptionId, location, tags,"
    " kubernetesVersion = properties.kubernetesVersion,"
    " currentKubernetesVersion = properties.currentKubernetesVersion,"
    " provisioningState = properties.provisioningState,"
    " powerState = properties.powerState.code,"
    " networkPlugin = properties.networkProfile.networkPlugin,"
    " networkPluginMode = properties.networkProfile.networkPluginMode,"
    " networkDataplane = properties.networkProfile.networkDataplane,"
    " networkPolicy = properties.networkProfile.networkPolicy,"
    " acnsEnabled = properties.networkProfile.advancedNetworking.enabled,"
    " accelerationMode = properties.networkProfile.advancedNetworking.performance.accelerationMode,"
    " privateCluster = properties.apiServerAccessProfile.enablePrivateCluster,"
    " aadManaged = properties.aadProfile.managed,"
    " agentPoolProfiles = properties.agentPoolProfiles"
    " | order by id asc"
)


# --- Wavegate's own errors ------------------------------------------------------------------
class AzureError(Exception):
    """Azure said no, or could not be reached. `str()` is a sentence for the operator, `code`
    Azure's error code (or the kind of error when Azure sent none). `retryable`: the same call
    may succeed later (throttling, an outage, another operation running); the others cannot heal
    by waiting (the resource is gone, access was removed, the request is invalid)."""

    retryable = False

    def __init__(self, message: str, code: str = "") -> None:
        super().__init__(message)
        self.code = code or type(self).__name__


class Throttled(AzureError):
    retryable = True


class Unavailable(AzureError):
    retryable = True


class Conflict(AzureError):
    """Another operation runs on the resource."""

    retryable = True


class PreconditionFailed(AzureError):
    """The resource changed since it was read (stale ETag)."""


class NotFound(AzureError):
    pass


class NotAuthorised(AzureError):
    pass


class Refused(AzureError):
    """AKS refused the request and said why (`code`, and its message as the text)."""


def _text(value: Any) -> str:
    """An SDK value as plain text: its enums are str subclasses whose str() is 'Enum.MEMBER'."""
    if value is None:
        return ""
    return str(value.value) if isinstance(value, Enum) else str(value)


def _error_code_and_message(exc: HttpResponseError) -> tuple[str, str]:
    error = exc.error
    code = str(getattr(error, "code", "") or "")
    message = str(getattr(error, "message", "") or exc.message or exc)
    return code, message


@contextmanager
def translated(what: str) -> Iterator[None]:
    """Run an Azure call and raise Wavegate's error kind, saying what was being done."""
    try:
        yield
    except ResourceModifiedError as exc:
        raise PreconditionFailed(
            f"{what}: the resource changed since Wavegate read it (ETag mismatch); read it "
            "again and retry.",
            _error_code_and_message(exc)[0],
        ) from exc
    except ResourceNotFoundError as exc:
        code, message = _error_code_and_message(exc)
        raise NotFound(f"{what}: not found in Azure ({message})", code) from exc
    except ClientAuthenticationError as exc:
        code, message = _error_code_and_message(exc)
        if exc.status_code is None:
            # No answer from ARM: the credential could not get a token (its authority
            # unreachable or throttling); that may pass.
            raise Unavailable(
                f"{what}: Wavegate could not get a token for Azure ({exc.message}).",
                "CredentialUnavailable",
            ) from exc
        raise NotAuthorised(
            f"{what}: Azure did not accept Wavegate's credential ({message}). Check the "
            "identity Wavegate runs as and its role assignments.",
            code,
        ) from exc
    except HttpResponseError as exc:
        code, message = _error_code_and_message(exc)
        status = exc.status_code or 0
        if status == 429:
            raise Throttled(
                f"{what}: Azure is throttling requests ({message}); retry later.", code
            ) from exc
        if status == 409:
            raise Conflict(f"{what}: {message}", code) from exc
        if status == 412:
            raise PreconditionFailed(f"{what}: {message}", code) from exc
        if status in (401, 403):
            raise NotAuthorised(
                f"{what}: Azure refused access ({message}). Check the role assignments of the "
                "identity Wavegate runs as.",
                code,
            ) from exc
        if status >= 500 or status == 408:
            raise Unavailable(
                f"{what}: Azure answered {status} ({message}); retry later.", code
            ) from exc
        raise Refused(f"{what}: {message}", code) from exc
    except (ServiceRequestError, ServiceResponseError) as exc:
        raise Unavailable(f"{what}: could not reach Azure ({exc}).") from exc


# --- credentials ----------------------------------------------------------------------------
class StaticTokenCredential:
    """AZURE_CREDENTIAL=static: one fixed ARM token (aksim accepts any), and for the AKS server
    scope an unsigned token with the right audience, which aksim's Entra ID clusters accept."""

    def __init__(self, token: str) -> None:
        if not token:
            raise ValueError("AZURE_CREDENTIAL=static needs AZURE_STATIC_TOKEN")
        self.token = token

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        expires = int(time.time()) + 3600
        if any(s.startswith(AKS_SERVER_SCOPE.split("/")[0]) for s in scopes):
            return AccessToken(_unsigned_jwt(AKS_SERVER_SCOPE.split("/")[0], expires), expires)
        return AccessToken(self.token, expires)


def _unsigned_jwt(audience: str, expires: int) -> str:
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part({'aud': audience, 'exp': expires})}.x"


def make_credential() -> TokenCredential:
    if settings.AZURE_CREDENTIAL == "static":
        return StaticTokenCredential(settings.AZURE_STATIC_TOKEN)
    if settings.AZURE_CREDENTIAL == "default":
        # Imported when used, as an optional dependency: azure-identity (with MSAL) costs a
        # process some 13 MB and 70 ms, and the demo, tests and benchmarks (static) never use it.
        from azure.identity import DefaultAzureCredential

        return DefaultAzureCredential()
    raise ValueError(
        f"AZURE_CREDENTIAL must be 'default' or 'static', not {settings.AZURE_CREDENTIAL!r}"
    )


# --- what Wavegate reads --------------------------------------------------------------------
@dataclass(frozen=True)
class SubscriptionInfo:
    subscription_id: str
    name: str
    tenant_id: str
    state: str


@dataclass(frozen=True)
class PoolInfo:
    name: str
    mode: str
    os_type: str
    os_sku: str
    node_count: int
    vm_size: str
    node_image_version: str
    orchestrator_version: str


@dataclass(frozen=True)
class ClusterInfo:
    arm_id: str  # lower-cased
    subscription_id: str
    resource_group: str
    name: str
    location: str
    kubernetes_version: str
    network_plugin: str
    network_plugin_mode: str
    network_dataplane: str
    network_policy: str
    acns_enabled: bool
    acceleration_mode: str
    provisioning_state: str
    power_state: str
    tags: dict[str, str]
    private_api_server: bool
    entra_id: bool
    pools: tuple[PoolInfo, ...] = field(default=())

    @classmethod
    def from_graph_row(cls, row: dict[str, Any]) -> ClusterInfo:
        """From a row of CLUSTERS_QUERY (projected, so missing paths come back null)."""
        arm_id = str(row["id"])
        match = re.search(r"/resourcegroups/([^/]+)/", arm_id, re.IGNORECASE)

        def text(key: str, default: str = "") -> str:
            value = row.get(key)
            return default if value is None else str(value)

        return cls(
            arm_id=arm_id.lower(),
            subscription_id=text("subscriptionId"),
            # The id keeps the group's case; Resource Graph's resourceGroup column does not.
            resource_group=match.group(1) if match else "",
            name=text("name"),
            location=text("location"),
            kubernetes_version=text("currentKubernetesVersion") or text("kubernetesVersion"),
            network_plugin=text("networkPlugin"),
            network_plugin_mode=text("networkPluginMode"),
            network_dataplane=text("networkDataplane"),
            network_policy=text("networkPolicy"),
            acns_enabled=row.get("acnsEnabled") is True,
            acceleration_mode=text("accelerationMode", "None") or "None",
            provisioning_state=text("provisioningState"),
            power_state=text("powerState"),
            tags={str(k): str(v) for k, v in (row.get("tags") or {}).items()},
            private_api_server=row.get("privateCluster") is True,
            entra_id=row.get("aadManaged") is True,
            pools=tuple(
                PoolInfo(
                    name=str(p.get("name") or ""),
                    mode=str(p.get("mode") or ""),
                    os_type=str(p.get("osType") or ""),
                    os_sku=str(p.get("osSKU") or ""),
                    node_count=int(p.get("count") or 0),
                    vm_size=str(p.get("vmSize") or ""),
                    node_image_version=str(p.get("nodeImageVersion") or ""),
                    orchestrator_version=str(
                        p.get("currentOrchestratorVersion") or p.get("orchestratorVersion") or ""
                    ),
                )
                for p in row.get("agentPoolProfiles") or []
                if isinstance(p, dict)
            ),
        )


def _governing_window(configs: Iterable[Any]) -> dict[str, Any]:
    by_name = {_text(c.name): c for c in configs}
    for preferred in ("aksManagedNodeOSUpgradeSchedule", "default"):
        config = by_name.get(preferred)
        if config is not None:
            return {"name": preferred, "properties": config.as_dict().get("properties", {})}
    return {}


@dataclass(frozen=True)
class NodeDisruption:
    """A cluster's node disruption policy as read from Azure (`Allow` when Azure shows none,
    its documented default), or "" with why it could not be read."""

    policy: str
    error: str = ""


_T = TypeVar("_T")
_ERROR_MAP = {401: ClientAuthenticationError, 404: ResourceNotFoundError}


def _preview_path(subscription_id: str, resource_group: str, name: str) -> str:
    return (
        f"/subscriptions/{quote(subscription_id)}/resourceGroups/{quote(resource_group)}"
        f"/providers/Microsoft.ContainerService/managedClusters/{quote(name)}"
        f"?api-version={PREVIEW_API_VERSION}"
    )


def _node_disruption_policy(response: Any, name: str) -> str:
    """The policy in a preview GET's answer; raises Azure's error as the typed calls do."""
    if response.status_code >= 400:
        map_error(status_code=response.status_code, response=response, error_map=_ERROR_MAP)
        raise HttpResponseError(response=response, error_format=ARMErrorFormat)
    try:
        body = response.json()
    except ValueError as exc:
        raise Refused(f"Reading cluster {name}: Azure's answer is not JSON.") from exc
    properties = body.get("properties") if isinstance(body, dict) else None
    if not isinstance(properties, dict):
        raise Refused(f"Reading cluster {name}: Azure's answer has no properties.")
    profile = properties.get("nodeDisruptionProfile")
    policy = profile.get("nodeDisruptionPolicy") if isinstance(profile, dict) else None
    return str(policy or "Allow")[:32]


class _AsyncStaticTokenCredential:
    def __init__(self, sync: StaticTokenCredential) -> None:
        self.sync = sync

    async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return self.sync.get_token(*scopes, **kwargs)

    async def close(self) -> None:
        pass


def _async_credential() -> Any:
    if settings.AZURE_CREDENTIAL == "static":
        return _AsyncStaticTokenCredential(StaticTokenCredential(settings.AZURE_STATIC_TOKEN))
    # Imported when used, as an optional dependency (see make_credential).
    from azure.identity.aio import DefaultAzureCredential

    return DefaultAzureCredential()


class _CallCounter(SansIOHTTPPolicy):
    """Counts every request sent (retries included) by kind: sync records, bench, /metrics."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        # ARM reads per subscription: ARM's quotas are per subscription, so the bench can
        # compute the least time these calls need under them.
        self.reads_by_subscription: Counter[str] = Counter()
        self.lock = threading.Lock()

    def _kind(self, http: Any) -> str:
        graph = http.url.split("?")[0].endswith("/providers/Microsoft.ResourceGraph/resources")
        return "graph" if graph else "reads" if http.method == "GET" else "writes"

    def on_request(self, request: Any) -> None:
        metrics.azure_sending(request.context)

    def on_exception(self, request: Any) -> None:
        metrics.azure_answered(self._kind(request.http_request), "error", request.context)

    def on_response(self, request: Any, response: Any) -> None:
        kind = self._kind(request.http_request)
        metrics.azure_answered(kind, response.http_response.status_code, request.context)
        match = re.match(r"^https?://[^/]+/subscriptions/([^/?]+)", request.http_request.url)
        with self.lock:
            self.counts[kind] += 1
            # Answered reads only: a throttled attempt is not a call the quota has to serve.
            if kind == "reads" and response.http_response.status_code != 429:
                self.reads_by_subscription[match.group(1) if match else "tenant"] += 1
            if response.http_response.status_code == 429:
                self.counts["throttled"] += 1
            elif response.http_response.status_code >= 500:
                self.counts["server_errors"] += 1


class Azure:
    """Wavegate's typed operations on Azure, over the real SDK clients."""

    def __init__(self, credential: TokenCredential | None = None) -> None:
        self.credential = credential or make_credential()
        self.endpoint = settings.AZURE_ARM_ENDPOINT.rstrip("/")
        self.calls = _CallCounter()
        self._clients: dict[str, ContainerServiceClient] = {}
        self._lock = threading.Lock()
        # One connection pool for every client, large enough for a sync's parallel reads:
        # the default pool of 10 drops connections, and each new one costs a TLS handshake.
        self._session = requests.Session()
        # Without proxy variables, stop requests re-reading the environment on every call
        # (a measurable share of a 10,000-call sync); with them, keep its proxy handling.
        self._session.trust_env = any(k.lower().endswith("_proxy") for k in os.environ)
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=POOL_SIZE)
        self._session.mount("https://", adapter)
        self._session.mount("http://", adapter)

    def _common(self) -> dict[str, Any]:
        return {
            "credential": self.credential,
            "base_url": self.endpoint,
            "connection_verify": settings.AZURE_CA_BUNDLE or True,
            "credential_scopes": [f"{self.endpoint}/.default"],
            "per_retry_policies": [self.calls],
            "transport": RequestsTransport(
                session=self._session,
                session_owner=False,
                connection_verify=settings.AZURE_CA_BUNDLE or True,
            ),
        }

    def containers(self, subscription_id: str) -> ContainerServiceClient:
        with self._lock:
            client = self._clients.get(subscription_id)
            if client is None:
                client = ContainerServiceClient(subscription_id=subscription_id, **self._common())
                self._clients[subscription_id] = client
            return client

    def close(self) -> None:
        for client in self._clients.values():
            client.close()
        self._clients.clear()
        self._session.close()

    # --- reads ---------------------------------------------------------------------------
    def list_subscriptions(self) -> list[SubscriptionInfo]:
        with translated("Listing subscriptions"):
            client = SubscriptionClient(**self._common())
            return [
                SubscriptionInfo(
                    subscription_id=_text(s.subscription_id),
                    name=_text(s.display_name or s.subscription_id),
                    tenant_id=_text(s.tenant_id),
                    state=_text(s.state),
                )
                for s in client.subscriptions.list()
            ]

    def query_clusters(self, subscription_ids: list[str]) -> Iterator[ClusterInfo]:
        """Every managed cluster in these subscriptions, from Resource Graph, page by page."""
        graph = ResourceGraphClient(**self._common())
        for start in range(0, len(subscription_ids), GRAPH_SUBSCRIPTIONS_PER_QUERY):
            batch = subscription_ids[start : start + GRAPH_SUBSCRIPTIONS_PER_QUERY]
            token = None
            while True:
                with translated("Querying Resource Graph for clusters"):
                    answer = graph.resources(
                        QueryRequest(
                            subscriptions=batch,
                            query=CLUSTERS_QUERY,
                            options=QueryRequestOptions(skip_token=token, top=GRAPH_PAGE),
                        )
                    )
                rows: list[dict[str, Any]] = answer.data or []  # type: ignore[assignment]
                for row in rows:
                    yield ClusterInfo.from_graph_row(row)
                token = answer.skip_token
                if not token:
                    break

    def maintenance_window(
        self, subscription_id: str, resource_group: str, name: str
    ) -> dict[str, Any]:
        """The window that governs node reimages: aksManagedNodeOSUpgradeSchedule, else the
        `default` configuration, else {} (no window: any time)."""
        with translated(f"Reading maintenance configurations of {name}"):
            configs = list(
                self.containers(subscription_id).maintenance_configurations.list_by_managed_cluster(
                    resource_group, name
                )
            )
        return _governing_window(configs)

    def node_disruption_policy(self, subscription_id: str, resource_group: str, name: str) -> str:
        """The cluster's node disruption policy (Allow, AllowDuringMaintenanceWindow, Block)."""
        with translated(f"Reading the node disruption policy of {name}"):
            request = HttpRequest("GET", _preview_path(subscription_id, resource_group, name))
            response = self.containers(subscription_id).send_request(request)
            return _node_disruption_policy(response, name)

    def cluster_settings(
        self,
        maintenance: Sequence[ClusterInfo],
        disruption: Sequence[ClusterInfo],
        *,
        concurrency: int,
        deadline: float,
    ) -> tuple[dict[str, dict[str, Any]], dict[str, NodeDisruption]]:
        """What Resource Graph does not show, for many clusters at once: the maintenance window
        of each of `maintenance` and the node disruption policy of each of `disruption`
        (by arm id).

        Asynchronous (the SDK's aio clients over aiohttp): a sync reads one window per
        cluster, and the threaded clients spend twice the CPU per call. A throttled read
        waits its turn until `deadline` (time.monotonic()) rather than fail the sync. A window
        that cannot be read raises; a policy that cannot be read is "" with the reason, since
        Wavegate can go on without it.
        """
        return asyncio.run(self._cluster_settings(maintenance, disruption, concurrency, deadline))

    async def _cluster_settings(
        self,
        maintenance: Sequence[ClusterInfo],
        disruption: Sequence[ClusterInfo],
        concurrency: int,
        deadline: float,
    ) -> tuple[dict[str, dict[str, Any]], dict[str, NodeDisruption]]:
        verify = settings.AZURE_CA_BUNDLE
        context = (
            ssl.create_default_context(cafile=verify) if verify else ssl.create_default_context()
        )
        credential = _async_credential()
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=POOL_SIZE, ssl=context),
            trust_env=self._session.trust_env,
        )
        transport = AioHttpTransport(session=session, session_owner=False)
        clients: dict[str, AioClient] = {}
        limit = asyncio.Semaphore(concurrency)

        def client(subscription_id: str) -> AioClient:
            if subscription_id not in clients:
                clients[subscription_id] = AioClient(
                    credential,
                    subscription_id,
                    base_url=self.endpoint,
                    credential_scopes=[f"{self.endpoint}/.default"],
                    per_retry_policies=[self.calls],
                    transport=transport,
                )
            return clients[subscription_id]

        async def patiently(what: str, call: Callable[[], Awaitable[_T]]) -> _T:
            async with limit:
                while True:
                    try:
                        with translated(what):
                            return await call()
                    except Throttled:
                        if time.monotonic() > deadline:
                            raise
                        await asyncio.sleep(random.uniform(1, 3))  # noqa: S311

        async def window(cluster: ClusterInfo) -> tuple[str, dict[str, Any]]:
            async def call() -> list[Any]:
                pages = client(cluster.subscription_id).maintenance_configurations
                return [
                    c
                    async for c in pages.list_by_managed_cluster(
                        cluster.resource_group, cluster.name
                    )
                ]

            what = f"Reading maintenance configurations of {cluster.name}"
            return cluster.arm_id, _governing_window(await patiently(what, call))

        async def policy(cluster: ClusterInfo) -> tuple[str, NodeDisruption]:
            where = (cluster.subscription_id, cluster.resource_group, cluster.name)

            async def call() -> str:
                request = HttpRequest("GET", _preview_path(*where))
                response = await client(cluster.subscription_id).send_request(request)
                return _node_disruption_policy(response, cluster.name)

            what = f"Reading the node disruption policy of {cluster.name}"
            try:
                return cluster.arm_id, NodeDisruption(await patiently(what, call))
            except AzureError as exc:
                return cluster.arm_id, NodeDisruption("", str(exc))

        try:
            windows = asyncio.gather(*(window(c) for c in maintenance))
            policies = asyncio.gather(*(policy(c) for c in disruption))
            found_windows, found_policies = await asyncio.gather(windows, policies)
            return dict(found_windows), dict(found_policies)
        finally:
            for each in clients.values():
                await each.close()
            await session.close()
            await credential.close()

    def get_cluster(
        self, subscription_id: str, resource_group: str, name: str
    ) -> cs_models.ManagedCluster:
        with translated(f"Reading cluster {name}"):
            return self.containers(subscription_id).managed_clusters.get(resource_group, name)

    def agent_pools(self, subscription_id: str, resource_group: str, name: str) -> list[PoolInfo]:
        with translated(f"Reading the node pools of {name}"):
            pools = list(self.containers(subscription_id).agent_pools.list(resource_group, name))
        found = []
        for pool in pools:
            props = pool.properties
            if props is None:
                continue
            found.append(
                PoolInfo(
                    name=_text(pool.name),
                    mode=_text(props.mode),
                    os_type=_text(props.os_type),
                    os_sku=_text(props.os_sku),
                    node_count=int(props.count or 0),
                    vm_size=_text(props.vm_size),
                    node_image_version=_text(props.node_image_version),
                    orchestrator_version=_text(
                        props.current_orchestrator_version or props.orchestrator_version
                    ),
                )
            )
        return found

    def user_kubeconfig(
        self, subscription_id: str, resource_group: str, name: str
    ) -> dict[str, Any]:
        with translated(f"Getting credentials of {name}"):
            result = self.containers(
                subscription_id
            ).managed_clusters.list_cluster_user_credentials(resource_group, name)
        value = result.kubeconfigs[0].value if result.kubeconfigs else None
        if not value:
            raise Refused(f"Getting credentials of {name}: Azure returned no kubeconfig.")
        raw = value if isinstance(value, bytes) else base64.b64decode(value)
        config = yaml.safe_load(raw)
        if not isinstance(config, dict):
            raise Refused(f"Getting credentials of {name}: the kubeconfig is not readable.")
        return config

    def kubernetes_token(self) -> str:
        """A token for Entra ID clusters' API servers (instead of running kubelogin)."""
        with translated("Getting a token for the AKS server"):
            return self.credential.get_token(AKS_SERVER_SCOPE).token

    # --- the change ----------------------------------------------------------------------
    def begin_set_acceleration_mode(
        self,
        subscription_id: str,
        resource_group: str,
        name: str,
        mode: str,
        *,
        etag: str | None,
        request_id: str,
    ) -> str:
        """GET-then-PUT the cluster with `mode`; returns the operation's continuation token."""
        client = self.containers(subscription_id)
        with translated(f"Reading cluster {name}"):
            cluster = client.managed_clusters.get(resource_group, name)
        network = cluster.properties.network_profile if cluster.properties else None
        if network is None:
            raise Refused(f"Cluster {name} has no network profile to change.")
        advanced = network.advanced_networking or cs_models.AdvancedNetworking()
        advanced.enabled = True if mode == "BpfVeth" else advanced.enabled
        advanced.performance = cs_models.AdvancedNetworkingPerformance(acceleration_mode=mode)
        network.advanced_networking = advanced
        with translated(f"Setting the acceleration mode of {name} to {mode}"):
            poller = client.managed_clusters.begin_create_or_update(
                resource_group,
                name,
                cluster,
                etag=etag or cluster.e_tag,
                match_condition=MatchConditions.IfNotModified,
                headers={"x-ms-client-request-id": request_id},
                # The SDK's poller would go on reading the operation in a thread of its own
                # until it ends; the engine reads it from the token, one step at a time.
                polling=_NoReads(),
            )
        return str(poller.continuation_token())

    def operation_status(
        self, subscription_id: str, resource_group: str, name: str, token: str
    ) -> OperationStatus:
        """Resume the operation from its continuation token and read its status once:
        'InProgress', 'Succeeded', 'Failed' or 'Canceled', with the seconds Azure asks to wait
        before the next read. Never sleeps, never re-sends the PUT."""
        client = self.containers(subscription_id)
        with translated(f"Reading the operation on {name}"):
            poller = client.managed_clusters.begin_create_or_update(  # type: ignore[call-overload]
                resource_group, name, None, continuation_token=token, polling=_OneStatusRead()
            )
            poller.wait()
            method = poller.polling_method()
            status = str(method.status())
            code, message = _operation_error(method) if status != "InProgress" else ("", "")
            return OperationStatus(status, float(method._extract_delay()), code, message)


def _operation_error(method: ARMPolling) -> tuple[str, str]:
    """The `error` of an ended operation's status body (code, message), or ("", "")."""
    response = getattr(method, "_pipeline_response", None)
    try:
        body = response.http_response.json() if response is not None else None
    except ValueError:
        return "", ""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return "", ""
    return str(error.get("code") or ""), str(error.get("message") or "")


@dataclass(frozen=True)
class OperationStatus:
    """One read of a long-running operation: its status, Retry-After (the SDK's default
    polling interval, 30 s, when Azure sent none, as real AKS does), and the error Azure gave
    when it ended Failed or Canceled."""

    status: str
    retry_after: float
    error_code: str = ""
    error_message: str = ""

    @property
    def running(self) -> bool:
        return self.status == "InProgress"


class _NoReads(ARMPolling):
    """ARMPolling that reads nothing after the PUT's own answer: enough for its continuation
    token, without the background thread that would poll the operation to its end."""

    def run(self) -> None:
        return None


class _OneStatusRead(ARMPolling):
    """ARMPolling that reads the operation's status once per resume instead of looping until
    it ends, so a Celery task advances an operation by one read and re-schedules itself."""

    def run(self) -> None:
        if not self.finished():
            self.update_status()


# --- this process's gateway -----------------------------------------------------------------
_gateways: dict[tuple[Any, ...], Azure] = {}
_gateways_lock = threading.Lock()


def gateway() -> Azure:
    """This process's Azure gateway, shared by its threads (scans, rollout steps): one
    connection pool to ARM instead of a TLS handshake per cluster. One per Azure setting, so a
    test that points the settings elsewhere gets a gateway of its own."""
    key = (settings.AZURE_ARM_ENDPOINT, settings.AZURE_CA_BUNDLE, settings.AZURE_CREDENTIAL)
    with _gateways_lock:
        found = _gateways.get(key)
        if found is None:
            found = _gateways[key] = Azure()
        return found
