"""`{% rollout_history cluster %}`: every plan a cluster took part in, for the fleet's cluster
page to include without fleet importing rollout (imports run rollout → preflight → fleet)."""

from __future__ import annotations

from typing import Any

from django import template

from fleet.models import Cluster
from rollout.models import RolloutTarget

register = template.Library()


@register.inclusion_tag("rollout/_cluster_history.html")
def rollout_history(cluster: Cluster) -> dict[str, Any]:
    """Newest plan first; a cluster is in a plan at most once."""
    targets = (
        RolloutTarget.objects.filter(cluster=cluster)
        .select_related("plan", "wave")
        .order_by("-plan__created_at", "-plan_id")
    )
    return {"cluster": cluster, "targets": list(targets)}
