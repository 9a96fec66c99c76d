"""Record every change of who may do what, whichever path made it (a page, the admin site,
`createsuperuser`, `changepassword`, `set_roles`, a shell): users and groups created, changed
and deleted, and the roles (groups) and permissions they hold.

Django's model signals run inside the saving code's transaction when it has one, so the event
commits with the change; a command that saves without one (`createsuperuser`) gets a
transaction of the event's own, right after its change.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.db import models, transaction
from django.db.models.signals import m2m_changed, post_delete, post_save, pre_delete, pre_save
from django.dispatch import receiver

from accounts.choices import GroupEvent, UserEvent
from accounts.roles import Role
from audit.log import record

User = get_user_model()

# What a user's event shows of it; never its password hash (a change of it is an event alone).
USER_FIELDS = ("username", "email", "is_active", "is_staff", "is_superuser")
_SAVED_BEFORE = "_audit_saved_before"
_DELETED_BEFORE = "_audit_deleted_before"


def _record(action: str, **details: Any) -> None:
    # Joins the saving code's transaction; starts one only when it has none.
    with transaction.atomic(savepoint=False):
        record(action, **details)


def _role_order(name: str) -> tuple[int, str]:
    return (Role.values.index(name), "") if name in Role.values else (len(Role.values), name)


def _group_names(groups: models.QuerySet[Group]) -> list[str]:
    """Roles first, in `Role`'s order (as accounts.roles.roles_of), then other groups by name."""
    return sorted(groups.values_list("name", flat=True), key=_role_order)


def _permission_names(permissions: models.QuerySet[Permission]) -> list[str]:
    return sorted(
        f"{app}.{codename}"
        for app, codename in permissions.values_list("content_type__app_label", "codename")
    )


def _fields(user: Any) -> dict[str, Any]:
    return {field: getattr(user, field) for field in USER_FIELDS}


# --- users -------------------------------------------------------------------------------------
@receiver(pre_save, sender=User, dispatch_uid="audit.user_saving")
def user_saving(sender: Any, instance: Any, update_fields: Any = None, **kwargs: Any) -> None:
    """Keep the stored user as it was, to say what the save changed."""
    if instance._state.adding or instance.pk is None:
        return
    if update_fields is not None and not {*USER_FIELDS, "password"} & set(update_fields):
        return  # e.g. last_login, saved at every sign-in
    before = sender._default_manager.filter(pk=instance.pk).values(*USER_FIELDS, "password")
    setattr(instance, _SAVED_BEFORE, before.first())


def _password_changed(user: Any, old_hash: str, update_fields: Any) -> bool:
    if user.password == old_hash:
        return False
    # Django re-hashes a password it checks when its hasher's settings grew stronger, saving
    # the password alone, with the raw password forgotten first: the password stays the same.
    rehashed = (
        user._password is None
        and update_fields is not None
        and set(update_fields) == {"password"}
        and user.has_usable_password()
    )
    return not rehashed


@receiver(post_save, sender=User, dispatch_uid="audit.user_saved")
def user_saved(
    sender: Any, instance: Any, created: bool, update_fields: Any = None, **kwargs: Any
) -> None:
    before = instance.__dict__.pop(_SAVED_BEFORE, None)
    if created:
        _record(UserEvent.CREATED, obj=instance, after=_fields(instance))
        return
    if before is None:
        return
    saved = set(update_fields) if update_fields is not None else {*USER_FIELDS, "password"}
    changed = [f for f in USER_FIELDS if f in saved and before[f] != getattr(instance, f)]
    if changed:
        _record(
            UserEvent.CHANGED,
            obj=instance,
            before={field: before[field] for field in changed},
            after={field: getattr(instance, field) for field in changed},
        )
    if "password" in saved and _password_changed(instance, before["password"], update_fields):
        _record(
            UserEvent.PASSWORD_CHANGED,
            obj=instance,
            after={"usable": instance.has_usable_password()},
        )


@receiver(pre_delete, sender=User, dispatch_uid="audit.user_deleting")
def user_deleting(sender: Any, instance: Any, **kwargs: Any) -> None:
    # Read before the delete takes the memberships with it.
    setattr(instance, _DELETED_BEFORE, {"roles": _group_names(instance.groups.all())})


