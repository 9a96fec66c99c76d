"""Operator actions on rollout plans: each checks permission, moves plans, waves and targets
through rollout/transitions.py (which audits every move in the same transaction) and queues
follow-up work on commit. Planning itself is rollout/planning.py; this freezes its result.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import re
from collections.abc import Callable
from typing import Any, TypeVar

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

import audit
from audit import attempts
from audit import context as audit_context
from fleet.models import AcceptedOwner, Cluster
from rollout import access, notify, planning
from rollout.choices import (
    PLAN_ACTIVE,
    PLAN_EDITABLE,
    PLAN_PAUSABLE,
    ROLLBACK_FAILED,
    TARGET_CHANGING,
    TARGET_MARKABLE,
    TARGET_NOT_CHANGED,
    TARGET_RETRYABLE,
    TARGET_ROLLBACKABLE,
    TARGET_SETTLED,
    TARGET_SKIPPABLE,
    WAVE_FINAL,
    WAVE_NOT_STARTED,
    Authorship,
    Decision,
    Goal,
    PlanStatus,
    RolloutEvent,
    TargetStatus,
    WaveStatus,
)
from rollout.enqueue import reconcile_soon
from rollout.models import (
    Approval,
    ClusterClaim,
    EmergencyStop,
    PlanAuthor,
    RolloutPlan,
    RolloutTarget,
    Wave,
)
from rollout.transitions import move_plan, move_target, move_targets, move_wave
from rollout.transitions import pause_plan as pause

_BUDGET = re.compile(r"(\d{1,4})(%?)")
EDITABLE = ("name", "goal", "selection", "wave_spec", "concurrency", "failure_budget",
            "soak_minutes", "respect_maintenance_windows", "approvals_needed")  # fmt: skip


class ActionRefused(Exception):
    """The action cannot be done now; the message says why and what to do."""


# Key of the PostgreSQL advisory lock that orders the emergency stop against submits and
# resumes ("WGESTOP" in ASCII).
_EMERGENCY_LOCK = 0x57474553544F50


def emergency_lock(*, exclusive: bool) -> None:
    """Hold until the transaction ends the lock that puts an emergency stop (exclusive) before
    or after anything that sets a plan in motion (shared): a submit or a resume either commits
    before the stop, which then pauses its plan, or reads the stop and is refused. SQLite lets
    one writer in at a time already (settings)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            take = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
            cursor.execute(f"SELECT {take}(%s)", [_EMERGENCY_LOCK])


def _refuse_while_stopped(plan: RolloutPlan, doing: str) -> None:
    """No plan is set in motion while an emergency stop is in force (rollout/emergency.py)."""
    emergency_lock(exclusive=False)
    stop = EmergencyStop.in_force()
    if stop is not None:
        raise ActionRefused(
            f"An emergency stop is in force (since {stop.started_at:%Y-%m-%d %H:%M} UTC, by "
            f"{stop.started_by.get_username()}: {stop.reason}): plan {plan.name!r} cannot be "
            f"{doing} until someone lifts it."
        )


R = TypeVar("R")


def _authored(plan: RolloutPlan, user: Any, did: Authorship, content_hash: str = "") -> None:
    """Keep who wrote the plan: its authors never decide its waves (rollout/access.py)."""
    PlanAuthor.objects.create(
        plan=plan, user=user, did=did, content_hash=content_hash, at=timezone.now()
    )


def selection_of(plan: RolloutPlan) -> planning.Selection:
    raw = plan.selection or {}
    return planning.Selection(
        subscriptions=frozenset(raw.get("subscriptions") or ()),
        regions=frozenset(raw.get("regions") or ()),
        rings=frozenset(raw.get("rings") or ()),
        tags=dict(raw.get("tags") or {}),
        names=tuple(raw.get("names") or ()),
    )


