"""Celery tasks. They take ids (never a token), call one service, and own their retry
policy: a failed refresh is rescheduled through ``next_refresh_at`` with backoff, so the
tasks themselves never retry."""

from __future__ import annotations

import logging

from celery import shared_task

from integrations import refresh

logger = logging.getLogger(__name__)


@shared_task(name="integrations.tasks.refresh_sweep", ignore_result=True)
def refresh_sweep() -> int:
    """Every minute (beat): claim the due connections, soonest first, in one indexed
    query, and fan out one refresh task per connection."""
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
