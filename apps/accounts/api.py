from __future__ import annotations

from typing import Any

from django.contrib.auth import authenticate, user_logged_in
from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.authtoken.models import Token
from rest_framework.permissions import AllowAny, BasePermission, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from advisor.rest import BoundedFormParser, BoundedJSONParser
from advisor.security import (
    AnonThrottle,
    ExpiringTokenAuthentication,
    SignInThrottle,
    UserThrottle,
    lockout_message,
    token_expires_at,
)
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


class TokenIn(serializers.Serializer[Any]):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=1024, trim_whitespace=False, style={"input_type": "password"})


class TokenOut(serializers.Serializer[Any]):
    token = serializers.CharField()
    expires_at = serializers.DateTimeField()


class SignInLocked(exceptions.Throttled):
    default_code = "locked_out"

    def __init__(self) -> None:
        super().__init__(detail=lockout_message())


def _current_token(user: Any) -> Token:
    """The user's token, replaced by a new one when it expired. Two requests at once share one token."""
    token = Token.objects.filter(user=user).first()
    if token is not None and token_expires_at(token) > timezone.now():
        return token
    try:
        with transaction.atomic():
            Token.objects.filter(user=user).delete()
            return Token.objects.create(user=user)
    except IntegrityError:  # another request created it between the delete and the create
        return Token.objects.get(user=user)


class AuthTokenApi(APIView):
    """Sign in for an API token; revoke it. Guarded by django-axes (lockout after repeated failures) and a per
    address throttle, so passwords cannot be guessed here faster than on the login page."""

    authentication_classes = [ExpiringTokenAuthentication]
    parser_classes = [BoundedJSONParser, BoundedFormParser]
    throttle_classes = [AnonThrottle, UserThrottle, SignInThrottle]

    def get_permissions(self) -> list[BasePermission]:
        return [IsAuthenticated()] if self.request.method == "DELETE" else [AllowAny()]

    def initialize_request(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Request:
        drf_request = super().initialize_request(request, *args, **kwargs)
        if request.method == "POST":
            # Signing in never needs the old token: a client that still sends an expired one gets a new one.
            drf_request.authenticators = ()
        return drf_request

    @extend_schema(
        request=TokenIn,
        responses={200: TokenOut},
        auth=[],
        description="Your API token (send it as `Authorization: Token <token>`) and when it expires "
        "(API_TOKEN_TTL_HOURS after it was issued; asking again after that issues a new one). After repeated "
        "failed attempts from one address or for one username, answers 429 until the lockout ends.",
    )
    def post(self, request: Request) -> Response:
        body = TokenIn(data=request.data)
        body.is_valid(raise_exception=True)
        http_request = request._request  # django-axes tracks attempts on Django's request, not DRF's wrapper
        user = authenticate(
            http_request, username=body.validated_data["username"], password=body.validated_data["password"]
        )
        if user is None:
            if getattr(http_request, "axes_locked_out", False):
                raise SignInLocked()
            raise exceptions.ValidationError(
                {"non_field_errors": ["Unable to sign in with the given username and password."]},
                code="authorization",
            )
        # A token is a sign-in: last_login is updated and django-axes clears this client's failed attempts.
        user_logged_in.send(sender=user.__class__, request=http_request, user=user)
        token = _current_token(user)
        return Response(TokenOut({"token": token.key, "expires_at": token_expires_at(token)}).data)

    @extend_schema(request=None, responses={204: None}, description="Revoke the token this request uses.")
    def delete(self, request: Request) -> Response:
        Token.objects.filter(user_id=request.user.pk or 0).delete()  # IsAuthenticated: pk is set
        return Response(status=status.HTTP_204_NO_CONTENT)