def candidates(plan: RolloutPlan | None = None) -> list[planning.Candidate]:
    """Every live cluster as planning sees it; claims by other active plans named."""
    claims = dict(
        ClusterClaim.objects.exclude(plan=plan).values_list("cluster_id", "plan__name")
        if plan is not None and plan.pk
        else ClusterClaim.objects.values_list("cluster_id", "plan__name")
    )
    rows = Cluster.objects.filter(removed_at__isnull=True).values_list(
        "pk", "name", "subscription__subscription_id", "location", "ring", "tags", "eligible",
        "eligibility_reasons", "acceleration_mode", "preflight", "power_state",
        "node_disruption_policy", "node_disruption_error", "maintenance_window",
        "provisioning_state",
    )  # fmt: skip
    return [
        planning.Candidate(
            id=pk,
            name=name,
            subscription_id=subscription,
            region=region,
            ring=ring,
            tags=tags or {},
            eligible=eligible,
            eligibility_reasons=tuple(str(r.get("reason", r)) for r in reasons or ()),
            acceleration_mode=mode,
            preflight=preflight,
            claimed_by=claims.get(pk, ""),
            stopped=power == "Stopped",
            node_disruption_policy=policy,
            node_disruption_error=policy_error,
            maintenance_window=window if isinstance(window, dict) else {},
            provisioning_state=provisioning,
        )
        for (pk, name, subscription, region, ring, tags, eligible, reasons, mode, preflight, power,
             policy, policy_error, window, provisioning) in rows
    ]  # fmt: skip


def check_budget(text: str) -> str:
    m = _BUDGET.fullmatch((text or "").strip())
    if m is None or (m[2] and int(m[1]) > 100):
        raise ActionRefused(
            f"The failure budget {text!r} is neither a number of clusters (0 pauses at the first "
            "failure) nor a percentage of a wave such as 10%."
        )
    return m[0]


def content_hash(plan: RolloutPlan, waves: list[list[str]]) -> str:
    """What approvals are bound to: the plan's settings, every wave's frozen cluster ids, and
    the accepted iptables owners in force (they decide what a scan calls clean)."""
    owners = list(
        AcceptedOwner.objects.active()
        .order_by("pk")
        .values_list("pk", "tables", "chain", "chain_prefix", "comment", "line_regex")
    )
    content = {field: getattr(plan, field) for field in EDITABLE} | {
        "waves": waves,
        "accepted_owners": owners,
    }
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


def frozen_waves(plan: RolloutPlan) -> list[list[str]]:
    """The submitted plan's waves as content_hash took them: cluster ids, in order."""
    waves: dict[int, list[str]] = {}
    for index, cluster_id in plan.targets.order_by("wave__index", "position").values_list(
        "wave__index", "cluster_id"
    ):
        waves.setdefault(index, []).append(str(cluster_id))
    return [waves[index] for index in sorted(waves)]


def _validate(plan: RolloutPlan) -> None:
    if not plan.name.strip():
        raise ActionRefused("Give the plan a name.")
    if plan.goal not in Goal.values:
        raise ActionRefused(f"The goal must be one of {', '.join(Goal.values)}.")
    try:
        planning.parse_waves(plan.wave_spec)
    except planning.PlanError as exc:
        raise ActionRefused(str(exc)) from exc
    plan.failure_budget = check_budget(plan.failure_budget)
    if plan.concurrency < 1:
        raise ActionRefused("Concurrency must be at least 1 cluster at a time.")
    if plan.approvals_needed < 1:
        raise ActionRefused("Every wave needs at least one approval.")


@transaction.atomic
def create_plan(*, acting_user: Any, **fields: Any) -> RolloutPlan:
    """A draft plan: its criteria only; the waves are cut and frozen when it is submitted."""
    if not access.can_manage_plans(acting_user):
        raise PermissionDenied(access.can_manage_plans.refusal)
    unknown = set(fields) - set(EDITABLE)
    if unknown:
        raise ActionRefused(f"Unknown plan field(s): {', '.join(sorted(unknown))}.")
    plan = RolloutPlan(created_by=acting_user, created_at=timezone.now(), **fields)
    _validate(plan)
    plan.save()
    _authored(plan, acting_user, Authorship.CREATED)
    audit.record(
        RolloutEvent.PLAN_CREATED,
        acting_user=acting_user,
        obj=plan,
        after={f: getattr(plan, f) for f in EDITABLE},
    )
    return plan


