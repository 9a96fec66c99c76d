"""Rollout pages: the plan list, the new-plan and edit forms with their live preview, one plan
with its waves, one wave with all its clusters, and the buttons that approve, pause, abort,
retry, skip and roll back (each calls one action in rollout/actions.py and shows its refusal as
a message)."""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping
from functools import cached_property
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db import transaction
from django.db.models import Count, Q
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from accounts.access import requires
from accounts.wording import counted
from audit.access import can_export_audit
from audit.refusals import record_refusal
from rollout import access, actions, banner, engine, evidence, outcomes, progress
from rollout.choices import (
    PLAN_ACTIVE,
    PLAN_EDITABLE,
    PLAN_LIVE,
    TARGET_MARKABLE,
    TARGET_RETRYABLE,
    TARGET_ROLLBACKABLE,
    TARGET_SKIPPABLE,
    WAVE_FINAL,
    Decision,
    Goal,
    TargetStatus,
    WaveStatus,
)
from rollout.forms import PlanForm, initial_of
from rollout.models import Approval, PlanAuthor, RolloutPlan, RolloutTarget, Wave
from rollout.preview import checked_preview

PLANS_PER_PAGE = 25
TARGETS_PER_WAVE = 200  # cluster rows shown per wave card
CARD_COLUMNS = (
    "pk", "plan_id", "wave_id", "cluster_id", "position", "status", "attempts", "error_code",
    "error_message", "cluster__name",
)  # fmt: skip
TARGETS_PER_PAGE = 100  # cluster rows per page of a wave's own page
TARGET_ORDER = [s.value for s in TargetStatus]


def target_actions(plan: RolloutPlan) -> dict[str, frozenset[str]]:
    """The states in which a cluster of this plan offers retry, skip, roll back and mark done
    (the actions refuse any other)."""
    return {
        # A finished plan has let its clusters go: a retry would start nothing. In a plan
        # still active, a retry in a done wave reopens it.
        "retryable": TARGET_RETRYABLE if plan.status in PLAN_ACTIVE else frozenset(),
        "skippable": TARGET_SKIPPABLE,
        "markable": TARGET_MARKABLE,
        # A rollback plan's done clusters are at None already.
        "rollbackable": frozenset({TargetStatus.FAILED})
        if plan.goal == Goal.NONE
        else TARGET_ROLLBACKABLE,
    }


def _state_counts(rows: Any) -> list[tuple[str, str, int]]:
    """(status, label, count) in the order of TargetStatus, only states that occur."""
    found = dict(rows)
    labels = dict(TargetStatus.choices)
    return [(s, labels[s], found[s]) for s in TARGET_ORDER if found.get(s)]


# --- the plan list -----------------------------------------------------------------------------
@require_safe
@requires(access.can_view_plans)
def plan_list(request: HttpRequest) -> HttpResponse:
    plans = (
        RolloutPlan.objects.select_related("created_by")
        .annotate(
            wave_total=Count("waves", distinct=True),
            wave_done=Count("waves", filter=Q(waves__status=WaveStatus.DONE), distinct=True),
        )
        .order_by("-created_at", "-pk")
    )
    page = Paginator(plans, PLANS_PER_PAGE).get_page(request.GET.get("page"))
    # One grouped query for the page's target counts, not one per plan.
    by_plan: dict[int, list[tuple[str, int]]] = defaultdict(list)
    for plan_id, status, n in (
        RolloutTarget.objects.filter(plan_id__in=[p.pk for p in page])
        .order_by()
        .values_list("plan_id", "status")
        .annotate(n=Count("pk"))
    ):
        by_plan[plan_id].append((status, n))
    rows = [
        (
            plan,
            _state_counts(by_plan.get(plan.pk, [])),
            outcomes.outcome(plan.status, dict(by_plan.get(plan.pk, [])), plan.goal),
        )
        for plan in page
    ]
    context = {
        "page": page,
        "rows": rows,
        "can_manage": access.can_manage_plans(request.user),
        "can_stop": access.can_emergency_stop(request.user),
        # Every 5 s while a plan on the page is live, else every 30 s (others create plans).
        "live_every": 5 if any(plan.status in PLAN_LIVE for plan in page) else 30,
        "live_url": f"{reverse('rollout:plans')}?live=1&page={page.number}",
    }
    # The page's live part alone, which the page reads again while a plan on it is live.
    live = request.GET.get("live") == "1"
    return render(
        request, "rollout/_plan_table.html" if live else "rollout/plan_list.html", context
    )


