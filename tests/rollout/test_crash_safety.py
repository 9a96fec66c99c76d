"""Crash safety: a 100-cluster wave run by a real Celery worker and beat (Redis, PostgreSQL,
aksim) while the worker is killed with SIGKILL at 30 random moments: 20 times its whole process
group, started again each time, and 10 times one prefork pool child only, which Celery replaces.
The database is the truth, so the wave still ends with every cluster at BpfVeth, aksim accepted
exactly one PUT per cluster (the target's own request id), no scan is left open and nothing is
stuck; the audit chain verifies, and it holds every move each cluster, the wave and the plan
made, in order, and none that did not happen."""

from __future__ import annotations

import datetime
import logging
import os
import random
import signal
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from celery import Celery
from django.db.models import Count
from django.utils import timezone
from django_celery_beat.schedulers import ModelEntry

from audit.verification import verify_stored_chain
from config.celery_app import app as celery_app
from fleet.choices import SCAN_OPEN, ScanStatus, SyncTrigger
from fleet.models import Cluster, PreflightScan
from fleet.sync import run_sync
from preflight import scans as preflight
from rollout import actions, engine
from rollout.choices import TARGET_SETTLED, PlanStatus, TargetStatus
from rollout.models import RolloutPlan, RolloutTarget
from tests.aksim_server import Aksim, clean_fleet, start_aksim
from tests.factories import lone_target, make_user, submitted_plan
from tests.processes import BIN, Process, wait_until
from tests.rollout.audit_trails import plan_trail_problems

CLUSTERS, SUBSCRIPTIONS, FLEET_SEED = 100, 2, 6
GROUP, CHILD = "worker group", "pool child"
GROUP_KILLS, CHILD_KILLS, SEED = 20, 10, 6  # in a random order, at random moments
# Two nodes per cluster: aksim's change takes 2 x 90 s / 60 = 3 s.
TIME_SCALE = 60.0
POOL = 3  # prefork children
TIMEOUT = 420  # the wave, kills included (about 220 s on a quiet machine)
T = TargetStatus
log = logging.getLogger(__name__)


@pytest.fixture(scope="module")
def aksim_server(tmp_path_factory) -> Iterator[Aksim]:
    server = start_aksim(
        tmp_path_factory.mktemp("aksim-crash"),
        clean_fleet(CLUSTERS, SUBSCRIPTIONS, FLEET_SEED),
        TIME_SCALE,
    )
    try:
        yield server
    finally:
        server.process.stop()


@dataclass
class Kill:
    number: int
    kind: str  # GROUP or CHILD
    at: float  # seconds since the wave was approved
    in_flight: dict[str, int]  # target statuses not yet settled, just before the kill
    scans_cut: list[int]  # scans left running by the kill (killed in the middle of a scan)
    tokenless: int  # targets enabling without a continuation token right after the kill

    def __str__(self) -> str:
        flight = " ".join(f"{s}={n}" for s, n in sorted(self.in_flight.items()))
        return (
            f"kill {self.number:2d} ({self.kind}) at {self.at:5.1f}s  in flight: {flight or '-'}"
            f"  scans cut: {len(self.scans_cut)}  enabling without token: {self.tokenless}"
        )


