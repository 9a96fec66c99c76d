"""The evidence pack's summary.html (rollout/evidence.py): one self-contained page, no CSS or
script from elsewhere, that an auditor opens without Wavegate — the change, the plan, every wave
with its clusters' outcome and preflight, every approver and comment, the refusals, the audit
events' anchoring and how to check it all. Every time in UTC."""

from __future__ import annotations

import datetime
from collections import Counter, defaultdict
from collections.abc import Mapping
from typing import Any

from django.template.loader import render_to_string

from rollout.choices import Goal
from rollout.models import RolloutPlan

TEMPLATE = "rollout/evidence_summary.html"


def utc_text(moment: datetime.datetime | None) -> str:
    """For people: 2026-12-04 10:15:00 UTC."""
    if moment is None:
        return ""
    return f"{moment.astimezone(datetime.UTC):%Y-%m-%d %H:%M:%S} UTC"


def _from_iso(iso: str | None) -> str:
    """An ISO time of the pack's JSON files, for people."""
    if not iso:
        return ""
    return utc_text(datetime.datetime.fromisoformat(iso.replace("Z", "+00:00")))


def _waves(
    plan_record: Mapping[str, Any],
    decisions: list[dict[str, Any]],
    preflight: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    verdicts = {p["cluster_id"]: p for p in preflight}
    by_wave: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for decision in decisions:
        by_wave[decision["wave"]].append(decision)
    waves = []
    for wave in plan_record["waves"]:
        clusters = []
        for cluster in wave["clusters"]:
            scan = verdicts.get(cluster["id"], {})
            clusters.append(
                {
                    **cluster,
                    "started": _from_iso(cluster["started_at"]),
                    "finished": _from_iso(cluster["finished_at"]),
                    "preflight": {**scan, "finished": _from_iso(scan.get("finished_at"))},
                }
            )
        waves.append(
            {
                **wave,
                "started": _from_iso(wave["started_at"]),
                "finished": _from_iso(wave["finished_at"]),
                "outcomes": sorted(Counter(c["outcome"] for c in clusters).items()),
                "decisions": by_wave.get(wave["index"], []),
                "clusters": clusters,
            }
        )
    return waves


def summary_html(
    *,
    plan: RolloutPlan,
    plan_record: Mapping[str, Any],
    decisions: Mapping[str, Any],
    preflight: list[dict[str, Any]],
    span: tuple[datetime.datetime, datetime.datetime, bool],
    events: Mapping[str, Any],
    coverage: Mapping[str, Any],
    files: list[str],
    now: datetime.datetime,
    made_by: str,
    verify_command: str,
) -> bytes:
    """The page. `span`: from when to when the clusters were followed, and whether the plan
    was still going; `events`: count, first and last of events.jsonl; `coverage`: what
    checkpoints.json says."""
    start, end, ongoing = span
    shown_decisions = [{**d, "when": _from_iso(d["at"])} for d in decisions["decisions"]]
    covering = coverage.get("covering") or {}
    context = {
        "plan": plan,
        "record": plan_record,
        "goal_label": Goal(plan.goal).label,
        "enabling": plan.goal == Goal.BPFVETH,
        "authors": [{**a, "when": _from_iso(a["at"])} for a in plan_record["authors"]],
        "waves": _waves(plan_record, shown_decisions, preflight),
        "approvers": sorted({d["user"] for d in shown_decisions}),
        "decisions": shown_decisions,
        "refusals": [{**r, "when": _from_iso(r["at"])} for r in decisions["refusals"]],
        "times": {
            "created": utc_text(plan.created_at),
            "submitted": utc_text(plan.submitted_at),
            "finished": utc_text(plan.finished_at),
            "start": utc_text(start),
            "end": utc_text(end),
        },
        "ongoing": ongoing,
        "events": events,
        "coverage": coverage,
        "covering_when": _from_iso(covering.get("at")),
        "files": files,
        "generated_at": utc_text(now),
        "made_by": made_by,
        "verify_command": verify_command,
    }
    return render_to_string(TEMPLATE, context).encode()