@receiver(post_delete, sender=User, dispatch_uid="audit.user_deleted")
def user_deleted(sender: Any, instance: Any, **kwargs: Any) -> None:
    held = instance.__dict__.pop(_DELETED_BEFORE, {})
    _record(UserEvent.DELETED, obj=instance, before={**_fields(instance), **held})


# --- groups ------------------------------------------------------------------------------------
@receiver(pre_save, sender=Group, dispatch_uid="audit.group_saving")
def group_saving(sender: Any, instance: Any, **kwargs: Any) -> None:
    if not instance._state.adding and instance.pk is not None:
        name = sender._default_manager.filter(pk=instance.pk).values_list("name", flat=True)
        setattr(instance, _SAVED_BEFORE, name.first())


@receiver(post_save, sender=Group, dispatch_uid="audit.group_saved")
def group_saved(sender: Any, instance: Any, created: bool, **kwargs: Any) -> None:
    before = instance.__dict__.pop(_SAVED_BEFORE, None)
    if created:
        _record(GroupEvent.CREATED, obj=instance, after={"name": instance.name})
    elif before is not None and before != instance.name:
        _record(
            GroupEvent.CHANGED, obj=instance, before={"name": before}, after={"name": instance.name}
        )


@receiver(pre_delete, sender=Group, dispatch_uid="audit.group_deleting")
def group_deleting(sender: Any, instance: Any, **kwargs: Any) -> None:
    setattr(
        instance,
        _DELETED_BEFORE,
        {
            "members": sorted(instance.user_set.values_list(User.USERNAME_FIELD, flat=True)),
            "permissions": _permission_names(instance.permissions.all()),
        },
    )


@receiver(post_delete, sender=Group, dispatch_uid="audit.group_deleted")
def group_deleted(sender: Any, instance: Any, **kwargs: Any) -> None:
    held = instance.__dict__.pop(_DELETED_BEFORE, {})
    _record(GroupEvent.DELETED, obj=instance, before={"name": instance.name, **held})


# --- memberships and permissions ---------------------------------------------------------------
class _Relation:
    """One many-to-many relation that decides what someone may do, seen from its owner (the
    user or group whose event it is), whichever side the change was made from."""

    def __init__(self, owner: type[models.Model], field: str, action: str, key: str) -> None:
        self.owner, self.field, self.action, self.key = owner, field, action, key

    def held(self, owner: Any) -> list[str]:
        related = getattr(owner, self.field).all()
        return _group_names(related) if self.key == "roles" else _permission_names(related)

    def owners(self, instance: Any, reverse: bool, pk_set: set[Any] | None) -> list[Any]:
        if not reverse:
            return [instance]
        owners = self.owner._default_manager.all()
        if pk_set is None:  # cleared from the other side: everyone who held it
            return list(owners.filter(**{self.field: instance}))
        return list(owners.filter(pk__in=pk_set))


_RELATIONS = {
    User.groups.through: _Relation(User, "groups", UserEvent.ROLES_CHANGED, "roles"),
    User.user_permissions.through: _Relation(
        User, "user_permissions", UserEvent.PERMISSIONS_CHANGED, "permissions"
    ),
    Group.permissions.through: _Relation(
        Group, "permissions", GroupEvent.PERMISSIONS_CHANGED, "permissions"
    ),
}
_HELD_BEFORE = "_audit_held_before"


def relation_changed(
    sender: Any, instance: Any, action: str, reverse: bool, pk_set: Any = None, **kwargs: Any
) -> None:
    """Before an add, remove or clear, note what each owner held; after it, record each owner
    whose holding changed, with what it held before and holds now."""
    relation = _RELATIONS[sender]
    if action.startswith("pre_"):
        owners = relation.owners(instance, reverse, pk_set)
        setattr(instance, _HELD_BEFORE, [(owner, relation.held(owner)) for owner in owners])
        return
    for owner, before in instance.__dict__.pop(_HELD_BEFORE, []):
        after = relation.held(owner)
        if after != before:
            _record(
                relation.action,
                obj=owner,
                before={relation.key: before},
                after={relation.key: after},
            )


for _through in _RELATIONS:
    m2m_changed.connect(
        relation_changed, sender=_through, dispatch_uid=f"audit.{_through._meta.label_lower}"
    )
