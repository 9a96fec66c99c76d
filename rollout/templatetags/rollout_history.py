"""`{% rollout_history cluster %}`: every plan a cluster took part in, for the fleet's cluster
page to include without fleet importing rollout (imports run rollout → preflight → fleet)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from django import template
from django.db.models import Count

from fleet.models import Cluster
from rollout import outcomes
from rollout.models import RolloutTarget

register = template.Library()


@register.inclusion_tag("rollout/_cluster_history.html")
def rollout_history(cluster: Cluster) -> dict[str, Any]:
    """Newest plan first; a cluster is in a plan at most once. A finished plan shows its
    outcome (rollout/outcomes.py), read from its clusters' counts in one grouped query."""
    targets = list(
        RolloutTarget.objects.filter(cluster=cluster)
        .select_related("plan", "wave")
        .order_by("-plan__created_at", "-plan_id")
    )
    counts: dict[int, dict[str, int]] = defaultdict(dict)
    for plan_id, status, n in (
        RolloutTarget.objects.filter(plan_id__in=[t.plan_id for t in targets])
        .order_by()
        .values_list("plan_id", "status")
        .annotate(n=Count("pk"))
    ):
        counts[plan_id][status] = n
    rows = [(t, outcomes.outcome(t.plan.status, counts[t.plan_id], t.plan.goal)) for t in targets]
    return {"cluster": cluster, "targets": targets, "rows": rows}
