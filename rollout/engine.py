"""The rollout engine's step for one target: advance it by at most one Azure call and return.

`advance(target_id)` reads the target's state from the database, does the one thing that state
calls for, and moves it through rollout/transitions.py (along an arrow of rollout/choices.py
TARGET_MOVES, with a conditional update that must change exactly one row, audited in the same
transaction), so two workers never work one target at once. It never
sleeps: a target still waiting (an operation in progress, a scan running elsewhere) is left as
it is, and `advance` says when its next step is due (Azure's Retry-After while an operation
runs); rollout/tasks.py schedules that step, and the reconciler sends one only for a target
that has none queued (rollout/reconcile.py `dispatch`).

The PUT is sent at most once per attempt: the target moves to `enabling` (with a fresh
`x-ms-client-request-id` and the attempt counted) before the PUT, and the continuation token is
stored right after it. A target found in `enabling` without a token (its worker died between
the two) is resolved by reading the cluster: an operation still running is waited for, a change
that took effect goes on to verification, and only a PUT that never landed is sent again. A
worker holds the target's lock (`working_on`) for the whole step, so that reading is never made
while another worker's PUT for the target is on its way.

Rolling back (`rolling_back`) sends mode None the same way: each attempt is claimed with a
conditional update before its PUT, and the cluster is read before any new attempt.

When the plan respects maintenance windows, a ready target whose window is closed (or cannot
be read) waits in `waiting_for_window` and goes on once it opens.

Verification reads the cluster's nodes once Azure says the change is done: every Linux node
Ready, labelled `ebpf-host-routing` as the goal says, with a ready Cilium agent, and no
`UnexpectedIPTablesRules` / `BlockedIPTablesRule` warning since the cluster's change began (a
warning fails the cluster at once; nodes that do not settle fail it after
WAVEGATE_VERIFY_NODES_MINUTES). While its wave soaks, a done cluster is read again every
WAVEGATE_SOAK_CHECK_SECONDS; a node NotReady or a new warning, not yet acknowledged by an
operator's resume, pauses the plan and says which cluster and nodes.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from accounts.wording import counted
from fleet.azure import (
    Azure,
    AzureError,
    Conflict,
    NotAuthorised,
    NotFound,
    Throttled,
    Unavailable,
    gateway,
)
from fleet.choices import ScanStatus
from fleet.maintenance import UnreadableWindow, describe, window_open
from fleet.nodecheck import NodeCheck, check_nodes
from preflight.scans import scan_for_rollout
from rollout.aks_answers import (
    await_monitor,
    operation_ended,
    profile,
    refusal_message,
    remember_mode,
    retry_later,
    where,
)
from rollout.choices import (
    ROLLBACK_FAILED,
    TARGET_MOVES,
    TARGET_TAKING_SLOTS,
    TARGET_UNSETTLED,
    Goal,
    PlanStatus,
    RolloutEvent,
    TargetStatus,
    WaveStatus,
    can_move,
)
from rollout.models import RolloutPlan, RolloutTarget
from rollout.transitions import move_target, pause_plan, record_target

log = logging.getLogger(__name__)
T = TargetStatus
_REQUEST_IDS = uuid.UUID("5f0c2a4e-8b7d-4c1e-9a3f-6d2b1e0c7a95")


def request_id(target: RolloutTarget, attempt: int) -> str:
    """The x-ms-client-request-id of one attempt: a GUID derived from target and attempt, so
    that Azure's records and ours match."""
    return str(uuid.uuid5(_REQUEST_IDS, f"target-{target.pk}-attempt-{attempt}"))


_TARGET_LOCKS = 7_106_001  # the advisory lock class of "a worker is on this target"


