"""`{% rollout_overview %}`: the overview's rollout part (rollout/overview.py), for the fleet's
overview page to include without fleet importing rollout."""

from __future__ import annotations

from typing import Any

from django import template

from rollout import access, overview

register = template.Library()


@register.inclusion_tag("rollout/_overview.html", takes_context=True)
def rollout_overview(context: template.Context) -> dict[str, Any]:
    user = context["request"].user
    if not access.can_view_plans(user):
        return {"shown": False}
    return {"shown": True, "rollouts": overview.read(), "can_manage": access.can_manage_plans(user)}
