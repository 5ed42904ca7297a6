"""A refresh forced from outside (the connections API): now, whatever the token's
expiry, at most once per connection per ``INTEGRATIONS_FORCED_REFRESH_INTERVAL``.

The limit is a column of the connection (``last_forced_refresh_at``), claimed by one
conditional ``UPDATE``: of two requests at once, across processes and machines, one
refreshes and the other is answered 429. The refresh itself is
``refresh.connection_refresh`` (its lock, its failure bookkeeping, its daily attempt
limit). Refresh request: RFC 6749 §6.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Q
from django.utils import timezone

from integrations import app_settings
from integrations.audit import audit_record
from integrations.connections import refresh
from integrations.core.refresh_policy import DEAD_STATUSES
from integrations.errors import (
    ConnectionNeedsReconnectError,
    IntegrationError,
    ReauthorizationRequiredError,
    RefreshRateLimitedError,
)
from integrations.models import AuditEvent, Connection

# A margin no token outlives: the refresh is made whatever the token's expiry.
_ANY_EXPIRY = 100 * 365 * 24 * 3600


@dataclass(frozen=True)
class ForcedRefresh:
    """The connection as the refresh left it; ``refreshed``: a new token was issued
    (false for a token without expiry or without a refresh token, which is never
    refreshed)."""

    connection: Connection
    refreshed: bool


def _claim(connection_id: int, *, now: datetime) -> None:
    """Take this interval's forced refresh of the connection, or raise
    ``RefreshRateLimitedError`` with the seconds until the next one is allowed."""
    interval = timedelta(seconds=app_settings.forced_refresh_interval())
    claimed = (
        Connection.objects.filter(pk=connection_id)
        .filter(
            Q(last_forced_refresh_at__isnull=True) | Q(last_forced_refresh_at__lte=now - interval)
        )
        .update(last_forced_refresh_at=now)
    )
    if claimed:
        return
    last = (
        Connection.objects.filter(pk=connection_id)
        .values_list("last_forced_refresh_at", flat=True)
        .first()
    )
    if last is None:
        raise Connection.DoesNotExist
    raise RefreshRateLimitedError(retry_after=math.ceil((last + interval - now).total_seconds()))


def connection_refresh_force(
    *, connection: Connection, actor: dict[str, str], now: datetime | None = None
) -> ForcedRefresh:
    """Refresh ``connection`` now, even while it backs off after errors (the daily
    attempt limit of the refresh still holds), and audit it with ``actor`` (ids and
    names only: ``{"by": ..., "via": ...}``).

    ``RefreshRateLimitedError`` (429) within the interval of the last forced refresh;
    ``ConnectionNeedsReconnectError`` (409) when the grant has ended;
    ``ProviderUnavailableError`` (503) and the rest of the error family as the refresh
    raises them; ``Connection.DoesNotExist`` when it was disconnected meanwhile.
    """
    now = now or timezone.now()
    _claim(connection.pk, now=now)
    before = connection.last_refreshed_at
    if connection.status not in DEAD_STATUSES and not _has_refresh_token(connection.pk):
        # Nothing to refresh with (a provider whose tokens do not expire, or that issues
        # none): the token stays as it is. Refreshing would mark a live grant dead.
        _audit(connection, actor=actor, error_code="")
        return ForcedRefresh(connection=_reread(connection.pk), refreshed=False)
    try:
        refresh.connection_refresh(
            connection_id=connection.pk,
            now=now,
            margin=_ANY_EXPIRY,
            serve_valid_on_failure=False,
            override_backoff=True,
        )
    except ReauthorizationRequiredError as exc:
        _audit(connection, actor=actor, error_code=exc.code)
        raise ConnectionNeedsReconnectError(reason=exc.code) from None
    except IntegrationError as exc:  # DecryptionError included: "undecryptable"
        _audit(connection, actor=actor, error_code=exc.code)
        raise
    _audit(connection, actor=actor, error_code="")
    after = _reread(connection.pk)
    return ForcedRefresh(connection=after, refreshed=after.last_refreshed_at != before)


def _has_refresh_token(connection_id: int) -> bool:
    return (
        Connection.objects.filter(pk=connection_id, refresh_token_encrypted__isnull=False)
        .exclude(refresh_token_encrypted=b"")
        .exists()
    )


def _reread(connection_id: int) -> Connection:
    """The connection as it is now, with its user, no token column read."""
    return (
        Connection.objects.select_related("user")
        .defer("access_token_encrypted", "refresh_token_encrypted")
        .get(pk=connection_id)
    )


def _audit(connection: Connection, *, actor: dict[str, str], error_code: str) -> None:
    audit_record(
        kind=AuditEvent.Kind.REFRESH_FORCED,
        provider=connection.provider,
        connection=connection,
        ok=not error_code,
        error_code=error_code[:64],
        detail=dict(actor),
    )