@transaction.atomic
def submit_plan(plan: RolloutPlan, *, acting_user: Any) -> RolloutPlan:
    """Cut the plan's waves now, freeze their cluster lists, claim the clusters, bind the plan's
    hash, and put the first wave up for approval."""
    if not access.can_manage_plans(acting_user):
        raise PermissionDenied(access.can_manage_plans.refusal)
    _refuse_while_stopped(plan, "submitted")  # before the plan's lock, as the stop takes them
    plan = RolloutPlan.objects.select_for_update().get(pk=plan.pk)
    if plan.status != PlanStatus.DRAFT:
        raise ActionRefused(
            f"Plan {plan.name!r} is {plan.get_status_display().lower()}, not a draft."
        )
    try:
        cut = planning.cut(
            candidates(plan), selection_of(plan), plan.wave_spec, plan.goal, ring_order(),
            now=timezone.now(), respect_windows=plan.respect_maintenance_windows,
        )  # fmt: skip
    except planning.PlanError as exc:
        raise ActionRefused(str(exc)) from exc
    if not cut.waves:
        raise ActionRefused(
            f"Plan {plan.name!r} selects no cluster that can take part "
            f"({len(cut.excluded)} set apart): widen the selection or fix what sets them apart."
        )
    waves = [Wave(plan=plan, index=i, approvals_needed=plan.approvals_needed)
             for i in range(1, len(cut.waves) + 1)]  # fmt: skip
    Wave.objects.bulk_create(waves)
    position = 0
    targets = []
    for wave, members in zip(waves, cut.waves, strict=True):
        for member in members:
            position += 1
            targets.append(
                RolloutTarget(plan=plan, wave=wave, cluster_id=member.id, position=position)
            )
    RolloutTarget.objects.bulk_create(targets, batch_size=1000)
    try:
        with transaction.atomic():
            ClusterClaim.objects.bulk_create(
                [ClusterClaim(cluster_id=t.cluster_id, plan=plan) for t in targets],
                batch_size=1000,
            )
    except IntegrityError as exc:
        raise ActionRefused(_claim_refusal(plan, [t.cluster_id for t in targets])) from exc
    hashed = content_hash(plan, [[str(m.id) for m in w] for w in cut.waves])
    _authored(plan, acting_user, Authorship.SUBMITTED, hashed)
    move_plan(
        plan,
        PlanStatus.SUBMITTED,
        acting_user=acting_user,
        details={
            "waves": [len(w) for w in cut.waves],
            "excluded": len(cut.excluded),
            "content_hash": hashed,
        },
        excluded=[
            {"cluster": e.candidate.id, "name": e.candidate.name, "reason": e.reason}
            for e in cut.excluded
        ],
        content_hash=hashed,
        submitted_at=timezone.now(),
    )
    first = Wave.objects.get(plan=plan, index=1)
    move_wave(first, WaveStatus.AWAITING_APPROVAL, acting_user=acting_user)
    notify.announce("wave_awaiting_approval", plan, first)
    return plan


def _claim_refusal(plan: RolloutPlan, cluster_ids: list[int]) -> str:
    taken = (
        ClusterClaim.objects.filter(cluster_id__in=cluster_ids)
        .exclude(plan=plan)
        .values_list("cluster__name", "plan__name")[:5]
    )
    listed = ", ".join(f"{cluster} (in plan {other!r})" for cluster, other in taken)
    return (
        "Another active plan claimed some of these clusters meanwhile: "
        f"{listed or 'see the plans'}. Submit again: the waves will leave them out."
    )


@transaction.atomic
def refuse_unless_editable(plan: RolloutPlan) -> None:
    """Refuse (ActionRefused) to edit a plan past submission, in the words every door uses."""
    if plan.status not in PLAN_EDITABLE:
        raise ActionRefused(
            f"Plan {plan.name!r} is {plan.get_status_display().lower()}: it can no longer be "
            "edited. Abort it and create a new one."
        )


