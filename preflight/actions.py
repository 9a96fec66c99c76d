"""Preflight actions: queue scans ("Scan now", "Scan all eligible clusters") and extend or
retire the accepted iptables owners. Each checks permission, records its audit event and sends
follow-up work once the transaction commits."""

from __future__ import annotations

import re
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils import timezone

import audit
from fleet import outbox
from fleet.choices import SCAN_OPEN
from fleet.models import AcceptedOwner, Cluster, PreflightScan
from preflight import access, iptables
from preflight.choices import PreflightEvent


class ActionRefused(Exception):
    """The action cannot be done now; the message says why and what to do."""


@transaction.atomic
def request_scan(cluster: Cluster, *, acting_user: Any) -> PreflightScan:
    """Queue a preflight scan of one cluster ("Scan now")."""
    if not access.can_scan_clusters(acting_user):
        raise PermissionDenied(access.can_scan_clusters.refusal)
    if not cluster.present:
        raise ActionRefused(f"{cluster.name} is no longer in Azure; there is nothing to scan.")
    if PreflightScan.objects.filter(cluster=cluster, status__in=SCAN_OPEN).exists():
        raise ActionRefused(f"A scan of {cluster.name} is already queued or running.")
    scan = PreflightScan.objects.create(
        cluster=cluster, requested_by=acting_user, queued_at=timezone.now()
    )
    audit.record(
        PreflightEvent.SCAN_REQUESTED, acting_user=acting_user, obj=cluster, after={"scan": scan.pk}
    )
    outbox.enqueue("fleet.scan_cluster", scan.pk)
    return scan


@transaction.atomic
def request_fleet_scan(*, acting_user: Any) -> int:
    """Queue a scan of every eligible cluster not already being scanned ("Scan all eligible
    clusters"); WAVEGATE_SCAN_CONCURRENCY of them run at once. Returns how many were queued."""
    if not access.can_scan_clusters(acting_user):
        raise PermissionDenied(access.can_scan_clusters.refusal)
    busy = PreflightScan.objects.filter(status__in=SCAN_OPEN).values("cluster_id")
    clusters = list(
        Cluster.objects.filter(eligible=True, removed_at__isnull=True)
        .exclude(pk__in=busy)
        .order_by("name", "pk")
        .values_list("pk", flat=True)
    )
    if not clusters:
        raise ActionRefused(
            "No eligible cluster is waiting for a scan: every one is already queued or running."
        )
    now = timezone.now()
    PreflightScan.objects.bulk_create(
        [PreflightScan(cluster_id=pk, requested_by=acting_user, queued_at=now) for pk in clusters],
        batch_size=1000,
    )
    audit.record(
        PreflightEvent.FLEET_SCAN_REQUESTED,
        acting_user=acting_user,
        object_type="fleet",
        after={"clusters": len(clusters), "concurrency": settings.WAVEGATE_SCAN_CONCURRENCY},
    )
    chains = min(len(clusters), max(1, settings.WAVEGATE_SCAN_CONCURRENCY))
    for _ in range(chains):
        outbox.enqueue("fleet.scan_next")
    return len(clusters)


# The tables an extension of the owner table may name (blank: every table).
IPTABLES_TABLES = ("filter", "nat", "mangle", "raw", "security")


def _owner_fields(owner: AcceptedOwner) -> dict[str, Any]:
    return {
        "name": owner.name,
        "reason": owner.reason,
        "tables": owner.tables,
        "chain": owner.chain,
        "chain_prefix": owner.chain_prefix,
        "comment": owner.comment,
        "line_regex": owner.line_regex,
    }


@transaction.atomic
def add_accepted_owner(
    *,
    name: str,
    reason: str,
    tables: str = "",
    chain: str = "",
    chain_prefix: str = "",
    comment: str = "",
    line_regex: str = "",
    acting_user: Any,
) -> AcceptedOwner:
    """Propose an extension of the owner table. Once a second person confirms it
    (`confirm_accepted_owner`), scans that start from then on count the rules it matches as
    owned, not user-installed. `tables` is comma-separated, blank for every table."""
    if not access.can_manage_iptables_owners(acting_user):
        raise PermissionDenied(access.can_manage_iptables_owners.refusal)
    name, reason = name.strip(), reason.strip()
    if not name or not reason:
        raise ActionRefused("An extension needs a name and the reason its rules are safe.")
    table_names = list(dict.fromkeys(t.strip() for t in tables.split(",") if t.strip()))
    unknown = [t for t in table_names if t not in IPTABLES_TABLES]
    if unknown:
        raise ActionRefused(f"Not an iptables table: {', '.join(unknown)}.")
    if not (chain or chain_prefix or comment or line_regex):
        raise ActionRefused(
            "An extension needs at least one of an exact chain, a chain prefix, a comment or "
            "a full-line regular expression: without one it would accept every rule."
        )
    # Built here as every scan will build it, so a spec that cannot be built never reaches one;
    # a pattern is checked for what it would accept too.
    try:
        if line_regex:
            iptables.check_pattern(line_regex)
        iptables.Owner.from_spec(
            name=name,
            allows=reason,
            tables=table_names or None,
            chain=chain or None,
            chain_prefix=chain_prefix or None,
            comment=comment or None,
            line_regex=line_regex or None,
        )
    except (ValueError, re.error) as exc:
        raise ActionRefused(f"This extension cannot be used: {exc}") from exc
    owner = AcceptedOwner.objects.create(
        name=name,
        reason=reason,
        tables=",".join(table_names),
        chain=chain,
        chain_prefix=chain_prefix,
        comment=comment,
        line_regex=line_regex,
        added_by=acting_user,
        added_at=timezone.now(),
    )
    audit.record(
        PreflightEvent.OWNER_PROPOSED,
        acting_user=acting_user,
        obj=owner,
        after=_owner_fields(owner),
    )
    return owner


