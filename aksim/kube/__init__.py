"""Each simulated AKS cluster's Kubernetes API, under /k8s/<cluster key>/: version, nodes,
namespaces, DaemonSets and their pods (a scan pod's log is its node's iptables dump), events and
CiliumNodes, with the API server's JSON shapes and `Status` error bodies.

The server mounts `routes(sim)`; ARM's listClusterUserCredential answers with `kubeconfig(...)`.
"""

from __future__ import annotations

from aksim.kube.credentials import AKS_SERVER_APP_ID, kubeconfig, private_fqdn
from aksim.kube.dispatch import routes

__all__ = ["AKS_SERVER_APP_ID", "kubeconfig", "private_fqdn", "routes"]
