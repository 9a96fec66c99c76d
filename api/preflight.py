"""Preflight for scripts: the scans and starting them, and the accepted iptables owners with
their four-eyes proposals.

Every change goes through preflight.actions, as the pages' do, with the same permission
checks, four-eyes rule, refusals and audit events; an owner is checked by the owners page's
own form (preflight.forms), so a script reads the page's words.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django import forms
from django.conf import settings
from django.db.models import Q, QuerySet, TextChoices
from django.shortcuts import get_object_or_404
from django.urls import URLPattern, path
from django_filters import rest_framework as filters
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, extend_schema, extend_schema_field
from rest_framework import generics, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.access import Rule
from accounts.wording import counted
from api.clusters import ScanOut, with_finding_counts
from api.common import PAGING, WholeNumberFilter, allowed, body, known_params, no_body, page_url
from api.errors import Invalid, perform
from api.pagination import Keyset
from audit.refusals import record_refusal
from fleet.access import can_view_fleet
from fleet.choices import ScanStatus
from fleet.models import AcceptedOwner, Cluster, PreflightScan
from preflight import access, actions
from preflight.forms import AcceptedOwnerForm, RetireOwnerForm


def _checked(form: forms.Form) -> dict[str, Any]:
    """The page's form's cleaned data, or 400 with its words for each field."""
    if form.is_valid():
        return dict(form.cleaned_data)
    errors = {("non_field_errors" if k == "__all__" else k): v for k, v in form.errors.items()}
    first = next(iter(errors))
    invalid = Invalid(str(errors[first][0]), None if first == "non_field_errors" else first)
    invalid.detail = serializers.ValidationError(errors).detail
    raise invalid


# --- scans --------------------------------------------------------------------------------------
class ScanFilter(filters.FilterSet):
    cluster = WholeNumberFilter(field_name="cluster_id", help_text="A cluster's id.")
    status = filters.MultipleChoiceFilter(choices=ScanStatus.choices, help_text="Any of these.")

    class Meta:
        model = PreflightScan
        fields = ["cluster", "status"]


class ScanList(generics.ListAPIView[PreflightScan]):
    serializer_class = ScanOut
    filterset_class = ScanFilter
    queryset = PreflightScan.objects.none()  # the schema's model; requests read get_queryset

    @extend_schema(summary="Preflight scans, newest first")
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        allowed(request, can_view_fleet)
        known_params(request, [*ScanFilter.base_filters, *PAGING])
        return super().get(request, *args, **kwargs)

    def get_queryset(self) -> QuerySet[PreflightScan]:
        return with_finding_counts(PreflightScan.objects.all()).order_by("-pk")


class ScanDetail(APIView):
    @extend_schema(summary="One preflight scan", responses=ScanOut)
    def get(self, request: Request, pk: int) -> Response:
        allowed(request, can_view_fleet)
        scan = get_object_or_404(with_finding_counts(PreflightScan.objects.all()), pk=pk)
        return Response(ScanOut(scan).data)


class ClusterScan(APIView):
    @extend_schema(
        summary="Scan the cluster now (its page's Scan now)",
        description="Queues a scan; a worker runs it. Poll the scan, or the cluster's "
        "`preflight_section`, for its result.",
        request=None,
        responses={202: ScanOut},
    )
    def post(self, request: Request, pk: int) -> Response:
        allowed(request, access.can_scan_clusters)  # the role first: ids are not probed
        no_body(request)
        cluster = get_object_or_404(Cluster, pk=pk)
        scan = perform(
            request,
            lambda: actions.request_scan(cluster, acting_user=request.user),
            obj=cluster,
        )
        scan = with_finding_counts(PreflightScan.objects.all()).get(pk=scan.pk)
        return Response(ScanOut(scan).data, status=status.HTTP_202_ACCEPTED)


class FleetScanOut(serializers.Serializer[Any]):
    queued = serializers.IntegerField(help_text="Eligible clusters queued for a scan.")
    concurrency = serializers.IntegerField(help_text="Scans run at once (at most).")
    message = serializers.CharField(help_text="What was done, as the page says it.")


class ScanAll(APIView):
    @extend_schema(
        summary="Scan every eligible cluster (the blockers page's Scan all eligible clusters)",
        description="Queues a scan of each eligible cluster not already queued or running.",
        request=None,
        responses={202: FleetScanOut},
        examples=[
            OpenApiExample(
                "Queued",
                value={
                    "queued": 240,
                    "concurrency": 8,
                    "message": "240 scans queued, up to 8 at a time (as many as the workers run).",
                },
                response_only=True,
            )
        ],
    )
    def post(self, request: Request) -> Response:
        allowed(request, access.can_scan_clusters)
        no_body(request)
        queued = perform(request, lambda: actions.request_fleet_scan(acting_user=request.user))
        at_once = settings.WAVEGATE_SCAN_CONCURRENCY
        message = (
            f"{counted(queued, 'scan')} queued, up to {at_once} at a time "
            "(as many as the workers run)."
        )
        return Response(
            {"queued": queued, "concurrency": at_once, "message": message},
            status=status.HTTP_202_ACCEPTED,
        )


# --- accepted iptables owners -------------------------------------------------------------------
class OwnerState(TextChoices):
    PROPOSED = "proposed", "Proposed, waiting for a second person"
    ACTIVE = "active", "Active: scans accept its rules"
    RETIREMENT_PROPOSED = "retirement_proposed", "Active; its retirement awaits a second person"
    RETIRED = "retired", "Retired"
    DECLINED = "declined", "Declined or withdrawn before it applied"


STATES: dict[str, Q] = {
    OwnerState.PROPOSED: Q(confirmed_at__isnull=True, retired_at__isnull=True),
    OwnerState.ACTIVE: Q(
        confirmed_at__isnull=False, retired_at__isnull=True, retire_requested_at__isnull=True
    ),
    OwnerState.RETIREMENT_PROPOSED: Q(
        confirmed_at__isnull=False, retired_at__isnull=True, retire_requested_at__isnull=False
    ),
    OwnerState.RETIRED: Q(confirmed_at__isnull=False, retired_at__isnull=False),
    OwnerState.DECLINED: Q(confirmed_at__isnull=True, retired_at__isnull=False),
}


def state_of(owner: AcceptedOwner) -> OwnerState:
    if owner.retired_at is not None:
        return OwnerState.RETIRED if owner.confirmed_at is not None else OwnerState.DECLINED
    if owner.proposed:
        return OwnerState.PROPOSED
    return OwnerState.RETIREMENT_PROPOSED if owner.retiring else OwnerState.ACTIVE


def _username(user: Any) -> str | None:
    return user.get_username() if user is not None else None


class OwnerOut(serializers.ModelSerializer[AcceptedOwner]):
    state = serializers.SerializerMethodField()
    added_by = serializers.SerializerMethodField()
    confirmed_by = serializers.SerializerMethodField()
    retire_requested_by = serializers.SerializerMethodField()
    retired_by = serializers.SerializerMethodField()
    url = serializers.SerializerMethodField()

    class Meta:
        model = AcceptedOwner
        fields = [
            "id", "name", "reason", "state", "tables", "chain", "chain_prefix", "comment",
            "line_regex", "added_by", "added_at", "confirmed_by", "confirmed_at",
            "retire_requested_by", "retire_requested_at", "retire_reason", "retired_by",
            "retired_at", "url",
        ]  # fmt: skip

    @extend_schema_field(serializers.ChoiceField(choices=OwnerState.choices))
    def get_state(self, owner: AcceptedOwner) -> str:
        return state_of(owner).value

    @extend_schema_field({"type": "string", "nullable": True})
    def get_added_by(self, owner: AcceptedOwner) -> str | None:
        """Who proposed it."""
        return _username(owner.added_by)

    @extend_schema_field({"type": "string", "nullable": True})
    def get_confirmed_by(self, owner: AcceptedOwner) -> str | None:
        return _username(owner.confirmed_by)

    @extend_schema_field({"type": "string", "nullable": True})
    def get_retire_requested_by(self, owner: AcceptedOwner) -> str | None:
        return _username(owner.retire_requested_by)

    @extend_schema_field({"type": "string", "nullable": True})
    def get_retired_by(self, owner: AcceptedOwner) -> str | None:
        """Who confirmed the retirement, or declined the proposal."""
        return _username(owner.retired_by)

    @extend_schema_field(OpenApiTypes.URI)
    def get_url(self, owner: AcceptedOwner) -> str:
        """The accepted owners page."""
        return page_url("preflight:owners")


def _help(field: str) -> str:
    """The owners page's help for one of its form's fields."""
    return str(AcceptedOwnerForm.base_fields[field].help_text)


class OwnerIn(serializers.Serializer[Any]):
    """An extension of the owner table, as the owners page's form takes it (types only here:
    the page's form checks the values, in its words)."""

    name = serializers.CharField(help_text=_help("name"))
    reason = serializers.CharField(help_text=_help("reason"))
    tables = serializers.CharField(required=False, allow_blank=True, help_text=_help("tables"))
    chain = serializers.CharField(required=False, allow_blank=True, help_text=_help("chain"))
    chain_prefix = serializers.CharField(
        required=False, allow_blank=True, help_text=_help("chain_prefix")
    )
    comment = serializers.CharField(required=False, allow_blank=True, help_text=_help("comment"))
    line_regex = serializers.CharField(
        required=False, allow_blank=True, help_text=_help("line_regex")
    )


