"""`{% preflight_section cluster %}`: a cluster's preflight section, as its own page polls it,
for the fleet's cluster page to include without fleet importing preflight."""

from __future__ import annotations

from typing import Any

from django import template

from fleet.models import Cluster
from preflight.blockers import cluster_section

register = template.Library()


@register.inclusion_tag("preflight/_preflight.html", takes_context=True)
def preflight_section(context: template.Context, cluster: Cluster) -> dict[str, Any]:
    """The cluster must come with `latest_scan__requested_by` selected."""
    return cluster_section(context["request"].user, cluster)
