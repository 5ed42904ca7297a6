"""A run's credentials: an access token valid for at least a margin, refreshed first
when needed (``connections.refresh``), on the run-environment path (one query when
fresh).

- The margin is the provider's, or half the lifetime of the tokens the provider
  actually issues when that is shorter (``refresh_policy.refresh_margin``): a token that
  lives 300 s is not due for a refresh the moment it arrives.
- With ``verify`` (the run path), a token not shown good for a while is first shown to
  the provider's userinfo endpoint, at most once per connection per interval; a 401
  means a refresh, which finds a grant revoked at the provider before the token expires.
- Narrowed credentials (RFC 6749 §6) where a provider honours a narrower ``scope``.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.utils import timezone

from integrations import app_settings
from integrations.connections.refresh import connection_refresh
from integrations.connections.store import Credentials, credentials_of, is_fresh, margin_for
from integrations.core import crypto
from integrations.core.provider_config import ProviderConfig
from integrations.core.refresh_policy import (
    DEAD_STATUSES,
    next_refresh_at,
)
from integrations.errors import (
    IntegrationError,
    ReauthorizationRequiredError,
)
from integrations.models import Connection
from integrations.providers import client as http
from integrations.providers import registry

logger = logging.getLogger(__name__)

# last_used_at is written at most this often per connection (keeps the hot path a read).
USE_RECORD_INTERVAL = timedelta(minutes=30)


def connection_credentials(
    *,
    connection: Connection,
    margin: int | None = None,
    now: datetime | None = None,
    verify: bool = False,
) -> Credentials:
    """The connection's access token, valid for at least ``margin`` seconds (default:
    the provider's, or half the token's lifetime when shorter), refreshing first when
    needed.

    With ``verify`` (a run is about to get the token), a token not shown good for
    ``INTEGRATIONS_VERIFY_SECONDS`` is first shown to the provider's userinfo endpoint:
    refused (401), the grant is refreshed, which finds a grant revoked at the provider
    (``invalid_grant``) before its token expires.

    Raises ``ReauthorizationRequiredError`` when the grant is dead and
    ``ProviderUnavailableError`` when the token has expired and the provider cannot be
    reached (the token is served while still valid, even inside the margin).
    """
    now = now or timezone.now()
    config = registry.connection_config(connection)
    if connection.status in DEAD_STATUSES:
        raise ReauthorizationRequiredError(
            f"the {config.name} connection needs reconnecting", code=connection.last_error_code
        )
    _record_use(connection, config=config, now=now)
    if is_fresh(connection, now=now, margin=margin_for(connection, config=config, margin=margin)):
        creds = credentials_of(connection)
        if (
            verify
            and _verification_due(connection, config=config, now=now)
            and _verification_claim(connection, now=now)
            and not _provider_accepts(connection, creds, config=config)
        ):
            # Refused while unexpired: replace it (once, whoever else asks meanwhile),
            # never serving the refused token again.
            return connection_refresh(
                connection_id=connection.pk,
                now=now,
                refused=bytes(connection.access_token_encrypted),
                serve_valid_on_failure=False,
            )
        return creds
    return connection_refresh(connection_id=connection.pk, margin=margin, now=now)


def _verification_due(connection: Connection, *, config: ProviderConfig, now: datetime) -> bool:
    interval = app_settings.verify_interval()
    if not interval or not config.userinfo_url:
        return False
    shown_good = max(
        (t for t in (connection.last_verified_at, connection.last_refreshed_at) if t),
        default=None,
    )
    return shown_good is None or now - shown_good >= timedelta(seconds=interval)


def _verification_claim(connection: Connection, *, now: datetime) -> bool:
    """Take this check for the current interval: of the runs asking at once, one asks
    the provider; and whatever the answer (an outage included), the next check waits a
    whole interval. One UPDATE."""
    seen = connection.last_verified_at
    rows = Connection.objects.filter(pk=connection.pk)
    rows = rows.filter(last_verified_at=seen) if seen else rows.filter(last_verified_at=None)
    claimed = rows.update(last_verified_at=now) == 1
    if claimed:
        connection.last_verified_at = now
    return claimed


def _provider_accepts(
    connection: Connection, creds: Credentials, *, config: ProviderConfig
) -> bool:
    """Whether the provider's userinfo endpoint accepts the token (only a 401 is a no)."""
    return http.token_accepted(config, creds.access_token, connection_id=connection.pk)


def _record_use(connection: Connection, *, config: ProviderConfig, now: datetime) -> None:
    """Mark the connection in use (at most every USE_RECORD_INTERVAL): an idle
    connection goes back to being refreshed ahead of expiry."""
    if connection.last_used_at and now - connection.last_used_at < USE_RECORD_INTERVAL:
        return
    connection.last_used_at = now
    rows = Connection.objects.filter(pk=connection.pk)
    if connection.status == Connection.Status.ACTIVE:
        due = next_refresh_at(connection=connection, config=config, now=now)
        connection.next_refresh_at = due
        # Only while still active: a refresh that found the grant dead meanwhile has
        # taken it off the sweep, and must stay so.
        if rows.filter(status=Connection.Status.ACTIVE).update(
            last_used_at=now, next_refresh_at=due
        ):
            return
    rows.update(last_used_at=now)


def connection_narrowed_credentials(
    *,
    connection: Connection,
    scopes: list[str],
    now: datetime | None = None,
    verify: bool = False,
) -> Credentials:
    """An access token narrowed to ``scopes`` for one run (least privilege), where the
    provider honours a narrower ``scope`` on refresh (RFC 6749 §6:"MUST NOT include any
    scope not originally granted"; a provider flag, off for Google until shown to work
    there). Not stored: the connection keeps its full token.

    Only for providers that do not rotate refresh tokens: with rotation, each run
    would replace the stored grant (and, on some servers, revoke the tokens other runs
    hold). Falls back to the connection's own credentials otherwise.
    """
    now = now or timezone.now()
    config = registry.connection_config(connection)
    full = connection_credentials(connection=connection, now=now, verify=verify)
    if not config.narrow_scope_on_refresh or config.rotates_refresh_tokens:
        return full
    wanted = [s for s in scopes if s in full.scopes]
    if not wanted or set(wanted) == set(full.scopes) or not connection.refresh_token_encrypted:
        return full
    refresh_token = crypto.decrypt(
        connection.refresh_token_encrypted, keys=app_settings.token_keys()
    )
    try:
        token = http.refresh_grant(
            config, refresh_token, now=now, scope=config.scope_separator.join(wanted)
        )
    except IntegrationError:
        # The full token is still good: a run is not failed for want of narrowing.
        logger.warning("narrowing failed: connection=%s provider=%s", connection.pk, config.id)
        return full
    return Credentials(
        connection_id=connection.pk,
        provider=connection.provider,
        access_token=token.access_token,
        expires_at=token.expires_at,
        scopes=tuple(token.scopes or wanted),
    )