class RetireIn(serializers.Serializer[Any]):
    reason = serializers.CharField(
        required=False, allow_blank=True, help_text="Why: it goes in the audit log."
    )


class OwnerDoneOut(serializers.Serializer[Any]):
    message = serializers.CharField(help_text="What was done, as the page says it.")
    owner = OwnerOut()


class OwnerFilter(filters.FilterSet):
    state = filters.MultipleChoiceFilter(
        choices=OwnerState.choices, method="in_states", help_text="Any of these."
    )

    class Meta:
        model = AcceptedOwner
        fields = ["state"]

    def in_states(
        self, owners: QuerySet[AcceptedOwner], name: str, value: list[str]
    ) -> QuerySet[AcceptedOwner]:
        wanted = Q(pk__in=[])
        for state in value:
            wanted |= STATES[state]
        return owners.filter(wanted)


OWNER_EXAMPLE = OpenApiExample(
    "node-exporter",
    value={
        "name": "node-exporter",
        "reason": "Our node-exporter DaemonSet opens its port; safe with eBPF host routing.",
        "tables": "filter",
        "chain": "NODE-EXPORTER",
    },
    request_only=True,
)

_OWNERS = AcceptedOwner.objects.select_related(
    "added_by", "confirmed_by", "retire_requested_by", "retired_by"
)


