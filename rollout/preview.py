"""The new-plan form's preview: the waves planning.cut makes of today's inventory, how long they
take, and each cluster with what an operator decides on (ring, region, preflight, window)."""

from __future__ import annotations

import dataclasses
import datetime
import json
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.utils import timezone

from fleet.choices import ScanStatus
from fleet.disruption import Disruption, Verdict
from fleet.maintenance import HORIZON, UnreadableWindow, describe, next_open
from fleet.models import Cluster
from rollout import actions, planning
from rollout.forms import PlanForm
from rollout.models import RolloutPlan

PREVIEW_NAMES = 5  # first cluster names shown per wave
CLUSTER_ROWS = 200  # clusters shown in the per-cluster table; the rest are counted


@dataclass(frozen=True)
class WavePreview:
    index: int
    size: int
    first_names: list[str]
    minutes: int
    waiting: int = 0  # clusters that wait for their maintenance window once the wave starts
    unplaced: int = 0  # clusters whose window opening Wavegate cannot place


@dataclass(frozen=True)
class DisruptionNote:
    """What a cluster's node disruption policy means for it in this plan."""

    wave: int
    name: str
    note: str


@dataclass(frozen=True)
class ClusterRow:
    """One cluster of the preview as the operator weighs it."""

    wave: int
    id: int
    name: str
    subscription: str  # its name, or its id when it has none
    subscription_id: str
    ring: str
    region: str
    preflight: str  # the latest scan's status; "" when never scanned
    scanned: datetime.datetime | None  # when that scan finished
    scanned_ago: str  # "3 h ago"
    stale: bool  # older than a rollout reuses: it scans the cluster again first
    window: str  # the maintenance window in words; "" for none
    opening: str  # "open now", "opens Tue 02:00 UTC (in 5 h)", "no window", "cannot tell"

    @property
    def preflight_label(self) -> str:
        return ScanStatus(self.preflight).label if self.preflight in ScanStatus.values else ""


@dataclass(frozen=True)
class Preview:
    waves: list[WavePreview]
    excluded: list[planning.Excluded]
    clusters: int
    minutes: int
    notes: list[DisruptionNote] = dataclasses.field(default_factory=list)
    respect_windows: bool = True
    rows: list[ClusterRow] = dataclasses.field(default_factory=list)  # the first CLUSTER_ROWS
    stale_minutes: int = 0

    @property
    def waiting(self) -> int:
        return sum(w.waiting for w in self.waves)

    @property
    def more_rows(self) -> int:
        """The clusters in waves that the per-cluster table leaves out."""
        return self.clusters - len(self.rows)

    @property
    def any_stale(self) -> bool:
        return any(row.stale for row in self.rows)

    @property
    def duration(self) -> str:
        hours, minutes = divmod(self.minutes, 60)
        days, hours = divmod(hours, 24)
        parts = [f"{days} d"] * bool(days) + [f"{hours} h"] * bool(hours)
        return " ".join([*parts, f"{minutes} min"] if minutes or not parts else parts)


def build_preview(form: PlanForm, plan: RolloutPlan | None = None) -> Preview:
    """Cut the form's plan over today's inventory (for an edit, the clusters `plan` holds count
    as free). Raises PlanError. A fixed number of queries, whatever the fleet's size."""
    data = form.cleaned_data
    raw = form.selection()
    selection = planning.Selection(
        subscriptions=frozenset(raw["subscriptions"]),
        regions=frozenset(raw["regions"]),
        rings=frozenset(raw["rings"]),
        tags=raw["tags"],
        names=tuple(raw["names"]),
    )
    now, respect = timezone.now(), data["respect_maintenance_windows"]
    cut = planning.cut(
        actions.candidates(plan),
        selection,
        data["wave_spec"],
        data["goal"],
        actions.ring_order(),
        now=now,
        respect_windows=respect,
    )
    estimates = planning.estimate(
        cut.waves,
        concurrency=data["concurrency"],
        soak_minutes=data["soak_minutes"],
        operation_minutes=settings.WAVEGATE_ESTIMATED_OPERATION_MINUTES,
        start=now,
        respect_windows=respect,
    )
    waves = [
        WavePreview(
            index=i,
            size=len(members),
            first_names=[m.name for m in members[:PREVIEW_NAMES]],
            minutes=estimate.minutes,
            waiting=estimate.waiting,
            unplaced=estimate.unplaced,
        )
        for i, (members, estimate) in enumerate(zip(cut.waves, estimates, strict=True), 1)
    ]
    notes = [
        DisruptionNote(i, member.name, _disruption_note(cut.disruption[member.id], respect))
        for i, members in enumerate(cut.waves, 1)
        for member in members
        if member.id in cut.disruption
    ]
    return Preview(
        waves=waves,
        excluded=cut.excluded,
        clusters=cut.cluster_count,
        minutes=sum(w.minutes for w in waves),
        notes=notes,
        respect_windows=respect,
        rows=cluster_rows(cut.waves, now),
        stale_minutes=settings.WAVEGATE_PREFLIGHT_MAX_AGE_MINUTES,
    )


