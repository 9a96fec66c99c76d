"""`{% preflight_section cluster %}`: a cluster's preflight section, as its own page polls it,
for the fleet's cluster page to include without fleet importing preflight; and
`{% preflight_overview %}`, the fleet overview's preflight part."""

from __future__ import annotations

from typing import Any

from django import template

from fleet.models import Cluster
from preflight import overview
from preflight.blockers import cluster_section

register = template.Library()


@register.inclusion_tag("preflight/_preflight.html", takes_context=True)
def preflight_section(context: template.Context, cluster: Cluster) -> dict[str, Any]:
    """The cluster must come with `latest_scan__requested_by` selected."""
    return cluster_section(context["request"].user, cluster)


@register.inclusion_tag("preflight/_overview.html")
def preflight_overview() -> dict[str, Any]:
    """The fleet overview's preflight part: verdicts, stale results, what blocks."""
    return {"preflight": overview.read()}
