"""Celery tasks. They take ids (never a token), call one service, and own their retry
policy: a failed refresh is rescheduled through ``next_refresh_at`` with backoff, so the
refresh tasks never retry; the reconnect email retries until it is delivered."""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task

from integrations import health
from integrations.connections import refresh

logger = logging.getLogger(__name__)

# The reconnect email: retried after 30 s, doubling up to 30 minutes (under Redis's
# visibility timeout of an hour, past which a waiting retry would be delivered twice),
# 20 times: about 8 hours of trying.
EMAIL_RETRY_BASE_SECONDS = 30
EMAIL_RETRY_CAP_SECONDS = 30 * 60
EMAIL_MAX_RETRIES = 20


@shared_task(name="integrations.tasks.refresh_sweep", ignore_result=True)
def refresh_sweep() -> int:
    """Every minute (beat): claim the due connections, soonest first, in one indexed
    query, and fan out one refresh task per connection. Stamps beat's heartbeat, which
    ``/readyz`` checks."""
    health.health_mark_stamp(name=health.REFRESH_SWEEP)
    ids = refresh.connections_due_claim()
    for connection_id in ids:
        refresh_connection.delay(connection_id)
    if ids:
        logger.info("refresh sweep: %d connections due", len(ids))
    return len(ids)


@shared_task(name="integrations.tasks.refresh_connection", ignore_result=True)
def refresh_connection(connection_id: int) -> str:
    outcome = refresh.connection_refresh_if_due(connection_id=connection_id)
    logger.info("refresh connection=%s outcome=%s", connection_id, outcome)
    return outcome


@shared_task(
    bind=True,
    name=refresh.RECONNECT_EMAIL_TASK,
    ignore_result=True,
    max_retries=EMAIL_MAX_RETRIES,
)
def reconnect_email(self: Any, connection_id: int) -> str:
    """The email of a grant that died (enqueued once the refresh that found it dead
    committed). Whatever the email backend raises is retried with backoff; the service
    sends at most once per dead grant, whichever copy of the task runs."""
    try:
        outcome = refresh.reconnect_email_send(connection_id=connection_id)
    except Exception as exc:
        attempt = self.request.retries + 1
        if attempt > EMAIL_MAX_RETRIES:
            logger.error(
                "reconnect email connection=%s: not delivered after %d attempts (%s)",
                connection_id,
                attempt,
                type(exc).__name__,
            )
            raise
        countdown = min(EMAIL_RETRY_BASE_SECONDS * 2 ** (attempt - 1), EMAIL_RETRY_CAP_SECONDS)
        logger.warning(
            "reconnect email connection=%s: attempt %d failed (%s), retrying in %d s",
            connection_id,
            attempt,
            type(exc).__name__,
            countdown,
        )
        raise self.retry(exc=exc, countdown=countdown) from exc
    logger.info("reconnect email connection=%s outcome=%s", connection_id, outcome)
    return outcome