@contextlib.contextmanager
def working_on(target: RolloutTarget) -> Iterator[bool]:
    """Whether this worker may work on the target now: True while it holds the target's lock,
    so two steps for one target never run at once. That matters most around the PUT: a worker
    holds the lock from claiming an attempt until the continuation token is stored, so a
    worker that finds the target `enabling` without a token knows no PUT is on its way and may
    read the cluster to decide. It is a PostgreSQL session advisory lock, which the server
    releases when a killed worker's connection drops. Other databases (the demo's SQLite) have
    none: there the conditional updates alone keep targets apart."""
    if connection.vendor != "postgresql":
        yield True
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [_TARGET_LOCKS, target.pk])
        held = bool(cursor.fetchone()[0])
    try:
        yield held
    finally:
        if held:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [_TARGET_LOCKS, target.pk])


# States reached without waiting on anyone: the task that reached one goes on with the next
# step at once, rather than leave a cluster idle until the next tick.
_GOES_ON = frozenset({T.PREFLIGHT, T.READY, T.VERIFYING})
# States that wait on something outside (a scan, a window, Azure, the nodes): another step is
# wanted later.
_WAITING = TARGET_UNSETTLED


@dataclass(frozen=True)
class Outcome:
    """Where a step left its target: its status, and in how many seconds its next step is due
    (None: no step is wanted, because it settled, waits for an operator, or another worker is
    on it and schedules its own next)."""

    status: str
    again_in: float | None = None
    freed: bool = False  # it left its plan's slot (settled, or stopped for an operator)
    plan_id: int | None = None


def advance(target_id: int, azure: Azure | None = None, *, go_on: bool = True) -> Outcome:
    """Advance one target: one step, and (`go_on`) the next ones while each lands in a state
    that needs no waiting, until it waits (an operation running, a window) or settles."""
    target = RolloutTarget.objects.select_related("plan", "wave", "cluster__subscription").get(
        pk=target_id
    )
    azure = azure or gateway()
    if _STEPS.get(target.status) is None:
        return Outcome(target.status, plan_id=target.plan_id)  # settled, or for an operator
    wait: float | None = None
    with working_on(target) as mine:
        if not mine:
            return Outcome(target.status, plan_id=target.plan_id)  # another worker is on it
        first = ""
        for _ in range(len(_STEPS)):
            target.reread()  # as it is now that this worker holds it
            before = target.status
            first = first or before
            step = _STEPS.get(before)
            if step is None or _past_deadline(target):
                break
            try:
                wait = step(target, azure)
            except AzureError as exc:  # what a step did not handle itself
                _azure_said(target, exc)
                break
            except Exception as exc:  # a bug must not leave the target half-moved unsaid
                log.exception("advancing target %s failed", target.pk)
                RolloutTarget.objects.filter(pk=target.pk).update(
                    error_message=f"Wavegate failed at this step ({type(exc).__name__}: {exc})."
                )
                break
            target.reread()
            if not go_on or target.status == before or target.status not in _GOES_ON:
                break
    target.reread()
    if target.status not in _WAITING:
        freed = first in _WAITING or first == T.PENDING
        return Outcome(target.status, freed=freed, plan_id=target.plan_id)
    if wait is None:
        return Outcome(target.status, settings.WAVEGATE_STEP_WAIT_SECONDS, plan_id=target.plan_id)
    bounded = min(max(wait, settings.WAVEGATE_POLL_MIN_SECONDS), settings.WAVEGATE_POLL_MAX_SECONDS)
    return Outcome(target.status, bounded, plan_id=target.plan_id)


_LOCKED_TARGETS = """
    SELECT objid::bigint FROM pg_locks
    WHERE locktype = 'advisory' AND objsubid = 2 AND classid::bigint = %s
      AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
"""


def busy_targets() -> set[int]:
    """The targets a worker is working on right now (holding `working_on`'s lock)."""
    if connection.vendor != "postgresql":
        return set()
    with connection.cursor() as cursor:
        cursor.execute(_LOCKED_TARGETS, [_TARGET_LOCKS])
        return {row[0] for row in cursor.fetchall()}