# --- a new plan and its preview ----------------------------------------------------------------
@require_POST
@requires(access.can_manage_plans)
def plan_preview(request: HttpRequest) -> HttpResponse:
    """The plan form's preview alone, which the form asks for on every change. The edit form
    names its plan, whose own clusters are then not counted as claimed."""
    form = PlanForm(request.POST)
    editing = request.POST.get("plan", "")
    # An id that is not a plan's (not a number, out of range) previews as a new plan.
    plan = (
        RolloutPlan.objects.filter(pk=int(editing)).first()
        if editing.isascii() and editing.isdigit() and len(editing) <= 18
        else None
    )
    preview = checked_preview(form, preview_only=True, plan=plan)
    return render(request, "rollout/_preview.html", {"form": form, "preview": preview})


@require_http_methods(["GET", "HEAD", "POST"])
@requires(access.can_manage_plans)
def plan_new(request: HttpRequest) -> HttpResponse:
    """The form; posted, it creates the plan and submits it in one go."""
    if request.method != "POST":
        return render(request, "rollout/plan_new.html", {"form": PlanForm(), "preview": None})
    form = PlanForm(request.POST)
    preview = checked_preview(form)
    if preview is not None:
        try:
            # Created and submitted together, or neither: a refused submit leaves no draft.
            with transaction.atomic():
                plan = actions.create_plan(acting_user=request.user, **form.plan_fields())
                plan = actions.submit_plan(plan, acting_user=request.user)
        except (actions.ActionRefused, PermissionDenied) as refusal:
            record_refusal(request, refusal)
            form.add_error(None, str(refusal))
        else:
            banner.forget()
            messages.success(
                request, f"Plan {plan.name!r} submitted: its first wave awaits approval."
            )
            return redirect("rollout:plan", pk=plan.pk)
    return render(request, "rollout/plan_new.html", {"form": form, "preview": preview})


@require_http_methods(["GET", "HEAD", "POST"])
@requires(access.can_manage_plans)
def plan_edit(request: HttpRequest, pk: int) -> HttpResponse:
    """The new-plan form, filled in with a draft or submitted plan; posted, it saves the plan
    (back to draft: its waves and approvals are void) and submits it again, in one go."""
    plan = _plan(pk)
    try:
        actions.refuse_unless_editable(plan)
    except actions.ActionRefused as refusal:
        record_refusal(request, refusal, obj=plan)  # when posted: a page read is not recorded
        messages.error(request, str(refusal))
        return redirect("rollout:plan", pk=plan.pk)
    # Every approval goes with the waves (edit_plan deletes them): say how many beforehand.
    approvals = Approval.objects.filter(wave__plan=plan, decision=Decision.APPROVE).count()
    context: dict[str, Any] = {"editing": plan, "approvals": approvals, "preview": None}
    if request.method != "POST":
        context["form"] = PlanForm(initial=initial_of(plan))
        return render(request, "rollout/plan_new.html", context)
    form = PlanForm(request.POST)
    context["form"] = form
    context["preview"] = preview = checked_preview(form, plan=plan)
    if preview is not None:
        try:
            # Edited and submitted again together, or neither: a refused submit leaves the
            # plan as it was, approvals included.
            with transaction.atomic():
                edited = actions.edit_plan(plan, acting_user=request.user, **form.plan_fields())
                edited = actions.submit_plan(edited, acting_user=request.user)
        except (actions.ActionRefused, PermissionDenied) as refusal:
            record_refusal(request, refusal, obj=plan)
            form.add_error(None, str(refusal))
        else:
            banner.forget()
            voided = (
                f" The {approvals} approval{'s' if approvals != 1 else ''} given for the earlier "
                f"version {'were' if approvals != 1 else 'was'} voided."
                if approvals
                else ""
            )
            messages.success(
                request,
                f"Plan {edited.name!r} saved and submitted again: its waves were cut anew and "
                f"its first wave awaits approval.{voided}",
            )
            return redirect("rollout:plan", pk=edited.pk)
    return render(request, "rollout/plan_new.html", context)


