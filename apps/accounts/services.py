from __future__ import annotations

from django.contrib.auth.models import Permission, User
from django.db import transaction
from django.utils.text import slugify

from apps.accounts.models import Membership, Role, Team


def team_create(*, name: str, owner: User | None = None) -> Team:
    with transaction.atomic():
        team = Team.objects.create(name=name, slug=slugify(name))
        if owner is not None:
            Membership.objects.create(team=team, user=owner, role=Role.OWNER)
    return team


def membership_set(*, team: Team, user: User, role: Role) -> Membership:
    membership, _ = Membership.objects.update_or_create(team=team, user=user, defaults={"role": role})
    return membership


def user_ensure(*, username: str, password: str, email: str = "", is_staff: bool = False) -> User:
    """Create the user, or reset the password of an existing one (used by demo data, idempotent)."""
    user, _ = User.objects.get_or_create(username=username, defaults={"email": email})
    user.set_password(password)
    user.is_staff = is_staff
    user.save()
    return user


def staff_permissions_grant(*, user: User, view: tuple[str, ...], change: tuple[str, ...] = ()) -> int:
    """Let a staff user use the admin for these apps: view permissions on every model of `view`, and add,
    change and delete on those of `change` (a staff user with no permission meets an empty admin)."""
    wanted = Permission.objects.filter(content_type__app_label__in=view, codename__startswith="view_") | (
        Permission.objects.filter(content_type__app_label__in=change)
    )
    user.user_permissions.add(*wanted)
    return wanted.count()