@dataclass
class Worker:
    """The Celery worker under test: one process group at a time consumes the queue beat sends
    to. Replacements are booted ahead, each parked on a queue of its own, and a restart tells
    the next one to consume the real queue (remote control's add_consumer): on a loaded machine
    Django and Celery take some 10 s to load, which 20 restarts cannot wait for."""

    env: dict[str, str]
    queue: str
    tmp: Path
    control: Celery
    ahead: int  # replacements booted ahead
    process: Process | None = None
    booting: list[tuple[str, Process]] = field(default_factory=list)
    kills: list[Kill] = field(default_factory=list)

    def _boot(self) -> tuple[str, Process]:
        n = len(list(self.tmp.glob("worker-*.log"))) + 1
        name = f"w{n}-{self.queue}@crash"
        argv = [
            str(BIN / "celery"), "-A", "config", "worker", "-l", "info",
            "-Q", f"{self.queue}-parked-{n}", "-n", name,
            "--pool", "prefork", "--concurrency", str(POOL), "--without-gossip", "--without-mingle",
        ]  # fmt: skip
        return name, Process("worker", argv, self.env, self.tmp / f"worker-{n}.log").start()

    def start(self) -> None:
        """Put a freshly started worker on the queue; boot the ones to follow it."""
        while len(self.booting) <= self.ahead:
            self.booting.append(self._boot())
        name, process = self.booting.pop(0)
        self.process = process  # from now on stop() stops it, whatever happens below
        wait_until(
            lambda: " ready." in process.log() or not process.running(),
            90,
            "the Celery worker to be ready",
        )
        assert process.running(), process.log()[-3000:]
        # Asked until it answers: a worker just ready may not listen to broadcasts yet.
        wait_until(
            lambda: bool(
                self.control.control.add_consumer(
                    self.queue, destination=[name], reply=True, timeout=1.0
                )
            ),
            60,
            f"{name} to consume {self.queue}",
            interval=0,
        )
        while len(self.booting) < self.ahead:
            self.booting.append(self._boot())

    @property
    def pid(self) -> int:
        assert self.process is not None
        assert self.process.popen is not None
        return self.process.popen.pid

    def children(self) -> list[int]:
        """The pool processes (Linux: the processes whose parent is the worker's)."""
        found = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                after_name = stat.read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue  # gone meanwhile
            if int(after_name[1]) == self.pid and after_name[0] != "Z":
                found.append(int(stat.parent.name))
        return found

    def kill_group(self) -> None:
        """SIGKILL the main process and every pool child at once (start it again after)."""
        assert self.process is not None
        assert self.process.popen is not None
        os.killpg(self.pid, signal.SIGKILL)
        self.process.popen.wait(timeout=30)  # reaped: its pid is free to say the group is gone
        # Pool children are reaped by init; wait until none of the group is left.
        wait_until(lambda: not _group_alive(self.pid), 30, "the killed worker's group to go")

    def kill_child(self, rng: random.Random) -> None:
        """SIGKILL one pool child; Celery starts another in its place."""
        children = self.children()
        assert len(children) == POOL, children
        victim = rng.choice(sorted(children))
        os.kill(victim, signal.SIGKILL)
        wait_until(
            lambda: victim not in self.children() and len(self.children()) == POOL,
            30,
            "Celery to replace the killed pool child",
        )

    def stop(self) -> None:
        for process in [self.process, *(p for _, p in self.booting)]:
            if process is not None:
                process.stop()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def unsettled(plan: RolloutPlan) -> dict[str, int]:
    return dict(
        plan.targets.exclude(status__in=TARGET_SETTLED)
        .values_list("status")
        .annotate(n=Count("pk"))
        .order_by()
    )


def running_scans() -> set[int]:
    return set(PreflightScan.objects.filter(status=ScanStatus.RUNNING).values_list("pk", flat=True))