# --- one plan ----------------------------------------------------------------------------------
def _plan_panel(request: HttpRequest, plan: RolloutPlan) -> dict[str, Any]:
    waves = list(plan.waves.order_by("index"))
    # Counts for every target in one grouped query; rows only for the first clusters of each
    # wave, so that a page polled every 3 s stays cheap on a plan of thousands of clusters.
    counts = _counts_by_wave(plan)
    decisions: dict[int, list[Approval]] = defaultdict(list)
    for approval in Approval.objects.filter(wave__plan=plan).select_related("user"):
        decisions[approval.wave_id].append(approval)
    user = request.user
    authors = _authors(plan)
    authorship = _authorship(authors)
    can_manage = access.can_manage_plans(user)
    cards: list[dict[str, Any]] = []
    approvals_given: Counter[int] = Counter()
    for wave in waves:
        current = [a for a in decisions.get(wave.pk, []) if a.plan_hash == plan.content_hash]
        decided_by = {a.user_id for a in current}
        approvals_given[wave.pk] = sum(a.decision == Decision.APPROVE for a in current)
        refusal = access.may_decide(user, wave, plan, decided_by, authorship)
        found = counts.get(wave.pk, {})
        size = sum(found.values())
        states = _state_counts(found.items())
        # The cards show a cluster's name only: not its whole row (tags, windows, ARM ids).
        shown = list(
            wave.targets.select_related("cluster")
            .only(*CARD_COLUMNS)
            .order_by("position")[:TARGETS_PER_WAVE]
        )
        cards.append(
            {
                "wave": wave,
                "size": size,
                "targets": shown,
                "hidden": size - len(shown),
                "states": [
                    (s, label, n, round(100 * n / (size or 1), 1)) for s, label, n in states
                ],
                "approvals": decisions.get(wave.pk, []),
                "progress": progress.progress(found, plan.goal),
                "awaits": (
                    progress.deciders(authorship, decided_by)
                    if wave.status == WaveStatus.AWAITING_APPROVAL and plan.status in PLAN_LIVE
                    else None
                ),
                "approvals_missing": max(0, wave.approvals_needed - approvals_given[wave.pk]),
                "outcome": outcomes.outcome(wave.status, found, plan.goal),
                "can_decide": refusal is None,
                "why_not": _why_not(user, wave, refusal),
                "can_roll_back": can_manage
                and bool(found.get(TargetStatus.ENABLED) or found.get(TargetStatus.FAILED)),
            }
        )
    # Who may still approve: for a wave awaiting approval as its card says, for a later one
    # every approver who did not write the plan.
    available: dict[int, int] = {
        c["wave"].pk: c["awaits"].count for c in cards if c["awaits"] is not None
    }
    everyone = progress.deciders(authorship, ()).count if plan.status in PLAN_LIVE else 0
    everything: Counter[str] = Counter()  # the plan's clusters, for its outcome
    for found in counts.values():
        everything.update(found)
    return {
        "plan": plan,
        "outcome": outcomes.outcome(plan.status, everything, plan.goal),
        "progress": progress.progress(everything, plan.goal),
        "finish": _finish(plan, waves, counts, approvals_given, available, everyone),
        "cards": cards,
        # A finished plan's clusters may still be rolling back: follow them too.
        "polling": plan.status in PLAN_LIVE or bool(everything.get(TargetStatus.ROLLING_BACK)),
        "can_manage": can_manage,
        "authors": authors,
        "editable": can_manage and plan.status in PLAN_EDITABLE,
        **target_actions(plan),
    }


FINISH_SECONDS = 15


def _finish(
    plan: RolloutPlan,
    waves: list[Wave],
    counts: Mapping[int, Mapping[str, int]],
    approvals_given: Mapping[int, int],
    available: Mapping[int, int],
    everyone: int,
) -> progress.Finish | None:
    """`progress.finish`, kept FINISH_SECONDS while nothing it reads has changed: it places
    every open cluster's maintenance window (a few hundred ms for a plan of 1,000 clusters),
    and the page is polled every 3 s. A change of any state, count or approval computes it
    anew."""
    state = (
        plan.pk, plan.status, plan.content_hash, plan.concurrency, plan.soak_minutes,
        plan.respect_maintenance_windows,
        tuple((w.pk, w.status, w.soak_until, w.approvals_needed) for w in waves),
        tuple(sorted((k, tuple(sorted(v.items()))) for k, v in counts.items())),
        tuple(sorted(approvals_given.items())), tuple(sorted(available.items())), everyone,
    )  # fmt: skip
    key = "rollout:finish:" + hashlib.sha256(repr(state).encode()).hexdigest()
    found: progress.Finish | None = cache.get(key)
    if found is None:
        found = progress.finish(
            plan,
            waves,
            progress.open_windows(plan),
            approvals_given,
            lambda wave: available.get(wave.pk, everyone),
        )
        cache.set(key, found, FINISH_SECONDS)
    return found


