"""`record`, the one way to write the audit log."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connections, models, router, transaction
from django.utils import timezone

from audit import context
from audit.chain import GENESIS, event_hash
from audit.models import AuditEvent
from config.bulk import insert_rows

SYSTEM = "system"
ANONYMOUS = "anonymous"

_IP_FIELD = AuditEvent._meta.get_field("actor_ip")

# Key of the PostgreSQL advisory lock that serialises appends ("WAVEGATE" in ASCII).
_APPEND_LOCK = 0x5741564547415445


def _plain(value: Any) -> Any:
    """What a JSON column gives back for `value`, so the hash matches what is stored."""
    if value is None:
        return None
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder, allow_nan=False))


def _serialise_appends(alias: str) -> None:
    """Hold the append lock until the caller's transaction ends.

    On PostgreSQL an advisory transaction lock; SQLite transactions here begin IMMEDIATE
    (settings), so the database already lets one writer in at a time.
    """
    connection = connections[alias]
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_APPEND_LOCK])


@dataclass(frozen=True)
class Entry:
    """One event to append with `record_many`."""

    action: str
    object_type: str = ""
    object_id: str = ""
    object_label: str = ""
    before: Any = None
    after: Any = None
    # The cluster and plan it concerns (the auditor's filters); derived from the object when
    # it is a cluster or a plan and these are left empty.
    cluster_id: int | None = None
    plan_id: int | None = None


def _subjects(entry: Entry) -> tuple[int | None, int | None]:
    cluster_id, plan_id = entry.cluster_id, entry.plan_id
    if entry.object_id.isdigit():
        if cluster_id is None and entry.object_type == "fleet.cluster":
            cluster_id = int(entry.object_id)
        if plan_id is None and entry.object_type == "rollout.rolloutplan":
            plan_id = int(entry.object_id)
    return cluster_id, plan_id


def _object_subjects(obj: models.Model) -> tuple[int | None, int | None]:
    """The cluster and plan of an object that belongs to one (a scan, a wave, a target)."""
    cluster_id = getattr(obj, "cluster_id", None)
    plan_id = getattr(obj, "plan_id", None)
    return (
        cluster_id if isinstance(cluster_id, int) else None,
        plan_id if isinstance(plan_id, int) else None,
    )


def _actor(acting_user: Any) -> tuple[Any, str, context.Context | None]:
    """The acting user, the actor's name, and the request or task context."""
    ctx = context.current()
    user = acting_user if acting_user is not None else (ctx.user() if ctx else None)
    if user is not None:
        return user, user.get_username(), ctx
    if ctx is not None and ctx.get_user is not None:
        return None, ANONYMOUS, ctx
    return None, SYSTEM, ctx


def record(
    action: str,
    *,
    acting_user: Any = None,
    obj: models.Model | None = None,
    object_type: str = "",
    object_id: str = "",
    object_label: str = "",
    before: Any = None,
    after: Any = None,
    cluster_id: int | None = None,
    plan_id: int | None = None,
) -> AuditEvent:
    """Append one event in the caller's transaction: it exists only if that transaction commits.

    The actor is `acting_user` when given, else the signed-in user of the current request,
    else `anonymous` for a request without one, else `system` (tasks, commands).
    """
    if obj is not None:
        object_type = object_type or obj._meta.label_lower
        object_id = object_id or str(obj.pk)
        object_label = object_label or str(obj)
        owning_cluster, owning_plan = _object_subjects(obj)
        cluster_id = cluster_id if cluster_id is not None else owning_cluster
        plan_id = plan_id if plan_id is not None else owning_plan
    entry = Entry(action, object_type, object_id, object_label, before, after, cluster_id, plan_id)
    return record_many([entry], acting_user=acting_user)[0]


class OutsideTransaction(RuntimeError):
    """`record` was called outside a transaction: the event must commit with its change."""


def record_many(entries: Iterable[Entry], *, acting_user: Any = None) -> list[AuditEvent]:
    """Append several events, in order, in the caller's transaction, under one lock.

    For work that changes many objects at once (an inventory sync discovering thousands of
    clusters): one event per object, chained as if recorded one by one.

    Refused outside `transaction.atomic()`: an event written in a transaction of its own could
    commit without its change, or its change without it (shared/DESIGN.md §7).
    """
    alias = router.db_for_write(AuditEvent)
    if not connections[alias].in_atomic_block:
        raise OutsideTransaction(
            "audit.record runs only inside the transaction.atomic() block that makes the "
            "change it records"
        )
    user, actor_name, ctx = _actor(acting_user)
    ip = _IP_FIELD.get_prep_value(ctx.ip) if ctx and ctx.ip else None
    with transaction.atomic(using=alias):
        _serialise_appends(alias)
        last = AuditEvent.objects.using(alias).order_by("-seq").values("seq", "hash").first()
        seq, prev_hash = (last["seq"], last["hash"]) if last else (0, GENESIS)
        at = timezone.now()
        events = []
        for entry in entries:
            seq += 1
            cluster_id, plan_id = _subjects(entry)
            event = AuditEvent(
                seq=seq,
                at=at,
                actor_id=user.pk if user is not None else None,
                actor_name=actor_name,
                # Stored as the column gives it back (IPv6 is normalised), so it hashes alike.
                actor_ip=ip,
                action=entry.action,
                object_type=entry.object_type,
                object_id=entry.object_id,
                object_label=entry.object_label[:255],
                before=_plain(entry.before),
                after=_plain(entry.after),
                request_id=ctx.request_id if ctx else "",
                cluster_id=cluster_id,
                plan_id=plan_id,
                prev_hash=prev_hash,
            )
            event.hash = event_hash(event.chain_fields())
            prev_hash = event.hash
            events.append(event)
        insert_rows(AuditEvent, events)
    return events