class OwnerList(generics.ListCreateAPIView[AcceptedOwner]):
    serializer_class = OwnerOut
    filterset_class = OwnerFilter
    pagination_class = Keyset
    queryset = AcceptedOwner.objects.none()  # the schema's model; requests read get_queryset

    @extend_schema(
        summary="The accepted iptables owners Wavegate adds to AKS's, with their proposals",
        description="Rules an active owner matches count as owned, not user-installed, in "
        "scans that start from then on. Every state by default.",
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        allowed(request, can_view_fleet)
        known_params(request, [*OwnerFilter.base_filters, *PAGING])
        return super().get(request, *args, **kwargs)

    def get_queryset(self) -> QuerySet[AcceptedOwner]:
        return _OWNERS.order_by("name", "pk")

    @extend_schema(
        summary="Propose an owner (a second person confirms it)",
        request=OwnerIn,
        responses={201: OwnerDoneOut},
        examples=[OWNER_EXAMPLE],
    )
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        allowed(request, access.can_manage_iptables_owners)
        fields = _checked(AcceptedOwnerForm(body(OwnerIn, request)))
        owner = perform(
            request, lambda: actions.add_accepted_owner(**fields, acting_user=request.user)
        )
        message = (
            f"{owner.name} proposed: once another person confirms it, scans that start from "
            "then on accept the rules it matches."
        )
        return Response(
            {"message": message, "owner": OwnerOut(_OWNERS.get(pk=owner.pk)).data},
            status=status.HTTP_201_CREATED,
        )


def _confirming(request: Request, confirm: Callable[..., Any], owner: AcceptedOwner) -> None:
    """Run a confirmation as the page does: a refusal for who asks (four eyes) the action
    records itself; one for the owner's state is recorded here."""

    def do() -> None:
        try:
            confirm(owner, acting_user=request.user)
        except actions.ActionRefused as refusal:
            record_refusal(request._request, refusal, obj=owner)
            raise

    perform(request, do, refusal_recorded=True)


OwnerAct = Callable[[Request, AcceptedOwner], str]


def _owner_action(
    name: str,
    summary: str,
    description: str,
    rule: Rule,
    body: type[serializers.Serializer[Any]] | None,
    act: OwnerAct,
) -> type[APIView]:
    """A POST that runs one preflight action on an owner and says what it did; refused first
    to a role the page's button is refused to."""

    @extend_schema(summary=summary, description=description, request=body, responses=OwnerDoneOut)
    def post(self: APIView, request: Request, pk: int) -> Response:
        allowed(request, rule)
        if body is None:
            no_body(request)
        owner = get_object_or_404(AcceptedOwner, pk=pk)
        message = act(request, owner)
        return Response({"message": message, "owner": OwnerOut(_OWNERS.get(pk=owner.pk)).data})

    return type(name, (APIView,), {"post": post})


def _confirm(request: Request, owner: AcceptedOwner) -> str:
    _confirming(request, actions.confirm_accepted_owner, owner)
    return f"{owner.name} confirmed: scans that start from now on accept the rules it matches."


def _retire(request: Request, owner: AcceptedOwner) -> str:
    reason = _checked(RetireOwnerForm(body(RetireIn, request)))["reason"]
    perform(
        request,
        lambda: actions.retire_accepted_owner(owner, reason=reason, acting_user=request.user),
        obj=owner,
    )
    owner.refresh_from_db()
    if owner.retired_at:
        return f"{owner.name} declined: it never applied."
    return (
        f"Retiring {owner.name} asked: once another person confirms it, scans that start from "
        "then on no longer accept its rules."
    )


def _confirm_retirement(request: Request, owner: AcceptedOwner) -> str:
    _confirming(request, actions.confirm_retirement, owner)
    return f"{owner.name} retired: scans that start from now on no longer accept its rules."


FOUR_EYES = (
    "Refused (403) to the person who asked for it: another person, with the approver or admin "
    "role, must confirm it (four eyes)."
)

urlpatterns: list[URLPattern] = [
    path("scans/", ScanList.as_view(), name="scans"),
    path("scans/scan-all/", ScanAll.as_view(), name="scan_all"),
    path("scans/<int:pk>/", ScanDetail.as_view(), name="scan"),
    path("clusters/<int:pk>/scan/", ClusterScan.as_view(), name="cluster_scan"),
    path("owners/", OwnerList.as_view(), name="owners"),
    path("owners/<int:pk>/confirm/", _owner_action(
        "OwnerConfirm", "Confirm a proposed owner",
        f"Scans that start from now on accept its rules. {FOUR_EYES}",
        access.can_confirm_iptables_owners, None, _confirm).as_view(), name="owner_confirm"),
    path("owners/<int:pk>/retire/", _owner_action(
        "OwnerRetire", "Retire an owner (or decline a proposal)",
        "Asks to retire an active owner (a second person confirms it); a proposal not yet "
        "confirmed is declined at once.",
        access.can_manage_iptables_owners, RetireIn, _retire).as_view(), name="owner_retire"),
    path("owners/<int:pk>/confirm-retirement/", _owner_action(
        "OwnerConfirmRetirement", "Confirm an owner's retirement",
        f"Scans that start from now on no longer accept its rules. {FOUR_EYES}",
        access.can_confirm_iptables_owners, None, _confirm_retirement).as_view(),
        name="owner_confirm_retirement"),
]  # fmt: skip
