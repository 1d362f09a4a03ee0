from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.models import Membership


class MembershipOut(serializers.ModelSerializer[Membership]):
    team = serializers.CharField(source="team.slug")
    team_name = serializers.CharField(source="team.name")

    class Meta:
        model = Membership
        fields = ["team", "team_name", "role"]


class MeOut(serializers.Serializer[object]):
    username = serializers.CharField()
    teams = MembershipOut(many=True)


class MeApi(APIView):
    @extend_schema(responses=MeOut)
    def get(self, request: Request) -> Response:
        memberships = Membership.objects.filter(user_id=request.user.pk or 0).select_related("team")
        return Response(
            {"username": request.user.get_username(), "teams": MembershipOut(memberships, many=True).data}
        )
