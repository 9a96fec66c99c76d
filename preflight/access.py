"""Who may start preflight scans and change the accepted iptables owners. Pages and API ask
here, nowhere else; seeing preflight results is seeing the fleet (fleet/access.py).

The permissions keep their `fleet.` codenames: they belong to the fleet's models, which hold
the scans and the accepted owners.
"""

from __future__ import annotations

from accounts.access import Rule

can_scan_clusters = Rule(
    "fleet.scan_clusters", "Starting preflight scans needs the operator or admin role."
)
can_manage_iptables_owners = Rule(
    "fleet.manage_iptables_owners", "Changing the accepted iptables owners needs the admin role."
)
can_confirm_iptables_owners = Rule(
    "fleet.confirm_iptables_owners",
    "Confirming a change to the accepted iptables owners needs the approver or admin role.",
)
