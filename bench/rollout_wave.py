"""One rollout wave of 1,000 clusters at concurrency 100 against aksim: the total time from the
approval to the last cluster done, next to the ideal ceil(1000/100) x T, and the workers' CPU.

T is aksim's operation time, known and constant: every cluster has exactly NODES Linux nodes and
aksim runs at the time scale that makes NODES x 90 s last T real seconds. Every cluster is
eligible and preflight-clean (no user iptables rules, node disruption allowed, no warnings), so
the wave measures the engine, not refusals. The whole fleet is scanned first ("Scan all eligible
clusters", timed and printed on its own) so that the wave reuses those scans, as the engine does
with a scan younger than WAVEGATE_PREFLIGHT_MAX_AGE_MINUTES, instead of scanning inline.

The processes are production's (docker-compose.yml): an engine worker with the prefork pool at
CELERY_CONCURRENCY (4), a `scanner` worker with a thread pool on its own queue, and one beat with
the database scheduler ticking the reconciler every WAVEGATE_ENGINE_TICK_SECONDS (5). The plan is
created, submitted and approved (by a second person, an approver) through rollout/actions.py.
Afterwards aksim's own records are checked: exactly one accepted PUT per cluster, each the one
its target recorded, and every cluster at BpfVeth.

aksim answers as real AKS does (issue 15): a PUT gets 201 with Azure-AsyncOperation and no
Retry-After, so the SDK's default of 30 s between reads applies, scaled like aksim's clock by
the time scale (WAVEGATE_POLL_MIN/MAX_SECONDS = 1 s / 60 s of Azure time); a tenth of the PUTs
find an operation of AKS's own running (409, then a wait of WAVEGATE_BUSY_RETRY_SECONDS,
scaled the same way); Resource Graph lags ARM. BENCH_ROLLOUT_FRIENDLY=1 measures the aksim the
earlier figure was taken with (Retry-After of a tenth of the operation, never scaled; no
operations of AKS's own; no graph lag) for comparison.

Run by `make bench`; uses its own PostgreSQL database (wavegate_bench_rollout), created and
dropped, and Celery queues named after its process id. For quick iterations:
    BENCH_ROLLOUT_CLUSTERS=100 BENCH_ROLLOUT_CONCURRENCY=10 .venv/bin/python bench/rollout_wave.py
Other knobs: BENCH_ROLLOUT_OPERATION_SECONDS (T, 25), BENCH_ROLLOUT_TICK_SECONDS (5),
BENCH_ROLLOUT_WORKER_CONCURRENCY (4), BENCH_ROLLOUT_POOL (prefork), BENCH_ROLLOUT_DB, and
DJANGO_SETTINGS_MODULE (config.settings) to try a settings change.
"""

from __future__ import annotations

import json
import math
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import requests  # noqa: E402

from aksim.fleetfile import Fleet  # noqa: E402
from aksim.launch import serve_command, wait_ready  # noqa: E402
from aksim.state import SECONDS_PER_NODE  # noqa: E402
from bench import preflight_scan  # noqa: E402

BENCH_DB = os.environ.get("BENCH_ROLLOUT_DB", "wavegate_bench_rollout")
ADMIN_URL = preflight_scan.ADMIN_URL
CLUSTERS = int(os.environ.get("BENCH_ROLLOUT_CLUSTERS", "1000"))
CONCURRENCY = int(os.environ.get("BENCH_ROLLOUT_CONCURRENCY", "100"))
OPERATION_SECONDS = float(os.environ.get("BENCH_ROLLOUT_OPERATION_SECONDS", "25"))
# Production's defaults: config/settings.py's tick, docker-compose.yml's CELERY_CONCURRENCY.
TICK_SECONDS = float(os.environ.get("BENCH_ROLLOUT_TICK_SECONDS", "5"))
WORKER_POOL = os.environ.get("BENCH_ROLLOUT_POOL", "prefork")
WORKER_CONCURRENCY = int(os.environ.get("BENCH_ROLLOUT_WORKER_CONCURRENCY", "4"))
SCANNER_THREADS = 16  # only for the scan before the wave; production's default is 8
NODES = preflight_scan.NODES  # 2 system + 8 user Linux nodes per cluster
TIME_SCALE = SECONDS_PER_NODE * NODES / OPERATION_SECONDS
TARGET_RATIO = 1.2
FRIENDLY = os.environ.get("BENCH_ROLLOUT_FRIENDLY", "") == "1"
# The ratio measured before aksim told the truth (commit 8febccc, 1,000 clusters, friendly aksim).
EARLIER_RATIO = 1.18
TIMEOUT_SECONDS = 30 * 60
BIN = Path(sys.executable).parent


