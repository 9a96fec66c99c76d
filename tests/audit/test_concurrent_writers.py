"""Many writers at once still leave one unbroken chain."""

from __future__ import annotations

import threading

from django.db import connection, transaction

import audit
from audit.models import AuditEvent
from audit.verification import verify_stored_chain

WRITERS = 50


def test_fifty_concurrent_writers_leave_one_unbroken_chain(isolated_db):
    start = threading.Barrier(WRITERS)
    errors: list[BaseException] = []

    def write(n: int) -> None:
        try:
            start.wait()
            with transaction.atomic():
                audit.record("test.concurrent", object_type="test.writer", object_id=str(n))
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=write, args=(n,)) for n in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    writers = AuditEvent.objects.filter(action="test.concurrent")
    assert sorted(int(i) for i in writers.values_list("object_id", flat=True)) == list(
        range(WRITERS)
    )
    verdict = verify_stored_chain()
    assert verdict.intact, verdict
    assert verdict.count == AuditEvent.objects.count()
    # One chain: no two events claim the same predecessor.
    prev_hashes = list(AuditEvent.objects.values_list("prev_hash", flat=True))
    assert len(prev_hashes) == len(set(prev_hashes))