def watched_clusters() -> list[int]:
    """The clusters a rollout is changing (or rolling back) now, or watching while their wave
    soaks: their Kubernetes events are pulled more often (rollout/tasks.py)."""
    watched = Q(status__in=TARGET_UNSETTLED) | Q(status=T.ENABLED, wave__status=WaveStatus.SOAKING)
    targets = RolloutTarget.objects.filter(watched)
    return sorted(set(targets.values_list("cluster_id", flat=True)))


# The setting (minutes) that bounds each in-flight state. Ready and changing share one clock:
# a throttled or lost PUT returns to ready without restarting it.
_DEADLINES: dict[str, str] = {
    T.PREFLIGHT: "WAVEGATE_DEADLINE_PREFLIGHT_MINUTES",
    T.READY: "WAVEGATE_DEADLINE_CHANGE_MINUTES",
    T.ENABLING: "WAVEGATE_DEADLINE_CHANGE_MINUTES",
    T.VERIFYING: "WAVEGATE_DEADLINE_VERIFY_MINUTES",
    T.ROLLING_BACK: "WAVEGATE_DEADLINE_ROLLBACK_MINUTES",
}


def deadline_of(target: RolloutTarget) -> datetime.datetime | None:
    """When the engine stops waiting for the target in its present state (None: no deadline,
    because it is settled, pending, or waits for its maintenance window)."""
    name = _DEADLINES.get(target.status)
    since = target.status_since or target.updated_at
    if name is None or since is None:
        return None
    return since + datetime.timedelta(minutes=getattr(settings, name))


def _fail(target: RolloutTarget, code: str, message: str) -> None:
    """Fail the target where it is, saying why. A failed roll back is marked as such, so that a
    retry rolls it back again rather than set the plan's goal."""
    if target.status == T.ROLLING_BACK:
        code = code if code.startswith(ROLLBACK_FAILED) else f"{ROLLBACK_FAILED}{code}"
        message = message if message.startswith("Rolling back") else f"Rolling back: {message}"
    if can_move(TARGET_MOVES, target.status, T.FAILED):
        move_target(target, target.status, T.FAILED, error_code=code, error_message=message)
    else:  # a done cluster being watched in soak: the finding stays on it
        RolloutTarget.objects.filter(pk=target.pk, status=target.status).update(
            error_code=code, error_message=message
        )


def _past_deadline(target: RolloutTarget) -> bool:
    """Fail the target if it has been in its in-flight state past its deadline: whatever it
    waits for (an operation, a scan, nodes, a throttled Azure) is not coming. True if failed."""
    due = deadline_of(target)
    if due is None or timezone.now() < due:
        return False
    name = _DEADLINES[target.status]
    last = f" The last error: {target.error_message}" if target.error_message else ""
    _fail(
        target,
        target.error_code or "DeadlineExceeded",
        f"Still {T(target.status).label.lower()} after {getattr(settings, name):g} minutes "
        f"(the deadline {name}): Wavegate stopped waiting.{last} Look at the cluster in Azure, "
        "then retry it, roll it back, or mark it done once you have checked it by hand.",
    )
    return True


# What an error that waiting cannot heal means for the operator, by its kind.
_WHAT_TO_DO: dict[type[AzureError], str] = {
    NotFound: "The cluster (or its operation) is gone from Azure: skip it, or mark it done if "
    "that was intended.",
    NotAuthorised: "Restore the role of the identity Wavegate runs as on this cluster, then "
    "retry it.",
}


def _azure_said(target: RolloutTarget, exc: AzureError) -> None:
    """An Azure error a step did not handle itself. One that cannot heal by waiting fails the
    target at once with Azure's code and message; a passing one is kept as the target's last
    error, and the next step tries again (until the state's deadline)."""
    if exc.retryable:
        RolloutTarget.objects.filter(pk=target.pk, status=target.status).update(
            error_code=exc.code, error_message=str(exc)
        )
        return
    hint = _WHAT_TO_DO.get(type(exc), "Azure refused the request: fix what it says, then retry.")
    _fail(target, exc.code, f"{exc} {hint}")