def _counts_by_wave(plan: RolloutPlan) -> defaultdict[int, dict[str, int]]:
    """wave id → target state → how many, in one grouped query."""
    counts: defaultdict[int, dict[str, int]] = defaultdict(dict)
    for wave_id, status, n in (
        plan.targets.order_by().values_list("wave_id", "status").annotate(n=Count("pk"))
    ):
        counts[wave_id][status] = n
    return counts


def _why_not(user: Any, wave: Wave, refusal: access.Refusal | None) -> str:
    """Why an approver finds no Approve button on a wave awaiting approval; "" when there is
    one, or nothing to explain (not an approver, the wave not up for decision)."""
    if refusal is None or wave.status != WaveStatus.AWAITING_APPROVAL:
        return ""
    if not access.can_approve_waves(user):
        return ""
    return refusal.message


def _authors(plan: RolloutPlan) -> list[PlanAuthor]:
    """Who created, edited and submitted the plan, and which version, oldest first."""
    return list(plan.authors.select_related("user").order_by("at", "pk"))


def _authorship(authors: list[PlanAuthor]) -> dict[int, str]:
    """`RolloutPlan.authorship` from the list already read."""
    found: dict[int, str] = {}
    for author in authors:
        found.setdefault(author.user_id, author.did)
    return found


def _plan(pk: int) -> RolloutPlan:
    return get_object_or_404(RolloutPlan.objects.select_related("created_by"), pk=pk)


@require_safe
@requires(access.can_view_plans)
def plan_detail(request: HttpRequest, pk: int) -> HttpResponse:
    return render(request, "rollout/plan_detail.html", _plan_panel(request, _plan(pk)))


@require_safe
@requires(can_export_audit)
def evidence_pack(request: HttpRequest, pk: int) -> FileResponse:
    """The plan's evidence pack (rollout/evidence.py), a zip; handing it out is recorded."""
    plan = _plan(pk)
    pack = evidence.build(plan, made_by=request.user.get_username())
    evidence.record_export(plan, pack, acting_user=request.user, via="page")
    return FileResponse(
        pack.file, as_attachment=True, filename=pack.filename, content_type="application/zip"
    )


@require_safe
@requires(access.can_view_plans)
def plan_cards(request: HttpRequest, pk: int) -> HttpResponse:
    """The plan page's status and waves alone, which the page polls while the plan is live."""
    return render(request, "rollout/_plan_cards.html", _plan_panel(request, _plan(pk)))


# --- one wave ----------------------------------------------------------------------------------
class KnownCountPaginator(Paginator):
    """A paginator told its count, which the page has already read with the counts by state."""

    def __init__(self, object_list: Any, per_page: int, *, count: int) -> None:
        super().__init__(object_list, per_page)
        self._known_count = count

    @cached_property
    def count(self) -> int:
        return self._known_count


