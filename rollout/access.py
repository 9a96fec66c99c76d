"""Who may see, run and approve rollouts. Pages and API ask here, nowhere else."""

from __future__ import annotations

from accounts.access import Rule

can_view_plans = Rule("rollout.view_plans", "Seeing rollout plans needs a Wavegate role.")
can_manage_plans = Rule(
    "rollout.manage_plans", "Planning and running rollouts needs the operator or admin role."
)
can_approve_waves = Rule(
    "rollout.approve_waves", "Approving waves needs the approver or admin role."
)
can_emergency_stop = Rule(
    "rollout.emergency_stop", "The emergency stop needs the operator or admin role."
)
