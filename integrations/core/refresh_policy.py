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


def next_refresh_at(
    *,
    connection: Any,
    config: ProviderConfig,
    now: datetime,
) -> datetime | None:
    """When the sweep should refresh ``connection`` next (pure: reads the row only).

    In use (used within ``idle_after``): ahead of expiry, by the margin plus the sweep's
    lead. Idle: a keep-alive ``keepalive_interval`` after the last refresh. Backing off
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
    ahead = connection.expires_at - timedelta(seconds=config.refresh_margin + config.sweep_lead)
    in_use = connection.last_used_at is not None and now - connection.last_used_at < timedelta(
        seconds=config.idle_after
    )
    return ahead if in_use else max(ahead, keepalive) if ahead > now else keepalive
