"""OpenAPI generation: every operation documents the errors it can answer, in the one error format."""

from __future__ import annotations

from typing import Any

from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema
from rest_framework import serializers
from rest_framework.permissions import AllowAny


class ErrorItemOut(serializers.Serializer[Any]):
    field = serializers.CharField(
        help_text='Dotted path of the offending input ("traffic.hourly_requests_per_s[3]")'
    )
    message = serializers.CharField()
    code = serializers.CharField()


class ErrorOut(serializers.Serializer[Any]):
    status = serializers.IntegerField(help_text="The HTTP status, repeated")
    detail = serializers.CharField()
    errors = ErrorItemOut(many=True)  # type: ignore[assignment]
    request_id = serializers.CharField(help_text="Also in the X-Request-ID header and the server's log lines")


_DESCRIPTIONS = {
    "400": "Invalid input: each entry of `errors` names a field and says why.",
    "401": "No valid credentials (missing, wrong or expired token).",
    "403": "Authenticated, but not allowed (e.g. a viewer writing).",
    "404": "No such object among those you can see (or no such page of a list).",
    "409": "Conflicts with the object's current state.",
    "413": "Request body over the size limit named in `detail`.",
    "415": "Unsupported Content-Type.",
    "429": "Too many requests (throttled, or sign-in locked out); see Retry-After.",
    "503": "The database was unavailable; retry.",
}


class AutoSchema(SpectacularAutoSchema):
    def _error_codes(self) -> list[str]:
        codes = ["400", "429", "503"]
        public = any(isinstance(p, AllowAny) for p in self.view.get_permissions())
        authenticated = bool(self.view.get_authenticators())
        if authenticated or not public:
            codes.append("401")
        if not public:
            codes.append("403")
        if "{" in self.path or self._is_list_view():
            codes.append("404")
        if self.method in ("POST", "PUT", "PATCH", "DELETE"):
            codes.append("409")
        if self.method in ("POST", "PUT", "PATCH"):
            codes += ["413", "415"]
        return sorted(codes)

    def _get_response_bodies(self, direction: Any = "response") -> dict[str, Any]:
        responses: dict[str, Any] = super()._get_response_bodies(direction)
        for code in self._error_codes():
            if code not in responses:
                responses[code] = self._get_response_for_code(  # type: ignore[no-untyped-call]
                    ErrorOut, code, direction=direction
                )
                responses[code]["description"] = _DESCRIPTIONS[code]
        return responses
