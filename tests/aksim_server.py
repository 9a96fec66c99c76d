"""Fixtures: an aksim server process, and the real Azure SDK clients pointed at it (a pytest
plugin loaded by tests/conftest.py, for the aksim fidelity tests and the fleet tests).

The clients are configured exactly as Wavegate configures them for Azure, but for the ARM
endpoint, aksim's CA and a static bearer token.
"""

from __future__ import annotations

import json
import os
import ssl
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from azure.core.credentials import AccessToken
from azure.mgmt.containerservice import ContainerServiceClient
from azure.mgmt.resource.subscriptions import SubscriptionClient
from azure.mgmt.resourcegraph import ResourceGraphClient

from aksim.fleetfile import Cluster, Fleet
from aksim.generate import generate_fleet
from aksim.launch import serve_command, wait_ready
from tests.processes import Process

FLEET_CLUSTERS = 60
FLEET_SUBSCRIPTIONS = 3
FLEET_SEED = 11


class StaticToken:
    """A TokenCredential with one fixed token, as Wavegate's AZURE_CREDENTIAL=static."""

    def __init__(self, token: str = "aksim-test-token") -> None:
        self.token = token
        self.scopes: list[tuple[str, ...]] = []

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.scopes.append(scopes)
        return AccessToken(self.token, int(time.time()) + 3600)


@dataclass
class Aksim:
    endpoint: str
    ca: str
    fleet: Fleet
    process: Process
    time_scale: float = 600.0

    def polling(self) -> dict[str, str]:
        """Wavegate's bounds on how long it waits between reads of Azure, scaled by aksim's
        time factor as aksim scales Azure's clock: the SDK's 30 s default (real AKS sends no
        Retry-After) becomes 30 s / time scale, never friendlier."""
        return {
            "WAVEGATE_POLL_MIN_SECONDS": f"{1 / self.time_scale:g}",
            "WAVEGATE_POLL_MAX_SECONDS": f"{60 / self.time_scale:g}",
        }

    def admin(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.endpoint}/_aksim/{path}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        context = ssl.create_default_context(cafile=self.ca)
        with urllib.request.urlopen(request, timeout=30, context=context) as response:
            return json.load(response)

    def wavegate_env(self) -> dict[str, str]:
        """Environment that points a Wavegate process (a worker, beat) at this aksim."""
        return {
            "AZURE_ARM_ENDPOINT": self.endpoint,
            "AZURE_CA_BUNDLE": self.ca,
            "AZURE_CREDENTIAL": "static",
            "AZURE_STATIC_TOKEN": "wavegate-test",
            **self.polling(),
        }

    def truth(self, cluster: Cluster) -> dict[str, Any]:
        return self.admin("GET", f"clusters/{cluster.key}")

    def reset(self) -> None:
        self.admin("POST", "reset")

    def clusters(self, predicate: Callable[[Cluster], bool]) -> list[Cluster]:
        return [c for c in self.fleet.clusters if predicate(c)]

    def one(self, predicate: Callable[[Cluster], bool], what: str) -> Cluster:
        found = self.clusters(predicate)
        assert found, f"the test fleet has no {what}; change FLEET_SEED"
        return found[0]

    # --- the real SDK clients ----------------------------------------------------------------
    def client_kwargs(self, credential: Any = None) -> dict[str, Any]:
        return {
            "credential": credential or StaticToken(),
            "base_url": self.endpoint,
            "connection_verify": self.ca,
            "credential_scopes": [f"{self.endpoint}/.default"],
        }

    def container_service(self, subscription_id: str, **extra: Any) -> ContainerServiceClient:
        return ContainerServiceClient(
            subscription_id=subscription_id, **self.client_kwargs(), **extra
        )

    def subscriptions(self) -> SubscriptionClient:
        return SubscriptionClient(**self.client_kwargs())

    def resource_graph(self, **extra: Any) -> ResourceGraphClient:
        return ResourceGraphClient(**self.client_kwargs(), **extra)


def start_aksim(tmp: Path, fleet: Fleet, time_scale: float = 600.0) -> Aksim:
    fleet_path = tmp / "fleet.json"
    fleet_path.write_text(fleet.to_json())
    argv, ready = serve_command(fleet_path, tmp, time_scale=time_scale)
    process = Process(
        "aksim",
        argv,
        dict(os.environ, AKSIM_PAGE_SIZE="7"),
        tmp / "aksim.log",
    ).start()
    try:
        info = wait_ready(ready, process.running)
    except RuntimeError as exc:
        raise AssertionError(process.log()) from exc
    return Aksim(info["endpoint"], info["ca"], fleet, process, time_scale)


def clean_fleet(clusters: int, subscriptions: int, seed: int) -> Fleet:
    """A generated fleet (names, regions, rings, subscriptions) whose every cluster can take
    BpfVeth and has nothing on its nodes to block it: two AzureLinux nodes each."""
    fleet = generate_fleet(clusters, subscriptions, seed, "demo")
    for cluster in fleet.clusters:
        system = cluster.pools[0]
        system.os_type, system.os_sku, system.count = "Linux", "AzureLinux", 2
        system.node_image_version = "AKSAzureLinux-V3gen2-202510.01.0"
        system.orchestrator_version = cluster.kubernetes_version = "1.33.3"
        cluster.pools = [system]
        cluster.network_plugin, cluster.network_plugin_mode = "azure", "overlay"
        cluster.network_dataplane = cluster.network_policy = "cilium"
        cluster.acns, cluster.acceleration_mode, cluster.private = True, "None", False
        cluster.power_state, cluster.provisioning_state = "Running", "Succeeded"
        cluster.node_disruption_policy = "Allow"
        cluster.user_rules, cluster.warnings, cluster.services = {}, {}, 20
    return fleet


@pytest.fixture(scope="session")
def test_fleet() -> Fleet:
    return generate_fleet(FLEET_CLUSTERS, FLEET_SUBSCRIPTIONS, FLEET_SEED, "demo")


@pytest.fixture(scope="module")
def aksim_server(tmp_path_factory, test_fleet) -> Iterator[Aksim]:
    external = os.environ.get("AKSIM_READY_FILE")
    if external:  # a server started by hand, serving the same test fleet (debugging)
        info = json.loads(Path(external).read_text())
        yield Aksim(info["endpoint"], info["ca"], test_fleet, None)
        return
    server = start_aksim(tmp_path_factory.mktemp("aksim"), test_fleet)
    try:
        yield server
    finally:
        server.process.stop()


@pytest.fixture
def aksim(aksim_server: Aksim) -> Aksim:
    """The module's aksim, back to the fleet file as loaded."""
    aksim_server.reset()
    return aksim_server


@pytest.fixture
def wavegate_on_aksim(aksim: Aksim, settings) -> Aksim:
    """Wavegate's Azure settings pointed at the (reset) aksim, as `make run` points them."""
    settings.AZURE_ARM_ENDPOINT = aksim.endpoint
    settings.AZURE_CA_BUNDLE = aksim.ca
    settings.AZURE_CREDENTIAL = "static"
    settings.AZURE_STATIC_TOKEN = "wavegate-test"
    for name, value in aksim.polling().items():
        setattr(settings, name, float(value))
    return aksim
