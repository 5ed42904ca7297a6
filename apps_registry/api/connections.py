"""The connections API: ``/api/v1/connections/``, for a platform's backend and for users.

Two credentials (``Authorization: Bearer ...``):

- a platform credential (``ihp_...``), made by staff and shown once, with scopes:
  ``connections:read`` to list and get, ``connections:write`` to force a refresh and to
  disconnect (a write scope does not imply the read one); over every user's
  connections, the user named by ``?user=`` when listing;
- a user's personal API token (``ihub_...``): both scopes, over the user's own
  connections only (another user's connection is 404, as a nonexistent one).

A runner token is refused (401). Answers never hold a token value, a refresh token or a
client secret: tokens are handed out only by the run environment API. Errors are the
error family's JSON (``{"error", "detail"}``), by ``api.errors.exception_handler``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from django.utils.decorators import method_decorator
from django.views.decorators.cache import never_cache
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps_registry import selectors, services
from apps_registry.api.authentication import ApiTokenAuthentication, bearer_token
from apps_registry.api.serializers import ConnectionSerializer
from apps_registry.tokens import PLATFORM_TOKEN_PREFIX
from integrations.connections.forced_refresh import connection_refresh_force
from integrations.providers import registry

if TYPE_CHECKING:
    from django.contrib.auth.models import User

    from apps_registry.models import PlatformCredential
    from integrations.models import Connection

READ = "connections:read"
WRITE = "connections:write"

_REFUSED = "Invalid, expired or revoked platform credential."


class PlatformCredentialAuthentication(BaseAuthentication):
    """``Authorization: Bearer ihp_...``: a live platform credential, or 401 (one message
    for unknown, revoked and expired credentials: it never repeats the token). Another
    token is left to the next authenticator."""

    def authenticate(self, request: Request) -> tuple[Any, Any] | None:
        token = bearer_token(request, what="platform credential")
        if token is None or not token.startswith(PLATFORM_TOKEN_PREFIX):
            return None
        row = selectors.platform_credential_for(token=token)
        if row is None:
            raise AuthenticationFailed(_REFUSED)
        services.platform_credential_touch(credential=row)
        return (None, row)

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'


class PlatformCredentialScheme(OpenApiAuthenticationExtension):
    target_class = PlatformCredentialAuthentication
    name = "platformCredential"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A platform credential (`ihp_...`) with the scopes "
            "`connections:read` and/or `connections:write`: "
            "`python manage.py create_platform_credential NAME --scope connections:read`.",
        }


class PlatformOrUser(BasePermission):
    """Authenticated by a platform credential or by a personal API token (a runner
    token never authenticates here)."""

    def has_permission(self, request: Request, view: Any) -> bool:
        return request.auth is not None and isinstance(
            request.successful_authenticator,
            PlatformCredentialAuthentication | ApiTokenAuthentication,
        )


def _access(request: Request, scope: str) -> tuple[User | None, dict[str, str]]:
    """Whose connections the request may touch (the personal token's user; None: any
    user's, for a platform credential that has ``scope``, else ``ScopeMissingError``)
    and the actor the audit log names."""
    if isinstance(request.successful_authenticator, PlatformCredentialAuthentication):
        credential = cast("PlatformCredential", request.auth)
        selectors.platform_scope_check(credential=credential, scope=scope)
        return None, {"by": credential.name, "via": "platform_credential"}
    user = cast("User", request.user)
    return user, {"by": f"user:{user.pk}", "via": "api_token"}


def _answer(connection: Connection) -> dict[str, Any]:
    return ConnectionSerializer(connection, context={"catalogue": registry.catalogue()}).data


class ListQuerySerializer(serializers.Serializer):
    user = serializers.CharField(
        max_length=254,
        required=False,
        help_text="The user's id or email. Required with a platform credential; with a "
        "personal token, its own (anyone else: 404).",
    )
    provider = serializers.CharField(
        max_length=64, required=False, help_text="Only this provider's, e.g. google"
    )


_ERROR = inline_serializer(
    "ConnectionsError", fields={"error": serializers.CharField(), "detail": serializers.CharField()}
)
_SCOPE_MISSING = inline_serializer(
    "ScopeMissing",
    fields={
        "error": serializers.CharField(),
        "detail": serializers.CharField(),
        "scope": serializers.CharField(help_text="The scope the credential lacks"),
    },
)
_API_ERROR = inline_serializer("ConnectionsApiError", fields={"detail": serializers.CharField()})
_INVALID = inline_serializer(
    "ConnectionsInvalid",
    fields={
        "error": serializers.CharField(),
        "detail": serializers.DictField(help_text="The problems, by field"),
    },
)
_UNAUTHORIZED = OpenApiResponse(
    _API_ERROR,
    description="No credential, or a bad, expired or revoked one (a runner token included)",
)
_FORBIDDEN = OpenApiResponse(
    _SCOPE_MISSING, description="`scope_missing`: the platform credential lacks the scope"
)
_NOT_FOUND = OpenApiResponse(
    inline_serializer(
        "ConnectionNotFound",
        fields={
            "error": serializers.CharField(
                required=False,
                help_text="`not_found`; absent for a path no route matches (an id not a number)",
            ),
            "detail": serializers.CharField(),
        },
    ),
    description="`not_found`: no such connection, or another user's (personal token)",
)
_LIST = inline_serializer("ConnectionList", fields={"connections": ConnectionSerializer(many=True)})
_REFRESHED = inline_serializer(
    "ConnectionRefreshed",
    fields={
        "connection": ConnectionSerializer(),
        "refreshed": serializers.BooleanField(
            help_text="A new access token was issued (false for one that never expires)"
        ),
    },
)
_DELETED = inline_serializer(
    "ConnectionDeleted",
    fields={
        "deleted": serializers.BooleanField(),
        "revocation": serializers.CharField(
            help_text="`revoked`, or what went wrong revoking at the provider "
            "(`no_revocation_endpoint`, `http_503`, ...): the connection is deleted anyway"
        ),
    },
)
_RATE_LIMITED = inline_serializer(
    "RefreshRateLimited",
    fields={
        "error": serializers.CharField(),
        "detail": serializers.CharField(),
        "retry_after": serializers.IntegerField(help_text="Seconds, as the Retry-After header"),
    },
)
_NEEDS_RECONNECT = inline_serializer(
    "NeedsReconnect",
    fields={
        "error": serializers.CharField(),
        "detail": serializers.CharField(),
        "reason": serializers.CharField(help_text="invalid_grant, no_refresh_token, ..."),
    },
)
_AUTH = [PlatformCredentialAuthentication, ApiTokenAuthentication]


@method_decorator(never_cache, name="dispatch")
class ConnectionListView(APIView):
    authentication_classes = _AUTH
    permission_classes = [PlatformOrUser]

    @extend_schema(
        operation_id="connections_list",
        summary="A user's connections",
        description="Scope `connections:read`. With a platform credential, `user` names "
        "whose (required); with a personal token, its own. Never a token value.",
        parameters=[ListQuerySerializer],
        responses={
            200: _LIST,
            400: OpenApiResponse(
                inline_serializer(
                    "ConnectionsBadRequest",
                    fields={"error": serializers.CharField(), "detail": serializers.JSONField()},
                ),
                description="`user_required`: a platform credential must name the user; "
                "`invalid_request`: a malformed parameter",
            ),
            401: _UNAUTHORIZED,
            403: _FORBIDDEN,
            404: OpenApiResponse(
                _ERROR,
                description="`user_not_found`: no such user (or, personal token, another user)",
            ),
        },
    )
    def get(self, request: Request) -> Response:
        owner, _ = _access(request, READ)
        query = ListQuerySerializer(data=request.query_params)
        if not query.is_valid():
            return Response({"error": "invalid_request", "detail": query.errors}, status=400)
        data = query.validated_data
        user = selectors.connections_api_user(owner=owner, name=data.get("user"))
        rows = selectors.connections_api_list(user=user, provider=data.get("provider"))
        answer = ConnectionSerializer(
            rows, many=True, context={"catalogue": registry.catalogue()}
        ).data
        return Response({"connections": answer})


@method_decorator(never_cache, name="dispatch")
class ConnectionDetailView(APIView):
    authentication_classes = _AUTH
    permission_classes = [PlatformOrUser]

    @extend_schema(
        operation_id="connections_retrieve",
        summary="One connection",
        description="Scope `connections:read`. Never a token value.",
        responses={
            200: ConnectionSerializer,
            401: _UNAUTHORIZED,
            403: _FORBIDDEN,
            404: _NOT_FOUND,
        },
    )
    def get(self, request: Request, id: int) -> Response:
        owner, _ = _access(request, READ)
        return Response(_answer(selectors.connection_for_api(owner=owner, id=id)))

    @extend_schema(
        operation_id="connections_destroy",
        summary="Disconnect",
        description="Scope `connections:write`. Revokes the grant at the provider (RFC "
        "7009), then deletes the connection and its tokens; a failed revocation is "
        "recorded and answered in `revocation`, and the connection is deleted anyway.",
        responses={
            200: _DELETED,
            401: _UNAUTHORIZED,
            403: _FORBIDDEN,
            404: _NOT_FOUND,
        },
    )
    def delete(self, request: Request, id: int) -> Response:
        owner, actor = _access(request, WRITE)
        connection = selectors.connection_for_api(owner=owner, id=id)
        revocation = services.connection_api_disconnect(connection=connection, actor=actor)
        return Response({"deleted": True, "revocation": revocation})


@method_decorator(never_cache, name="dispatch")
class ConnectionRefreshView(APIView):
    authentication_classes = _AUTH
    permission_classes = [PlatformOrUser]

    @extend_schema(
        operation_id="connections_refresh",
        summary="Force a refresh",
        description="Scope `connections:write`. Refreshes the access token now, even "
        "while the connection backs off after errors: at most once per connection per "
        "`INTEGRATIONS_FORCED_REFRESH_INTERVAL` seconds (60 by default; 429 otherwise). "
        "The answer holds no token: runs get tokens from the run environment API.",
        request=None,
        responses={
            200: _REFRESHED,
            401: _UNAUTHORIZED,
            403: _FORBIDDEN,
            404: _NOT_FOUND,
            409: OpenApiResponse(
                _NEEDS_RECONNECT,
                description="`needs_reconnect`: the grant has ended; the user must reconnect",
            ),
            429: OpenApiResponse(
                _RATE_LIMITED,
                description="`rate_limited`: refreshed too recently; see Retry-After",
            ),
            502: OpenApiResponse(
                _ERROR,
                description="`provider_error`: the provider refused the refresh (the "
                "detail is its error code)",
            ),
            503: OpenApiResponse(
                _ERROR,
                description="`provider_unavailable`: the provider is unreachable (see "
                "Retry-After), or a credential does not decrypt",
            ),
        },
    )
    def post(self, request: Request, id: int) -> Response:
        owner, actor = _access(request, WRITE)
        connection = selectors.connection_for_api(owner=owner, id=id)
        try:
            forced = connection_refresh_force(connection=connection, actor=actor)
        except type(connection).DoesNotExist:  # disconnected meanwhile
            return Response({"error": "not_found", "detail": "No such connection."}, status=404)
        return Response({"connection": _answer(forced.connection), "refreshed": forced.refreshed})
