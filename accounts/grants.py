"""Grant an app's permissions to roles from a data migration.

Permissions are normally created after all migrations (post_migrate); a data migration that
hands them to groups must create them itself, exactly as Django would.
"""

from __future__ import annotations

from typing import Any


def grant(
    apps: Any, app_label: str, model: str, grants: dict[str, list[str]], labels: dict[str, str]
) -> None:
    ContentType = apps.get_model("contenttypes", "ContentType")
    Permission = apps.get_model("auth", "Permission")
    Group = apps.get_model("auth", "Group")
    content_type, _ = ContentType.objects.get_or_create(app_label=app_label, model=model)
    permissions = {}
    for codename, name in labels.items():
        permissions[codename], _ = Permission.objects.get_or_create(
            content_type=content_type, codename=codename, defaults={"name": name}
        )
    for role, codenames in grants.items():
        group, _ = Group.objects.get_or_create(name=role)
        group.permissions.add(*(permissions[c] for c in codenames))