@pytest.mark.slow
@pytest.mark.timeout(TIMEOUT + 120)
def test_a_wave_survives_its_worker_killed_at_random_moments(
    isolated_db, wavegate_on_aksim, redis_server, tmp_path
):
    aksim = wavegate_on_aksim
    assert run_sync(SyncTrigger.COMMAND).status == "succeeded"
    assert Cluster.objects.filter(eligible=True).count() == CLUSTERS
    _, redis_url = redis_server
    queue = f"crash-{uuid.uuid4().hex[:10]}"
    env = {
        **os.environ,
        **aksim.wavegate_env(),
        "DATABASE_URL": isolated_db.url,
        "REDIS_URL": redis_url,
        "CELERY_QUEUE": queue,
        "WAVEGATE_SCAN_POLL_SECONDS": "0.05",
        # A scan cut by a kill is expired after deadline + 4 x request timeout + 60 s.
        "WAVEGATE_SCAN_DEADLINE_SECONDS": "8",
        "WAVEGATE_SCAN_REQUEST_TIMEOUT_SECONDS": "3",
        "WAVEGATE_ENGINE_TICK_SECONDS": "1.0",
        "LOG_LEVEL": "WARNING",
    }
    # Not the current app: tasks other tests send must keep going to the suite's broker.
    control = Celery("crash-control", broker=redis_url, set_as_current=False)
    worker = Worker(env, queue, tmp_path, control, ahead=2)
    beat = Process(
        "beat",
        [str(BIN / "celery"), "-A", "config", "beat", "-l", "info", "-s", str(tmp_path / "beat")],
        {**env, "WAVEGATE_SCAN_EXPIRY_CHECK_SECONDS": "5"},
        tmp_path / "beat.log",
    )
    operator = make_user("operator", username="olga")
    approver = make_user("approver", username="arun")
    rng = random.Random(SEED)
    kinds = [GROUP] * GROUP_KILLS + [CHILD] * CHILD_KILLS
    rng.shuffle(kinds)
    plan = submitted_plan(
        operator,
        name="crash-safety",
        wave_spec="100%",
        concurrency=20,
        soak_minutes=0,
        failure_budget="100%",  # a failure must show in the asserts, not pause the plan
        respect_maintenance_windows=False,
    )
    assert plan.targets.count() == CLUSTERS
    try:
        worker.start()
        beat.start()
        (wave,) = plan.waves.all()
        actions.approve_wave(wave, acting_user=approver, comment="crash test")
        began = time.monotonic()
        deadline = began + TIMEOUT
        wait_until(lambda: plan.targets.exclude(status=T.PENDING).exists(), 60, "the wave to start")
        cut: set[int] = set()
        for kind in kinds:
            if time.monotonic() > deadline:
                break
            time.sleep(rng.uniform(0.3, 3.0))
            before = unsettled(plan)
            if kind == GROUP:
                worker.kill_group()
                # Nothing runs now: a scan still running in the database was cut by this kill.
                now_cut = running_scans() - cut
                cut |= now_cut
            else:
                worker.kill_child(rng)
                now_cut = set()
            worker.kills.append(
                Kill(
                    len(worker.kills) + 1,
                    kind,
                    time.monotonic() - began,
                    before,
                    sorted(now_cut),
                    plan.targets.filter(status=T.ENABLING, continuation_token="").count(),
                )
            )
            log.warning("%s", worker.kills[-1])
            if kind == GROUP:
                worker.start()
        # Then let it finish, or give up at the deadline and say below what is stuck.
        while time.monotonic() < deadline:
            plan.refresh_from_db()
            if plan.status not in (PlanStatus.SUBMITTED, PlanStatus.RUNNING):
                break
            time.sleep(0.5)
        took = time.monotonic() - began
    finally:
        beat.stop()
        worker.stop()
        control.close()

    plan.refresh_from_db()
    expired = PreflightScan.objects.filter(
        status=ScanStatus.ERROR, message__startswith="The worker running this scan stopped"
    ).count()
    kills = "\n".join(map(str, worker.kills))
    log.warning(
        "plan %s %.0fs after approval, %d kills, %d scans expired as abandoned",
        plan.status, took, len(worker.kills), expired,
    )  # fmt: skip
    targets = list(plan.targets.select_related("cluster").order_by("position"))
    statuses = Counter(t.status for t in targets)
    trouble = Counter((t.status, t.error_code) for t in targets if t.status != T.ENABLED)
    examples = {
        (t.status, t.error_code): f"{t.cluster.name}: {t.error_message[:160]}"
        for t in reversed(targets)
        if t.status != T.ENABLED
    }
    open_scans = list(
        PreflightScan.objects.filter(status__in=SCAN_OPEN).values_list(
            "pk", "cluster__name", "status", "started_at"
        )
    )
    summary = (
        f"targets {dict(statuses)}; not enabled, by (status, error): {dict(trouble)}, for "
        f"example {examples}; scans left open: {open_scans}\n{kills}"
    )
    log.warning("%s", summary)
    # Every kill came while clusters were in flight, so that each one could hurt.
    assert len(worker.kills) == len(kinds), kills
    assert all(k.in_flight for k in worker.kills), kills

    # Nothing stuck: every target settled, no scan left open, the plan finished.
    assert all(t.status in TARGET_SETTLED for t in targets), summary
    assert not open_scans, summary
    assert plan.status == PlanStatus.COMPLETED, (plan.paused_reason, summary)
    assert RolloutPlan.objects.get(pk=plan.pk).claims.count() == 0

    # Exactly one PUT per cluster, the target's own, and every cluster at BpfVeth.
    ours = {c.arm_id for c in aksim.fleet.clusters}
    puts = aksim.admin("GET", "puts")
    accepted = [p for p in puts["accepted"] if p["clusterId"] in ours]
    refused = [p for p in puts["refused"] if p["clusterId"] in ours]
    twice = {c: n for c, n in Counter(p["clusterId"] for p in accepted).items() if n > 1}
    assert not twice, f"clusters sent more than one PUT: {twice}\n{summary}"
    # Refused only as AKS refuses while it runs an operation of its own (409), or when one of
    # them ended between the engine's read and its PUT (412): never as a second change.
    odd = [p for p in refused if p["status"] not in (409, 412)]
    assert not odd, f"PUTs aksim refused: {odd}\n{summary}"
    assert len(accepted) == len(targets) == CLUSTERS, summary
    assert {t.request_id for t in targets} == {p["clientRequestId"] for p in accepted}, summary
    assert statuses == {T.ENABLED: CLUSTERS}, summary
    assert all(aksim.truth(c)["accelerationMode"] == "BpfVeth" for c in aksim.fleet.clusters)

    assert verify_stored_chain().intact
    # Every move of the plan, its wave and each cluster has its audit event, in order, none
    # missing and none for a move that did not happen, whatever the kills interrupted.
    trail = plan_trail_problems(plan)
    assert not trail, "\n".join(trail[:20])


