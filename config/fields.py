"""Model fields shared by the apps."""

from __future__ import annotations

from typing import Any

from django.db import models


class JSONField(models.JSONField):
    """Django's JSONField, kept off PostgreSQL's UNNEST bulk-insert path.

    Django 5.2 bulk-inserts through arrays of values (UNNEST) unless a field supplies its own
    placeholder; psycopg then escapes every quote of every JSON document in Python, which cost
    seconds when a sync inserts 10,000 clusters and their audit events. A plain placeholder
    gives the ordinary multi-row VALUES insert instead.
    """

    def get_placeholder(self, value: Any, compiler: Any, connection: Any) -> str:
        return "%s"