def _start(target: RolloutTarget, azure: Azure) -> None:
    move_target(target, T.PENDING, T.PREFLIGHT, started_at=timezone.now())


def _preflight(target: RolloutTarget, azure: Azure) -> float | None:
    if target.plan.goal == Goal.NONE:  # rolling back is the safe direction: no scan
        move_target(target, T.PREFLIGHT, T.READY)
        return None
    scan = scan_for_rollout(
        target.cluster,
        requested_by=target.plan.created_by,
        azure=azure,
        newer_than=target.rescan_after,
    )
    if scan is None:
        return None  # a scan is under way, or the fresh one could not finish now: later
    if scan.status == ScanStatus.CLEAN:
        move_target(
            target, T.PREFLIGHT, T.READY, error_code="", error_message="", retrying_since=None,
            rescan_after=None,
        )  # fmt: skip
        return None
    if scan.status == ScanStatus.BLOCKED and not scan.findings.exists():
        wait = await_monitor(target, scan)
        if wait is not None:
            return wait
    reasons: dict[str, str] = {
        ScanStatus.BLOCKED: "user-installed iptables rules block it",
        ScanStatus.INCOMPLETE: "not every node could be read, so it cannot be called clean",
        ScanStatus.ERROR: "the scan failed",
    }
    reason = reasons.get(scan.status, scan.status)
    if scan.status == ScanStatus.BLOCKED and not scan.findings.exists():
        reason = "AKS's own check still flags nodes"
    move_target(
        target,
        T.PREFLIGHT,
        T.BLOCKED,
        error_code=f"Preflight{scan.status.capitalize()}",
        error_message=f"Preflight scan #{scan.pk}: {reason}. {scan.message}".strip(),
        retrying_since=None,
        rescan_after=None,
    )
    return None


def _window_closed(target: RolloutTarget) -> str:
    """Why the cluster must wait for its maintenance window now, or "" when it need not."""
    if not target.plan.respect_maintenance_windows:
        return ""
    window = target.cluster.maintenance_window
    try:
        if window_open(window, timezone.now()):
            return ""
    except UnreadableWindow as exc:
        return f"Waiting: Wavegate cannot read this cluster's maintenance window ({exc})."
    return "Waiting for its maintenance window: " + " ".join(describe(window))


def _wait_for_window(target: RolloutTarget, azure: Azure) -> None:
    """WAITING_FOR_WINDOW → READY once the window is open and the plan has a free slot: a
    cluster waiting took none, and many windows may open at the same minute."""
    if _window_closed(target):
        return
    with transaction.atomic():  # under the plan's lock, as the reconciler counts slots
        plan = RolloutPlan.objects.select_for_update().get(pk=target.plan_id)
        busy = plan.targets.filter(status__in=TARGET_TAKING_SLOTS).count()
        if busy >= plan.concurrency:
            RolloutTarget.objects.filter(pk=target.pk).update(
                error_message=f"Its window is open; waiting for a free slot ({busy} being "
                f"changed, the plan changes {counted(plan.concurrency, 'cluster')} at once)."
            )
            return
        move_target(target, T.WAITING_FOR_WINDOW, T.READY, error_message="")