def edit_plan(plan: RolloutPlan, *, acting_user: Any, **changes: Any) -> RolloutPlan:
    """Change a draft or submitted plan. A submitted plan goes back to draft: its frozen waves,
    its claims and every approval given are void, and it must be submitted again."""
    if not access.can_manage_plans(acting_user):
        raise PermissionDenied(access.can_manage_plans.refusal)
    plan = RolloutPlan.objects.select_for_update().get(pk=plan.pk)
    refuse_unless_editable(plan)
    unknown = set(changes) - set(EDITABLE)
    if unknown:
        raise ActionRefused(f"Unknown plan field(s): {', '.join(sorted(unknown))}.")
    before = {f: getattr(plan, f) for f in EDITABLE}
    for field, value in changes.items():
        setattr(plan, field, value)
    _validate(plan)
    plan.save(update_fields=EDITABLE)
    _authored(plan, acting_user, Authorship.EDITED, plan.content_hash)
    after = {f: getattr(plan, f) for f in EDITABLE}
    if plan.status == PlanStatus.DRAFT:
        audit.record(
            RolloutEvent.PLAN_EDITED, acting_user=acting_user, obj=plan, before=before, after=after
        )
        return plan
    voided = sum(w.approvals.count() for w in plan.waves.all())
    plan.waves.all().delete()  # targets and approvals go with them
    plan.claims.all().delete()
    move_plan(
        plan,
        PlanStatus.DRAFT,
        acting_user=acting_user,
        before=before,
        details={**after, "approvals_voided": voided},
        content_hash="",
        excluded=[],
        submitted_at=None,
    )
    return plan


def ring_order() -> tuple[str, ...]:
    return tuple(settings.WAVEGATE_RING_ORDER)


def _decide(
    wave: Wave, acting_user: Any, comment: str, plan_hash: str | None
) -> tuple[Wave, RolloutPlan]:
    """What approving and rejecting share: the four-eyes and state checks, under row locks.
    `plan_hash` is the version the person read (the page's); "" when a request left it out
    (refused); None when the caller has no version to give (tests, internal callers)."""
    if not access.can_approve_waves(acting_user):
        raise PermissionDenied(access.can_approve_waves.refusal)
    if not (comment or "").strip():
        raise ActionRefused("Say why in a comment: approvals and rejections are reviewed later.")
    plan = RolloutPlan.objects.select_for_update().get(pk=wave.plan_id)
    now = Wave.objects.select_for_update().filter(pk=wave.pk).first()
    if now is None:  # edited meanwhile: an edit cuts the plan's waves again
        raise ActionRefused(
            f"Plan {plan.name!r} was edited since you read it, and its waves were cut again "
            f"(it is now {plan.get_status_display().lower()}). Nothing was decided: read it "
            "again, then decide once it is submitted."
        )
    wave = now
    refusal = access.may_decide(acting_user, wave, plan)
    if refusal is not None:
        raise (PermissionDenied if refusal.forbidden else ActionRefused)(refusal.message)
    if content_hash(plan, frozen_waves(plan)) != plan.content_hash:
        raise ActionRefused(
            f"The accepted iptables owners changed since plan {plan.name!r} was submitted, so "
            "its scans would not judge clusters as approved: edit it and submit it again."
        )
    if plan_hash == "":  # a page's form always sends it: a hand-made request may not
        raise ActionRefused(
            f"Nothing said which version of plan {plan.name!r} you read: reload its page, then "
            "decide."
        )
    if plan_hash is not None and plan_hash != plan.content_hash:
        raise ActionRefused(
            f"Plan {plan.name!r} changed since you read it (you read version {plan_hash[:12]!r}, "
            f"it is now {plan.content_hash[:12]!r}): read it again, then decide."
        )
    return wave, plan


