"""django-oauth-toolkit's request validator, taught to behave like Google.

- ``access_type=offline``: the code exchange issues a refresh token only when the
  authorization request asked for offline access.
- ``include_granted_scopes=true``: the token's ``scope`` is this grant plus what the
  user already granted the client.
- Without rotation (Google's way) a refresh answers with a new access token and no
  refresh token; earlier access tokens stay valid until they expire.
- Revoking either token of a grant removes the whole grant; an unknown, expired or
  revoked token is an error (Google answers 400 ``invalid_token``).
- Unknown scopes (``offline_access``, ``profile``) are refused with ``invalid_scope``
  by DOT's ``validate_scopes``: only the scopes of ``OAUTH2_PROVIDER["SCOPES"]`` exist.

https://developers.google.com/identity/protocols/oauth2/web-server
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone
from oauth2_provider.models import get_refresh_token_model
from oauth2_provider.oauth2_validators import OAuth2Validator
from oauthlib.oauth2.rfc6749 import errors

from .scopes import merge_scopes
from .selectors import grant_option_for, granted_scopes, token_checksum, token_owner
from .services import grant_option_create, grant_option_delete, grant_revoke


class RevocationTokenUnknownError(Exception):
    """The token to revoke is unknown, expired or already revoked."""


def _param(request: Any, name: str) -> str:
    # oauthlib's Request raises AttributeError for parameters it was not given.
    return str(getattr(request, name, None) or "")


class SandboxValidator(OAuth2Validator):
    def save_authorization_code(
        self, client_id: str, code: dict, request: Any, *args: Any, **kwargs: Any
    ) -> None:
        with transaction.atomic():
            self._create_authorization_code(request, code)
            grant_option_create(
                code=code["code"],
                offline=_param(request, "access_type").lower() == "offline",
                include_granted_scopes=_param(request, "include_granted_scopes").lower() == "true",
            )

    def validate_code(
        self, client_id: str, code: str, client: Any, request: Any, *args: Any, **kwargs: Any
    ) -> bool:
        if not super().validate_code(client_id, code, client, request, *args, **kwargs):
            return False
        option = grant_option_for(code=code)
        request.sandbox_offline = bool(option and option.offline)
        request.sandbox_include_granted_scopes = bool(option and option.include_granted_scopes)
        return True

    def invalidate_authorization_code(
        self, client_id: str, code: str, request: Any, *args: Any, **kwargs: Any
    ) -> None:
        super().invalidate_authorization_code(client_id, code, request, *args, **kwargs)
        grant_option_delete(code=code)

    def _save_bearer_token(self, token: dict, request: Any, *args: Any, **kwargs: Any) -> Any:
        if request.grant_type == "authorization_code":
            if not getattr(request, "sandbox_offline", False):
                token.pop("refresh_token", None)
            if getattr(request, "sandbox_include_granted_scopes", False):
                scopes = merge_scopes(
                    token["scope"].split(),
                    granted_scopes(user=request.user, application=request.client),
                )
                token["scope"] = " ".join(scopes)
                request.scopes = scopes
        elif request.grant_type == "refresh_token" and not self.rotate_refresh_token(request):
            return self._save_refreshed_access_token(token, request)
        return super()._save_bearer_token(token, request, *args, **kwargs)

    def _save_refreshed_access_token(self, token: dict, request: Any) -> None:
        """A refresh without rotation, as Google does it: a new access token bound to the
        same refresh token, the earlier access token left to expire, and no
        ``refresh_token`` in the response.

        (DOT would instead overwrite the earlier access token in place, killing a token
        another process may still be using.)
        """
        self._check_and_set_request_resource(request)
        refresh_token = (
            get_refresh_token_model()
            .objects.select_for_update()
            .filter(pk=request.refresh_token_instance.pk, revoked__isnull=True)
            .first()
        )
        if refresh_token is None:  # revoked since it was validated
            raise errors.InvalidGrantError(request=request)
        expires = timezone.now() + timedelta(seconds=token["expires_in"])
        access_token = self._create_access_token(expires, request, token)
        refresh_token.access_token = access_token
        refresh_token.save(update_fields=["access_token", "updated"])
        token.pop("refresh_token", None)

    def revoke_token(
        self, token: str, token_type_hint: str | None, request: Any, *args: Any, **kwargs: Any
    ) -> None:
        application = request.client
        if getattr(application, "pk", None) is None:
            raise RevocationTokenUnknownError
        checksum = token_checksum(token)
        user = token_owner(application=application, checksum=checksum)
        if user is None:
            raise RevocationTokenUnknownError
        grant_revoke(
            user=user,
            application=application,
            token_type_hint=token_type_hint or "",
            token_sha256=checksum,
        )