def _enable(target: RolloutTarget, azure: Azure) -> float | None:
    """READY → ENABLING: count the attempt, then send the PUT and keep its token."""
    closed = _window_closed(target)
    if closed:
        move_target(target, T.READY, T.WAITING_FOR_WINDOW, error_message=closed)
        return None
    attempt = target.attempts + 1
    rid = request_id(target, attempt)
    if not move_target(
        target, T.READY, T.ENABLING, attempts=F("attempts") + 1, request_id=rid,
        continuation_token="", error_code="", error_message="",
        status_since=target.status_since,  # ready and changing share one deadline
    ):  # fmt: skip
        return None
    sent_at = timezone.now()
    try:
        before = azure.get_cluster(*where(target))
        token = azure.begin_set_acceleration_mode(
            *where(target), target.plan.goal, etag=before.e_tag, request_id=rid
        )
    except Throttled as exc:
        # Azure answered 429: the PUT was not taken. Back to ready; the next step retries.
        move_target(
            target, T.ENABLING, T.READY, error_code=exc.code, error_message=str(exc),
            status_since=target.status_since,
        )  # fmt: skip
        return None
    except Unavailable as exc:
        # The PUT may or may not have landed: leave it tokenless; _follow reads the cluster.
        RolloutTarget.objects.filter(pk=target.pk).update(
            error_code=exc.code, error_message=str(exc)
        )
        return None
    except AzureError as exc:
        wait = retry_later(target, exc)
        if wait is None:
            move_target(
                target, T.ENABLING, T.FAILED, error_code=exc.code,
                error_message=refusal_message(target, exc),
            )  # fmt: skip
        return wait
    with transaction.atomic():
        kept = RolloutTarget.objects.filter(pk=target.pk, status=T.ENABLING).update(
            continuation_token=token, profile_before=profile(before), change_sent_at=sent_at,
            retrying_since=None,
        )  # fmt: skip
        if kept:
            target.reread()
            record_target(target, RolloutEvent.TARGET_CHANGE_SENT)
    return None


def _follow(target: RolloutTarget, azure: Azure) -> float | None:
    """ENABLING: read the operation once (from its token), or resolve a tokenless target."""
    if not target.continuation_token:
        cluster = azure.get_cluster(*where(target))
        state = profile(cluster)
        if state["provisioningState"] not in ("Succeeded", "Failed", "Canceled"):
            return None  # an operation is running: perhaps ours; wait for it to end
        if state["accelerationMode"] == target.plan.goal and state["provisioningState"] == (
            "Succeeded"
        ):
            move_target(target, T.ENABLING, T.VERIFYING, verifying_since=timezone.now())
        else:  # nothing landed: the attempt may be sent again, on the same deadline
            move_target(target, T.ENABLING, T.READY, status_since=target.status_since)
        return None
    read = azure.operation_status(*where(target), target.continuation_token)
    if read.running:
        return read.retry_after
    if read.status == "Succeeded":
        move_target(target, T.ENABLING, T.VERIFYING, verifying_since=timezone.now())
        return None
    operation_ended(target, azure, read)
    return None


def _verify(target: RolloutTarget, azure: Azure) -> None:
    cluster = azure.get_cluster(*where(target))
    state = profile(cluster)
    if state["provisioningState"] != "Succeeded":
        return
    if state["accelerationMode"] != target.plan.goal:
        _fail_verification(
            target,
            "ModeNotSet",
            f"The operation succeeded but the cluster's mode is {state['accelerationMode']}, "
            f"not {target.plan.goal}.",
            state,
        )
        return
    if target.cluster.private_api_server:
        # Its API server answers only inside its network: Azure's word is all there is.
        with transaction.atomic():
            move_target(
                target,
                T.VERIFYING,
                T.ENABLED,
                profile_after=state,
                error_message="Nodes not read: the cluster's API server is private.",
            )
            remember_mode(target, state)
        return
    changed = _reimaged_after(target)
    nodes = read_nodes(target, azure, since=target.started_at, changed_since=changed)
    if nodes.iptables_findings:
        _fail_verification(
            target,
            "IPTablesWarnings",
            "AKS found iptables rules that eBPF host routing does not honour since the change "
            "began: "
            + "; ".join(nodes.problems())
            + ". Remove what adds iptables rules on those nodes, or roll the cluster back.",
            state,
        )
        return
    if nodes.settled:
        with transaction.atomic():
            move_target(
                target, T.VERIFYING, T.ENABLED, error_message="",
                profile_after={**state, "nodes": len(nodes.nodes), "labels": nodes.label_note()},
            )  # fmt: skip
            remember_mode(target, state)
        return
    waited = timezone.now() - (target.verifying_since or timezone.now())
    limit = datetime.timedelta(minutes=settings.WAVEGATE_VERIFY_NODES_MINUTES)
    said = "; ".join(nodes.problems())
    if waited < limit:
        RolloutTarget.objects.filter(pk=target.pk, status=T.VERIFYING).update(
            verifying_since=target.verifying_since or timezone.now(),
            error_message=f"Waiting for the nodes to settle: {said}.",
        )
        return
    _fail_verification(
        target,
        "NodesNotSettled",
        f"Azure's change succeeded, but after {settings.WAVEGATE_VERIFY_NODES_MINUTES:g} minutes "
        f"the nodes have not settled: {said}. Look at those nodes, then retry or roll back.",
        state,
    )


