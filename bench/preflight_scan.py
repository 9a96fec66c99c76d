"""A fleet-wide preflight scan: 1,000 clusters x 10 Linux nodes against aksim.

"Scan all eligible clusters" is pressed once (preflight/actions.request_fleet_scan); two real Celery
worker processes (thread pools) run the scans, each through the gateway's credentials, the Kubernetes
client, a DaemonSet per cluster and its pods' logs, exactly as in production. Prints the wall
time from the press to the last verdict, clusters and nodes per second, the verdicts, and the
workers' CPU time per cluster. aksim starts pods after 2 s of simulated time; the bench runs it
at time scale 20, so each cluster's pods take 0.1 s to start.

Run by `make bench`; uses its own PostgreSQL database (wavegate_bench_scan), created and dropped.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aksim.fleetfile import Pool  # noqa: E402
from aksim.generate import generate_fleet  # noqa: E402
from aksim.launch import serve_command, wait_ready  # noqa: E402

BENCH_DB = "wavegate_bench_scan"
ADMIN_URL = os.environ.get("BENCH_POSTGRES", "postgres://postgres@127.0.0.1:5432")
CLUSTERS, SUBSCRIPTIONS, SEED, NODES = 1_000, 20, 3, 10
CONCURRENCY = int(os.environ.get("BENCH_SCAN_CONCURRENCY", "32"))
WORKERS = 2  # worker processes (one per core here), each a pool of CONCURRENCY / WORKERS threads
TIME_SCALE = 20.0
BIN = Path(sys.executable).parent


def psql(sql: str) -> None:
    subprocess.run(["psql", f"{ADMIN_URL}/postgres", "-q", "-c", sql], check=True)


def write_fleet(path: Path) -> None:
    """The generator's fleet, every cluster made eligible, public and running, with exactly
    NODES Linux nodes (2 system, 8 user); the generator's user rules on those nodes are kept."""
    fleet = generate_fleet(CLUSTERS, SUBSCRIPTIONS, SEED, "demo")
    for cluster in fleet.clusters:
        old_rules = dict(cluster.user_rules)
        cluster.kubernetes_version = "1.33.2"
        cluster.network_plugin, cluster.network_plugin_mode = "azure", "overlay"
        cluster.network_dataplane, cluster.network_policy, cluster.acns = "cilium", "cilium", True
        cluster.private, cluster.power_state, cluster.acceleration_mode = False, "Running", "None"
        cluster.pools = [
            Pool("system", "System", "Linux", "AzureLinux", 2, "Standard_D4s_v5",
                 "AKSAzureLinux-V3gen2-202507.21.0", "1.33.2", f"{cluster.seed % 10**8:08d}"),
            Pool("user", "User", "Linux", "Ubuntu2404", 8, "Standard_D8s_v5",
                 "AKSUbuntu-2404gen2containerd-202507.21.0", "1.33.2",
                 f"{(cluster.seed + 1) % 10**8:08d}"),
        ]  # fmt: skip
        names = [n.name for n in cluster.nodes()]
        cluster.user_rules = {
            names[i % len(names)]: kinds for i, kinds in enumerate(old_rules.values())
        }
    path.write_text(fleet.to_json())


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="wavegate-bench-scan-"))
    write_fleet(work / "fleet.json")
    argv, ready = serve_command(work / "fleet.json", work, time_scale=TIME_SCALE)
    server = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    info = wait_ready(ready, lambda: server.poll() is None)
    psql(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
    psql(f"CREATE DATABASE {BENCH_DB}")
    queue = f"bench-scan-{os.getpid()}"
    os.environ.update(
        DATABASE_URL=f"{ADMIN_URL}/{BENCH_DB}",
        DJANGO_SETTINGS_MODULE="config.settings",
        AZURE_ARM_ENDPOINT=info["endpoint"],
        AZURE_CA_BUNDLE=info["ca"],
        AZURE_CREDENTIAL="static",
        AZURE_STATIC_TOKEN="bench",
        LOG_LEVEL="WARNING",
        WAVEGATE_VAR_DIR=str(work),
        CELERY_QUEUE=queue,
        WAVEGATE_SCAN_CONCURRENCY=str(CONCURRENCY),
        WAVEGATE_SCAN_POLL_SECONDS="0.1",
    )
    workers: list[subprocess.Popen[bytes]] = []
    try:
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        for n in range(WORKERS):
            argv = [
                *(str(BIN / "celery"), "-A", "config", "worker", "-l", "warning", "-Q", queue),
                *("--pool", "threads", "--concurrency", str(CONCURRENCY // WORKERS)),
                *("-n", f"{queue}-{n}@%h", "--without-gossip", "--without-mingle"),
            ]
            workers.append(
                subprocess.Popen(
                    argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
                )
            )
        measure([w.pid for w in workers], server.pid)
    finally:
        from django.db import connections

        connections.close_all()
        for worker in workers:
            worker.terminate()
            worker.wait(timeout=60)
        server.terminate()
        server.wait(timeout=30)
        psql(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(worker_pids: list[int], aksim_pid: int) -> None:
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.db.models import Count

    from fleet.choices import SCAN_OPEN
    from fleet.models import Cluster, PreflightScan
    from fleet.sync import run_sync
    from preflight import actions

    assert run_sync("command").status == "succeeded"
    user = get_user_model().objects.create_user("bench-operator")
    user.groups.add(Group.objects.get(name="operator"))
    time.sleep(3)  # let the worker finish starting
    cpu_before = sum(cpu_seconds(pid) for pid in worker_pids)
    aksim_before = cpu_seconds(aksim_pid)
    started = time.perf_counter()
    queued = actions.request_fleet_scan(acting_user=user)
    while PreflightScan.objects.filter(status__in=SCAN_OPEN).exists():
        time.sleep(0.5)
    elapsed = time.perf_counter() - started
    cpu = sum(cpu_seconds(pid) for pid in worker_pids) - cpu_before
    aksim_cpu = cpu_seconds(aksim_pid) - aksim_before
    verdicts = dict(Cluster.objects.values_list("preflight").annotate(n=Count("pk")))
    nodes = sum(PreflightScan.objects.values_list("nodes_read", flat=True))
    print(
        f"fleet scan of {queued} clusters x {NODES} nodes at concurrency {CONCURRENCY} "
        f"({WORKERS} worker processes): "
        f"{elapsed:.1f} s ({queued / elapsed:.1f} clusters/s, {nodes / elapsed:.0f} nodes/s)"
    )
    print(f"  verdicts: {verdicts}; nodes read: {nodes}")
    print(
        f"  workers' CPU: {cpu:.1f} s ({1000 * cpu / queued:.0f} ms per cluster); "
        f"aksim's CPU: {aksim_cpu:.1f} s ({1000 * aksim_cpu / queued:.0f} ms per cluster)"
    )


if __name__ == "__main__":
    main()