def _wave_panel(request: HttpRequest, pk: int, index: int) -> dict[str, Any]:
    """Everything a wave's page shows, in a fixed number of queries whatever the wave's size:
    the cluster table is one page of one state at a time."""
    plan = _plan(pk)
    waves = list(plan.waves.order_by("index"))  # a handful; gives the previous one and the total
    by_index = {w.index: w for w in waves}
    wave = by_index.get(index)
    if wave is None:
        raise Http404(f"Plan {plan.name!r} has no wave {index}: it has {len(waves)}.")
    counts = _counts_by_wave(plan)  # this wave's, and the previous one's for its outcome
    found = counts[wave.pk]
    previous = by_index.get(index - 1)
    size = sum(found.values())
    states = _state_counts(found.items())
    state = request.GET.get("state", "")
    unknown_state = state if state and state not in TargetStatus.values else ""
    if unknown_state:
        state = ""
    rows = wave.targets.select_related("cluster").order_by("position")
    if state:
        rows = rows.filter(status=state)
    shown = found.get(state, 0) if state else size
    page = KnownCountPaginator(rows, TARGETS_PER_PAGE, count=shown).get_page(
        request.GET.get("page")
    )
    for row in page:  # when the engine stops waiting for each cluster in flight
        setattr(row, "deadline", engine.deadline_of(row))  # noqa: B010
    approvals = list(wave.approvals.select_related("user").order_by("created_at"))
    counted = [
        a for a in approvals if a.decision == Decision.APPROVE and a.plan_hash == plan.content_hash
    ]
    user = request.user
    decided_by = {a.user_id for a in approvals if a.plan_hash == plan.content_hash}
    decided = user.pk in decided_by
    # Read for an approver, whom they may bar; the plan's page shows them to everybody.
    authors = _authors(plan) if access.can_approve_waves(user) else []
    refusal = access.may_decide(user, wave, plan, decided_by, _authorship(authors))
    can_manage = access.can_manage_plans(user)
    # The page as it is now (filter and page number kept), for the buttons to come back to
    # and for the polling to ask for.
    query = {"state": state} if state else {}
    if page.number > 1:
        query["page"] = str(page.number)
    here = f"?{urlencode(query)}" if query else ""
    kwargs = {"pk": plan.pk, "index": wave.index}
    return {
        "plan": plan,
        "wave": wave,
        "wave_count": len(waves),
        "paused_from": WaveStatus(wave.paused_from).label
        if wave.paused_from in WaveStatus.values
        else "",
        "previous": previous,
        "previous_outcome": previous
        and outcomes.outcome(previous.status, counts[previous.pk], plan.goal),
        "outcome": outcomes.outcome(wave.status, found, plan.goal),
        "next_wave": by_index.get(index + 1),
        "size": size,
        "states": [(s, label, n, round(100 * n / (size or 1), 1)) for s, label, n in states],
        "state": state,
        "state_label": TargetStatus(state).label if state else "",
        "unknown_state": unknown_state,
        "page": page,
        "page_url": reverse("rollout:wave", kwargs=kwargs) + here,
        "panel_url": reverse("rollout:wave_panel", kwargs=kwargs) + here,
        "filter_query": urlencode({"state": state}) if state else "",
        "approvals": approvals,
        "approvals_counted": len(counted),
        "polling": wave.status not in WAVE_FINAL or bool(found.get(TargetStatus.ROLLING_BACK)),
        "plan_live": plan.status in PLAN_LIVE,
        "can_manage": can_manage,
        "authors": authors,
        "decided": decided,
        "can_decide": refusal is None,
        "why_not": "" if decided else _why_not(user, wave, refusal),
        "can_roll_back": can_manage
        and bool(found.get(TargetStatus.ENABLED) or found.get(TargetStatus.FAILED)),
        "waiting_for_window": found.get(TargetStatus.WAITING_FOR_WINDOW, 0),
        **target_actions(plan),
    }


@require_safe
@requires(access.can_view_plans)
def wave_detail(request: HttpRequest, pk: int, index: int) -> HttpResponse:
    return render(request, "rollout/wave_detail.html", _wave_panel(request, pk, index))


@require_safe
@requires(access.can_view_plans)
def wave_panel(request: HttpRequest, pk: int, index: int) -> HttpResponse:
    """The wave page's gates and clusters alone, which the page polls while the wave is live."""
    return render(request, "rollout/_wave_panel.html", _wave_panel(request, pk, index))


def _act(
    request: HttpRequest, plan_pk: int, do: Callable[[], str], *, refusal_recorded: bool = False
) -> HttpResponse:
    """Do it and say what was done, or record the refusal (unless the action recorded it
    itself: `refusal_recorded`) and say why not."""
    try:
        done = do()
    except (actions.ActionRefused, PermissionDenied) as refusal:
        if not refusal_recorded:
            record_refusal(request, refusal, plan_id=plan_pk)
        messages.error(request, str(refusal))
    else:
        banner.forget()
        messages.success(request, done)
    return _back(request, plan_pk)


