"""Plans, their waves and targets, and the emergency stop, for scripts.

Every change goes through rollout.actions / rollout.emergency, as the pages' do, with the same
permission checks, four-eyes rule, refusals and audit events; plans are checked by the same
form as the new-plan page (rollout.forms.form_from), so an API client reads the page's words.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db import transaction
from django.shortcuts import get_object_or_404
from django.urls import URLPattern, path
from django_filters import rest_framework as filters
from drf_spectacular.utils import OpenApiExample, extend_schema, extend_schema_view
from rest_framework import generics, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.access import Rule
from accounts.wording import counted
from api.common import PAGING, WholeNumberFilter, allowed, body, known_params, no_body, page_url
from api.errors import Invalid, perform
from api.pagination import OldestFirst
from rollout import access, actions, emergency, report
from rollout.choices import Goal, PlanStatus, TargetStatus, WaveStatus
from rollout.forms import NotAPlan, PlanForm, form_from
from rollout.models import EmergencyStop, RolloutPlan, RolloutTarget, Wave
from rollout.preview import Preview, checked_preview


# --- what goes out ----------------------------------------------------------------------------
class PlanSerializer(serializers.ModelSerializer[RolloutPlan]):
    created_by = serializers.CharField(source="created_by.username", read_only=True)
    url = serializers.SerializerMethodField()

    class Meta:
        model = RolloutPlan
        fields = [
            "id", "name", "goal", "status", "selection", "wave_spec", "concurrency",
            "failure_budget", "soak_minutes", "respect_maintenance_windows", "approvals_needed",
            "content_hash", "paused_reason", "created_by", "created_at", "submitted_at",
            "finished_at", "url",
        ]  # fmt: skip

    def get_url(self, plan: RolloutPlan) -> str:
        return page_url("rollout:plan", pk=plan.pk)


class ProgressSerializer(serializers.Serializer[Any]):
    total = serializers.IntegerField()
    done = serializers.IntegerField()
    in_flight = serializers.IntegerField()
    not_started = serializers.IntegerField()
    failed = serializers.IntegerField()
    skipped = serializers.IntegerField()
    rolled_back = serializers.IntegerField()
    settled = serializers.IntegerField()
    percent_settled = serializers.IntegerField()
    by_state = serializers.DictField(child=serializers.IntegerField())


class OutcomeSerializer(serializers.Serializer[Any]):
    headline = serializers.CharField()
    tone = serializers.CharField()
    detail = serializers.CharField()


class FinishSerializer(serializers.Serializer[Any]):
    at = serializers.DateTimeField(allow_null=True)
    minutes = serializers.IntegerField(allow_null=True)
    conditions = serializers.ListField(child=serializers.CharField())
    blocked = serializers.ListField(child=serializers.CharField())
    paused = serializers.BooleanField()


class WaveStatusSerializer(serializers.Serializer[Any]):
    index = serializers.IntegerField()
    status = serializers.ChoiceField(choices=WaveStatus.choices)
    approvals_needed = serializers.IntegerField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    soak_until = serializers.DateTimeField(allow_null=True)
    progress = ProgressSerializer()
    outcome = OutcomeSerializer(allow_null=True)


class StatusSerializer(serializers.Serializer[Any]):
    """rollout.report.plan_status, as the plan's page shows it."""

    id = serializers.IntegerField()
    name = serializers.CharField()
    status = serializers.ChoiceField(choices=PlanStatus.choices)
    status_label = serializers.CharField()
    finished = serializers.BooleanField(help_text="Completed, rejected or aborted.")
    paused_reason = serializers.CharField(allow_blank=True)
    content_hash = serializers.CharField(allow_blank=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    url = serializers.URLField()
    progress = ProgressSerializer()
    outcome = OutcomeSerializer(allow_null=True)
    finish = FinishSerializer(allow_null=True)
    waves = WaveStatusSerializer(many=True)


class DoneSerializer(serializers.Serializer[Any]):
    message = serializers.CharField(help_text="What was done, as the page says it.")
    plan = StatusSerializer()


class TargetSerializer(serializers.ModelSerializer[RolloutTarget]):
    cluster_name = serializers.CharField(source="cluster.name", read_only=True)
    wave = serializers.IntegerField(source="wave.index", read_only=True)

    class Meta:
        model = RolloutTarget
        fields = [
            "id", "cluster", "cluster_name", "wave", "position", "status", "attempts",
            "error_code", "error_message", "started_at", "finished_at", "status_since",
        ]  # fmt: skip


class TargetDoneSerializer(serializers.Serializer[Any]):
    message = serializers.CharField()
    target = TargetSerializer()


# --- what comes in ----------------------------------------------------------------------------
class PlanFieldsSerializer(serializers.Serializer[Any]):
    """A plan's fields as the new-plan page takes them (types only here: the page's form checks
    the values, in its words)."""

    name = serializers.CharField(max_length=200)
    goal = serializers.ChoiceField(choices=Goal.choices, required=False)
    subscriptions = serializers.ListField(
        child=serializers.CharField(), required=False, help_text="None: every subscription."
    )
    regions = serializers.ListField(
        child=serializers.CharField(), required=False, help_text="None: every region."
    )
    rings = serializers.ListField(
        child=serializers.CharField(allow_blank=True), required=False, help_text="None: all."
    )
    tags = serializers.DictField(
        child=serializers.CharField(allow_blank=True),
        required=False,
        help_text="A cluster must carry every one.",
    )
    names = serializers.ListField(
        child=serializers.CharField(),
        required=False,
        help_text="Names or shell-style patterns (aks-prod-*); any may match.",
    )
    wave_spec = serializers.CharField(
        required=False, help_text="Cumulative clusters after each wave: '1, 5%, 25%, 100%'."
    )
    concurrency = serializers.IntegerField(required=False)
    failure_budget = serializers.CharField(required=False, help_text="0, 3 or 10%.")
    soak_minutes = serializers.IntegerField(required=False)
    respect_maintenance_windows = serializers.BooleanField(required=False)
    approvals_needed = serializers.IntegerField(required=False)


class PlanCreateSerializer(PlanFieldsSerializer):
    submit = serializers.BooleanField(
        default=False, help_text="Submit it at once (as the page does): its first wave awaits "
        "approval. A refused submit leaves no draft."
    )  # fmt: skip


class PlanEditSerializer(PlanFieldsSerializer):
    name = serializers.CharField(max_length=200, required=False)
    submit = serializers.BooleanField(
        default=False, help_text="Submit it again at once (as the edit page does)."
    )


class PreviewInputSerializer(PlanFieldsSerializer):
    name = serializers.CharField(max_length=200, required=False)


_SAY_WHY = {
    "required": "Say why: it goes in the audit log, and the page asks for it too.",
    "blank": "Say why: it goes in the audit log, and the page asks for it too.",
}


class ReasonSerializer(serializers.Serializer[Any]):
    reason = serializers.CharField(error_messages=_SAY_WHY)


class OptionalReasonSerializer(serializers.Serializer[Any]):
    reason = serializers.CharField(allow_blank=True, required=False, default="")


class CommentSerializer(serializers.Serializer[Any]):
    comment = serializers.CharField(error_messages=_SAY_WHY)


class ApprovalSerializer(CommentSerializer):
    plan_hash = serializers.CharField(
        help_text="The plan's content_hash you reviewed: refused if the plan changed since. "
        "Required: an approval is of the version read, never of whatever is current.",
        error_messages={
            "required": "Send the content_hash of the plan you reviewed as plan_hash: an "
            "approval is bound to the version read.",
            "blank": "Send the content_hash of the plan you reviewed as plan_hash.",
            "null": "Send the content_hash of the plan you reviewed as plan_hash.",
        },
    )


class DecisionSerializer(CommentSerializer):
    plan_hash = serializers.CharField(
        required=False,
        allow_null=True,
        default=None,
        help_text="The plan's content_hash you reviewed: refused if the plan changed since.",
    )


def _plan_form(data: dict[str, Any], base: RolloutPlan | None = None) -> PlanForm:
    try:
        return form_from(data, base=base)
    except NotAPlan as exc:
        raise Invalid(str(exc), exc.field) from exc


def _form_errors(form: PlanForm) -> Invalid:
    errors = {("non_field_errors" if k == "__all__" else k): v for k, v in form.errors.items()}
    first = next(iter(errors))
    invalid = Invalid(str(errors[first][0]), None if first == "non_field_errors" else first)
    invalid.detail = serializers.ValidationError(errors).detail
    return invalid


def _checked(form: PlanForm, *, plan: RolloutPlan | None = None, only: bool = False) -> Preview:
    preview = checked_preview(form, preview_only=only, plan=plan)
    if preview is None:
        raise _form_errors(form)
    return preview


# --- plans --------------------------------------------------------------------------------------
class PlanFilter(filters.FilterSet):
    status = filters.MultipleChoiceFilter(choices=PlanStatus.choices)
    goal = filters.ChoiceFilter(choices=Goal.choices)
    name = filters.CharFilter(lookup_expr="icontains")

    class Meta:
        model = RolloutPlan
        fields = ["status", "goal", "name"]


PLAN_EXAMPLE = OpenApiExample(
    "A canary plan",
    value={
        "name": "bpfveth-canary",
        "rings": ["canary"],
        "wave_spec": "1, 100%",
        "concurrency": 5,
        "failure_budget": "0",
        "soak_minutes": 30,
        "approvals_needed": 1,
        "submit": True,
    },
    request_only=True,
)


@extend_schema_view(get=extend_schema(summary="Plans, newest first, by state, goal or name"))
class PlanList(generics.ListCreateAPIView[RolloutPlan]):
    serializer_class = PlanSerializer
    filterset_class = PlanFilter
    queryset = RolloutPlan.objects.select_related("created_by").order_by("-pk")

    def get_queryset(self) -> Any:
        allowed(self.request, access.can_view_plans)
        if self.request.method == "GET":
            known_params(self.request, [*PlanFilter.base_filters, *PAGING])
        return super().get_queryset()

    @extend_schema(
        summary="Create a plan (and submit it)",
        request=PlanCreateSerializer,
        responses={201: PlanSerializer},
        examples=[PLAN_EXAMPLE],
    )
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        allowed(request, access.can_manage_plans)  # first, as the page: the refusal is recorded
        data = body(PlanCreateSerializer, request)
        submit = data.pop("submit")
        form = _plan_form(data)
        _checked(form)

        def do() -> RolloutPlan:
            # Created and submitted together, or neither (the page's rule).
            with transaction.atomic():
                plan = actions.create_plan(acting_user=request.user, **form.plan_fields())
                return actions.submit_plan(plan, acting_user=request.user) if submit else plan

        plan = perform(request, do)
        return Response(PlanSerializer(plan).data, status=status.HTTP_201_CREATED)


def _plan(request: Request, pk: int) -> RolloutPlan:
    allowed(request, access.can_view_plans)
    return get_object_or_404(RolloutPlan.objects.select_related("created_by"), pk=pk)


class PlanDetail(APIView):
    @extend_schema(summary="One plan", responses=PlanSerializer)
    def get(self, request: Request, pk: int) -> Response:
        return Response(PlanSerializer(_plan(request, pk)).data)

    @extend_schema(
        summary="Edit a draft or submitted plan (it goes back to draft)",
        request=PlanEditSerializer,
        responses=PlanSerializer,
    )
    def patch(self, request: Request, pk: int) -> Response:
        plan = _plan(request, pk)
        allowed(request, access.can_manage_plans)
        # The state before the input, as the page: a plan past submission is refused (409,
        # recorded) whatever was sent.
        perform(request, lambda: actions.refuse_unless_editable(plan), obj=plan)
        data = body(PlanEditSerializer, request)
        submit = data.pop("submit")
        form = _plan_form(data, base=plan)
        _checked(form, plan=plan)

        def do() -> RolloutPlan:
            with transaction.atomic():
                edited = actions.edit_plan(plan, acting_user=request.user, **form.plan_fields())
                return actions.submit_plan(edited, acting_user=request.user) if submit else edited

        return Response(PlanSerializer(perform(request, do, obj=plan)).data)


_PROGRESS = {
    "total": 3, "done": 1, "in_flight": 0, "not_started": 2, "failed": 0, "skipped": 0,
    "rolled_back": 0, "settled": 1, "percent_settled": 33,
    "by_state": {"enabled": 1, "pending": 2},
}  # fmt: skip
STATUS_EXAMPLE = OpenApiExample(
    "Wave 1 done, wave 2 awaiting approval",
    value={
        "id": 7, "name": "bpfveth-canary", "status": "running", "status_label": "Running",
        "finished": False, "paused_reason": "", "content_hash": "9f2c…",
        "finished_at": None, "url": "https://wavegate.example/plans/7/",
        "progress": _PROGRESS, "outcome": None,
        "finish": {
            "at": "2026-12-04T16:40:00+00:00", "minutes": 62,
            "conditions": ["if the 1 approval still needed is given as soon as asked"],
            "blocked": [], "paused": False,
        },
        "waves": [
            {"index": 1, "status": "done", "approvals_needed": 1,
             "started_at": "2026-12-04T15:02:00+00:00", "finished_at": "2026-12-04T15:38:00+00:00",
             "soak_until": None, "progress": {**_PROGRESS, "total": 1, "not_started": 0,
                                              "percent_settled": 100, "by_state": {"enabled": 1}},
             "outcome": {"headline": "Done", "tone": "ok", "detail": "1 cluster enabled"}},
        ],
    },
    response_only=True,
)  # fmt: skip
APPROVE_EXAMPLE = OpenApiExample(
    "Approve the version you reviewed",
    value={"comment": "canary looked fine", "plan_hash": "9f2c…"},
    request_only=True,
)


class PlanStatusView(APIView):
    @extend_schema(
        summary="Where a plan is: its state, waves, clusters, outcome and earliest finish",
        responses=StatusSerializer,
        examples=[STATUS_EXAMPLE],
    )
    def get(self, request: Request, pk: int) -> Response:
        return Response(report.plan_status(_plan(request, pk)))


class WaveOut(serializers.Serializer[Any]):
    index = serializers.IntegerField()
    size = serializers.IntegerField()
    first_names = serializers.ListField(child=serializers.CharField())
    minutes = serializers.IntegerField()
    waiting = serializers.IntegerField()
    unplaced = serializers.IntegerField()


class ExcludedOut(serializers.Serializer[Any]):
    cluster = serializers.IntegerField()
    name = serializers.CharField()
    reason = serializers.CharField()


class RowOut(serializers.Serializer[Any]):
    wave = serializers.IntegerField()
    id = serializers.IntegerField()
    name = serializers.CharField()
    subscription = serializers.CharField()
    subscription_id = serializers.CharField()
    ring = serializers.CharField(allow_blank=True)
    region = serializers.CharField()
    preflight = serializers.CharField(allow_blank=True)
    scanned = serializers.DateTimeField(allow_null=True)
    stale = serializers.BooleanField()
    window = serializers.CharField(allow_blank=True)
    opening = serializers.CharField()


class PreviewSerializer(serializers.Serializer[Any]):
    clusters = serializers.IntegerField()
    minutes = serializers.IntegerField()
    duration = serializers.CharField()
    waves = WaveOut(many=True)
    excluded = ExcludedOut(many=True)
    rows = RowOut(many=True, help_text="The first clusters, as the page's table lists them.")
    more_rows = serializers.IntegerField()


def _preview_data(preview: Preview) -> dict[str, Any]:
    return {
        "clusters": preview.clusters,
        "minutes": preview.minutes,
        "duration": preview.duration,
        "waves": [vars(w) for w in preview.waves],
        "excluded": [
            {"cluster": e.candidate.id, "name": e.candidate.name, "reason": e.reason}
            for e in preview.excluded
        ],
        "rows": [vars(r) for r in preview.rows],
        "more_rows": preview.more_rows,
    }


class PlanPreview(APIView):
    read_only_safe = True  # a POST that saves nothing: read-only tokens may preview

    @extend_schema(
        summary="The waves a plan would cut now (nothing is saved)",
        request=PreviewInputSerializer,
        responses=PreviewSerializer,
    )
    def post(self, request: Request) -> Response:
        allowed(request, access.can_view_plans)
        data = body(PreviewInputSerializer, request)
        preview = _checked(_plan_form(data), only=True)
        return Response(_preview_data(preview))


class SavedPlanPreview(APIView):
    @extend_schema(
        summary="The waves this plan would cut now, over today's inventory",
        responses=PreviewSerializer,
    )
    def get(self, request: Request, pk: int) -> Response:
        plan = _plan(request, pk)
        preview = _checked(_plan_form({}, base=plan), plan=plan, only=True)
        return Response(_preview_data(preview))


# --- plan actions -------------------------------------------------------------------------------
Act = Callable[[Request, RolloutPlan, dict[str, Any]], str]


def _plan_action(
    summary: str,
    shape: type[serializers.Serializer[Any]] | None,
    act: Act,
    rule: Rule = access.can_manage_plans,
) -> type[APIView]:
    """A POST that runs one action function on a plan and says what it did."""

    @extend_schema(summary=summary, request=shape, responses=DoneSerializer)
    def post(self: APIView, request: Request, pk: int) -> Response:
        plan = _plan(request, pk)
        allowed(request, rule)  # the role first, as the page's decorator: then the input
        data = body(shape, request) if shape is not None else no_body(request)
        message = perform(request, lambda: act(request, plan, data), plan_id=plan.pk)
        plan.refresh_from_db()
        return Response({"message": message, "plan": report.plan_status(plan)})

    return type(f"Plan{summary.split()[0]}", (APIView,), {"post": post})


def _submit(request: Request, plan: RolloutPlan, data: dict[str, Any]) -> str:
    actions.submit_plan(plan, acting_user=request.user)
    return f"Plan {plan.name!r} submitted: its first wave awaits approval."


def _pause(request: Request, plan: RolloutPlan, data: dict[str, Any]) -> str:
    actions.pause_plan(plan, acting_user=request.user, reason=data["reason"])
    return "Plan paused: clusters being changed finish, no new ones start."


def _resume(request: Request, plan: RolloutPlan, data: dict[str, Any]) -> str:
    actions.resume_plan(plan, acting_user=request.user)
    return "Plan resumed."


def _abort(request: Request, plan: RolloutPlan, data: dict[str, Any]) -> str:
    actions.abort_plan(plan, acting_user=request.user, reason=data["reason"])
    return "Plan aborted: its clusters not yet changed are skipped and set free."


# --- waves ----------------------------------------------------------------------------------------
def _wave(request: Request, pk: int, index: int) -> Wave:
    plan = _plan(request, pk)
    return get_object_or_404(Wave.objects.select_related("plan"), plan=plan, index=index)


class WaveList(APIView):
    @extend_schema(summary="A plan's waves", responses=WaveStatusSerializer(many=True))
    def get(self, request: Request, pk: int) -> Response:
        return Response(report.plan_status(_plan(request, pk))["waves"])


class WaveDetail(APIView):
    @extend_schema(summary="One wave", responses=WaveStatusSerializer)
    def get(self, request: Request, pk: int, index: int) -> Response:
        wave = _wave(request, pk, index)
        return Response(report.plan_status(wave.plan)["waves"][wave.index - 1])


WaveAct = Callable[[Request, Wave, dict[str, Any]], str]


def _wave_action(
    summary: str,
    shape: type[serializers.Serializer[Any]],
    act: WaveAct,
    *,
    recorded: bool,
    rule: Rule = access.can_manage_plans,
) -> type[APIView]:
    @extend_schema(
        summary=summary,
        request=shape,
        responses=DoneSerializer,
        examples=[APPROVE_EXAMPLE] if shape is ApprovalSerializer else [],
    )
    def post(self: APIView, request: Request, pk: int, index: int) -> Response:
        wave = _wave(request, pk, index)
        allowed(request, rule)
        data = body(shape, request)
        message = perform(
            request, lambda: act(request, wave, data), refusal_recorded=recorded, plan_id=pk
        )
        wave.plan.refresh_from_db()  # the action changed its own copy of the plan
        return Response({"message": message, "plan": report.plan_status(wave.plan)})

    return type(f"Wave{summary.split()[0]}", (APIView,), {"post": post})


def _approve(request: Request, wave: Wave, data: dict[str, Any]) -> str:
    done = actions.approve_wave(
        wave, acting_user=request.user, comment=data["comment"], plan_hash=data["plan_hash"]
    )
    if done.status == WaveStatus.AWAITING_APPROVAL:
        missing = done.approvals_needed - done.valid_approvals(done.plan.content_hash)
        return (
            f"You approved wave {done.index}; it needs {counted(missing, 'more approval')} "
            "from another approver."
        )
    return f"You approved wave {done.index}; it is {done.get_status_display().lower()}."


def _reject(request: Request, wave: Wave, data: dict[str, Any]) -> str:
    actions.reject_wave(
        wave, acting_user=request.user, comment=data["comment"], plan_hash=data["plan_hash"]
    )
    return f"You rejected wave {wave.index}: the plan has stopped."


def _roll_back_wave(request: Request, wave: Wave, data: dict[str, Any]) -> str:
    n = actions.roll_back_wave(wave, acting_user=request.user, comment=data["comment"])
    return f"{counted(n, 'cluster')} of wave {wave.index} rolling back."


# --- targets --------------------------------------------------------------------------------------
class TargetFilter(filters.FilterSet):
    wave = WholeNumberFilter(field_name="wave__index")
    status = filters.MultipleChoiceFilter(choices=TargetStatus.choices)
    cluster = filters.CharFilter(field_name="cluster__name", lookup_expr="icontains")

    class Meta:
        model = RolloutTarget
        fields = ["wave", "status", "cluster"]


@extend_schema_view(get=extend_schema(summary="A plan's clusters in order, by wave or state"))
class TargetList(generics.ListAPIView[RolloutTarget]):
    serializer_class = TargetSerializer
    filterset_class = TargetFilter
    pagination_class = OldestFirst

    queryset = RolloutTarget.objects.none()  # the schema's model; requests read get_queryset

    def get_queryset(self) -> Any:
        if getattr(self, "swagger_fake_view", False):
            return self.queryset
        plan = _plan(self.request, self.kwargs["pk"])
        known_params(self.request, [*TargetFilter.base_filters, *PAGING])
        return RolloutTarget.objects.filter(plan=plan).select_related("cluster", "wave")


TargetAct = Callable[[Request, RolloutTarget, dict[str, Any]], str]


def _target_action(
    summary: str, shape: type[serializers.Serializer[Any]] | None, act: TargetAct
) -> type[APIView]:
    """A POST that runs one action function on a plan's cluster (operators and admins)."""

    @extend_schema(summary=summary, request=shape, responses=TargetDoneSerializer)
    def post(self: APIView, request: Request, pk: int, target_id: int) -> Response:
        plan = _plan(request, pk)
        target = get_object_or_404(
            RolloutTarget.objects.select_related("cluster", "wave"), pk=target_id, plan=plan
        )
        allowed(request, access.can_manage_plans)
        data = body(shape, request) if shape is not None else no_body(request)
        message = perform(request, lambda: act(request, target, data), plan_id=pk)
        target.refresh_from_db()
        return Response({"message": message, "target": TargetSerializer(target).data})

    return type(f"Target{summary.split()[0]}", (APIView,), {"post": post})


def _retry(request: Request, target: RolloutTarget, data: dict[str, Any]) -> str:
    actions.retry_target(target, acting_user=request.user)
    return f"{target.cluster.name} starts again from a fresh preflight."


def _skip(request: Request, target: RolloutTarget, data: dict[str, Any]) -> str:
    actions.skip_target(target, acting_user=request.user, reason=data["reason"])
    return f"{target.cluster.name} skipped."


def _roll_back_target(request: Request, target: RolloutTarget, data: dict[str, Any]) -> str:
    actions.roll_back_target(target, acting_user=request.user, comment=data["comment"])
    return f"{target.cluster.name} rolling back to mode None."


def _mark_done(request: Request, target: RolloutTarget, data: dict[str, Any]) -> str:
    now = actions.mark_target_done(target, acting_user=request.user, reason=data["reason"])
    return f"{target.cluster.name} marked {now.get_status_display().lower()} by hand."


# --- the emergency stop -------------------------------------------------------------------------
class StopSerializer(serializers.Serializer[Any]):
    in_force = serializers.BooleanField()
    started_at = serializers.DateTimeField(allow_null=True)
    started_by = serializers.CharField(allow_null=True)
    reason = serializers.CharField(allow_blank=True)
    plans = serializers.ListField(
        child=serializers.CharField(), help_text="Plans a stop would pause now."
    )
    in_flight = serializers.IntegerField(help_text="Their clusters being changed now.")
    not_started = serializers.IntegerField(help_text="Their clusters not started yet.")


def _stop_state() -> dict[str, Any]:
    stop = EmergencyStop.in_force()
    reach = emergency.reach()
    return {
        "in_force": stop is not None,
        "started_at": stop.started_at if stop else None,
        "started_by": stop.started_by.get_username() if stop else None,
        "reason": stop.reason if stop else "",
        "plans": reach.plans,
        "in_flight": reach.in_flight,
        "not_started": reach.not_started,
    }


class EmergencyStopView(APIView):
    @extend_schema(
        summary="Is an emergency stop in force, and what would one stop", responses=StopSerializer
    )
    def get(self, request: Request) -> Response:
        allowed(request, access.can_view_plans)
        return Response(StopSerializer(_stop_state()).data)

    @extend_schema(
        summary="Stop everything: pause every submitted or running plan",
        request=ReasonSerializer,
        responses={201: StopSerializer},
    )
    def post(self, request: Request) -> Response:
        allowed(request, access.can_emergency_stop)
        reason = body(ReasonSerializer, request)["reason"]
        perform(request, lambda: emergency.stop_everything(acting_user=request.user, reason=reason))
        return Response(StopSerializer(_stop_state()).data, status=status.HTTP_201_CREATED)


class EmergencyLift(APIView):
    @extend_schema(
        summary="Lift the emergency stop (its plans stay paused)",
        request=ReasonSerializer,
        responses=StopSerializer,
    )
    def post(self, request: Request) -> Response:
        allowed(request, access.can_emergency_stop)
        reason = body(ReasonSerializer, request)["reason"]
        perform(request, lambda: emergency.lift(acting_user=request.user, reason=reason))
        return Response(StopSerializer(_stop_state()).data)


urlpatterns: list[URLPattern] = [
    path("plans/", PlanList.as_view(), name="plans"),
    path("plans/preview/", PlanPreview.as_view(), name="plan_preview"),
    path("plans/<int:pk>/", PlanDetail.as_view(), name="plan"),
    path("plans/<int:pk>/status/", PlanStatusView.as_view(), name="plan_status"),
    path("plans/<int:pk>/preview/", SavedPlanPreview.as_view(), name="plan_saved_preview"),
    path("plans/<int:pk>/submit/", _plan_action("Submit the plan", None, _submit).as_view(),
         name="plan_submit"),
    path("plans/<int:pk>/pause/", _plan_action("Pause the plan", OptionalReasonSerializer, _pause)
         .as_view(), name="plan_pause"),
    path("plans/<int:pk>/resume/", _plan_action("Resume the plan", None, _resume).as_view(),
         name="plan_resume"),
    path("plans/<int:pk>/abort/", _plan_action("Abort the plan", ReasonSerializer, _abort)
         .as_view(), name="plan_abort"),
    path("plans/<int:pk>/waves/", WaveList.as_view(), name="waves"),
    path("plans/<int:pk>/waves/<int:index>/", WaveDetail.as_view(), name="wave"),
    path("plans/<int:pk>/waves/<int:index>/approve/", _wave_action(
        "Approve the wave", ApprovalSerializer, _approve, recorded=True,
        rule=access.can_approve_waves).as_view(),
        name="wave_approve"),
    path("plans/<int:pk>/waves/<int:index>/reject/", _wave_action(
        "Reject the wave", DecisionSerializer, _reject, recorded=True,
        rule=access.can_approve_waves).as_view(),
        name="wave_reject"),
    path("plans/<int:pk>/waves/<int:index>/roll-back/", _wave_action(
        "Roll the wave back", CommentSerializer, _roll_back_wave, recorded=False).as_view(),
        name="wave_roll_back"),
    path("plans/<int:pk>/targets/", TargetList.as_view(), name="targets"),
    path("plans/<int:pk>/targets/<int:target_id>/retry/", _target_action(
        "Retry the cluster", None, _retry).as_view(), name="target_retry"),
    path("plans/<int:pk>/targets/<int:target_id>/skip/", _target_action(
        "Skip the cluster", ReasonSerializer, _skip).as_view(), name="target_skip"),
    path("plans/<int:pk>/targets/<int:target_id>/roll-back/", _target_action(
        "Roll the cluster back", CommentSerializer, _roll_back_target).as_view(),
        name="target_roll_back"),
    path("plans/<int:pk>/targets/<int:target_id>/mark-done/", _target_action(
        "Mark the cluster done by hand", ReasonSerializer, _mark_done).as_view(),
        name="target_mark_done"),
    path("emergency-stop/", EmergencyStopView.as_view(), name="emergency_stop"),
    path("emergency-stop/lift/", EmergencyLift.as_view(), name="emergency_lift"),
]  # fmt: skip
