"""When to refresh: the schedule and the backoff. Pure: reads a connection's fields,
imports no models."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

from integrations.core import statuses
from integrations.core.provider_config import ProviderConfig

# Backoff after the n-th consecutive transient failure: base * 2**(n-1), capped, with
# "equal jitter" (half fixed, half random) so that a provider outage does not end in a
# synchronized stampede of retries.
BACKOFF_BASE = timedelta(seconds=30)
BACKOFF_CAP = timedelta(hours=4)
ATTEMPTS_WINDOW = timedelta(days=1)
DEAD_STATUSES = statuses.DEAD


def backoff_delay(failures: int, *, rng: random.Random | None = None) -> timedelta:
    """Delay before retrying after ``failures`` consecutive transient failures (≥ 1)."""
    # The exponent is clamped before the power: 2**n of a large n would overflow
    # timedelta (30 s * 2**10 is already past the cap).
    exponent = min(max(failures - 1, 0), 16)
    ceiling = min(BACKOFF_CAP, BACKOFF_BASE * (2**exponent))
    half = ceiling / 2
    return half + (rng or random).random() * half


def token_lifetime(connection: Any) -> timedelta | None:
    """How long the provider made the current access token valid for: from when it was
    obtained to ``expires_at``. Derived, not stored: ``last_refreshed_at`` is written
    with the token, on connect and on every refresh (and ``expires_at`` is that moment
    plus the response's ``expires_in``). None when unknown (no expiry, never refreshed,
    or an expiry set by hand before that moment)."""
    if connection.expires_at is None or connection.last_refreshed_at is None:
        return None
    lifetime: timedelta = connection.expires_at - connection.last_refreshed_at
    return lifetime if lifetime > timedelta(0) else None


def refresh_margin(*, connection: Any, config: ProviderConfig) -> timedelta:
    """How long a token handed out must still be valid: the provider's margin, or half
    the lifetime of the connection's current token when that is shorter.

    A provider whose tokens live 300 s with the default 600 s margin would otherwise
    issue tokens that are due for a refresh the moment they arrive: every caller
    refreshes again (50 concurrent asks, 50 token requests), and the sweep's next
    refresh lands in the past.
    """
    margin = timedelta(seconds=config.refresh_margin)
    lifetime = token_lifetime(connection)
    return margin if lifetime is None else min(margin, lifetime / 2)


def sweep_lead(*, connection: Any, config: ProviderConfig, margin: timedelta) -> timedelta:
    """How much earlier than ``margin`` before expiry the sweep refreshes: the
    provider's lead, or half the time the token spends outside the margin when that is
    shorter (a 300 s token: margin 150 s, lead 75 s, due 75 s after it was issued)."""
    lead = timedelta(seconds=config.sweep_lead)
    lifetime = token_lifetime(connection)
    return lead if lifetime is None else min(lead, (lifetime - margin) / 2)


def next_refresh_at(
    *,
    connection: Any,
    config: ProviderConfig,
    now: datetime,
) -> datetime | None:
    """When the sweep should refresh ``connection`` next (pure: reads the row only).

    In use (used within ``idle_after``): ahead of expiry, by the margin plus the sweep's
    lead (both adapted to the token's lifetime: a token just issued is never due at
    once). Idle: a keep-alive ``keepalive_interval`` after the last refresh. Backing off
    after failures: when the backoff ends. Never when there is no refresh token or the
    grant is dead.
    """
    if not connection.refresh_token_encrypted or connection.status in DEAD_STATUSES:
        return None
    if connection.backoff_until is not None:
        return connection.backoff_until
    keepalive = (connection.last_refreshed_at or connection.created_at or now) + timedelta(
        seconds=config.keepalive_interval
    )
    if connection.expires_at is None:
        return keepalive
    margin = refresh_margin(connection=connection, config=config)
    lead = sweep_lead(connection=connection, config=config, margin=margin)
    ahead = connection.expires_at - margin - lead
    in_use = connection.last_used_at is not None and now - connection.last_used_at < timedelta(
        seconds=config.idle_after
    )
    return ahead if in_use else max(ahead, keepalive) if ahead > now else keepalive