def _back(request: HttpRequest, plan_pk: int) -> HttpResponse:
    """Back to the page the button was on: the form's `next` when it is a page of this plan
    (a wave's page, with its filter), else the plan's page."""
    plan_url = reverse("rollout:plan", kwargs={"pk": plan_pk})
    back = request.POST.get("next", "")
    if back.startswith(plan_url) and url_has_allowed_host_and_scheme(
        back, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return redirect(back)
    return redirect(plan_url)


def _comment(request: HttpRequest) -> str:
    return request.POST.get("comment", "")


@require_POST
@requires(access.can_approve_waves)
def wave_approve(request: HttpRequest, pk: int, wave_id: int) -> HttpResponse:
    wave = get_object_or_404(Wave, pk=wave_id, plan_id=pk)

    def do() -> str:
        done = actions.approve_wave(
            wave,
            acting_user=request.user,
            comment=_comment(request),
            # The version the page showed: an approval is never of whatever is current.
            plan_hash=request.POST.get("plan_hash", ""),
        )
        if done.status == WaveStatus.AWAITING_APPROVAL:
            missing = done.approvals_needed - done.valid_approvals(done.plan.content_hash)
            return (
                f"You approved wave {done.index}; it needs {counted(missing, 'more approval')} "
                "from another approver."
            )
        return f"You approved wave {done.index}; it is {done.get_status_display().lower()}."

    # A refused decision is recorded by the action (rollout.decision_refused).
    return _act(request, pk, do, refusal_recorded=True)


@require_POST
@requires(access.can_approve_waves)
def wave_reject(request: HttpRequest, pk: int, wave_id: int) -> HttpResponse:
    wave = get_object_or_404(Wave, pk=wave_id, plan_id=pk)

    def do() -> str:
        actions.reject_wave(
            wave,
            acting_user=request.user,
            comment=_comment(request),
            plan_hash=request.POST.get("plan_hash"),
        )
        return f"You rejected wave {wave.index}: the plan has stopped."

    return _act(request, pk, do, refusal_recorded=True)


@require_POST
@requires(access.can_manage_plans)
def wave_roll_back(request: HttpRequest, pk: int, wave_id: int) -> HttpResponse:
    wave = get_object_or_404(Wave, pk=wave_id, plan_id=pk)

    def do() -> str:
        n = actions.roll_back_wave(wave, acting_user=request.user, comment=_comment(request))
        return f"{counted(n, 'cluster')} of wave {wave.index} rolling back."

    return _act(request, pk, do)


@require_POST
@requires(access.can_manage_plans)
def plan_pause(request: HttpRequest, pk: int) -> HttpResponse:
    plan = get_object_or_404(RolloutPlan, pk=pk)

    def do() -> str:
        actions.pause_plan(plan, acting_user=request.user, reason=_comment(request))
        return "Plan paused: clusters being changed finish, no new ones start."

    return _act(request, pk, do)


@require_POST
@requires(access.can_manage_plans)
def plan_resume(request: HttpRequest, pk: int) -> HttpResponse:
    plan = get_object_or_404(RolloutPlan, pk=pk)

    def do() -> str:
        actions.resume_plan(plan, acting_user=request.user)
        return "Plan resumed."

    return _act(request, pk, do)


@require_POST
@requires(access.can_manage_plans)
def plan_abort(request: HttpRequest, pk: int) -> HttpResponse:
    plan = get_object_or_404(RolloutPlan, pk=pk)

    def do() -> str:
        actions.abort_plan(plan, acting_user=request.user, reason=_comment(request))
        return "Plan aborted: its clusters not yet changed are skipped and set free."

    return _act(request, pk, do)


def _target(pk: int, target_id: int) -> RolloutTarget:
    return get_object_or_404(
        RolloutTarget.objects.select_related("cluster"), pk=target_id, plan_id=pk
    )


@require_POST
@requires(access.can_manage_plans)
def target_retry(request: HttpRequest, pk: int, target_id: int) -> HttpResponse:
    target = _target(pk, target_id)

    def do() -> str:
        actions.retry_target(target, acting_user=request.user)
        return f"{target.cluster.name} starts again from a fresh preflight."

    return _act(request, pk, do)


@require_POST
@requires(access.can_manage_plans)
def target_skip(request: HttpRequest, pk: int, target_id: int) -> HttpResponse:
    target = _target(pk, target_id)

    def do() -> str:
        actions.skip_target(target, acting_user=request.user, reason=_comment(request))
        return f"{target.cluster.name} skipped."

    return _act(request, pk, do)


@require_POST
@requires(access.can_manage_plans)
def target_roll_back(request: HttpRequest, pk: int, target_id: int) -> HttpResponse:
    target = _target(pk, target_id)

    def do() -> str:
        actions.roll_back_target(target, acting_user=request.user, comment=_comment(request))
        return f"{target.cluster.name} rolling back to mode None."

    return _act(request, pk, do)


@require_POST
@requires(access.can_manage_plans)
def target_mark_done(request: HttpRequest, pk: int, target_id: int) -> HttpResponse:
    target = _target(pk, target_id)

    def do() -> str:
        target_now = actions.mark_target_done(
            target, acting_user=request.user, reason=_comment(request)
        )
        return f"{target.cluster.name} marked {target_now.get_status_display().lower()} by hand."

    return _act(request, pk, do)