def _refusal_recorded(tried: str, wave: Wave, acting_user: Any, do: Callable[[], R]) -> R:
    """Run a decision; if it is refused, record who tried what and why, in a transaction of its
    own (the refused one rolled back), and refuse."""
    try:
        return do()
    except (PermissionDenied, ActionRefused) as refusal:
        ctx = audit_context.current()
        username = acting_user.get_username() if acting_user is not None else ""
        with transaction.atomic():
            # Throttled like every refusal: past the budget it is only counted, for the
            # minute's summary.
            if attempts.refusal_counted(username, ctx.ip if ctx else None):
                _record_decision_refused(tried, wave, acting_user, refusal)
        raise


def _record_decision_refused(tried: str, wave: Wave, acting_user: Any, refusal: Exception) -> None:
    audit.record(
        RolloutEvent.DECISION_REFUSED,
        acting_user=acting_user,
        obj=wave,
        after={
            "plan": wave.plan_id,
            "wave": wave.index,
            "tried": tried,
            "refusal": str(refusal),
        },
    )


def approve_wave(
    wave: Wave, *, acting_user: Any, comment: str, plan_hash: str | None = None
) -> Wave:
    """Approve a wave of a plan the approver did not write. Once it has the approvals it needs
    it is `approved`, and starts as soon as its other gates (window) are met. A refusal is
    recorded."""
    return _refusal_recorded(
        Decision.APPROVE, wave, acting_user, lambda: _approve(wave, acting_user, comment, plan_hash)
    )


@transaction.atomic
def _approve(wave: Wave, acting_user: Any, comment: str, plan_hash: str | None) -> Wave:
    wave, plan = _decide(wave, acting_user, comment, plan_hash)
    Approval.objects.create(
        wave=wave,
        user=acting_user,
        decision=Decision.APPROVE,
        comment=comment.strip(),
        plan_hash=plan.content_hash,
        created_at=timezone.now(),
    )
    approvals = wave.valid_approvals(plan.content_hash)
    audit.record(
        RolloutEvent.WAVE_APPROVED,
        acting_user=acting_user,
        obj=wave,
        after={
            "plan": plan.pk,
            "wave": wave.index,
            "comment": comment.strip(),
            "plan_hash": plan.content_hash,
            "approvals": approvals,
            "needed": wave.approvals_needed,
        },
    )
    if approvals >= wave.approvals_needed:
        move_wave(wave, WaveStatus.APPROVED, acting_user=acting_user)
        reconcile_soon()
    return wave


def reject_wave(
    wave: Wave, *, acting_user: Any, comment: str, plan_hash: str | None = None
) -> RolloutPlan:
    """Reject a wave: the plan stops (rejected) and lets go of its clusters. A refusal is
    recorded."""
    return _refusal_recorded(
        Decision.REJECT, wave, acting_user, lambda: _reject(wave, acting_user, comment, plan_hash)
    )


@transaction.atomic
def _reject(wave: Wave, acting_user: Any, comment: str, plan_hash: str | None) -> RolloutPlan:
    wave, plan = _decide(wave, acting_user, comment, plan_hash)
    Approval.objects.create(
        wave=wave,
        user=acting_user,
        decision=Decision.REJECT,
        comment=comment.strip(),
        plan_hash=plan.content_hash,
        created_at=timezone.now(),
    )
    move_wave(
        wave, WaveStatus.REJECTED, acting_user=acting_user, details={"comment": comment.strip()}
    )
    for other in plan.waves.exclude(status__in=WAVE_FINAL).order_by("index"):
        move_wave(other, WaveStatus.ABORTED, acting_user=acting_user)
    move_plan(plan, PlanStatus.REJECTED, acting_user=acting_user, finished_at=timezone.now())
    plan.claims.all().delete()
    said = comment.strip() or "no comment"
    notify.announce(
        "plan_rejected",
        plan,
        wave,
        f"Wave {wave.index} rejected by {acting_user.get_username()}: {said}",
    )
    return plan


# --- operator actions on running plans -------------------------------------------------------