def _fail_verification(
    target: RolloutTarget, code: str, message: str, state: dict[str, Any]
) -> None:
    with transaction.atomic():
        move_target(
            target, T.VERIFYING, T.FAILED, error_code=code, error_message=message,
            profile_after=state,
        )  # fmt: skip
        remember_mode(target, state)


def _reimaged_after(target: RolloutTarget) -> datetime.datetime | None:
    """Since when the nodes must have been reimaged: the PUT, when it changed the mode (a
    cluster already at the goal and Succeeded is only reconciled: no reimage). None when that
    time is not known (a PUT whose answer was lost)."""
    before = target.profile_before or {}
    if before.get("accelerationMode") == target.plan.goal and (
        before.get("provisioningState") == "Succeeded"
    ):
        return None
    return target.change_sent_at


def read_nodes(
    target: RolloutTarget,
    azure: Azure,
    since: datetime.datetime | None,
    changed_since: datetime.datetime | None = None,
) -> NodeCheck:
    """The cluster's nodes now, through its Kubernetes API; warnings since `since` (only when
    the goal is BpfVeth: AKS raises them only while eBPF host routing is on); nodes reimaged
    after `changed_since` (None: not asked)."""
    try:
        kubeconfig = azure.user_kubeconfig(*where(target))
    except AzureError as exc:
        return NodeCheck(error=f"Reading the cluster's credentials: {exc}")
    return check_nodes(
        kubeconfig,
        goal=target.plan.goal,
        warnings_since=since if target.plan.goal == Goal.BPFVETH else None,
        changed_since=changed_since,
        timeout=settings.WAVEGATE_SCAN_REQUEST_TIMEOUT_SECONDS,
        token=azure.kubernetes_token,
    )


def _watch(target: RolloutTarget, azure: Azure) -> None:
    """ENABLED in a soaking wave: read its nodes again, at most once per soak check period, and
    pause the plan on what an operator has not acknowledged yet."""
    wave = target.wave
    if wave.status != WaveStatus.SOAKING or target.cluster.private_api_server:
        return
    now = timezone.now()
    period = datetime.timedelta(seconds=settings.WAVEGATE_SOAK_CHECK_SECONDS)
    if target.checked_at and now - target.checked_at < period:
        return
    claimed = RolloutTarget.objects.filter(
        pk=target.pk, status=T.ENABLED, checked_at=target.checked_at
    ).update(checked_at=now)
    if claimed != 1:
        return  # another worker is reading it right now
    nodes = read_nodes(target, azure, since=target.finished_at)
    if nodes.error:
        RolloutTarget.objects.filter(pk=target.pk).update(
            error_message=f"During soak: {nodes.error}"
        )
        return
    seen = nodes.disturbances()
    new = [key for key in seen if key not in target.acknowledged]
    if not new:
        return
    said = "; ".join(seen[key] for key in new)
    RolloutTarget.objects.filter(pk=target.pk).update(
        soak_findings=new, error_code="SoakProblem", error_message=f"During soak: {said}."
    )
    reason = (
        f"Wave {wave.index} is soaking and cluster {target.cluster.name} shows {said}. Look at "
        "it, roll it (or the wave) back if need be, then resume: resuming acknowledges what was "
        "seen."
    )
    with transaction.atomic():
        # Under the plan's lock, as every move of a plan or wave: the wave may have moved on
        # while the nodes were read (an operator's retry set it running, the soak ended); then
        # the findings stay on the cluster, for its page and the next check.
        plan = RolloutPlan.objects.select_for_update().get(pk=target.plan_id)
        wave.refresh_from_db()
        if plan.status == PlanStatus.RUNNING and wave.status == WaveStatus.SOAKING:
            pause_plan(
                plan,
                reason=reason,
                wave=wave,
                details={"wave": wave.index, "cluster": target.cluster.name},
            )
    return None