# --- the crash windows above, one at a time ---------------------------------------------------


@pytest.mark.django_db
def test_a_tick_queued_while_no_worker_runs_expires(settings):
    """Beat goes on sending ticks while the worker is down; they must expire, or the worker that
    comes back runs them all at once, each sending a step for every target in flight (the flood
    of stale steps then keeps the ticks that matter waiting)."""
    tick = ModelEntry.from_entry(
        "rollout-tick", app=celery_app, **settings.CELERY_BEAT_SCHEDULE["rollout-tick"]
    )  # as beat's scheduler (django_celery_beat's DatabaseScheduler) reads the setting

    assert tick.options.get("expires"), tick.options


@pytest.mark.django_db
def test_a_scan_left_queued_by_a_dead_worker_does_not_hold_its_cluster(clean_target):
    """The step queues its scan and runs it at once; a worker killed in between (or a "Scan now"
    whose task a restarted Redis lost) leaves a queued scan that nobody will run. The next step
    must not wait for it forever."""
    target = clean_target
    # What the step had done when its worker was killed: the scan created, not yet claimed.
    PreflightScan.objects.create(
        cluster_id=target.cluster_id, requested_by=target.plan.created_by, queued_at=timezone.now()
    )

    assert steps_until_preflight_ends(target) == T.READY


@pytest.mark.django_db
def test_a_scan_cut_by_a_dead_worker_does_not_block_its_cluster(clean_target):
    """A scan cut by a killed worker ends as an error once beat expires it. That says nothing
    about the cluster: the next step scans it again rather than block it."""
    target = clean_target
    # What the step had done when its worker was killed: the scan claimed, running long ago.
    long_ago = timezone.now() - datetime.timedelta(hours=1)
    PreflightScan.objects.create(
        cluster_id=target.cluster_id,
        requested_by=target.plan.created_by,
        queued_at=long_ago,
        started_at=long_ago,
        status=ScanStatus.RUNNING,
    )

    assert steps_until_preflight_ends(target) == T.READY
    assert PreflightScan.objects.filter(cluster_id=target.cluster_id).count() == 2


@pytest.fixture
def clean_target(wavegate_on_aksim: Aksim, personas, settings) -> RolloutTarget:
    """A target in preflight, on a clean cluster, in a plan of its own."""
    settings.WAVEGATE_SCAN_POLL_SECONDS = 0.05
    settings.WAVEGATE_SCAN_DEADLINE_SECONDS = 5.0
    assert run_sync(SyncTrigger.COMMAND).status == "succeeded"
    target = lone_target(personas["operator"], wavegate_on_aksim.fleet.clusters[0].name)
    assert engine.advance(target.pk, go_on=False).status == T.PREFLIGHT
    return target


def steps_until_preflight_ends(target: RolloutTarget) -> str:
    """Steps as the reconciler sends them, with beat's expiry of abandoned scans in between."""
    for _ in range(20):
        preflight.expire_abandoned()
        status = engine.advance(target.pk, go_on=False).status
        if status != T.PREFLIGHT:
            return status
    return status
