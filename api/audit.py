"""The auditor's desk for scripts: the filtered log, one event, the streamed export, the chain's
state, and a plan's evidence pack.

The same code as the pages: the desk's filter form (audit/filters.py) reads the query, its
`Filters` select the events, the export streams audit/export.py's generator and is recorded as
the page's is, and the evidence pack is rollout/evidence.py's; permissions are audit/access.py's.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.forms.utils import ErrorDict
from django.http import FileResponse, Http404, StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.urls import URLPattern, path
from django_filters import rest_framework as filters
from django_filters.utils import translate_validation
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
)
from rest_framework import generics, serializers
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from api.common import PAGING, WholeNumberFilter, allowed, known_params, page_url
from api.pagination import Cursor
from audit import anchor, export
from audit.access import can_export_audit, can_view_audit
from audit.chain import event_hash
from audit.filters import FILTER_FIELDS, FilterForm, Filters
from audit.kinds import Category, Outcome
from audit.models import AuditCheckpoint, AuditEvent, ChainWatch
from audit.views import coverage, vouches
from rollout import evidence
from rollout.models import RolloutPlan


# --- the filters ---------------------------------------------------------------------------------
class AuditEventFilter(filters.FilterSet):
    """The audit desk's filters, by the page's names and values.

    The page's own form (audit/filters.py FilterForm) checks the query and its `Filters` select
    the events, so the two can never disagree; the filters declared here describe the
    parameters in the schema (tests/api/test_audit_api.py checks they are the form's)."""

    since = filters.IsoDateTimeFilter(
        field_name="at",
        lookup_expr="gte",
        help_text="Events at or after this moment (UTC), e.g. 2026-12-01 or 2026-12-01T09:30.",
    )
    until = filters.IsoDateTimeFilter(
        field_name="at",
        lookup_expr="lte",
        help_text="Events at or before this moment (UTC); a date alone means the whole day.",
    )
    actor = filters.CharFilter(
        field_name="actor_name", help_text="Who acted: a username, or system / anonymous."
    )
    category = filters.ChoiceFilter(choices=Category.choices, help_text="The page's group.")
    action = filters.CharFilter(help_text="One action, e.g. rollout.wave_approved.")
    cluster = WholeNumberFilter(field_name="cluster_id", help_text="A cluster's id.")
    plan = WholeNumberFilter(field_name="plan_id", help_text="A plan's id.")
    outcome = filters.ChoiceFilter(choices=Outcome.choices)
    q = filters.CharFilter(
        help_text="Words in the object's label, the actor, comments, reasons and refusals."
    )

    class Meta:
        model = AuditEvent
        fields: list[str] = []

    def get_form_class(self) -> type[FilterForm]:
        return FilterForm

    @property
    def errors(self) -> ErrorDict:
        # The form's "__all__" (From after Until) is the API's whole-query error.
        return ErrorDict(
            ("non_field_errors" if name == "__all__" else name, messages)
            for name, messages in self.form.errors.items()
        )

    @property
    def given(self) -> Filters:
        return Filters.from_form(self.form)

    def filter_queryset(self, queryset: QuerySet[AuditEvent]) -> QuerySet[AuditEvent]:
        return self.given.apply(queryset)


def _filters(request: Request) -> Filters:
    """The request's filters, or 400 saying which parameter is wrong (the page's words)."""
    found = AuditEventFilter(request.query_params, queryset=AuditEvent.objects.all())
    if not found.is_valid():
        raise translate_validation(found.errors)
    return found.given


# --- what goes out -------------------------------------------------------------------------------
class EventSerializer(serializers.ModelSerializer[AuditEvent]):
    actor_id = serializers.IntegerField(
        allow_null=True, read_only=True, help_text="The user's id then (null: system, anonymous)."
    )
    url = serializers.SerializerMethodField(help_text="The event's page.")

    class Meta:
        model = AuditEvent
        fields = [
            "seq", "at", "actor_id", "actor_name", "actor_ip", "action", "category", "outcome",
            "object_type", "object_id", "object_label", "cluster_id", "plan_id", "before",
            "after", "request_id", "prev_hash", "hash", "url",
        ]  # fmt: skip
        read_only_fields = fields

    def get_url(self, event: AuditEvent) -> str:
        return page_url("audit:event", seq=event.seq)


class CheckpointSerializer(serializers.ModelSerializer[AuditCheckpoint]):
    class Meta:
        model = AuditCheckpoint
        fields = ["seq", "hash", "at", "key_id"]
        read_only_fields = fields


COVERAGE_STATES = [
    ("valid", "Signed with the audit key, and the table still holds its hash."),
    ("contradicted", "Signed, but the table's hash there differs: history was rewritten."),
    ("invalid", "Not signed with the audit key."),
    ("unchecked", "No checkpoint, or no key here to check it with."),
]


class CoverageSerializer(serializers.Serializer[Any]):
    state = serializers.ChoiceField(choices=COVERAGE_STATES)
    checkpoint = CheckpointSerializer(allow_null=True)


class EventDetailSerializer(EventSerializer):
    hash_matches = serializers.BooleanField(
        help_text="The event's fields still hash to its stored hash."
    )
    coverage = CoverageSerializer(
        help_text="The first signed checkpoint at or after the event, which vouches for it."
    )

    class Meta(EventSerializer.Meta):
        fields = [*EventSerializer.Meta.fields, "hash_matches", "coverage"]


class WatchSerializer(serializers.ModelSerializer[ChainWatch]):
    class Meta:
        model = ChainWatch
        fields = [
            "verified_seq", "verified_hash", "checked_at", "broken_seq", "broken_reason",
            "broken_since", "resumed_after", "unchecked_reason",
        ]  # fmt: skip
        read_only_fields = fields


class HeadSerializer(serializers.Serializer[Any]):
    seq = serializers.IntegerField()
    at = serializers.DateTimeField()


VERDICTS = [
    ("broken", "Beat found the chain broken at watch.broken_seq."),
    ("intact", "Beat has verified events 1 to watch.verified_seq."),
    ("resumed", "Verified since watch.resumed_after, after an acknowledged break."),
    ("not_checked", "Beat has not checked the chain yet."),
]


class ChainSerializer(serializers.Serializer[Any]):
    """The verify page: beat's incremental check and the newest signed checkpoint."""

    verdict = serializers.ChoiceField(choices=VERDICTS)
    watch = WatchSerializer(allow_null=True)
    head = HeadSerializer(allow_null=True, help_text="The newest event.")
    coverage = CoverageSerializer(help_text="The newest checkpoint.")
    key_configured = serializers.BooleanField(
        help_text="False: checkpoints are off (WAVEGATE_AUDIT_HMAC_KEY_FILE is not set)."
    )


def _verdict(watch: ChainWatch | None) -> str:
    # The verify page's three cases (templates/audit/verify.html).
    if watch is not None and watch.broken_seq:
        return "broken"
    if watch is not None and watch.verified_seq:
        return "resumed" if watch.resumed_after else "intact"
    return "not_checked"


EVENT_EXAMPLE = {
    "seq": 4812,
    "at": "2026-12-04T10:15:02.123456Z",
    "actor_id": 7,
    "actor_name": "priya",
    "actor_ip": "10.20.0.14",
    "action": "rollout.wave_approved",
    "category": "rollout",
    "outcome": "done",
    "object_type": "rollout.wave",
    "object_id": "31",
    "object_label": "bpfveth-canary wave 1",
    "cluster_id": None,
    "plan_id": 12,
    "before": {"status": "awaiting_approval"},
    "after": {"status": "approved", "wave": 1, "comment": "Canary dashboards are green."},
    "request_id": "5f0c1d2e9a8b4c7d8e9f0a1b2c3d4e5f",
    "prev_hash": "9b1d…",
    "hash": "e3c0…",
    "url": "https://wavegate.example.com/audit/events/4812/",
}


# --- the log -------------------------------------------------------------------------------------
class EventList(generics.ListAPIView[AuditEvent]):
    serializer_class = EventSerializer
    filterset_class = AuditEventFilter
    pagination_class = Cursor
    queryset = AuditEvent.objects.all()

    def get_queryset(self) -> QuerySet[AuditEvent]:
        if not getattr(self, "swagger_fake_view", False):
            allowed(self.request, can_view_audit)
            known_params(self.request, [*FILTER_FIELDS, *PAGING])
        return AuditEvent.objects.all()

    @extend_schema(
        summary="The audit log, filtered as on the audit page, newest first",
        description="Cursor pages (follow `next`; `limit` up to 1000) stay correct while "
        "events are appended. The filters are the audit page's, with its names and values; "
        "a wrong one is answered 400 naming it.",
        # One event: drf-spectacular wraps a list's example in the page around it.
        examples=[OpenApiExample("An approval", value=EVENT_EXAMPLE, response_only=True)],
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


class EventDetail(APIView):
    @extend_schema(
        summary="One audit event, whether its hash still matches, and what vouches for it",
        responses=EventDetailSerializer,
        examples=[
            OpenApiExample(
                "An approval",
                value={
                    **EVENT_EXAMPLE,
                    "hash_matches": True,
                    "coverage": {
                        "state": "valid",
                        "checkpoint": {
                            "seq": 4900,
                            "hash": "77aa…",
                            "at": "2026-12-04T10:16:00Z",
                            "key_id": "3f9a1c2b7d4e",
                        },
                    },
                },
                response_only=True,
            )
        ],
    )
    def get(self, request: Request, seq: int) -> Response:
        allowed(request, can_view_audit)
        event = AuditEvent.objects.filter(seq=seq).first()
        if event is None:
            raise Http404(f"There is no audit event {seq}.")
        covered = coverage(event)
        event.hash_matches = event_hash(event.chain_fields()) == event.hash  # type: ignore[attr-defined]
        event.coverage = {"state": covered.state, "checkpoint": covered.checkpoint}  # type: ignore[attr-defined]
        return Response(EventDetailSerializer(event).data)


class ChainState(APIView):
    @extend_schema(
        summary="The audit chain's state, as the verify page shows it",
        description="Beat's minute-by-minute check and the newest signed checkpoint. The "
        "whole chain is `manage.py audit_verify`'s job.",
        responses=ChainSerializer,
        examples=[
            OpenApiExample(
                "Intact",
                value={
                    "verdict": "intact",
                    "watch": {
                        "verified_seq": 4812,
                        "verified_hash": "e3c0…",
                        "checked_at": "2026-12-04T10:16:00Z",
                        "broken_seq": None,
                        "broken_reason": "",
                        "broken_since": None,
                        "resumed_after": None,
                        "unchecked_reason": "",
                    },
                    "head": {"seq": 4813, "at": "2026-12-04T10:16:04Z"},
                    "coverage": {"state": "unchecked", "checkpoint": None},
                    "key_configured": False,
                },
                response_only=True,
            )
        ],
    )
    def get(self, request: Request) -> Response:
        allowed(request, can_view_audit)
        watch = ChainWatch.objects.filter(pk=1).first()
        newest = vouches(AuditCheckpoint.objects.order_by("-seq", "-id").first())
        state = {
            "verdict": _verdict(watch),
            "watch": watch,
            "head": AuditEvent.objects.order_by("-seq").values("seq", "at").first(),
            "coverage": {"state": newest.state, "checkpoint": newest.checkpoint},
            "key_configured": anchor.key_configured(),
        }
        return Response(ChainSerializer(state).data)


# --- files ---------------------------------------------------------------------------------------
class FilesWhateverAccepted(BaseContentNegotiation):
    """A file is the answer whatever the client's Accept says; errors are JSON."""

    def select_parser(self, request: Request, parsers: Any) -> Any:
        return parsers[0] if parsers else None

    def select_renderer(
        self, request: Request, renderers: Any, format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        return renderers[0], renderers[0].media_type


CSV_EXAMPLE = (
    "record,seq,at,actor_id,actor_name,actor_ip,action,object_type,object_id,object_label,"
    "before,after,request_id,cluster_id,plan_id,prev_hash,hash,signature,key_id,detail\r\n"
    'header,,,,,,,,,,,,,,,,,,,"{""chain_head"":4812,""exported_at"":…}"\r\n'
    "event,4812,2026-12-04T10:15:02.123456Z,7,priya,10.20.0.14,rollout.wave_approved,…\r\n"
    'end,,,,,,,,,,,,,,,,,,,"{""checkpoints"":0,""events"":1,…}"\r\n'
)
JSONL_EXAMPLE = (
    '{"record":"header","format":"wavegate-audit-export","version":1,…}\n'
    '{"record":"event","seq":4812,"at":"2026-12-04T10:15:02.123456Z",…}\n'
    '{"record":"end","events":1,"checkpoints":0,"last_seq":4812,"last_hash":"e3c0…"}\n'
)


class ExportEvents(generics.GenericAPIView[AuditEvent]):
    # A GenericAPIView for the schema: it documents the filters (extend_schema filters=True).
    filterset_class = AuditEventFilter
    pagination_class = None
    queryset = AuditEvent.objects.all()
    content_negotiation_class = FilesWhateverAccepted

    @extend_schema(
        summary="Export the filtered log, streamed, as CSV or JSON lines",
        operation_id="audit_export",
        description="The audit page's export: the events the filters select, oldest first, "
        "with their hashes and the signed checkpoints in range, which "
        "`python -m audit.verify_export FILE` checks offline (audit/export.py describes the "
        "format). The export itself is recorded (`audit.exported`).",
        filters=True,
        parameters=[
            OpenApiParameter(
                "fmt", OpenApiTypes.STR, OpenApiParameter.PATH, enum=list(export.FORMATS)
            )
        ],
        responses={
            (200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description="CSV (RFC 4180)."),
            (200, "application/jsonl"): OpenApiResponse(
                OpenApiTypes.STR, description="One JSON object a line."
            ),
        },
        examples=[
            OpenApiExample("CSV", value=CSV_EXAMPLE, response_only=True, media_type="text/csv"),
            OpenApiExample(
                "JSON lines",
                value=JSONL_EXAMPLE,
                response_only=True,
                media_type="application/jsonl",
            ),
        ],
    )
    def get(self, request: Request, fmt: str) -> StreamingHttpResponse:
        allowed(request, can_export_audit)
        # A misspelt filter would export (and record exporting) the whole log.
        known_params(request, FILTER_FIELDS)
        chosen = export.FORMATS.get(fmt)
        if chosen is None:
            raise Http404(f"There is no {fmt!r} export: choose csv or jsonl.")
        given = _filters(request)
        return export.streamed(given.apply(), chosen, given.describe())


class EvidencePack(APIView):
    content_negotiation_class = FilesWhateverAccepted

    @extend_schema(
        summary="A plan's evidence pack, the zip the plan's page gives auditors",
        description="Its plan, decisions, preflight results, timelines and audit events with "
        "the offline verifier, each file in its manifest with its SHA-256. Handing it out is "
        "recorded (`rollout.evidence_pack_exported`, via api). For example: plan.json, "
        "decisions.json, decisions.csv, preflight.json, timelines/aks-prod-eu-1.jsonl, "
        "events.jsonl, checkpoints.json, verifier/audit/*.py, summary.html, MANIFEST.sha256, "
        "manifest.json.",
        responses={
            (200, "application/zip"): OpenApiResponse(
                OpenApiTypes.BINARY,
                description="wavegate-evidence-plan-<id>-<UTC time>.zip",
            )
        },
    )
    def get(self, request: Request, pk: int) -> FileResponse:
        allowed(request, can_export_audit)
        plan = get_object_or_404(RolloutPlan.objects.select_related("created_by"), pk=pk)
        pack = evidence.build(plan, made_by=request.user.get_username())
        evidence.record_export(plan, pack, acting_user=request.user, via="api")
        return FileResponse(
            pack.file, as_attachment=True, filename=pack.filename, content_type="application/zip"
        )


urlpatterns: list[URLPattern] = [
    path("audit/events/", EventList.as_view(), name="audit_events"),
    path("audit/events/<int:seq>/", EventDetail.as_view(), name="audit_event"),
    path("audit/export.<str:fmt>", ExportEvents.as_view(), name="audit_export"),
    path("audit/verify/", ChainState.as_view(), name="audit_verify"),
    path("plans/<int:pk>/evidence/", EvidencePack.as_view(), name="plan_evidence"),
]
