"""``Authorization: Bearer <token>`` with the API tokens of ``apps_registry.models``.

Not DRF's ``authtoken``, which keeps tokens in clear: only a SHA-256 hash is stored,
a presented token is looked up by its hash and compared in constant time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed, NotAuthenticated
from rest_framework.request import Request

from apps_registry import selectors, services

if TYPE_CHECKING:
    from django.contrib.auth.models import User

# A token is ASCII and short; anything much longer is not one (and is not hashed).
_MAX_TOKEN_CHARS = 200


def bearer_token(request: Request, *, what: str) -> str | None:
    """The token of ``Authorization: Bearer <token>``; None without a Bearer header
    (another scheme may authenticate), ``AuthenticationFailed`` when malformed. The
    messages never repeat the token; ``what`` names it ("API token")."""
    parts = get_authorization_header(request).split()
    if not parts or parts[0].lower() != b"bearer":
        return None
    if len(parts) != 2 or len(parts[1]) > _MAX_TOKEN_CHARS:
        raise AuthenticationFailed("Malformed Authorization header: use 'Bearer <token>'.")
    try:
        return parts[1].decode("ascii")
    except UnicodeDecodeError:
        raise AuthenticationFailed(f"Invalid or revoked {what}.") from None


def signed_in_user(request: Request) -> User:
    """The user a view's authentication found; ``NotAuthenticated`` (401) for none (the
    views also require ``IsAuthenticated``: this is what tells mypy)."""
    user = request.user
    if user is None or not user.is_authenticated:
        raise NotAuthenticated
    return user


class ApiTokenAuthentication(BaseAuthentication):
    """Authenticates ``Authorization: Bearer ihub_...``; 401 for a bad or revoked token.

    Error messages never repeat the presented token.
    """

    def authenticate(self, request: Request) -> tuple[Any, Any] | None:
        token = bearer_token(request, what="API token")
        if token is None:
            return None
        row = selectors.api_token_for(token=token)
        if row is None:
            raise AuthenticationFailed("Invalid or revoked API token.")
        services.api_token_touch(api_token=row)
        return (row.user, row)

    def authenticate_header(self, request: Request) -> str:
        # Makes DRF answer 401 (not 403) to a request without credentials.
        return 'Bearer realm="api"'


class ApiTokenScheme(OpenApiAuthenticationExtension):
    """The OpenAPI security scheme of ``ApiTokenAuthentication``."""

    target_class = ApiTokenAuthentication
    name = "apiToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A personal API token (`ihub_...`): "
            "`python manage.py create_api_token --user EMAIL --name NAME`.",
        }
