"""What a cluster's node disruption policy says about changing its acceleration mode, which
reimages every node: allowed now, refused, allowed only inside its node OS upgrade window (and
when that next opens), or unknown. A pure function of the stored policy and window.

AKS's rules ("Node Disruption Policy (Preview)"): `Allow` (the default) lets it happen at any
time; `Block` refuses it (OperationBlockedByNodeDisruptionPolicy); `AllowDuringMaintenanceWindow`
allows it only inside the aksManagedNodeOSUpgradeSchedule configuration's window
(OperationOutsideNodeDisruptionWindow outside it), and at any time when the cluster has no such
configuration.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from fleet.eligibility import BLOCK, BLOCK_REASON
from fleet.maintenance import HORIZON, UnreadableWindow, next_open

NODE_OS_SCHEDULE = "aksManagedNodeOSUpgradeSchedule"
ALLOW, IN_WINDOW = "Allow", "AllowDuringMaintenanceWindow"
POLICIES = (ALLOW, IN_WINDOW, BLOCK)


class Disruption(StrEnum):
    ALLOWED = "allowed"  # at any time
    REFUSED = "refused"  # Block
    WAITS = "waits"  # AllowDuringMaintenanceWindow, its window closed now
    IN_WINDOW = "in_window"  # AllowDuringMaintenanceWindow, its window open now
    UNKNOWN = "unknown"  # the policy was not read (or is one Wavegate does not know)


class DisruptionFacts(Protocol):
    @property
    def node_disruption_policy(self) -> str: ...
    @property
    def maintenance_window(self) -> Any: ...


@dataclass(frozen=True)
class Verdict:
    kind: Disruption
    policy: str
    sentence: str  # for the operator
    opens_at: datetime.datetime | None = None  # WAITS: when its window next opens, if known

    @property
    def refused(self) -> bool:
        return self.kind == Disruption.REFUSED

    @property
    def waits(self) -> bool:
        return self.kind == Disruption.WAITS

    @property
    def governed_by_window(self) -> bool:
        """AKS itself refuses the change outside the cluster's node OS upgrade window."""
        return self.kind in (Disruption.WAITS, Disruption.IN_WINDOW)


def node_os_window(window: Any) -> dict[str, Any] | None:
    """The stored window when it is the aksManagedNodeOSUpgradeSchedule configuration (the
    sync stores that one whenever the cluster has it), else None."""
    if isinstance(window, dict) and window.get("name") == NODE_OS_SCHEDULE:
        return window
    return None


def when(moment: datetime.datetime) -> str:
    return f"{moment.astimezone(datetime.UTC):%Y-%m-%d %H:%M} UTC"


def disruption_verdict(
    cluster: DisruptionFacts, now: datetime.datetime, *, error: str = ""
) -> Verdict:
    """The policy's answer, at `now`, to changing the cluster's acceleration mode. `error`: why
    the policy could not be read, when it could not."""
    policy = cluster.node_disruption_policy
    if policy == ALLOW:
        return Verdict(
            Disruption.ALLOWED, policy, "Node disruption policy Allow: AKS allows it at any time."
        )
    if policy == BLOCK:
        return Verdict(Disruption.REFUSED, policy, BLOCK_REASON)
    if policy != IN_WINDOW:
        why = (
            f"is {policy!r}, which Wavegate does not know ({', '.join(POLICIES)})"
            if policy
            else f"could not be read: {error}"
            if error
            else "has not been read from Azure yet"
        )
        return Verdict(Disruption.UNKNOWN, policy, f"Node disruption policy unknown: it {why}.")
    said = f"Node disruption policy {IN_WINDOW}:"
    window = node_os_window(cluster.maintenance_window)
    if window is None:
        return Verdict(
            Disruption.ALLOWED,
            policy,
            f"{said} the cluster has no {NODE_OS_SCHEDULE} configuration, so AKS allows it at "
            "any time.",
        )
    try:
        opens = next_open(window, now)
    except UnreadableWindow as exc:
        return Verdict(
            Disruption.WAITS,
            policy,
            f"{said} AKS allows it only inside the {NODE_OS_SCHEDULE} window, which Wavegate "
            f"cannot evaluate ({exc}).",
        )
    if opens == now:
        return Verdict(
            Disruption.IN_WINDOW,
            policy,
            f"{said} its {NODE_OS_SCHEDULE} window is open now; AKS refuses it outside.",
        )
    if opens is None:
        weeks = HORIZON.days // 7
        return Verdict(
            Disruption.WAITS,
            policy,
            f"{said} AKS allows it only inside the {NODE_OS_SCHEDULE} window, which does not "
            f"open in the next {weeks} weeks.",
        )
    return Verdict(
        Disruption.WAITS,
        policy,
        f"{said} AKS refuses it outside the {NODE_OS_SCHEDULE} window "
        f"(OperationOutsideNodeDisruptionWindow), closed now; it next opens {when(opens)}.",
        opens,
    )
