"""Pages at 10,000 clusters (issue 17: every page p95 <= 100 ms): p50/p95 server time of the
overview, the cluster list (as first shown, 200 a page, its last page, filtered, searched and
sorted) and a plan of 1,000 clusters in 4 waves in mixed states (its page, the part of it the
page polls, and its running wave's page).

The inventory is aksim's 10,000-cluster fleet as the first sync stores it (bench/fleet_sync.py's
fleet). The plan is created and submitted through rollout/actions.py; then, as no engine runs,
its waves are decided and its targets and clusters moved to their states with the ORM: waves 1
and 2 done, wave 3 running (done, changing, verifying, ready, waiting, pending, failed, blocked),
wave 4 pending. Requests go through Django's test client signed in as a viewer, so the time is
the server's (middleware, queries, template), not the network's; each page is asked once first
(its caches cold, shown as "first") and then SAMPLES times. On a busy machine the wall times
wander with the load average (printed); the least of them (what the page costs when nothing
else runs) and the CPU time this process spent per request (Django's side, not PostgreSQL's)
wander much less.

Run by `make bench`; uses its own PostgreSQL database (wavegate_bench_pages), created and
dropped. For re-measuring after a change, BENCH_PAGES_REUSE=1 keeps the database at the end and
reuses it when it is there (migrated first; no aksim, no sync: seconds instead of 1.5 minutes).
BENCH_PAGES_SAMPLES (60) requests per page; BENCH_PAGES_DB names the database.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import fleet_sync  # noqa: E402

BENCH_DB = os.environ.get("BENCH_PAGES_DB", "wavegate_bench_pages")
ADMIN_URL = fleet_sync.ADMIN_URL
REUSE = os.environ.get("BENCH_PAGES_REUSE", "") == "1"
SAMPLES = int(os.environ.get("BENCH_PAGES_SAMPLES", "60"))
TARGET_MS = 100.0
PLAN_NAME = "bench-pages"
PLAN_CLUSTERS = 1000
WAVE_SPEC = "1, 5%, 25%, 100%"


def psql(sql: str, database: str = "postgres") -> str:
    done = subprocess.run(
        ["psql", f"{ADMIN_URL}/{database}", "-qAtc", sql], capture_output=True, text=True
    )
    return done.stdout.strip() if done.returncode == 0 else ""


def reusable() -> bool:
    """A database a previous run kept, with its synced clusters."""
    return REUSE and psql("SELECT count(*) FROM fleet_cluster", BENCH_DB) not in ("", "0")


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="wavegate-bench-pages-"))
    server = None
    os.environ.update(
        DATABASE_URL=f"{ADMIN_URL}/{BENCH_DB}",
        DJANGO_SETTINGS_MODULE="config.settings",
        LOG_LEVEL="WARNING",
        WAVEGATE_VAR_DIR=str(work),
        WAVEGATE_WEBHOOK_URL="",
        DJANGO_ALLOWED_HOSTS="testserver,localhost",
    )
    if reusable():
        print(f"reusing database {BENCH_DB} (BENCH_PAGES_REUSE=1)")
    else:
        server, info = fleet_sync.start_aksim(work)
        fleet_sync.psql(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
        fleet_sync.psql(f"CREATE DATABASE {BENCH_DB}")
        os.environ.update(
            AZURE_ARM_ENDPOINT=info["endpoint"],
            AZURE_CA_BUNDLE=info["ca"],
            AZURE_CREDENTIAL="static",
            AZURE_STATIC_TOKEN="bench",
        )
    try:
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        if server is not None:
            sync()
        plan = bench_plan()
        pages(plan)
    finally:
        from django.db import connections

        connections.close_all()
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        if not REUSE:
            fleet_sync.psql(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")


def sync() -> None:
    from fleet.models import Cluster
    from fleet.sync import run_sync

    started = time.perf_counter()
    run = run_sync("command")
    assert run.status == "succeeded", run.error
    print(
        f"inventory: {Cluster.objects.count()} clusters synced from aksim in "
        f"{time.perf_counter() - started:.0f} s"
    )


def user(name: str, role: str) -> Any:
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    made, _ = get_user_model().objects.get_or_create(username=name)
    made.groups.add(Group.objects.get(name=role))
    return made


def bench_plan() -> Any:
    """The plan of PLAN_CLUSTERS clusters in mixed states (made once; reused with the database)."""
    from rollout.models import RolloutPlan

    plan = RolloutPlan.objects.filter(name=PLAN_NAME).first()
    if plan is None:
        plan = make_plan()
    counts: dict[str, int] = {}
    for status in plan.targets.values_list("status", flat=True):
        counts[status] = counts.get(status, 0) + 1
    sizes = [wave.targets.count() for wave in plan.waves.order_by("index")]
    print(
        f"plan {plan.name!r} ({plan.status}): {sum(sizes)} clusters in waves of "
        f"{', '.join(map(str, sizes))}; "
        + ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    )
    return plan


# Wave 3's targets, in turn: a wave under way.
RUNNING_MIX = (
    ["enabled"] * 10
    + ["enabling"] * 2
    + ["verifying"] * 2
    + ["ready"] * 2
    + ["waiting_for_window", "preflight", "failed", "blocked"]
    + ["pending"] * 3
)


def make_plan() -> Any:
    import datetime

    from django.db import transaction
    from django.utils import timezone

    from fleet import inventory
    from fleet.models import Cluster
    from rollout import actions
    from rollout.choices import Decision, PlanStatus, TargetStatus, WaveStatus
    from rollout.models import Approval, RolloutPlan, RolloutTarget, Wave

    operator, approver = user("bench-operator", "operator"), user("bench-approver", "approver")
    names = list(
        Cluster.objects.filter(removed_at__isnull=True, eligible=True, acceleration_mode="None")
        .exclude(preflight="blocked")
        .exclude(node_disruption_policy="Block")
        .order_by("name")
        .values_list("name", flat=True)[:PLAN_CLUSTERS]
    )
    plan = actions.create_plan(
        acting_user=operator,
        name=PLAN_NAME,
        selection={"names": names},
        wave_spec=WAVE_SPEC,
        concurrency=50,
        failure_budget="5%",
        soak_minutes=30,
    )
    plan = actions.submit_plan(plan, acting_user=operator)
    now = timezone.now()
    hour = datetime.timedelta(hours=1)
    waves = list(plan.waves.order_by("index"))
    states: dict[str, list[int]] = {}  # target status -> target ids
    for number, wave in enumerate(waves, start=1):
        ids = list(wave.targets.order_by("position").values_list("pk", flat=True))
        for i, pk in enumerate(ids):
            if number <= 2:  # done: the odd cluster skipped or rolled back
                status = "skipped" if i % 20 == 19 else "rolled_back" if i % 25 == 24 else "enabled"
            elif number == 3:
                status = RUNNING_MIX[i % len(RUNNING_MIX)]
            else:
                status = "pending"
            states.setdefault(status, []).append(pk)
    with transaction.atomic():
        RolloutPlan.objects.filter(pk=plan.pk).update(status=PlanStatus.RUNNING)
        for number, wave in enumerate(waves, start=1):
            started = now - (len(waves) - number + 1) * hour
            if number <= 2:
                Wave.objects.filter(pk=wave.pk).update(
                    status=WaveStatus.DONE, started_at=started, finished_at=started + hour / 2
                )
            elif number == 3:
                Wave.objects.filter(pk=wave.pk).update(
                    status=WaveStatus.RUNNING, started_at=started
                )
            if number <= 3:
                Approval.objects.create(
                    wave=wave,
                    user=approver,
                    decision=Decision.APPROVE,
                    comment=f"bench: wave {number}",
                    plan_hash=plan.content_hash,
                    created_at=started - hour / 4,
                )
        for status, ids in states.items():
            fields: dict[str, Any] = {"status": status, "status_since": now - hour / 3}
            if status not in (TargetStatus.PENDING, TargetStatus.PREFLIGHT, TargetStatus.READY):
                fields.update(started_at=now - hour / 2, attempts=1, request_id="bench")
            if status in ("enabled", "failed", "skipped", "rolled_back"):
                fields["finished_at"] = now - hour / 4
            if status == TargetStatus.FAILED:
                fields.update(
                    error_code="OperationNotAllowed",
                    error_message="bench: the change was refused",
                )
            if status == TargetStatus.BLOCKED:
                fields["error_message"] = "bench: user-installed iptables rules found"
            RolloutTarget.objects.filter(pk__in=ids).update(**fields)
        enabled = RolloutTarget.objects.filter(pk__in=states.get("enabled", []))
        Cluster.objects.filter(pk__in=enabled.values("cluster_id")).update(
            acceleration_mode="BpfVeth", mode_read_at=now
        )
    inventory.modes_changed()
    plan.refresh_from_db()
    return plan


def pages(plan: Any) -> None:
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.urls import reverse

    from fleet.models import Cluster

    client = Client(raise_request_exception=False)  # a failing page is reported, not fatal
    client.force_login(user("bench-viewer", "viewer"))
    clusters = reverse("fleet:clusters")
    present = Cluster.objects.filter(removed_at__isnull=True).count()
    running = plan.waves.filter(status="running").values_list("index", flat=True).first() or 1
    print(
        f"pages, {SAMPLES} requests each after a first one; target p95 <= {TARGET_MS:.0f} ms; "
        f"{os.cpu_count()} CPUs, load average "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    for label, url in (
        ("overview", reverse("fleet:overview")),
        ("cluster list", clusters),
        ("cluster list, 200 a page", f"{clusters}?per_page=200"),
        (
            "cluster list, 200 a page, last page",
            f"{clusters}?per_page=200&page={-(-present // 200)}",
        ),
        ("cluster list, blocked, by version", f"{clusters}?eligibility=blocked&sort=-version"),
        ("cluster list, search", f"{clusters}?q=payments"),
        ("cluster list, 200 a page by eligibility", f"{clusters}?per_page=200&sort=eligibility"),
        ("cluster list, 200 a page by subscription", f"{clusters}?per_page=200&sort=subscription"),
        ("plan, 1,000 clusters", reverse("rollout:plan", kwargs={"pk": plan.pk})),
        ("plan, its polled cards", reverse("rollout:plan_cards", kwargs={"pk": plan.pk})),
        (
            f"plan, running wave {running}",
            reverse("rollout:wave", kwargs={"pk": plan.pk, "index": running}),
        ),
    ):
        started = time.perf_counter()
        response = client.get(url)
        first = (time.perf_counter() - started) * 1000
        if response.status_code != 200:
            print(f"{label} {url}: answered {response.status_code}; skipped")
            continue
        times, cpu = [], []
        for _ in range(SAMPLES):
            started, cpu_started = time.perf_counter(), time.process_time()
            client.get(url)
            times.append((time.perf_counter() - started) * 1000)
            cpu.append((time.process_time() - cpu_started) * 1000)
        with CaptureQueriesContext(connection) as queries:
            client.get(url)
        times.sort()
        p95 = times[int(len(times) * 0.95) - 1]
        print(
            f"{label} {url}: first {first:.0f} ms, least {times[0]:.1f} ms, "
            f"p50 {statistics.median(times):.1f} ms, "
            f"p95 {p95:.1f} ms ({'PASS' if p95 <= TARGET_MS else 'MISS'}); Python's CPU "
            f"p50 {statistics.median(cpu):.1f} ms; {len(queries)} SQL queries, "
            f"{len(response.content) / 1024:.0f} KiB"
        )


if __name__ == "__main__":
    main()
