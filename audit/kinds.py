"""What kind of event an action is: its group on the auditor's page, and its outcome.

Both follow from the action's name: the database computes them (generated columns), so they
can be indexed for the page's filters yet never disagree with the hashed name.
"""

from __future__ import annotations

from functools import reduce
from operator import or_

from django.db import models
from django.db.models import Case, Q, Value, When


class Category(models.TextChoices):
    FLEET = "fleet", "Fleet"
    PREFLIGHT = "preflight", "Preflight"
    ROLLOUT = "rollout", "Rollout"
    ACCESS = "access", "Access"
    AUDIT = "audit", "Audit log"


class Outcome(models.TextChoices):
    DONE = "done", "Done"
    REFUSED = "refused", "Refused"


_PREFIXES = {
    Category.FLEET: ("cluster.", "inventory.", "subscription.", "outbox.", "fleet."),
    Category.PREFLIGHT: ("preflight.", "iptables."),
    Category.ROLLOUT: ("rollout.",),
    Category.ACCESS: ("user.", "group.", "access."),
    Category.AUDIT: ("audit.",),
}

# Refused attempts are named "<what>_refused" (or "<app>.refused"); a failed sign-in is one too.
_REFUSED_WITHOUT_THE_WORD = frozenset({"user.sign_in_failed", "user.sign_in_failures"})


def _starts_with_any(prefixes: tuple[str, ...]) -> Q:
    return reduce(or_, (Q(action__startswith=prefix) for prefix in prefixes))


CATEGORY_EXPRESSION = Case(
    *(
        When(_starts_with_any(prefixes), then=Value(category.value))
        for category, prefixes in _PREFIXES.items()
    ),
    default=Value(""),
)

OUTCOME_EXPRESSION = Case(
    When(
        Q(action__endswith="refused") | Q(action__in=sorted(_REFUSED_WITHOUT_THE_WORD)),
        then=Value(Outcome.REFUSED.value),
    ),
    default=Value(Outcome.DONE.value),
)


def category_of(action: str) -> str:
    for category, prefixes in _PREFIXES.items():
        if action.startswith(prefixes):
            return category.value
    return ""


def outcome_of(action: str) -> str:
    refused = action.endswith("refused") or action in _REFUSED_WITHOUT_THE_WORD
    return Outcome.REFUSED.value if refused else Outcome.DONE.value


class AuditAction(models.TextChoices):
    """The audit log's own events."""

    CHAIN_BROKEN = "audit.chain_broken", "Chain found broken"
    BREAK_ACKNOWLEDGED = "audit.break_acknowledged", "Broken chain acknowledged"
    EXPORTED = "audit.exported", "Audit log exported"
