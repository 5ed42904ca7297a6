"""Sending deliveries: after commit (``emit.deliveries_enqueue``), at least once, with
the schedule of ``core.webhooks`` (exponential, jittered, about a day); the rows are the
source of truth and tasks only wake them.

- ``delivery_attempt`` (the task's work) claims its row with
  ``SELECT ... FOR UPDATE SKIP LOCKED`` and marks it in flight for ``DELIVERY_LEASE``
  (a copy of the task that comes meanwhile finds it not due), commits, sends one signed
  request through the outbound guard (``providers.client.post_webhook``), and records
  the attempt (number, status code, latency, error code: never the body or the
  signature) and what comes next.
- ``deliveries_due_claim`` (the beat sweep) finds the due rows (retries, and any whose
  task or worker was lost: its lease ran out) and leases them to new tasks.
- An endpoint failing for ``INTEGRATIONS_WEBHOOK_DISABLE_AFTER_DAYS`` (5) without a
  success is disabled, and staff are emailed once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from integrations import app_settings, metrics
from integrations.audit import audit_record
from integrations.core import crypto
from integrations.core import webhooks as policy
from integrations.core.webhooks import DELIVERY_LEASE
from integrations.events.emit import deliveries_enqueue
from integrations.models import AuditEvent, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from integrations.providers import client as http

if TYPE_CHECKING:
    from django.contrib.auth.models import User

logger = logging.getLogger(__name__)

Status = WebhookDelivery.Status

_slots_lock = threading.Lock()
_slots: tuple[int, threading.BoundedSemaphore] | None = None


@contextmanager
def _slot() -> Iterator[None]:
    """One of ``INTEGRATIONS_WEBHOOK_CONCURRENCY`` requests in flight in this process."""
    global _slots
    size = app_settings.webhook_concurrency()
    with _slots_lock:
        if _slots is None or _slots[0] != size:
            _slots = (size, threading.BoundedSemaphore(size))
        semaphore = _slots[1]
    with semaphore:
        yield


def _claim(delivery_id: int, now: datetime) -> WebhookDelivery | None:
    with transaction.atomic():
        delivery = (
            WebhookDelivery.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("event", "endpoint")
            .filter(pk=delivery_id, status=Status.PENDING, next_attempt_at__lte=now)
            .first()
        )
        if delivery is None:
            return None  # done, not due, or another task holds it
        if not delivery.endpoint.enabled:
            delivery.status = Status.FAILED
            delivery.last_error_code = "endpoint_disabled"
            delivery.next_attempt_at = None
            delivery.claimed_until = None
            delivery.save(
                update_fields=["status", "last_error_code", "next_attempt_at", "claimed_until"]
            )
            return None
        # In flight: a copy of this task finds it not due; a worker that dies leaves it
        # to the sweep once the lease ends.
        delivery.next_attempt_at = delivery.claimed_until = now + DELIVERY_LEASE
        delivery.save(update_fields=["next_attempt_at", "claimed_until"])
    return delivery


def delivery_attempt(*, delivery_id: int, now: datetime | None = None) -> str:
    """One attempt of the delivery, if it is due; returns what happened: "delivered",
    "retrying", "failed" (the schedule is spent), or "skipped" (done, not due, held by
    another task, or its endpoint is disabled). ``now`` is the clock (tests fake it);
    the signature's timestamp is always the real time, which receivers check."""
    clock = now or timezone.now()
    delivery = _claim(delivery_id, clock)
    if delivery is None:
        return "skipped"
    event, endpoint = delivery.event, delivery.endpoint
    try:
        secret = crypto.decrypt(endpoint.secret_encrypted, keys=app_settings.token_keys())
    except crypto.DecryptionError:
        posted = http.Posted(status=None, error_code="undecryptable")
        latency_ms = 0
    else:
        body = policy.envelope_body(type=event.type, timestamp=event.created_at, data=event.data)
        headers = policy.signed_headers(
            secret=secret, msg_id=event.uid, body=body, at=timezone.now()
        )
        with _slot():
            started = time.monotonic()
            posted = http.post_webhook(endpoint.url, body=body, headers=headers)
            latency_ms = round((time.monotonic() - started) * 1000)
    outcome = _record(delivery, posted, latency_ms=latency_ms, at=now or timezone.now())
    metrics.webhook_delivery_counted(outcome=outcome, seconds=latency_ms / 1000)
    return outcome


def _record(
    delivery: WebhookDelivery, posted: http.Posted, *, latency_ms: int, at: datetime
) -> str:
    ok = posted.error_code == ""
    with transaction.atomic():
        number = delivery.attempts + 1
        WebhookAttempt.objects.create(
            delivery=delivery,
            number=number,
            at=at,
            status_code=posted.status,
            latency_ms=latency_ms,
            error_code=posted.error_code,
            redelivery=delivery.attempts > 0 and delivery.failures == 0,
        )
        delivery.attempts = number
        delivery.last_status_code = posted.status
        delivery.last_error_code = posted.error_code
        delivery.claimed_until = None
        if ok:
            outcome = "delivered"
            delivery.status = Status.SUCCEEDED
            delivery.delivered_at = at
            delivery.next_attempt_at = None
            _endpoint_succeeded(delivery.endpoint_id, at=at)
        else:
            delivery.failures += 1
            delay = policy.retry_delay(delivery.failures, scale=app_settings.webhook_retry_scale())
            if delay is None:
                outcome = "failed"
                delivery.status = Status.FAILED
                delivery.next_attempt_at = None
            else:
                outcome = "retrying"
                delivery.next_attempt_at = at + timedelta(seconds=delay)
            _endpoint_failed(delivery.endpoint_id, at=at)
        delivery.save(
            update_fields=[
                "attempts",
                "failures",
                "status",
                "delivered_at",
                "next_attempt_at",
                "claimed_until",
                "last_status_code",
                "last_error_code",
            ]
        )
    if not ok:
        logger.info(
            "webhook delivery=%s endpoint=%s attempt=%d failed: %s",
            delivery.pk,
            delivery.endpoint_id,
            number,
            posted.error_code,
        )
    return outcome


