"""Inventory at 10,000 clusters: sync time against its floor, re-sync time. (The pages over
that inventory are measured by bench/pages.py.)

The floor is the least time the sync's own Azure calls need under aksim's quotas (Azure's:
ARM reads 250 burst + 25/s per subscription, Resource Graph 15 per 5 s) with zero processing
cost and unlimited parallelism, computed from the calls the sync actually made.
Run by `make bench`; uses its own PostgreSQL database (wavegate_bench, or BENCH_FLEET_DB),
created and dropped.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aksim.launch import serve_command, wait_ready  # noqa: E402

BENCH_DB = os.environ.get("BENCH_FLEET_DB", "wavegate_bench")
ADMIN_URL = os.environ.get("BENCH_POSTGRES", "postgres://postgres@127.0.0.1:5432")
CLUSTERS, SUBSCRIPTIONS, SEED = 10_000, 200, 1
ARM_BURST, ARM_RATE = 250, 25.0
GRAPH_BURST, GRAPH_RATE = 15, 3.0


def psql(sql: str) -> None:
    subprocess.run(["psql", f"{ADMIN_URL}/postgres", "-q", "-c", sql], check=True)


def floor_seconds(reads_by_subscription: dict[str, int], graph_queries: int) -> float:
    arm = max((max(0, n - ARM_BURST) / ARM_RATE for n in reads_by_subscription.values()), default=0)
    graph = max(0, graph_queries - GRAPH_BURST) / GRAPH_RATE
    return max(arm, graph)


def start_aksim(work: Path) -> tuple[subprocess.Popen[bytes], dict]:
    fleet = work / "fleet.json"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "aksim",
            "generate",
            "--clusters",
            str(CLUSTERS),
            "--subscriptions",
            str(SUBSCRIPTIONS),
            "--seed",
            str(SEED),
            "-o",
            str(fleet),
        ],
        cwd=ROOT,
        check=True,
    )
    argv, ready = serve_command(fleet, work)
    server = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    return server, wait_ready(ready, lambda: server.poll() is None)


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="wavegate-bench-"))
    server, info = start_aksim(work)
    psql(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
    psql(f"CREATE DATABASE {BENCH_DB}")
    os.environ.update(
        DATABASE_URL=f"{ADMIN_URL}/{BENCH_DB}",
        DJANGO_SETTINGS_MODULE="config.settings",
        AZURE_ARM_ENDPOINT=info["endpoint"],
        AZURE_CA_BUNDLE=info["ca"],
        AZURE_CREDENTIAL="static",
        AZURE_STATIC_TOKEN="bench",
        LOG_LEVEL="WARNING",
        WAVEGATE_VAR_DIR=str(work),
        DJANGO_ALLOWED_HOSTS="testserver,localhost",
    )
    try:
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        measure(info)
    finally:
        from django.db import connections

        connections.close_all()
        server.terminate()
        server.wait(timeout=30)
        psql(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")


def measure(info: dict) -> None:
    from fleet.azure import Azure
    from fleet.models import Cluster, NodePool
    from fleet.sync import run_sync

    azure = Azure()
    started = time.perf_counter()
    run = run_sync("command", azure=azure)
    elapsed = time.perf_counter() - started
    assert run.status == "succeeded", run.error
    calls = run.counts["calls"]
    floor = floor_seconds(dict(azure.calls.reads_by_subscription), calls.get("graph", 0))
    print(
        f"first sync: {elapsed:.1f} s for {Cluster.objects.count()} clusters and "
        f"{NodePool.objects.count()} node pools; calls {calls}"
    )
    print(
        f"  floor under Azure's quotas from those calls: {floor:.1f} s; "
        f"ratio {elapsed / floor if floor else float('inf'):.2f}x (target <= 2x)"
    )

    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from audit.models import AuditEvent

    events_before = AuditEvent.objects.filter(object_type="fleet.cluster").count()
    azure = Azure()
    started = time.perf_counter()
    with CaptureQueriesContext(connection) as queries:
        run = run_sync("command", azure=azure)
    elapsed = time.perf_counter() - started
    writes = [
        q["sql"]
        for q in queries.captured_queries
        if q["sql"].lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE", "COPY"))
        and ("fleet_cluster" in q["sql"] or "fleet_nodepool" in q["sql"])
    ]
    new_events = AuditEvent.objects.filter(object_type="fleet.cluster").count() - events_before
    print(
        f"re-sync with nothing changed: {elapsed:.1f} s; {run.counts['unchanged']} unchanged, "
        f"{run.counts['changed']} changed; {len(writes)} cluster/node-pool writes, "
        f"{new_events} cluster audit events; calls {run.counts['calls']}"
    )
    changes_in_azure(info)


def changes_in_azure(info: dict) -> None:
    """A version bump, a tag change and a deletion made in aksim show up after the next sync."""
    import ssl
    import urllib.request

    from audit.models import AuditEvent
    from fleet.models import Cluster
    from fleet.sync import run_sync

    context = ssl.create_default_context(cafile=info["ca"])

    def change(key: str, body: dict) -> None:
        request = urllib.request.Request(
            f"{info['endpoint']}/_aksim/clusters/{key}/change",
            data=json.dumps(body).encode(),
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        urllib.request.urlopen(request, context=context, timeout=30).close()

    change("c00010", {"kubernetesVersion": "1.35.9"})
    change("c00020", {"tags": {"env": "prod", "ring": "bench-ring"}})
    change("c00030", {"delete": True})
    run = run_sync("command")
    found = []
    for key, action in (
        ("c00010", "cluster.changed"),
        ("c00020", "cluster.changed"),
        ("c00030", "cluster.removed"),
    ):
        cluster = Cluster.objects.get(name__endswith=f"-{key[1:]}")
        recorded = AuditEvent.objects.filter(
            object_type="fleet.cluster", object_id=str(cluster.pk), action=action
        ).exists()
        found.append(f"{cluster.name}: {action} {'recorded' if recorded else 'MISSING'}")
    print(
        f"after a version bump, a tag change and a deletion in aksim: "
        f"{run.counts['changed']} changed, {run.counts['removed']} removed in "
        f"{run.duration_seconds:.1f} s; " + "; ".join(found)
    )


if __name__ == "__main__":
    main()
