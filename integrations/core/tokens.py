"""Parsing of OAuth 2.0 token responses (RFC 6749 §5.1, §5.2). Pure: no models."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any


@dataclass(frozen=True)
class TokenSet:
    """A parsed token response. Its ``repr`` never shows a token."""

    access_token: str = field(repr=False)
    refresh_token: str | None = field(repr=False)
    expires_at: datetime | None
    # What the provider granted, from the response's `scope`. None when the response
    # has no `scope` (RFC 6749 §5.1: then it is the scope that was asked for).
    scopes: tuple[str, ...] | None
    token_type: str = "Bearer"


class TokenResponseError(ValueError):
    """The token response is not a usable RFC 6749 §5.1 success response."""


def parse_token_response(
    data: Mapping[str, Any],
    *,
    now: datetime,
    scope_separator: str = " ",
    default_lifetime: int | None = None,
) -> TokenSet:
    """Parse a successful token response.

    ``scope`` is split on spaces (RFC 6749 §3.3) and on ``scope_separator`` (some
    providers use commas), and on commas whatever the separator: GitHub is asked with
    spaces and answers with commas (``"scope": "repo,gist"``). No scope token of a
    provider here contains a comma. ``expires_in`` may be a number or a numeric string; when absent,
    ``default_lifetime`` (seconds) applies, else the expiry is unknown.
    """
    access_token = data.get("access_token")
    if not isinstance(access_token, str) or not access_token:
        raise TokenResponseError("token response has no access_token")
    token_type = str(data.get("token_type") or "Bearer")
    refresh_token = data.get("refresh_token") or None
    if refresh_token is not None and not isinstance(refresh_token, str):
        raise TokenResponseError("refresh_token is not a string")
    expires_in = data.get("expires_in")
    lifetime: int | None
    try:
        lifetime = int(expires_in) if expires_in not in (None, "") else default_lifetime
    except (TypeError, ValueError) as exc:
        raise TokenResponseError("expires_in is not a number") from exc
    expires_at = now + timedelta(seconds=lifetime) if lifetime is not None else None
    raw_scope = data.get("scope")
    scopes: tuple[str, ...] | None = None
    if isinstance(raw_scope, str):
        scopes = tuple(raw_scope.replace(scope_separator, " ").replace(",", " ").split())
    elif isinstance(raw_scope, list):
        scopes = tuple(str(s) for s in raw_scope)
    return TokenSet(
        access_token=access_token,
        refresh_token=refresh_token,
        expires_at=expires_at,
        scopes=scopes,
        token_type=token_type,
    )