def write_fleet(path: Path) -> list[str]:
    """preflight_scan's fleet (eligible, running, NODES Linux nodes each) at CLUSTERS clusters,
    made clean: no user rules, node disruption allowed, no warnings once on. Returns the keys."""
    preflight_scan.CLUSTERS = CLUSTERS
    preflight_scan.write_fleet(path)
    fleet = Fleet.load(path)
    for cluster in fleet.clusters:
        cluster.user_rules, cluster.warnings = {}, {}
        cluster.node_disruption_policy = "Allow"
    path.write_text(fleet.to_json())
    return [c.key for c in fleet.clusters]


@dataclass
class Child:
    """A process this bench started, in a session of its own (so its pool children go too)."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        """Warm shutdown (the parent only: it lets its pool finish the tasks in hand), then
        anything left of its session."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait()


def start(name: str, argv: list[str], work: Path) -> Child:
    log = work / f"{name}.log"
    popen = subprocess.Popen(
        argv,
        cwd=ROOT,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    return Child(name, popen, log)


def tree_cpu_seconds(pid: int) -> float:
    """user+sys of a process and its descendants, with those already reaped (cutime, cstime)."""
    stats: dict[int, list[str]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stats[int(entry.name)] = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue  # it ended meanwhile
    tree, grew = {pid}, True
    while grew:
        found = {p for p, fields in stats.items() if int(fields[1]) in tree} - tree
        tree, grew = tree | found, bool(found)
    ticks = sum(sum(int(x) for x in stats[p][11:15]) for p in tree if p in stats)
    return ticks / os.sysconf("SC_CLK_TCK")


def wait_for_log(child: Child, text: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while text not in child.log.read_text(errors="replace"):
        if child.popen.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{child.name} did not start:\n{child.log.read_text()[-3000:]}")
        time.sleep(0.2)


class Aksim:
    """aksim's admin API (/_aksim/...), the truth the figures are checked against."""

    def __init__(self, info: dict[str, Any]) -> None:
        self.base = f"{info['endpoint']}/_aksim"
        self.ca = info["ca"]
        self.session = requests.Session()

    def get(self, path: str) -> Any:
        response = self.session.get(f"{self.base}/{path}", verify=self.ca, timeout=60)
        response.raise_for_status()
        return response.json()

    def put(self, path: str, body: Any) -> Any:
        response = self.session.put(f"{self.base}/{path}", json=body, verify=self.ca, timeout=60)
        response.raise_for_status()
        return response.json()


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="wavegate-bench-rollout-"))
    keys = write_fleet(work / "fleet.json")
    argv, ready = serve_command(work / "fleet.json", work, time_scale=TIME_SCALE)
    server = start("aksim", argv, work)
    try:
        run(server, wait_ready(ready, lambda: server.popen.poll() is None), keys, work)
    finally:
        server.stop()


def run(server: Child, info: dict[str, Any], keys: list[str], work: Path) -> None:
    """The database, the workers and beat around `measure`; all gone afterwards."""
    preflight_scan.psql(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
    preflight_scan.psql(f"CREATE DATABASE {BENCH_DB}")
    queue, scan_queue = f"bench-rollout-{os.getpid()}", f"bench-rollout-scans-{os.getpid()}"
    # A settings module of one's own (importing config.settings) may be given to try a change.
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.update(
        DATABASE_URL=f"{ADMIN_URL}/{BENCH_DB}",
        AZURE_ARM_ENDPOINT=info["endpoint"],
        AZURE_CA_BUNDLE=info["ca"],
        AZURE_CREDENTIAL="static",
        AZURE_STATIC_TOKEN="bench",
        WAVEGATE_VAR_DIR=str(work),
        CELERY_QUEUE=queue,
        WAVEGATE_SCAN_QUEUE=scan_queue,
        WAVEGATE_SCAN_CONCURRENCY=str(SCANNER_THREADS),
        WAVEGATE_SCAN_POLL_SECONDS="0.1",
        WAVEGATE_ENGINE_TICK_SECONDS=str(TICK_SECONDS),
    )
    if not FRIENDLY:  # Wavegate waits as long as on Azure, in aksim's faster clock
        os.environ.update(
            WAVEGATE_POLL_MIN_SECONDS=f"{1 / TIME_SCALE:g}",
            WAVEGATE_POLL_MAX_SECONDS=f"{60 / TIME_SCALE:g}",
            WAVEGATE_BUSY_RETRY_SECONDS=f"{60 / TIME_SCALE:g}",
        )
    children: list[Child] = []
    try:
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        celery = [str(BIN / "celery"), "-A", "config"]
        quiet = ["--without-gossip", "--without-mingle"]
        # As docker-compose.yml's `worker`, `scanner` and `beat`, on this bench's queues.
        engine = start(
            "worker",
            [*celery, "worker", "-l", "info", "-Q", queue, "-n", f"{queue}@%h", *quiet,
             "--pool", WORKER_POOL, "--concurrency", str(WORKER_CONCURRENCY)],
            work,
        )  # fmt: skip
        scanner = start(
            "scanner",
            [*celery, "worker", "-l", "info", "-Q", scan_queue, "-n", f"{scan_queue}@%h", *quiet,
             "--pool", "threads", "--concurrency", str(SCANNER_THREADS)],
            work,
        )  # fmt: skip
        children += [engine, scanner]
        for child in (engine, scanner):
            wait_for_log(child, " ready.")
        beat = start(
            "beat",
            [*celery, "beat", "-l", "info", "--scheduler",
             "django_celery_beat.schedulers:DatabaseScheduler"],
            work,
        )  # fmt: skip
        children.append(beat)
        measure(Aksim(info), keys, engine, scanner, beat, server, work)
    finally:
        from django.db import connections

        connections.close_all()
        for child in reversed(children):
            child.stop()
        if children:
            purge(queue, scan_queue)
        preflight_scan.psql(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")


def purge(*queues: str) -> None:
    """Steps still queued when the bench ends (the soak watch's, scheduled ones) go
    with it, rather than wait in Redis for a worker that will never come."""
    from kombu import Queue

    from config.celery_app import app

    with app.connection_for_write() as connection:
        for queue in queues:
            Queue(queue, channel=connection.default_channel).purge()


def user(name: str, role: str) -> Any:
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    made = get_user_model().objects.create_user(name)
    made.groups.add(Group.objects.get(name=role))
    return made


def scan_everything(operator: Any) -> None:
    """Scan the whole fleet before the wave, so the wave reuses the scans (timed on its own)."""
    from django.db.models import Count

    from fleet.choices import SCAN_OPEN
    from fleet.models import Cluster, PreflightScan
    from preflight import actions

    started = time.perf_counter()
    queued = actions.request_fleet_scan(acting_user=operator)
    while PreflightScan.objects.filter(status__in=SCAN_OPEN).exists():
        time.sleep(0.5)
    elapsed = time.perf_counter() - started
    verdicts = dict(Cluster.objects.values_list("preflight").annotate(n=Count("pk")))
    print(
        f"before the wave, a preflight scan of all {queued} clusters ({SCANNER_THREADS} scanner "
        f"threads): {elapsed:.1f} s; verdicts {verdicts}"
    )
    assert verdicts == {"clean": CLUSTERS}, "every cluster must be preflight-clean"


def measure(
    aksim: Aksim,
    keys: list[str],
    engine: Child,
    scanner: Child,
    beat: Child,
    server: Child,
    work: Path,
) -> None:
    from django.conf import settings
    from django.utils import timezone

    from fleet.sync import run_sync
    from rollout import actions
    from rollout.choices import TARGET_SETTLED, PlanStatus, TargetStatus
    from rollout.models import RolloutTarget

    if FRIENDLY:
        aksim.put(
            "faults", {"retryAfter": True, "backgroundOperationRate": 0, "graphLagSeconds": 0}
        )
    print(f"  aksim's faults: {json.dumps(aksim.get('faults'), sort_keys=True)}")
    assert run_sync("command").status == "succeeded"
    operator, approver = user("bench-operator", "operator"), user("bench-approver", "approver")
    print(
        f"rollout wave of {CLUSTERS} clusters at concurrency {CONCURRENCY}; aksim operation time "
        f"T = {NODES} nodes x {SECONDS_PER_NODE:.0f} s / time scale {TIME_SCALE:g} = "
        f"{OPERATION_SECONDS:g} s"
    )
    print(
        f"  engine: beat tick WAVEGATE_ENGINE_TICK_SECONDS={TICK_SECONDS:g}; one engine worker "
        f"--pool {WORKER_POOL} --concurrency {WORKER_CONCURRENCY} (docker-compose.yml's worker); "
        f"preflight reused when younger than WAVEGATE_PREFLIGHT_MAX_AGE_MINUTES="
        f"{settings.WAVEGATE_PREFLIGHT_MAX_AGE_MINUTES}; {os.cpu_count()} CPUs, load average "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())} at the start"
    )
    head = subprocess.run(
        ["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    print(
        f"  code: {head or 'not a git checkout'}; settings {os.environ['DJANGO_SETTINGS_MODULE']}"
    )
    scan_everything(operator)

    plan = actions.create_plan(
        acting_user=operator,
        name="bench-bpfveth",
        wave_spec="100%",
        concurrency=CONCURRENCY,
        soak_minutes=0,
        failure_budget="100%",  # generous: a failure is counted and shown, never pauses the plan
        respect_maintenance_windows=False,
    )
    plan = actions.submit_plan(plan, acting_user=operator)
    waves = list(plan.waves.all())
    assert len(waves) == 1 and plan.targets.count() == CLUSTERS, (len(waves), plan.excluded)

    calls_before = aksim.get("stats")
    cpu_before = tree_cpu_seconds(engine.popen.pid)
    scanner_before = tree_cpu_seconds(scanner.popen.pid)
    beat_before = tree_cpu_seconds(beat.popen.pid)
    aksim_before = tree_cpu_seconds(server.popen.pid)
    log_from = engine.log.stat().st_size
    approved_at = timezone.now()
    actions.approve_wave(waves[0], acting_user=approver, comment="bench: the whole fleet at once")
    deadline = time.monotonic() + TIMEOUT_SECONDS
    targets = RolloutTarget.objects.filter(plan=plan)
    while targets.exclude(status__in=TARGET_SETTLED).exists():
        if time.monotonic() > deadline:
            raise RuntimeError(f"the wave did not finish in {TIMEOUT_SECONDS} s; logs in {work}")
        time.sleep(0.25)
    cpu = tree_cpu_seconds(engine.popen.pid) - cpu_before
    scanner_cpu = tree_cpu_seconds(scanner.popen.pid) - scanner_before
    beat_cpu = tree_cpu_seconds(beat.popen.pid) - beat_before
    aksim_cpu = tree_cpu_seconds(server.popen.pid) - aksim_before
    load = os.getloadavg()
    calls_after = aksim.get("stats")

    rows = list(
        targets.values(
            "status", "request_id", "started_at", "finished_at", "attempts", "error_code",
            "error_message", "cluster__name",
        )
    )  # fmt: skip
    enabled = [r for r in rows if r["status"] == TargetStatus.ENABLED]
    last_done = max(r["finished_at"] or timezone.now() for r in rows)
    total = (last_done - approved_at).total_seconds()
    ideal = math.ceil(CLUSTERS / CONCURRENCY) * OPERATION_SECONDS
    ratio = total / ideal
    print(
        f"  wave: {total:.1f} s from the approval to the last cluster done; ideal "
        f"ceil({CLUSTERS}/{CONCURRENCY}) x {OPERATION_SECONDS:g} s = {ideal:.0f} s; ratio "
        f"{ratio:.2f} (target <= {TARGET_RATIO}) {'PASS' if ratio <= TARGET_RATIO else 'FAIL'}"
    )
    print(
        f"  {'friendly' if FRIENDLY else 'truthful'} aksim; the earlier figure, taken against "
        f"the friendly aksim (Retry-After of T/10 = {OPERATION_SECONDS / 10:g} s between reads, "
        f"no 409s, no graph lag): ratio {EARLIER_RATIO}. Truthful polling reads every 30 s of "
        f"Azure time = {30 / TIME_SCALE:.2f} s here, so an ended operation is noticed sooner; "
        "each 409 costs its cluster AKS's own operation and a wait."
    )
    workers = cpu + scanner_cpu
    print(
        f"  workers' CPU: {workers:.1f} s = {1000 * workers / CLUSTERS:.0f} ms per cluster (engine "
        f"worker with all its pool processes {cpu:.1f} s, scanner, idle in the wave, "
        f"{scanner_cpu:.1f} s); beat {beat_cpu:.1f} s; aksim {aksim_cpu:.1f} s "
        f"({1000 * aksim_cpu / CLUSTERS:.0f} ms per cluster); load average "
        f"{' '.join(f'{x:.2f}' for x in load)} at the end"
    )
    calls = {k: calls_after.get(k, 0) - calls_before.get(k, 0) for k in calls_after}
    print(
        "  Azure calls per cluster: "
        + ", ".join(f"{k} {v / CLUSTERS:.1f}" for k, v in sorted(calls.items()) if v)
    )
    tasks(engine.log, log_from)
    puts = aksim.get("puts")
    phases(rows, puts["accepted"], approved_at)
    honest = verify(aksim, keys, rows, enabled, puts)
    while plan.status != PlanStatus.COMPLETED and time.monotonic() < deadline:
        time.sleep(0.25)
        plan.refresh_from_db()
    completed = (plan.finished_at - approved_at).total_seconds() if plan.finished_at else None
    print(
        f"  plan {plan.get_status_display().lower()}"
        + (f" {completed:.1f} s after the approval" if completed else "")
        + f"; logs in {work}"
    )
    assert honest, "aksim's records do not match the wave's (above)"
    assert plan.status == PlanStatus.COMPLETED, plan.status


TASK_LINE = re.compile(r"Task (rollout\.\w+)\[[^\]]+\] succeeded in ([0-9.]+)s: '?(\w*)")


def tasks(log: Path, offset: int) -> None:
    """The engine's tasks during the wave, from the worker's log (production logs at info):
    how many, and their run time, steps grouped by the status they left the target in."""
    with log.open("rb") as f:
        f.seek(offset)
        text = f.read().decode(errors="replace")
    runs: dict[str, list[float]] = {}
    for name, seconds, result in TASK_LINE.findall(text):
        key = f"step to {result}" if name == "rollout.advance_target" else name
        runs.setdefault(key, []).append(float(seconds))
    steps = sum(len(t) for k, t in runs.items() if k.startswith("step"))
    # A step finds its target already done when the tick sent it again while an earlier one
    # for the same target still waited in the queue.
    late = max(0, len(runs.get("step to enabled", [])) - CLUSTERS)
    print(
        f"  engine tasks during the wave: {steps} steps ({steps / CLUSTERS:.1f} per cluster, "
        f"{late} of them finding the cluster already done); "
        "run time mean / p95: "
        + "; ".join(
            f"{key} x{len(times)} {1000 * statistics.mean(times):.0f} / "
            f"{1000 * sorted(times)[int(0.95 * (len(times) - 1))]:.0f} ms"
            for key, times in sorted(runs.items())
        )
    )


def phases(rows: list[dict[str, Any]], accepted: list[dict[str, Any]], approved_at: Any) -> None:
    """Where each cluster's time went, beyond T: waiting for a slot that had freed, the steps
    before the PUT (preflight, ready), and after the operation ended (noticing it, verifying)."""
    put_at = {p["clientRequestId"]: p["at"] for p in accepted}
    done = [r for r in rows if r["request_id"] in put_at and r["finished_at"]]
    if not done:
        return
    first = min(r["started_at"] for r in done)
    before_put = [put_at[r["request_id"]] - r["started_at"].timestamp() for r in done]
    after_op = [
        r["finished_at"].timestamp() - put_at[r["request_id"]] - OPERATION_SECONDS for r in done
    ]
    starts = sorted(r["started_at"] for r in done)
    ends = sorted(r["finished_at"] for r in done)
    refill = [
        (starts[k] - ends[k - CONCURRENCY]).total_seconds() for k in range(CONCURRENCY, len(starts))
    ]
    cycle = statistics.mean(before_put) + OPERATION_SECONDS + statistics.mean(after_op)
    print(
        f"  per cluster beyond T (mean / max): approval to the first start "
        f"{(first - approved_at).total_seconds():.1f} s; a freed slot to the next start "
        f"{statistics.mean(refill) if refill else 0:.1f} / {max(refill, default=0):.1f} s; "
        f"start to PUT {statistics.mean(before_put):.1f} / {max(before_put):.1f} s; "
        f"operation end to done {statistics.mean(after_op):.1f} / {max(after_op):.1f} s; "
        f"so one slot turns every {cycle + (statistics.mean(refill) if refill else 0):.1f} s "
        f"against T = {OPERATION_SECONDS:g} s"
    )


def verify(
    aksim: Aksim,
    keys: list[str],
    rows: list[dict[str, Any]],
    enabled: list[dict[str, Any]],
    puts: dict[str, Any],
) -> bool:
    """The figure counts only if aksim agrees: one accepted PUT per cluster, each the one its
    target recorded, and every cluster at BpfVeth with its operation over."""
    accepted, refused = puts["accepted"], puts["refused"]
    not_there = []
    for key in keys:
        truth = aksim.get(f"clusters/{key}")
        if (truth["accelerationMode"], truth["provisioningState"]) != ("BpfVeth", "Succeeded"):
            not_there.append(
                f"{key} {truth['accelerationMode']}/{truth['provisioningState']} "
                f"operation {json.dumps(truth['operation'])}"
            )
    same_ids = sorted(p["clientRequestId"] for p in accepted) == sorted(
        r["request_id"] for r in enabled
    )
    by_status: dict[str, int] = {}
    for r in rows:
        by_status[r["status"]] = by_status.get(r["status"], 0) + 1
    per_cluster: dict[str, int] = {}
    for p in accepted:
        per_cluster[p["clusterId"]] = per_cluster.get(p["clusterId"], 0) + 1
    honest = (
        len(enabled) == CLUSTERS
        and len(accepted) == CLUSTERS
        and all(p["mode"] == "BpfVeth" for p in accepted)
        and same_ids
        and not not_there
    )
    print(
        f"  checked in aksim: {len(accepted)} accepted PUTs ({len(refused)} refused), "
        f"{'each' if same_ids else 'NOT each'} the target's recorded request id; "
        f"{len(keys) - len(not_there)} of {len(keys)} clusters at BpfVeth; targets "
        f"{json.dumps(by_status)}: {'OK' if honest else 'MISMATCH'}"
    )
    if not honest:
        for r in rows:
            if r["status"] != "enabled":
                print(
                    f"    target {r['cluster__name']} {r['status']} after {r['attempts']} "
                    f"attempt(s), request id {r['request_id']}: {r['error_code']} "
                    f"{r['error_message'][:300]}"
                )
        for p in refused:
            print(f"    refused PUT: {json.dumps(p)}")
        for cluster, n in per_cluster.items():
            if n != 1:
                print(f"    {n} accepted PUTs for {cluster}: " + json.dumps(
                    [p for p in accepted if p["clusterId"] == cluster]
                ))  # fmt: skip
        for line in not_there:
            print(f"    in aksim: {line}")
    return honest


if __name__ == "__main__":
    main()
