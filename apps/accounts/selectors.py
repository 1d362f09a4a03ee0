from __future__ import annotations

from django.contrib.auth.models import AnonymousUser, User
from django.db.models import QuerySet

from apps.accounts.models import WRITE_ROLES, Membership, Team

AnyUser = User | AnonymousUser


def teams_of(*, user: AnyUser) -> QuerySet[Team]:
    if not user.is_authenticated:
        return Team.objects.none()
    return Team.objects.filter(memberships__user=user).distinct()


def teams_writable_by(*, user: AnyUser) -> QuerySet[Team]:
    if not user.is_authenticated:
        return Team.objects.none()
    return Team.objects.filter(memberships__user=user, memberships__role__in=WRITE_ROLES).distinct()


def role_in_team(*, user: AnyUser, team: Team) -> str | None:
    if not user.is_authenticated:
        return None
    membership = Membership.objects.filter(user=user, team=team).only("role").first()
    return membership.role if membership else None


def can_write(*, user: AnyUser, team: Team) -> bool:
    return role_in_team(user=user, team=team) in WRITE_ROLES
