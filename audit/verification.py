"""Check the stored chain, for `manage.py audit_verify` and the auditor's page."""

from __future__ import annotations

from audit.chain import HASHED_FIELDS, OPTIONAL_HASHED_FIELDS, Verdict, verify
from audit.models import AuditEvent


def verify_stored_chain(batch_size: int = 5000) -> Verdict:
    rows = AuditEvent.objects.order_by("seq").values(
        *HASHED_FIELDS, *OPTIONAL_HASHED_FIELDS, "hash"
    )
    return verify(rows.iterator(chunk_size=batch_size))
