"""The append-only, hash-chained audit log. Write to it only through `audit.record(...)`
(or `audit.record_many(...)` for a batch)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from audit.log import Entry, record, record_many

__all__ = ["Entry", "record", "record_many"]


def __getattr__(name: str) -> Any:
    # Imported lazily: the log needs Django's models, which are not ready when apps import.
    if name in __all__:
        from audit import log

        return getattr(log, name)
    raise AttributeError(name)
