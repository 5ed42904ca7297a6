"""Reads of django-oauth-toolkit's tables for the sandbox."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from django.db.models import Q
from django.utils import timezone
from oauth2_provider.models import (
    get_access_token_model,
    get_grant_model,
    get_refresh_token_model,
)

from .models import SandboxGrantOption
from .scopes import merge_scopes

if TYPE_CHECKING:
    from django.contrib.auth.models import User
    from oauth2_provider.models import AbstractAccessToken, AbstractApplication


def token_checksum(token: str) -> str:
    """DOT's lookup key for a token: its SHA-256, hex."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def granted_scopes(*, user: User, application: AbstractApplication) -> list[str]:
    """What ``user`` has granted ``application`` and not lost: the scopes of access
    tokens that are unexpired or still backed by a live refresh token.

    Google's ``include_granted_scopes=true`` adds these to a new grant.
    """
    tokens = (
        get_access_token_model()
        .objects.filter(user=user, application=application)
        .filter(
            Q(expires__gt=timezone.now())
            | Q(refresh_token__isnull=False, refresh_token__revoked__isnull=True)
        )
        .order_by("created", "pk")
    )
    return merge_scopes(*(t.scope.split() for t in tokens))


def access_token_for_bearer(*, authorization: str) -> AbstractAccessToken | None:
    """The live access token named by an ``Authorization: Bearer`` header, if any.

    Revoked access tokens are deleted by DOT, so live means found and unexpired.
    """
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    token = (
        get_access_token_model()
        .objects.select_related("user", "application")
        .filter(token_checksum=token_checksum(value.strip()))
        .first()
    )
    if token is None or token.is_expired() or token.user is None:
        return None
    return token


def token_owner(*, application: AbstractApplication, checksum: str) -> User | None:
    """The user of a live access token or unrevoked refresh token of ``application``
    whose checksum is ``checksum``; None when there is none (Google: "Token expired
    or revoked")."""
    access = (
        get_access_token_model()
        .objects.select_related("user")
        .filter(application=application, token_checksum=checksum, expires__gt=timezone.now())
        .first()
    )
    if access is not None:
        return access.user
    refresh = (
        get_refresh_token_model()
        .objects.select_related("user")
        .filter(application=application, token_checksum=checksum, revoked__isnull=True)
        .first()
    )
    return refresh.user if refresh is not None else None


def token_request_user(
    *, access_token: str | None, refresh_token: str | None, code: str | None
) -> Any | None:
    """Whose token request this was: the owner of the issued access token, else of the
    presented refresh token, else of the presented authorization code."""
    if access_token:
        token = (
            get_access_token_model()
            .objects.select_related("user")
            .filter(token_checksum=token_checksum(access_token))
            .first()
        )
        if token is not None:
            return token.user
    if refresh_token:
        refresh = (
            get_refresh_token_model()
            .objects.select_related("user")
            .filter(token_checksum=token_checksum(refresh_token))
            .first()
        )
        if refresh is not None:
            return refresh.user
    if code:
        grant = get_grant_model().objects.select_related("user").filter(code=code).first()
        if grant is not None:
            return grant.user
    return None


def grant_option_for(*, code: str) -> SandboxGrantOption | None:
    """Google's request options stored with an authorization code."""
    return SandboxGrantOption.objects.filter(code=code).first()
