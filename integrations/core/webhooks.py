"""Webhooks, the pure part: the retry schedule and the Standard Webhooks envelope and
signature (https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md),
made with the spec's own library."""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from standardwebhooks import Webhook

SECRET_PREFIX = "whsec_"

# Seconds to wait after the 1st, 2nd, ... failed attempt: 10 retries over about 24 hours
# (23.7 h without jitter), then the delivery has failed (staff may Redeliver it).
RETRY_SCHEDULE: tuple[int, ...] = (5, 30, 120, 600, 1800, 3600, 7200, 14400, 28800, 28800)
MAX_ATTEMPTS = len(RETRY_SCHEDULE) + 1
# Each delay is drawn from [80 %, 120 %] of the schedule's, so that the retries of many
# deliveries that failed together (an endpoint's outage) do not come back together.
JITTER = 0.2

# How long a delivery handed to a task (or being sent) is left to it before the sweep
# takes it to be lost (a worker that died) and wakes it again: far above the
# webhook timeouts, and above any queue wait under load.
DELIVERY_LEASE = timedelta(minutes=10)


def secret_generate() -> str:
    """A new signing secret: ``whsec_`` and 32 random bytes in base64 (the spec's form:
    between 24 and 64 bytes)."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def retry_delay(
    failures: int, *, scale: float = 1.0, rand: Callable[[], float] | None = None
) -> float | None:
    """Seconds before the next attempt after ``failures`` consecutive failed attempts;
    ``None`` when the schedule is spent (``MAX_ATTEMPTS`` attempts were made)."""
    if failures < 1 or failures > len(RETRY_SCHEDULE):
        return None
    draw = (rand or secrets.SystemRandom().random)()
    return RETRY_SCHEDULE[failures - 1] * scale * (1 - JITTER + 2 * JITTER * draw)


def envelope_body(*, type: str, timestamp: datetime, data: Mapping[str, Any]) -> bytes:
    """The request body: ``{"type", "timestamp", "data"}`` (the spec's payload
    structure), compact JSON, the same bytes for every attempt."""
    envelope = {
        "type": type,
        "timestamp": timestamp.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "data": dict(data),
    }
    return json.dumps(envelope, separators=(",", ":"), sort_keys=True).encode()


def signed_headers(*, secret: str, msg_id: str, body: bytes, at: datetime) -> dict[str, str]:
    """``webhook-id``, ``webhook-timestamp`` and ``webhook-signature`` (v1, HMAC-SHA256
    of ``id.timestamp.body``) for one attempt. ``msg_id`` is the event's, the same for
    every attempt, so that receivers can drop repeats."""
    signature = Webhook(secret).sign(msg_id=msg_id, timestamp=at, data=body.decode())
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signature,
    }