def _second_person(owner: AcceptedOwner, acting_user: Any, first_id: int | None, what: str) -> None:
    """Four eyes: the person confirming is not the one who asked; a refusal is recorded in a
    transaction of its own."""
    refusal = ""
    if not access.can_confirm_iptables_owners(acting_user):
        refusal = access.can_confirm_iptables_owners.refusal
    elif first_id == acting_user.pk:
        refusal = f"You {what} {owner.name}: another person must confirm it (four eyes)."
    if refusal:
        raise _Refused(refusal, owner, what)


class _Refused(PermissionDenied):
    def __init__(self, message: str, owner: AcceptedOwner, what: str) -> None:
        super().__init__(message)
        self.owner, self.what = owner, what


def _confirmation(do: Any) -> Any:
    """Run a confirmation; record a refused one (who tried to confirm what, and why)."""

    def run(owner: AcceptedOwner, *, acting_user: Any) -> Any:
        try:
            return do(owner, acting_user=acting_user)
        except _Refused as refusal:
            with transaction.atomic():
                audit.record(
                    PreflightEvent.OWNER_CONFIRMATION_REFUSED,
                    acting_user=acting_user,
                    obj=refusal.owner,
                    after={"tried": f"confirm what was {refusal.what}", "refusal": str(refusal)},
                )
            raise

    run.__doc__ = do.__doc__
    return run


@transaction.atomic
def _confirm_accepted_owner(owner: AcceptedOwner, *, acting_user: Any) -> AcceptedOwner:
    """Confirm another person's proposed extension: scans that start from now on accept the
    rules it matches."""
    owner = AcceptedOwner.objects.select_for_update().get(pk=owner.pk)
    _second_person(owner, acting_user, owner.added_by_id, "proposed")
    if not owner.proposed:
        raise ActionRefused(f"{owner.name} is not waiting for a confirmation.")
    owner.confirmed_by, owner.confirmed_at = acting_user, timezone.now()
    owner.save(update_fields=["confirmed_by", "confirmed_at"])
    audit.record(
        PreflightEvent.OWNER_ADDED,
        acting_user=acting_user,
        obj=owner,
        after={**_owner_fields(owner), "proposed_by": owner.added_by_id},
    )
    return owner


confirm_accepted_owner = _confirmation(_confirm_accepted_owner)


@transaction.atomic
def _confirm_retirement(owner: AcceptedOwner, *, acting_user: Any) -> AcceptedOwner:
    """Confirm another person's request to retire an extension: scans that start from now on
    no longer accept its rules."""
    owner = AcceptedOwner.objects.select_for_update().get(pk=owner.pk)
    _second_person(owner, acting_user, owner.retire_requested_by_id, "asked to retire")
    if not owner.retiring:
        raise ActionRefused(f"{owner.name} has no retirement waiting for a confirmation.")
    owner.retired_by, owner.retired_at = acting_user, timezone.now()
    owner.save(update_fields=["retired_by", "retired_at"])
    audit.record(
        PreflightEvent.OWNER_RETIRED,
        acting_user=acting_user,
        obj=owner,
        before=_owner_fields(owner),
        after={
            "retired_at": owner.retired_at,
            "reason": owner.retire_reason,
            "asked_by": owner.retire_requested_by_id,
        },
    )
    return owner


confirm_retirement = _confirmation(_confirm_retirement)


@transaction.atomic
def retire_accepted_owner(owner: AcceptedOwner, *, reason: str, acting_user: Any) -> None:
    """Ask to retire an active extension (a second person confirms it: `confirm_retirement`);
    a proposal not yet confirmed is declined at once, since it never applied. The row stays."""
    if not access.can_manage_iptables_owners(acting_user):
        raise PermissionDenied(access.can_manage_iptables_owners.refusal)
    reason = reason.strip()
    if not reason:
        raise ActionRefused("Say why you retire it: the reason goes in the audit log.")
    owner = AcceptedOwner.objects.select_for_update().get(pk=owner.pk)
    now = timezone.now()
    if owner.proposed:
        owner.retired_by, owner.retired_at, owner.retire_reason = acting_user, now, reason
        owner.save(update_fields=["retired_by", "retired_at", "retire_reason"])
        audit.record(
            PreflightEvent.OWNER_DECLINED,
            acting_user=acting_user,
            obj=owner,
            before=_owner_fields(owner),
            after={"reason": reason},
        )
        return
    if owner.retired_at is not None:
        raise ActionRefused(f"{owner.name} is already retired.")
    if owner.retiring:
        raise ActionRefused(f"{owner.name}'s retirement already waits for a confirmation.")
    owner.retire_requested_by, owner.retire_requested_at = acting_user, now
    owner.retire_reason = reason
    owner.save(update_fields=["retire_requested_by", "retire_requested_at", "retire_reason"])
    audit.record(
        PreflightEvent.OWNER_RETIRE_PROPOSED,
        acting_user=acting_user,
        obj=owner,
        before=_owner_fields(owner),
        after={"reason": reason},
    )
