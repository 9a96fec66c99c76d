"""Who may call a cluster's API: the kubeconfig that listClusterUserCredential returns, and the
check of a request's bearer token (the cluster's own, or an Entra ID token on Entra clusters)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from typing import Any

from aksim.fleetfile import Cluster
from aksim.state import ClusterState, Simulator

# Entra ID: the AKS server application every cluster token is issued for, and the Azure CLI
# client that kubelogin signs in with (both are the same in every tenant).
AKS_SERVER_APP_ID = "6dae42f8-4368-4678-94ff-3960e28e3630"
AZURE_CLI_CLIENT_ID = "80faf920-1908-4b52-b5ef-a8e7bedfc67a"
KUBELOGIN_HINT = (
    "\nkubelogin is not installed which is required to connect to AAD enabled cluster.\n\n"
    "To learn more, please go to https://aka.ms/aks/kubelogin\n"
)


def _entra_token_ok(token: str) -> bool:
    """An Entra ID access token for the AKS server app. aksim has no identity provider, so it
    reads the claims without checking the signature."""
    parts = token.split(".")
    if len(parts) != 3:
        return False
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, binascii.Error):
        return False
    if not isinstance(claims, dict):
        return False
    audience = claims.get("aud")
    audiences = audience if isinstance(audience, list) else [audience]
    if AKS_SERVER_APP_ID not in audiences:
        return False
    expires = claims.get("exp")
    return not (isinstance(expires, int | float) and expires < time.time())


def authenticated(state: ClusterState, authorization: str | None) -> bool:
    scheme, _, token = (authorization or "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return False
    if hmac.compare_digest(token.encode(), state.token.encode()):
        return True
    return state.spec.entra and _entra_token_ok(token)


def private_fqdn(spec: Cluster) -> str:
    """The private API server's name: resolvable only inside the cluster's virtual network."""
    digest = hashlib.sha256(spec.key.encode()).hexdigest()[:8]
    return f"{spec.name}-dns-{digest}.privatelink.{spec.location}.azmk8s.io"


def kubeconfig(sim: Simulator, state: ClusterState, endpoint: str, ca_pem: bytes) -> dict[str, Any]:
    spec = state.spec
    user_name = f"clusterUser_{spec.resource_group}_{spec.name}"
    server = (
        f"https://{private_fqdn(spec)}:443"
        if spec.private
        else f"{endpoint.rstrip('/')}/k8s/{spec.key}"
    )
    user: dict[str, Any]
    if spec.entra:
        user = {
            "exec": {
                "apiVersion": "client.authentication.k8s.io/v1beta1",
                "args": [
                    "get-token",
                    "--environment",
                    "AzurePublicCloud",
                    "--server-id",
                    AKS_SERVER_APP_ID,
                    "--client-id",
                    AZURE_CLI_CLIENT_ID,
                    "--tenant-id",
                    sim.fleet.tenant_id,
                    "--login",
                    "devicecode",
                ],
                "command": "kubelogin",
                "env": None,
                "installHint": KUBELOGIN_HINT,
                "interactiveMode": "IfAvailable",
                "provideClusterInfo": False,
            }
        }
    else:
        user = {"token": state.token}
    return {
        "apiVersion": "v1",
        "clusters": [
            {
                "cluster": {
                    "certificate-authority-data": base64.b64encode(ca_pem).decode(),
                    "server": server,
                },
                "name": spec.name,
            }
        ],
        "contexts": [{"context": {"cluster": spec.name, "user": user_name}, "name": spec.name}],
        "current-context": spec.name,
        "kind": "Config",
        "preferences": {},
        "users": [{"name": user_name, "user": user}],
    }