def cluster_rows(waves: list[list[planning.Candidate]], now: datetime.datetime) -> list[ClusterRow]:
    """The first CLUSTER_ROWS clusters of the waves, in wave order, with what the candidates do
    not carry (subscription name, when the latest scan finished) read in one query."""
    shown = [(i, c) for i, members in enumerate(waves, 1) for c in members][:CLUSTER_ROWS]
    facts = {
        pk: (subscription, finished)
        for pk, subscription, finished in Cluster.objects.filter(
            pk__in=[c.id for _, c in shown]
        ).values_list("pk", "subscription__name", "latest_scan__finished_at")
    }
    stale_after = datetime.timedelta(minutes=settings.WAVEGATE_PREFLIGHT_MAX_AGE_MINUTES)
    openings: dict[str, str] = {}  # clusters share a few windows: each is placed once
    rows = []
    for wave, c in shown:
        subscription, finished = facts.get(c.id, ("", None))
        window = dict(c.maintenance_window)
        text = json.dumps(window, sort_keys=True, default=str)
        if text not in openings:
            openings[text] = opening(window, now)
        rows.append(
            ClusterRow(
                wave=wave,
                id=c.id,
                name=c.name,
                subscription=subscription or c.subscription_id,
                subscription_id=c.subscription_id,
                ring=c.ring,
                region=c.region,
                preflight=c.preflight,
                scanned=finished,
                scanned_ago=f"{span(now - finished)} ago" if finished else "",
                stale=finished is not None and now - finished > stale_after,
                window=window_words(window),
                opening=openings[text],
            )
        )
    return rows


def window_words(window: dict[str, Any]) -> str:
    """The window's schedule in a sentence or two, without the configuration's name; "" for
    none."""
    if not window:
        return ""
    lines = describe(window)
    return " ".join(lines[1:] or lines)


def opening(window: dict[str, Any], now: datetime.datetime) -> str:
    """When the window next lets AKS change the cluster, said from `now`."""
    if not window:
        return "no window"
    try:
        opens = next_open(window, now)
    except UnreadableWindow:
        return "cannot tell"
    if opens is None:
        return f"not in the next {HORIZON.days // 7} weeks"
    if opens <= now:
        return "open now"
    at = opens.astimezone(datetime.UTC)
    day = "%a %H:%M" if opens - now < datetime.timedelta(days=6) else "%a %d %b %H:%M"
    return f"opens {at:{day}} UTC (in {span(opens - now)})"


def span(delta: datetime.timedelta) -> str:
    """A duration as an operator reads it at a glance: 45 min, 5 h, 3 d."""
    minutes = max(0, int(delta.total_seconds() // 60))
    if minutes < 1:
        return "under a minute"
    if minutes < 60:
        return f"{minutes} min"
    hours = round(minutes / 60)
    return f"{hours} h" if hours < 48 else f"{round(hours / 24)} d"


def _disruption_note(verdict: Verdict, respect_windows: bool) -> str:
    if verdict.kind == Disruption.WAITS:
        return planning.waiting_note(verdict)
    if verdict.kind == Disruption.IN_WINDOW and not respect_windows:
        return (
            f"{verdict.sentence} This plan does not wait for maintenance windows: if its wave "
            "reaches it after the window closes, AKS refuses the change."
        )
    return verdict.sentence


def checked_preview(
    form: PlanForm, *, preview_only: bool = False, plan: RolloutPlan | None = None
) -> Preview | None:
    """The preview, or None with the problem added to the form's errors. A preview needs no
    name yet."""
    if not form.is_valid() and not (preview_only and set(form.errors) == {"name"}):
        return None
    try:
        actions.check_budget(form.cleaned_data["failure_budget"])
        return build_preview(form, plan)
    except planning.PlanError as exc:
        form.add_error("wave_spec", str(exc))
    except actions.ActionRefused as exc:
        form.add_error("failure_budget", str(exc))
    return None