def _roll_back(target: RolloutTarget, azure: Azure) -> float | None:
    """ROLLING_BACK: send mode None once per attempt, follow it, and confirm it took effect."""
    if target.continuation_token:
        read = azure.operation_status(*where(target), target.continuation_token)
        if read.running:
            return read.retry_after
        if read.status != "Succeeded":
            move_target(
                target,
                T.ROLLING_BACK,
                T.FAILED,
                error_code=f"{ROLLBACK_FAILED}Operation{read.status}",
                error_message=f"Rolling back: Azure's operation ended {read.status}. Try again.",
            )
            return None
    cluster = azure.get_cluster(*where(target))
    state = profile(cluster)
    if state["provisioningState"] not in ("Succeeded", "Failed", "Canceled"):
        return None  # an operation is running on the cluster: wait for it to end
    if state["accelerationMode"] == Goal.NONE and state["provisioningState"] == "Succeeded":
        with transaction.atomic():
            move_target(target, T.ROLLING_BACK, T.ROLLED_BACK, profile_after=state)
            remember_mode(target, state)
        return None
    # Not rolled back and nothing running: claim this attempt (exactly one worker wins), PUT.
    attempt = target.attempts + 1
    rid = request_id(target, attempt)
    claimed = RolloutTarget.objects.filter(
        pk=target.pk, status=T.ROLLING_BACK, attempts=target.attempts, request_id=target.request_id
    ).update(attempts=F("attempts") + 1, request_id=rid, continuation_token="")
    if claimed != 1:
        return None
    try:
        token = azure.begin_set_acceleration_mode(
            *where(target), Goal.NONE, etag=cluster.e_tag, request_id=rid
        )
    except (Throttled, Unavailable, Conflict) as exc:
        # Not taken (or AKS runs an operation of its own): the cluster is read again first.
        RolloutTarget.objects.filter(pk=target.pk).update(
            error_code=exc.code, error_message=str(exc)
        )
        return settings.WAVEGATE_BUSY_RETRY_SECONDS if isinstance(exc, Conflict) else None
    except AzureError as exc:
        code = exc.code
        move_target(
            target,
            T.ROLLING_BACK,
            T.FAILED,
            error_code=f"{ROLLBACK_FAILED}{code}",
            error_message=f"Rolling back: {exc}",
        )
        return None
    with transaction.atomic():
        kept = RolloutTarget.objects.filter(pk=target.pk, status=T.ROLLING_BACK).update(
            continuation_token=token
        )
        if kept:
            target.reread()
            record_target(target, RolloutEvent.TARGET_ROLLBACK_SENT)
    return None


# Each step returns the seconds Azure asked to wait before the next read, or None.
_STEPS: dict[str, Callable[[RolloutTarget, Azure], float | None]] = {
    T.PENDING: _start,
    T.PREFLIGHT: _preflight,
    T.READY: _enable,
    T.WAITING_FOR_WINDOW: _wait_for_window,
    T.ENABLING: _follow,
    T.VERIFYING: _verify,
    T.ENABLED: _watch,
    T.ROLLING_BACK: _roll_back,
}
