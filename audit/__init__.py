"""The append-only, hash-chained audit log. Write to it only through `audit.record(...)`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from audit.log import record

__all__ = ["record"]


def __getattr__(name: str) -> Any:
    # Imported lazily: the log needs Django's models, which are not ready when apps import.
    if name == "record":
        from audit.log import record

        return record
    raise AttributeError(name)