def _manage(acting_user: Any) -> None:
    if not access.can_manage_plans(acting_user):
        raise PermissionDenied(access.can_manage_plans.refusal)


def _locked(plan: RolloutPlan) -> RolloutPlan:
    return RolloutPlan.objects.select_for_update().get(pk=plan.pk)


@transaction.atomic
def pause_plan(plan: RolloutPlan, *, acting_user: Any, reason: str) -> RolloutPlan:
    """Stop starting clusters; those being changed finish. Resume continues where it was."""
    _manage(acting_user)
    plan = _locked(plan)
    if plan.status not in PLAN_PAUSABLE:
        raise ActionRefused(f"Plan {plan.name!r} is {plan.get_status_display().lower()}.")
    said = f"Paused by {acting_user.get_username()}: {reason.strip() or 'no reason given'}"
    pause(plan, reason=said, acting_user=acting_user)
    return plan


@transaction.atomic
def resume_plan(plan: RolloutPlan, *, acting_user: Any) -> RolloutPlan:
    _manage(acting_user)
    _refuse_while_stopped(plan, "resumed")
    plan = _locked(plan)
    if plan.status != PlanStatus.PAUSED:
        raise ActionRefused(f"Plan {plan.name!r} is not paused.")
    acknowledged: dict[str, list[str]] = {}
    for wave in plan.waves.filter(status=WaveStatus.PAUSED).order_by("index"):
        failed = wave.targets.filter(status=TargetStatus.FAILED).count()
        allowed = planning.allowed_failures(plan.failure_budget, wave.targets.count())
        if failed > allowed:
            raise ActionRefused(
                f"Wave {wave.index} still has {failed} failed "
                f"cluster{'s' if failed != 1 else ''} ({allowed} allowed): "
                "retry, skip or roll them back first."
            )
        back = wave.paused_from or WaveStatus.RUNNING
        fields: dict[str, Any] = {"paused_from": ""}
        if back == WaveStatus.SOAKING:  # watch a whole soak period again
            fields["soak_until"] = timezone.now() + datetime.timedelta(minutes=plan.soak_minutes)
        move_wave(wave, back, event=RolloutEvent.WAVE_RESUMED, acting_user=acting_user, **fields)
        acknowledged.update(_acknowledge_soak_findings(wave))
    started = plan.waves.exclude(status__in=WAVE_NOT_STARTED)
    move_plan(
        plan,
        PlanStatus.RUNNING if started.exists() else PlanStatus.SUBMITTED,
        event=RolloutEvent.PLAN_RESUMED,
        acting_user=acting_user,
        before={"paused_reason": plan.paused_reason},
        details={"acknowledged": acknowledged} if acknowledged else None,
        paused_reason="",
    )
    reconcile_soon()
    return plan


def _acknowledge_soak_findings(wave: Wave) -> dict[str, list[str]]:
    """What the soak watch paused for is, once an operator resumes, known: not paused for
    again (a node still NotReady, a warning that keeps repeating)."""
    acknowledged = {}
    for target in wave.targets.exclude(soak_findings=[]).select_related("cluster"):
        acknowledged[target.cluster.name] = list(target.soak_findings)
        target.acknowledged = sorted(set(target.acknowledged) | set(target.soak_findings))
        target.soak_findings = []
        target.save(update_fields=["acknowledged", "soak_findings"])
    return acknowledged


