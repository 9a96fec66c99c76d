"""The gateway to each cluster's Kubernetes API: a client from the cluster's user kubeconfig
(which the Azure gateway reads), list calls read page by page as plain JSON, and failures in
words an operator can act on. The preflight scanner and the node checks both connect here.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import urllib3
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.rest import ApiException


class CannotConnect(Exception):
    """The cluster's kubeconfig cannot be used: the message says why and what to do."""


def connect(kubeconfig: dict[str, Any], token: Callable[[], str] | None = None) -> k8s.ApiClient:
    """An API client from the cluster's user kubeconfig. Entra ID clusters' kubeconfigs run
    kubelogin; Wavegate uses a token from its own Azure credential instead (`token`)."""
    config = copy.deepcopy(kubeconfig)
    for user in config.get("users") or []:
        entry = user.get("user") or {}
        if "exec" in entry or "auth-provider" in entry:
            if token is None:
                raise CannotConnect(
                    "The cluster's kubeconfig needs kubelogin and no token was given."
                )
            user["user"] = {"token": token()}
    configuration = k8s.Configuration()
    try:
        k8s_config.load_kube_config_from_dict(
            config, client_configuration=configuration, persist_config=False
        )
    except (k8s_config.ConfigException, KeyError, TypeError, ValueError) as exc:
        raise CannotConnect(f"The cluster's kubeconfig is not usable: {exc}") from exc
    # One quick retry on connect errors; a read that timed out is not retried.
    configuration.retries = urllib3.Retry(total=1, connect=1, read=0, status=0, redirect=0)
    return k8s.ApiClient(configuration)


def _status_message(exc: ApiException) -> str:
    try:
        body = json.loads(exc.body or "")
        return str(body.get("message") or exc.reason)
    except (ValueError, AttributeError):
        return str(exc.reason or exc)


def explain(exc: Exception, what: str) -> str:
    """A Kubernetes or network failure in words an operator can act on."""
    if isinstance(exc, ApiException):
        message = _status_message(exc)
        if exc.status == 401:
            return (
                f"{what}: the API server did not accept Wavegate's credentials ({message}). "
                "Check that Wavegate's identity may list the cluster's user credentials and, on "
                "Entra ID clusters, holds an Azure Kubernetes Service RBAC role."
            )
        if exc.status == 403 and "admission webhook" in message:
            return (
                f"{what}: an admission policy denied the scan ({message}). Exempt the "
                "namespaces labelled wavegate.io/scan=iptables from that policy (for Azure "
                "Policy, add them to the assignment's excludedNamespaces), then scan again."
            )
        if exc.status == 403:
            return (
                f"{what}: forbidden ({message}). Wavegate's identity needs to create namespaces "
                "and DaemonSets and read pods and their logs (e.g. Azure Kubernetes Service "
                "RBAC Cluster Admin)."
            )
        if exc.status == 0:
            return f"{what}: {exc.reason}"
        return f"{what}: the API server answered {exc.status} ({message})."
    if isinstance(exc, urllib3.exceptions.MaxRetryError | urllib3.exceptions.HTTPError):
        reason = getattr(exc, "reason", None) or exc
        return f"{what}: could not reach the API server ({reason})."
    return f"{what}: {exc}"


def list_all(call: Callable[..., Any], **kwargs: Any) -> list[dict[str, Any]]:
    """Every item of a list call, page by page, as plain JSON: the client's models cost more
    to build than the whole scan spends elsewhere, and only a few fields are read."""
    items: list[dict[str, Any]] = []
    token = None
    while True:
        answer = call(limit=500, _continue=token, _preload_content=False, **kwargs)
        page = json.loads(answer.data)
        items.extend(page.get("items") or [])
        token = (page.get("metadata") or {}).get("continue")
        if not token:
            return items


USER_RULES_LABEL = "kubernetes.azure.com/user-iptables-rules"


def labelled_user_rules(api: k8s.ApiClient, timeout: float) -> list[str]:
    """Nodes whose CiliumNode carries AKS's own `user-iptables-rules=true` label (its iptables
    monitor sets it, as of its last check); none where the CiliumNode resource is absent."""
    custom = k8s.CustomObjectsApi(api)
    try:
        answer = custom.list_cluster_custom_object(
            "cilium.io",
            "v2",
            "ciliumnodes",
            label_selector=f"{USER_RULES_LABEL}=true",
            _request_timeout=timeout,
        )
    except ApiException as exc:
        if exc.status == 404:
            return []
        raise
    return sorted(str(item["metadata"]["name"]) for item in answer.get("items") or [])
