"""The run environment API for runners: ``POST /api/v1/run-environments/``.

Runners authenticate with a runner token (``Authorization: Bearer ihub_run_…``), made
by staff in the admin and shown once; only its SHA-256 is stored, looked up by hash
and compared in constant time. A revoked or expired token is 401; an app outside the
runner's scope (its namespaces) is 403 ``runner_scope``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from django.utils.decorators import method_decorator
from django.views.decorators.cache import never_cache
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import (
    OpenApiResponse,
    PolymorphicProxySerializer,
    extend_schema,
    inline_serializer,
)
from rest_framework import serializers, status
from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps_registry import selectors, services
from apps_registry.api.authentication import bearer_token
from apps_registry.api.parsers import BoundedJSONParser
from apps_registry.run_env import run_environment_build, run_target
from apps_registry.tokens import RUNNER_TOKEN_PREFIX
from integrations import metrics

if TYPE_CHECKING:
    from apps_registry.models import RunnerToken


_REFUSED = "Invalid, expired or revoked runner token."


class RunnerAuthentication(BaseAuthentication):
    """``Authorization: Bearer ihub_run_...``: a live runner token, or 401 (one message
    for unknown, revoked and expired tokens: it never repeats the token)."""

    def authenticate(self, request: Request) -> tuple[Any, Any] | None:
        token = bearer_token(request, what="runner token")
        if token is None:
            return None
        if not token.startswith(RUNNER_TOKEN_PREFIX):
            raise AuthenticationFailed(_REFUSED)
        row = selectors.runner_token_for(token=token)
        if row is None:
            raise AuthenticationFailed(_REFUSED)
        services.runner_token_touch(runner_token=row)
        return (None, row)

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="runners"'


class IsRunner(BasePermission):
    def has_permission(self, request: Request, view: Any) -> bool:
        # Authenticated by a runner token (the view's only authenticator sets it).
        return isinstance(request.successful_authenticator, RunnerAuthentication)


class RunnerTokenScheme(OpenApiAuthenticationExtension):
    target_class = RunnerAuthentication
    name = "runnerToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "http", "scheme": "bearer", "description": "A runner token (ihub_run_…)"}


class RunRequestSerializer(serializers.Serializer):
    user = serializers.CharField(max_length=254, help_text="The user's id or email.")
    app = serializers.RegexField(
        r"^[a-z0-9][a-z0-9._-]{0,63}/[a-z0-9][a-z0-9._-]{0,63}$",  # dots: model-2.5-flash
        help_text="namespace/name",
    )
    version = serializers.IntegerField(
        required=False, min_value=1, max_value=2**31 - 1, help_text="Default: the current."
    )
    connections = serializers.DictField(
        child=serializers.IntegerField(min_value=1, max_value=2**63 - 1),
        required=False,
        help_text='A connection id per provider instead of the default, e.g. {"google": 12}.',
    )


_MISSING = inline_serializer(
    "NotReady",
    fields={
        "error": serializers.CharField(),
        "missing": serializers.ListField(child=serializers.DictField()),
        "actions": serializers.ListField(
            child=serializers.DictField(),
            help_text="kind: connect, add_permissions, reconnect, set_secret, upload_key, "
            "or authorize_app (the user has the items and must allow the app to use them "
            "at url; capabilities and secrets name them)",
        ),
        "unavailable": serializers.ListField(
            child=serializers.DictField(),
            help_text="Outages of connections that grant what is there (as in a 503)",
        ),
    },
)
_ENV = inline_serializer(
    "RunEnvironment",
    fields={
        "env": serializers.DictField(child=serializers.CharField()),
        "expires_at": serializers.DateTimeField(allow_null=True),
        "keys": serializers.ListField(child=serializers.CharField()),
        "app": serializers.CharField(),
        "version": serializers.IntegerField(),
    },
)
_ERROR = inline_serializer(
    "RunError", fields={"error": serializers.CharField(), "detail": serializers.CharField()}
)
_OUTAGE_FIELDS: dict[str, serializers.Field] = {
    "provider": serializers.CharField(),
    "connection_id": serializers.IntegerField(),
    "reason": serializers.CharField(help_text="The last error code of the refresh"),
    "retry_at": serializers.DateTimeField(
        allow_null=True, help_text="When the next attempt is due; null: now"
    ),
}
_OUTAGE = inline_serializer("Outage", fields=_OUTAGE_FIELDS)
_UNAVAILABLE = PolymorphicProxySerializer(
    component_name="RunUnavailable",
    serializers=[
        inline_serializer(
            "ProviderOutage",
            fields={
                "error": serializers.CharField(),
                "detail": serializers.CharField(),
                **_OUTAGE_FIELDS,
                "unavailable": serializers.ListField(child=_OUTAGE),
            },
        ),
        _ERROR,
    ],
    resource_type_field_name=None,
)
# What DRF answers itself (authentication, parsing): {"detail": "..."}.
_API_ERROR = inline_serializer("ApiError", fields={"detail": serializers.CharField()})
_INVALID = PolymorphicProxySerializer(
    component_name="RunBadRequest",
    serializers=[
        inline_serializer(
            "RunInvalid",
            fields={
                "error": serializers.CharField(),
                "detail": serializers.DictField(help_text="The problems, by field"),
            },
        ),
        _API_ERROR,
    ],
    resource_type_field_name=None,
)


# Tokens in the body: no cache anywhere may keep it (Cache-Control: no-store, private).
@method_decorator(never_cache, name="dispatch")
# Every answer counted by status and timed (/metrics).
@method_decorator(metrics.run_environment_observed, name="dispatch")
class RunEnvironmentView(APIView):
    authentication_classes = [RunnerAuthentication]
    permission_classes = [IsRunner]
    parser_classes = [BoundedJSONParser]

    @extend_schema(
        operation_id="run_environment",
        summary="The environment of one app run",
        description=(
            "Only the keys the app's manifest declares (required ones, and optional ones "
            "that are available), every token valid for at least the margin. 409 lists "
            "what the user must still grant, or allow the app to use (reason not_allowed, "
            "action authorize_app), with the actions that fix it."
        ),
        request=RunRequestSerializer,
        responses={
            200: _ENV,
            400: OpenApiResponse(_INVALID, description="Malformed request"),
            401: OpenApiResponse(
                _API_ERROR, description="No runner token, or a bad, expired or revoked one"
            ),
            403: OpenApiResponse(
                _ERROR,
                description="`runner_scope`: the app's namespace is outside the runner's scope",
            ),
            404: OpenApiResponse(_ERROR, description="No such user, app or version"),
            409: OpenApiResponse(_MISSING, description="Not authorized yet"),
            413: OpenApiResponse(_API_ERROR, description="The body is over its size limit"),
            415: OpenApiResponse(_API_ERROR, description="The body is not application/json"),
            502: OpenApiResponse(_ERROR, description="A provider refused a refresh"),
            503: OpenApiResponse(
                _UNAVAILABLE,
                description="A provider is unreachable, or a credential does not decrypt",
            ),
        },
    )
    def post(self, request: Request) -> Response:
        body = RunRequestSerializer(data=request.data)
        if not body.is_valid():
            return Response(
                {"error": "invalid_request", "detail": body.errors},
                status=status.HTTP_400_BAD_REQUEST,
            )
        data = body.validated_data
        runner_token = cast("RunnerToken", request.auth)  # IsRunner: the authenticator's row
        # Errors (403, 404, 409, 502, 503) are answered by ``api.errors.exception_handler``.
        selectors.runner_scope_check(runner_token=runner_token, app=data["app"])
        manifest = run_target(app=data["app"], version=data.get("version"))
        run = run_environment_build(
            user=data["user"],
            manifest=manifest,
            connections=data.get("connections"),
            # The audit log names the runner and which of its tokens: "name (prefix…)".
            runner=str(runner_token),
        )
        return Response(
            {
                "env": run.env,
                "expires_at": run.expires_at.isoformat() if run.expires_at else None,
                "keys": run.keys,
                "app": run.app,
                "version": run.version,
            }
        )