def _endpoint_succeeded(endpoint_id: int, *, at: datetime) -> None:
    # Not on every success: under load every delivery would queue on the endpoint's row.
    WebhookEndpoint.objects.filter(pk=endpoint_id).filter(
        Q(last_success_at__isnull=True)
        | Q(last_success_at__lt=at - timedelta(seconds=10))
        | Q(failing_since__isnull=False)
    ).update(last_success_at=at, failing_since=None)


def _endpoint_failed(endpoint_id: int, *, at: datetime) -> None:
    WebhookEndpoint.objects.filter(pk=endpoint_id, failing_since__isnull=True).update(
        failing_since=at
    )
    since = at - timedelta(seconds=app_settings.webhook_disable_after_seconds())
    disabled = WebhookEndpoint.objects.filter(
        pk=endpoint_id, enabled=True, failing_since__lte=since
    ).update(enabled=False, disabled_at=at, disabled_reason="failing")
    if disabled:
        logger.warning("webhook endpoint %s disabled: failing since 5 days", endpoint_id)
        transaction.on_commit(lambda: _email_staff_disabled(endpoint_id))


def _email_staff_disabled(endpoint_id: int) -> None:
    """The one email about an endpoint the failures disabled, to every active staff
    member with an address. A failed send is logged (the admin shows the state)."""
    endpoint = WebhookEndpoint.objects.filter(pk=endpoint_id).first()
    if endpoint is None:
        return
    to = list(
        get_user_model()
        .objects.filter(is_staff=True, is_active=True)
        .exclude(email="")
        .values_list("email", flat=True)
    )
    if not to:
        return
    since = endpoint.failing_since.isoformat() if endpoint.failing_since else "?"
    try:
        send_mail(
            subject=f"Webhook endpoint disabled: {endpoint.url}",
            message=(
                f"The webhook endpoint {endpoint.url} (id {endpoint.pk}) has failed every "
                f"delivery since {since} and was disabled. Events are no longer sent to it.\n\n"
                "Fix the receiver, enable the endpoint again in the admin "
                f"({app_settings.site_url()}/admin/integrations/webhookendpoint/{endpoint.pk}/"
                "change/), and Redeliver the failed deliveries you need.\n"
            ),
            from_email=settings.DEFAULT_FROM_EMAIL,
            recipient_list=to,
        )
    except Exception:
        logger.exception("could not email staff about webhook endpoint %s", endpoint_id)


def deliveries_due_claim(*, now: datetime | None = None, limit: int = 1000) -> list[int]:
    """Lease up to ``limit`` due deliveries, soonest first, to new tasks (the beat
    sweep): retries whose time came, and deliveries whose task was lost. One indexed
    range scan (partial index on ``next_attempt_at``); rows locked by another sweep are
    skipped."""
    now = now or timezone.now()
    with transaction.atomic():
        ids = list(
            WebhookDelivery.objects.select_for_update(skip_locked=True)
            .filter(next_attempt_at__lte=now, status=Status.PENDING)
            .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lte=now))
            .order_by("next_attempt_at")
            .values_list("id", flat=True)[:limit]
        )
        if ids:
            WebhookDelivery.objects.filter(id__in=ids).update(claimed_until=now + DELIVERY_LEASE)
    return ids


@transaction.atomic
def delivery_redeliver(
    *, delivery: WebhookDelivery, by: User | None, now: datetime | None = None
) -> None:
    """Send the delivery again, with a new schedule (staff's **Redeliver**), whatever its
    state; audited (``webhook_redelivered``, naming the staff member)."""
    now = now or timezone.now()
    locked = (
        WebhookDelivery.objects.select_for_update(of=("self",))
        .select_related("event", "endpoint")
        .get(pk=delivery.pk)
    )
    locked.status = Status.PENDING
    locked.failures = 0
    locked.next_attempt_at = now
    locked.claimed_until = now + DELIVERY_LEASE
    locked.save(update_fields=["status", "failures", "next_attempt_at", "claimed_until"])
    audit_record(
        kind=AuditEvent.Kind.WEBHOOK_REDELIVERED,
        provider="webhooks",
        user=by,
        account=locked.endpoint.url[:254],
        detail={
            "delivery_id": locked.pk,
            "event_id": locked.event.uid,
            "event_type": locked.event.type,
            "endpoint_id": locked.endpoint_id,
            "by_staff": by.pk if by is not None else None,
        },
    )
    deliveries_enqueue([locked.pk])
