"""``event_emit``: an event is written in the transaction of the change it tells (a
transactional outbox), with one delivery row per endpoint that wants it; their tasks are
enqueued once that transaction commits. A change that rolls back emits nothing."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from celery import current_app
from django.db import transaction
from django.utils import timezone

from integrations.core.webhooks import DELIVERY_LEASE
from integrations.errors import EventOutsideTransactionError, UnknownEventTypeError
from integrations.models import Event, WebhookDelivery, WebhookEndpoint

if TYPE_CHECKING:
    from django.contrib.auth.models import User

logger = logging.getLogger(__name__)

# The type of each event, and when it is emitted (the README's table).
EVENT_TYPES: dict[str, str] = {
    "connection.created": "A user connected an account.",
    "connection.updated": "A connection's capabilities changed (Add Permissions, a "
    "reconnect, a refresh that narrowed the grant).",
    "connection.refresh_failed": "A refresh failed after succeeding (the first failure "
    "of a streak only).",
    "connection.recovered": "A refresh succeeded after failing.",
    "connection.needs_reconnect": "The grant is dead (invalid_grant): only the user's "
    "Reconnect brings it back.",
    "connection.deleted": "The user disconnected the account.",
    "app.version_published": "A valid manifest became an app's current version.",
    "app.authorized": "A user allowed an app to use capabilities or secrets.",
    "app.authorization_removed": "A user (or staff) removed what an app was allowed.",
}

# The task that sends one delivery (``integrations.tasks``).
DELIVER_TASK = "integrations.tasks.webhook_deliver"


def check_event_types(types: list[str] | tuple[str, ...]) -> list[str]:
    """``types`` without repeats; ``UnknownEventTypeError`` for a type not in
    ``EVENT_TYPES``."""
    unknown = [t for t in types if t not in EVENT_TYPES]
    if unknown:
        raise UnknownEventTypeError(
            "unknown event type: "
            + ", ".join(sorted(set(unknown)))
            + "; known: "
            + ", ".join(EVENT_TYPES)
        )
    return list(dict.fromkeys(types))


def event_emit(
    *,
    type: str,
    data: Mapping[str, Any],
    user: User | None = None,
    now: datetime | None = None,
) -> Event:
    """Write the event ``type`` with ``data`` (ids and names, never a credential) and a
    delivery for each enabled endpoint that subscribes to it, in the caller's
    transaction (``EventOutsideTransactionError`` outside one); the deliveries' tasks
    are enqueued after it commits (and the sweep wakes any whose task is lost)."""
    check_event_types([type])
    if not transaction.get_connection().in_atomic_block:
        raise EventOutsideTransactionError(f"{type} emitted outside a transaction")
    now = now or timezone.now()
    event = Event.objects.create(
        uid="msg_" + uuid.uuid4().hex,
        type=type,
        data=dict(data),
        user_id=user.pk if user is not None else data.get("user_id"),
        created_at=now,
    )
    endpoints = [
        e.pk
        for e in WebhookEndpoint.objects.filter(enabled=True).only("id", "event_types")
        if not e.event_types or type in e.event_types
    ]
    if endpoints:
        deliveries = WebhookDelivery.objects.bulk_create(
            [
                WebhookDelivery(
                    event=event,
                    endpoint_id=pk,
                    next_attempt_at=now,
                    claimed_until=now + DELIVERY_LEASE,
                    created_at=now,
                )
                for pk in endpoints
            ]
        )
        deliveries_enqueue([d.pk for d in deliveries])
    return event


def deliveries_enqueue(ids: list[int]) -> None:
    """Once the current transaction commits, one task per delivery. A broker that is
    down loses nothing: the rows stay due, and the sweep enqueues them after the lease."""

    def enqueue() -> None:
        try:
            task = current_app.tasks[DELIVER_TASK]  # by name: the tasks import this
            for pk in ids:
                task.delay(pk)
        except Exception:
            logger.exception("could not enqueue %d webhook deliveries", len(ids))

    transaction.on_commit(enqueue)
