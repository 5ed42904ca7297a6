"""A connection's tokens at rest: encrypted, fingerprinted, never overwritten with an
empty refresh token."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from integrations import app_settings
from integrations.core import crypto
from integrations.core.provider_config import ProviderConfig
from integrations.core.refresh_policy import next_refresh_at, refresh_margin
from integrations.core.tokens import TokenSet
from integrations.models import Connection


def _encrypt(value: str) -> bytes:
    return crypto.encrypt(value, keys=app_settings.token_keys())


def connection_access_token(*, connection: Connection) -> str:
    """The stored access token in clear. Only for code that hands it to the provider
    or to an app run; never log it."""
    return crypto.decrypt(connection.access_token_encrypted, keys=app_settings.token_keys())


def connection_refresh_token(*, connection: Connection) -> str | None:
    if not connection.refresh_token_encrypted:
        return None
    return crypto.decrypt(connection.refresh_token_encrypted, keys=app_settings.token_keys())


def store_tokens(connection: Connection, token: TokenSet) -> list[str]:
    """Put ``token`` on ``connection``; a response without a refresh token keeps the
    stored one. Returns the fields changed, for ``save(update_fields=...)``."""
    connection.access_token_encrypted = _encrypt(token.access_token)
    connection.token_fingerprint = crypto.fingerprint(token.access_token)
    connection.expires_at = token.expires_at
    fields = ["access_token_encrypted", "token_fingerprint", "expires_at"]
    if token.refresh_token:
        connection.refresh_token_encrypted = _encrypt(token.refresh_token)
        fields.append("refresh_token_encrypted")
    return fields


@dataclass(frozen=True)
class Credentials:
    """An access token for one connection. Its repr never shows the token."""

    connection_id: int
    provider: str
    access_token: str = field(repr=False)
    expires_at: datetime | None
    scopes: tuple[str, ...]


def is_fresh(connection: Connection, *, now: datetime, margin: timedelta) -> bool:
    return connection.expires_at is None or connection.expires_at > now + margin


def margin_for(connection: Connection, *, config: ProviderConfig, margin: int | None) -> timedelta:
    """The margin asked for (seconds), else the provider's adapted to the connection's
    token lifetime."""
    if margin is not None:
        return timedelta(seconds=margin)
    return refresh_margin(connection=connection, config=config)


def credentials_of(connection: Connection) -> Credentials:
    return Credentials(
        connection_id=connection.pk,
        provider=connection.provider,
        access_token=crypto.decrypt(
            connection.access_token_encrypted, keys=app_settings.token_keys()
        ),
        expires_at=connection.expires_at,
        scopes=tuple(connection.scopes),
    )


def grant_fresh(connection: Connection, *, config: ProviderConfig, now: datetime) -> list[str]:
    """The provider has just given ``connection`` a grant (a Connect or a refresh): it is
    active, whatever was failing is over (failures, backoff, the day's attempts: the
    daily limit bounds failed attempts in a row, and an hourly token is refreshed 24
    times a day; the email of a dead grant), and its next refresh is scheduled from
    now. Returns the fields set, for ``save(update_fields=...)``."""
    connection.status = Connection.Status.ACTIVE
    connection.last_refreshed_at = now
    connection.refresh_failures = 0
    connection.backoff_until = None
    connection.last_error_code = ""
    connection.reconnect_notified_at = None
    connection.attempts_window_start = None
    connection.attempts_in_window = 0
    connection.next_refresh_at = next_refresh_at(connection=connection, config=config, now=now)
    return [
        "status",
        "last_refreshed_at",
        "refresh_failures",
        "backoff_until",
        "last_error_code",
        "reconnect_notified_at",
        "attempts_window_start",
        "attempts_in_window",
        "next_refresh_at",
    ]
