"""aksim at 10,000 clusters: generator time, what the real SDKs see, and the server's memory.

Run by `make bench`. Prints figures; asserts only what must hold for the figures to mean
anything (every cluster listed, every Resource Graph row paged, the AKS behaviours).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from azure.core import MatchConditions  # noqa: E402
from azure.core.credentials import AccessToken  # noqa: E402
from azure.core.exceptions import HttpResponseError, ResourceModifiedError  # noqa: E402
from azure.mgmt.containerservice import ContainerServiceClient  # noqa: E402
from azure.mgmt.containerservice import models as cs_models  # noqa: E402
from azure.mgmt.resourcegraph import ResourceGraphClient  # noqa: E402
from azure.mgmt.resourcegraph.models import QueryRequest, QueryRequestOptions  # noqa: E402

from aksim.aks import IPTABLES_REFUSAL  # noqa: E402
from aksim.fleetfile import Fleet  # noqa: E402
from aksim.generate import _eligible  # noqa: E402
from aksim.launch import serve_command, wait_ready  # noqa: E402

CLUSTERS, SUBSCRIPTIONS, SEED = 10_000, 200, 1


class StaticToken:
    def get_token(self, *scopes: str, **kwargs: object) -> AccessToken:
        return AccessToken("bench", int(time.time()) + 3600)


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="aksim-bench-"))
    fleet_path = work / "fleet.json"
    gen_args = [
        "--clusters",
        str(CLUSTERS),
        "--subscriptions",
        str(SUBSCRIPTIONS),
        "--seed",
        str(SEED),
    ]
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "aksim", "generate", *gen_args, "-o", str(fleet_path)],
        cwd=ROOT,
        check=True,
    )
    generate_s = time.perf_counter() - started
    again = work / "fleet2.json"
    subprocess.run(
        [sys.executable, "-m", "aksim", "generate", *gen_args, "-o", str(again)],
        cwd=ROOT,
        check=True,
    )
    identical = fleet_path.read_bytes() == again.read_bytes()
    print(
        f"generate {CLUSTERS} clusters / {SUBSCRIPTIONS} subscriptions: {generate_s:.1f} s "
        f"(target < 30 s), {fleet_path.stat().st_size / 2**20:.1f} MiB, "
        f"byte-identical on a second run: {identical}"
    )

    fleet = Fleet.load(fleet_path)
    argv, ready = serve_command(fleet_path, work, time_scale=3000)
    started = time.perf_counter()
    server = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        info = wait_ready(ready, lambda: server.poll() is None)
        print(
            f"aksim start-up with {CLUSTERS} clusters: {time.perf_counter() - started:.1f} s, "
            f"RSS {rss_mib(server.pid):.0f} MiB"
        )
        run_checks(fleet, info["endpoint"], info["ca"], server.pid)
    finally:
        server.terminate()
        server.wait(timeout=30)


def run_checks(fleet: Fleet, endpoint: str, ca: str, pid: int) -> None:
    common = {
        "credential": StaticToken(),
        "base_url": endpoint,
        "connection_verify": ca,
        "credential_scopes": [f"{endpoint}/.default"],
    }
    peak = rss_mib(pid)

    # Every cluster through the SDK's paged list, subscription by subscription.
    started = time.perf_counter()

    def list_sub(sub_id: str) -> list[str]:
        client = ContainerServiceClient(subscription_id=sub_id, **common)
        return [str(c.id) for c in client.managed_clusters.list()]

    with ThreadPoolExecutor(max_workers=8) as pool:
        listed = [
            cid for ids in pool.map(list_sub, [s.id for s in fleet.subscriptions]) for cid in ids
        ]
    assert sorted(listed) == sorted(c.arm_id for c in fleet.clusters), "SDK list missed clusters"
    print(
        f"SDK managed_clusters.list over {len(fleet.subscriptions)} subscriptions: "
        f"{len(listed)} clusters in {time.perf_counter() - started:.1f} s"
    )
    peak = max(peak, rss_mib(pid))

    # Resource Graph, 1,000 rows a page.
    graph = ResourceGraphClient(**common)
    query = (
        "resources | where type =~ 'microsoft.containerservice/managedclusters' | order by id asc"
    )
    started, rows, token, pages = time.perf_counter(), 0, None, 0
    while True:
        answer = graph.resources(
            QueryRequest(
                subscriptions=[s.id for s in fleet.subscriptions],
                query=query,
                options=QueryRequestOptions(skip_token=token, top=1000),
            )
        )
        rows += answer.count
        pages += 1
        token = answer.skip_token
        if not token:
            break
    assert rows == len(fleet.clusters), rows
    print(f"Resource Graph: {rows} rows in {pages} pages, {time.perf_counter() - started:.1f} s")
    peak = max(peak, rss_mib(pid))

    # Enable an eligible, clean cluster.
    target = next(
        c
        for c in fleet.clusters
        if _eligible(c)
        and not c.user_rules
        and c.acceleration_mode == "None"
        and c.node_disruption_policy == "Allow"
        and c.power_state == "Running"
    )
    client = ContainerServiceClient(
        subscription_id=target.subscription_id, polling_interval=0.2, **common
    )
    current = client.managed_clusters.get(target.resource_group, target.name)
    current.properties.network_profile.advanced_networking = cs_models.AdvancedNetworking(
        enabled=True,
        performance=cs_models.AdvancedNetworkingPerformance(acceleration_mode="BpfVeth"),
    )
    started = time.perf_counter()
    result = client.managed_clusters.begin_create_or_update(
        target.resource_group,
        target.name,
        current,
        etag=current.e_tag,
        match_condition=MatchConditions.IfNotModified,
    ).result()
    after = client.managed_clusters.get(target.resource_group, target.name)
    mode = after.properties.network_profile.advanced_networking.performance.acceleration_mode
    assert result.properties.provisioning_state == "Succeeded" and mode == "BpfVeth"
    print(
        f"enable {target.name}: Succeeded, later GET shows {mode} "
        f"({time.perf_counter() - started:.1f} s at time-scale 3000)"
    )

    # Refused for user rules, with the node count.
    blocked = next(
        c
        for c in fleet.clusters
        if _eligible(c)
        and c.user_rules
        and c.node_disruption_policy == "Allow"
        and c.power_state == "Running"
    )
    client = ContainerServiceClient(subscription_id=blocked.subscription_id, **common)
    current = client.managed_clusters.get(blocked.resource_group, blocked.name)
    current.properties.network_profile.advanced_networking = cs_models.AdvancedNetworking(
        enabled=True,
        performance=cs_models.AdvancedNetworkingPerformance(acceleration_mode="BpfVeth"),
    )
    try:
        client.managed_clusters.begin_create_or_update(
            blocked.resource_group, blocked.name, current
        )
        raise AssertionError("a cluster with user rules was not refused")
    except HttpResponseError as exc:
        assert exc.error.message == IPTABLES_REFUSAL.format(count=len(blocked.user_rules))
        print(f"refused {blocked.name}: {exc.error.code} ({len(blocked.user_rules)} nodes)")

    # A stale ETag.
    client = ContainerServiceClient(subscription_id=target.subscription_id, **common)
    try:
        client.managed_clusters.begin_create_or_update(
            target.resource_group,
            target.name,
            current,
            etag="00000000-stale",
            match_condition=MatchConditions.IfNotModified,
        )
        raise AssertionError("a stale ETag was accepted")
    except ResourceModifiedError:
        print("stale ETag: 412 Precondition Failed")
    peak = max(peak, rss_mib(pid))
    print(
        f"aksim resident memory while serving {len(fleet.clusters)} clusters: "
        f"peak {peak:.0f} MiB (target < 1024 MiB)"
    )


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    main()