@transaction.atomic
def abort_plan(plan: RolloutPlan, *, acting_user: Any, reason: str) -> RolloutPlan:
    """End the plan: clusters not yet changed are skipped and set free. Refused while clusters
    are being changed, so that no operation is left without anyone following it."""
    _manage(acting_user)
    if not (reason or "").strip():
        raise ActionRefused("Say why the plan is aborted: it ends for good.")
    plan = _locked(plan)
    if plan.status not in PLAN_ACTIVE:
        raise ActionRefused(f"Plan {plan.name!r} is {plan.get_status_display().lower()}.")
    busy = plan.targets.filter(status__in=TARGET_CHANGING).count()
    if busy:
        raise ActionRefused(
            f"{busy} cluster{'s are' if busy != 1 else ' is'} being changed right now: pause the "
            "plan, wait until they finish, then abort."
        )
    # Only clusters no worker is changing: one that moved to `enabling` since the count above
    # (its PUT on its way) is left as it is, and the abort refused below.
    move_targets(
        plan.targets.all(),
        TARGET_NOT_CHANGED,
        TargetStatus.SKIPPED,
        acting_user=acting_user,
        error_message="The plan was aborted.",
    )
    if plan.targets.exclude(status__in=TARGET_SETTLED).exists():
        raise ActionRefused(
            "A cluster started being changed just now: pause the plan, wait until it "
            "finishes, then abort."
        )
    for wave in plan.waves.exclude(status__in=WAVE_FINAL).order_by("index"):
        move_wave(wave, WaveStatus.ABORTED, acting_user=acting_user)
    said = f"Aborted by {acting_user.get_username()}: {reason.strip()}"
    move_plan(
        plan,
        PlanStatus.ABORTED,
        acting_user=acting_user,
        details={"reason": said},
        finished_at=timezone.now(),
        paused_reason=said,
    )
    plan.claims.all().delete()
    notify.announce("plan_aborted", plan, reason=said)
    return plan


@transaction.atomic
def retry_target(target: RolloutTarget, *, acting_user: Any) -> RolloutTarget:
    """A failed or blocked cluster starts again from a fresh preflight. Its wave runs again for
    it: a soaking wave soaks again from the start, and a done wave reopens (the waves after it
    start no new cluster until it is done again)."""
    _manage(acting_user)
    plan = target.plan
    if plan.status not in PLAN_ACTIVE:
        raise ActionRefused(
            f"Plan {plan.name!r} is {plan.get_status_display().lower()} and has let its clusters "
            "go: roll this cluster back or mark it done here, or put it in a new plan to change "
            "it again."
        )
    _locked(plan)  # the reconciler's lock first, then the target's: never the other way round
    target.refresh_from_db()
    if target.status == TargetStatus.FAILED and target.error_code.startswith(ROLLBACK_FAILED):
        raise ActionRefused(
            "Its roll back failed: a retry would set the plan's goal on it again. Roll it back "
            "again instead."
        )
    wave = Wave.objects.select_for_update().get(pk=target.wave_id)
    if not move_target(
        target,
        TARGET_RETRYABLE,
        TargetStatus.PENDING,
        acting_user=acting_user,
        details={"last_error": target.error_message, "last_error_code": target.error_code},
        finished_at=None,
        continuation_token="",
        next_step_at=None,
        resent=0,
        retrying_since=None,
    ):
        raise ActionRefused("Only a failed or blocked cluster can be retried.")
    if wave.status in (WaveStatus.SOAKING, WaveStatus.DONE):
        move_wave(
            wave,
            WaveStatus.RUNNING,
            event=RolloutEvent.WAVE_REOPENED,
            acting_user=acting_user,
            details={"was": wave.status, "cluster": target.cluster.name},
            soak_until=None,
            finished_at=None,
        )
    elif wave.status == WaveStatus.PAUSED and wave.paused_from == WaveStatus.SOAKING:
        wave.paused_from, wave.soak_until = WaveStatus.RUNNING, None
        wave.save(update_fields=["paused_from", "soak_until"])
    reconcile_soon()
    return target


@transaction.atomic
def skip_target(target: RolloutTarget, *, acting_user: Any, reason: str) -> RolloutTarget:
    """Leave a cluster out of its plan (never one being changed). What it failed with, if it
    failed, stays on it beside the reason."""
    _manage(acting_user)
    if not (reason or "").strip():
        raise ActionRefused("Say why the cluster is skipped.")
    _locked(target.plan)
    target.refresh_from_db()
    said = f"Skipped by {acting_user.get_username()}: {reason.strip()}"
    if target.error_message:
        said += f" (it had stopped with: {target.error_message})"
    if not move_target(
        target,
        TARGET_SKIPPABLE,
        TargetStatus.SKIPPED,
        acting_user=acting_user,
        details={"reason": reason.strip(), "last_error": target.error_message},
        error_message=said,
    ):
        raise ActionRefused("This cluster is being changed or has finished: it cannot be skipped.")
    ClusterClaim.objects.filter(plan_id=target.plan_id, cluster_id=target.cluster_id).delete()
    return target


