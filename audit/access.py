"""Who may read, check and export the audit log. Pages and API ask here, nowhere else."""

from __future__ import annotations

from accounts.access import Rule

can_view_audit = Rule("audit.view_audit", "Reading the audit log needs the auditor or admin role.")
can_export_audit = Rule(
    "audit.export_audit", "Exporting the audit log needs the auditor or admin role."
)
