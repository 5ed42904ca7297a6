"""Celery tasks. They take ids (never a token), call one service, and own their retry
policy: a failed refresh is rescheduled through ``next_refresh_at`` with backoff, so the
refresh tasks never retry; the reconnect email retries until it is delivered."""

from __future__ import annotations

import logging
import time
from collections import Counter
from typing import Any

from celery import shared_task

from integrations import app_settings, health
from integrations.connections import locks, refresh
from integrations.events import delivery
from integrations.events.emit import DELIVER_TASK

logger = logging.getLogger(__name__)

# The reconnect email: retried after 30 s, doubling up to 30 minutes (under Redis's
# visibility timeout of an hour, past which a waiting retry would be delivered twice),
# 20 times: about 8 hours of trying.
EMAIL_RETRY_BASE_SECONDS = 30
EMAIL_RETRY_CAP_SECONDS = 30 * 60
EMAIL_MAX_RETRIES = 20


# While the queue is full, the sweep looks again this often (within its time budget).
SWEEP_FULL_QUEUE_PAUSE = 0.25


@shared_task(name="integrations.tasks.refresh_sweep", ignore_result=True)
def refresh_sweep() -> int:
    """Beat's, every ``INTEGRATIONS_SWEEP_SECONDS``: claim the due connections, soonest
    first, and fan them out in refresh tasks of ``INTEGRATIONS_REFRESH_TASK_BATCH`` ids,
    for as long as any are due, so that the workers, not beat's cadence, set the pace.

    - One sweep at a time, across machines (``locks.sweep_single_flight``): a sweep that
      finds one running returns at once.
    - Backpressure: while the broker's queue holds ``INTEGRATIONS_SWEEP_MAX_PENDING``
      messages or more, nothing more is claimed (claimed rows are leased for
      ``SWEEP_LEASE``: claiming far ahead of the workers would let leases run out
      before their task runs).
    - A sweep keeps at it for at most ``INTEGRATIONS_SWEEP_SECONDS``; if it stops with
      connections still due, it enqueues its successor (re-arms) rather than waiting
      for beat. Returns the connections it enqueued.

    Stamps beat's heartbeat first, which ``/readyz`` checks (a sweep that finds another
    running still shows that beat runs).
    """
    health.health_mark_stamp(name=health.REFRESH_SWEEP)
    with locks.sweep_single_flight() as mine:
        if not mine:
            logger.info("refresh sweep: another sweep is running")
            return 0
        enqueued, unfinished = _sweep()
    if unfinished:
        refresh_sweep.apply_async()
    if enqueued:
        logger.info(
            "refresh sweep: %d connection%s enqueued", enqueued, "" if enqueued == 1 else "s"
        )
    return enqueued


def _sweep() -> tuple[int, bool]:
    """The sweep's loop; returns what it enqueued and whether it stopped with work left."""
    deadline = time.monotonic() + app_settings.sweep_seconds()
    per_task = app_settings.refresh_task_batch()
    max_pending = app_settings.sweep_max_pending()
    enqueued = 0
    while time.monotonic() < deadline:
        room = max_pending - _pending_messages()
        if room <= 0:
            time.sleep(SWEEP_FULL_QUEUE_PAUSE)
            continue
        ids = refresh.connections_due_claim(
            limit=min(room * per_task, app_settings.sweep_batch_size())
        )
        if not ids:
            return enqueued, False
        for start in range(0, len(ids), per_task):
            refresh_connections.delay(ids[start : start + per_task])
        enqueued += len(ids)
    return enqueued, True


def _pending_messages() -> int:
    """Messages waiting in the refresh tasks' queue of the broker (published, not yet
    taken by a worker). 0 when tasks run eagerly (tests) or the broker cannot say."""
    app = refresh_connections.app
    if app.conf.task_always_eager:
        return 0
    queue = app.amqp.router.route({}, refresh_connections.name)["queue"].name
    try:
        with app.pool.acquire(block=True) as conn:
            return int(conn.default_channel.queue_declare(queue=queue).message_count)
    except Exception:
        logger.exception("refresh sweep: could not read the queue's depth")
        return 0


@shared_task(name="integrations.tasks.refresh_connections", ignore_result=True)
def refresh_connections(connection_ids: list[int]) -> int:
    """The sweep's unit of work: a few connection ids (never a token), each refreshed if
    still due. Batched so that a task's own cost (the broker round trips, the ack, the
    worker's bookkeeping) is paid once per batch, not once per refresh, and on
    PostgreSQL so are the lock statement and the commit
    (``refresh.connections_refresh_if_due``)."""
    outcomes = refresh.connections_refresh_if_due(connection_ids=connection_ids)
    logger.info("refresh batch: %s", _batch_summary(outcomes))
    return len(outcomes)


def _batch_summary(outcomes: list[tuple[int, str]]) -> str:
    """One line for a batch (a line per refresh would be most of a busy log): how many
    ended each way, and which connections did not refresh, with their codes.
    "3 connections: http_503 1, ok 2; not refreshed: 17=http_503"."""
    counts = Counter(outcome for _, outcome in outcomes)
    ways = ", ".join(f"{outcome} {n}" for outcome, n in sorted(counts.items()))
    n = len(outcomes)
    line = f"{n} connection{'' if n == 1 else 's'}: {ways}" if outcomes else "0 connections"
    failed = [f"{cid}={outcome}" for cid, outcome in outcomes if outcome != "ok"]
    return f"{line}; not refreshed: {' '.join(failed)}" if failed else line


@shared_task(name="integrations.tasks.refresh_connection", ignore_result=True)
def refresh_connection(connection_id: int) -> str:
    """One connection (what sweeps before the batches published: messages still queued
    when a worker is upgraded)."""
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


@shared_task(name="integrations.tasks.webhook_sweep", ignore_result=True)
def webhook_sweep() -> int:
    """Every 15 s (beat): wake the deliveries that are due (retries, lost tasks)."""
    ids = delivery.deliveries_due_claim()
    for delivery_id in ids:
        webhook_deliver.delay(delivery_id)
    if ids:
        logger.info("webhook sweep: %d deliveries due", len(ids))
    return len(ids)


@shared_task(name=DELIVER_TASK, ignore_result=True)
def webhook_deliver(delivery_id: int) -> str:
    """One attempt of one delivery. Never retried by Celery: the row's schedule is."""
    return delivery.delivery_attempt(delivery_id=delivery_id)