@transaction.atomic
def mark_target_done(target: RolloutTarget, *, acting_user: Any, reason: str) -> RolloutTarget:
    """A failed cluster that an operator checked by hand and found where the plan wanted it
    (after a failed roll back: at None) is marked done, saying what was checked; what it failed
    with stays on it."""
    _manage(acting_user)
    reason = (reason or "").strip()
    if not reason:
        raise ActionRefused(
            "Say what you checked by hand: it goes on the cluster and in the audit log."
        )
    _locked(target.plan)
    target.refresh_from_db()
    rolled_back = target.error_code.startswith(ROLLBACK_FAILED)
    done = "rolled back" if rolled_back else "done"
    if not move_target(
        target,
        TARGET_MARKABLE,
        TargetStatus.ROLLED_BACK if rolled_back else TargetStatus.ENABLED,
        event=RolloutEvent.TARGET_MARKED_DONE,
        acting_user=acting_user,
        details={"reason": reason, "last_error": target.error_message},
        error_message=f"Marked {done} by {acting_user.get_username()} after a check by hand: "
        f"{reason} (it had failed with: {target.error_message or target.error_code})",
    ):
        raise ActionRefused("Only a failed cluster can be marked done by hand.")
    reconcile_soon()
    return target


@transaction.atomic
def roll_back_target(target: RolloutTarget, *, acting_user: Any, comment: str) -> RolloutTarget:
    """Return one cluster to mode None. Immediate for an operator (the safe direction), and
    recorded (rollout.target_rollback_started, with the operator's comment) for later review."""
    target = _roll_back(target, acting_user, comment)
    reconcile_soon()
    return target


def _roll_back(target: RolloutTarget, acting_user: Any, comment: str) -> RolloutTarget:
    _manage(acting_user)
    if not (comment or "").strip():
        raise ActionRefused("Say why the cluster is rolled back.")
    if target.plan.goal == Goal.NONE and target.status == TargetStatus.ENABLED:
        raise ActionRefused("This plan rolled the cluster back already: it is at None.")
    _locked(target.plan)
    if not move_target(
        target,
        TARGET_ROLLBACKABLE,
        TargetStatus.ROLLING_BACK,
        acting_user=acting_user,
        details={"comment": comment.strip()},
        continuation_token="",
        finished_at=None,
        next_step_at=None,
    ):
        raise ActionRefused("Only a changed or failed cluster can be rolled back.")
    return target


@transaction.atomic
def roll_back_wave(wave: Wave, *, acting_user: Any, comment: str) -> int:
    """Roll back every changed or failed cluster of a wave; returns how many."""
    _manage(acting_user)
    if not (comment or "").strip():
        raise ActionRefused("Say why the wave is rolled back.")
    states = (TargetStatus.FAILED,) if wave.plan.goal == Goal.NONE else (
        TargetStatus.ENABLED, TargetStatus.FAILED,
    )  # fmt: skip
    targets = list(wave.targets.select_related("plan").filter(status__in=states))
    if not targets:
        raise ActionRefused(f"Wave {wave.index} has no changed or failed cluster to roll back.")
    for target in targets:
        _roll_back(target, acting_user, comment)
    audit.record(
        RolloutEvent.WAVE_ROLLBACK_STARTED,
        acting_user=acting_user,
        obj=wave,
        after={
            "plan": wave.plan_id,
            "wave": wave.index,
            "comment": comment.strip(),
            "clusters": [t.cluster_id for t in targets],
        },
    )
    reconcile_soon()
    return len(targets)
