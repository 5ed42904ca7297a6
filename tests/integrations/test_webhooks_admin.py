"""The webhook pages of the admin: the signing secret shown once, the list, the delivery
log with its attempts (no secret, no signature), Redeliver (audited)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from django.db import transaction
from django.urls import reverse

from integrations.core.webhooks import DELIVERY_LEASE
from integrations.events.delivery import deliveries_due_claim, delivery_attempt
from integrations.events.emit import event_emit
from integrations.events.endpoints import webhook_endpoint_create, webhook_endpoint_secret
from integrations.models import AuditEvent, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from tests.integrations.webhook_receiver import Receiver, start_receiver

pytestmark = pytest.mark.django_db


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec, server = start_receiver()
    yield rec
    server.shutdown()
    server.server_close()


def shown_secret(html: str) -> str:
    (secret,) = re.findall(r'value="(whsec_[^"]+)"', html)
    return secret


def test_creating_an_endpoint_shows_its_secret_once(admin_client, admin_user, receiver):
    add = reverse("admin:integrations_webhookendpoint_add")
    assert admin_client.get(add).status_code == 200
    resp = admin_client.post(
        add,
        {"url": receiver.url, "event_types": ["connection.deleted"], "description": "crm"},
    )
    assert resp.status_code == 200
    assert "no-cache" in resp["Cache-Control"] or "no-store" in resp["Cache-Control"]
    html = resp.content.decode()
    assert "css/admin-token.css" in html
    secret = shown_secret(html)
    endpoint = WebhookEndpoint.objects.get()
    assert endpoint.event_types == ["connection.deleted"] and endpoint.enabled is False
    assert webhook_endpoint_secret(endpoint=endpoint) == secret
    audit = AuditEvent.objects.get(kind="webhook_endpoint")
    assert audit.user == admin_user and audit.detail["action"] == "created"

    change = reverse("admin:integrations_webhookendpoint_change", args=[endpoint.pk])
    listing = reverse("admin:integrations_webhookendpoint_changelist")
    for url in (change, listing):
        page = admin_client.get(url).content.decode()
        assert secret not in page and secret.removeprefix("whsec_") not in page
        assert receiver.url in page


def test_a_bad_url_is_refused_and_nothing_is_made(admin_client):
    add = reverse("admin:integrations_webhookendpoint_add")
    resp = admin_client.post(add, {"url": "ftp://example.com/x", "enabled": "on"})
    assert resp.status_code == 200
    assert "whsec_" not in resp.content.decode()
    assert not WebhookEndpoint.objects.exists()


def test_changing_and_rotating_go_through_the_services(admin_client, receiver):
    made = webhook_endpoint_create(url=receiver.url)
    change = reverse("admin:integrations_webhookendpoint_change", args=[made.endpoint.pk])
    resp = admin_client.post(change, {"url": receiver.url + "/v2", "description": "x"})
    assert resp.status_code == 302
    endpoint = WebhookEndpoint.objects.get()
    assert endpoint.url == receiver.url + "/v2" and endpoint.enabled is False
    assert webhook_endpoint_secret(endpoint=endpoint) == made.secret  # kept

    listing = reverse("admin:integrations_webhookendpoint_changelist")
    resp = admin_client.post(
        listing, {"action": "rotate_secret", "_selected_action": [endpoint.pk]}
    )
    new = shown_secret(resp.content.decode())
    assert new != made.secret
    endpoint.refresh_from_db()
    assert webhook_endpoint_secret(endpoint=endpoint) == new
    actions = list(
        AuditEvent.objects.filter(kind="webhook_endpoint")
        .order_by("id")
        .values_list("detail__action", flat=True)
    )
    assert actions == ["created", "updated", "secret_rotated"]


def test_the_delivery_log_and_redeliver(
    admin_client, admin_user, receiver, django_capture_on_commit_callbacks
):
    made = webhook_endpoint_create(url=receiver.url)
    receiver.script = [500]
    t0 = datetime.now(UTC)
    with transaction.atomic():
        event_emit(type="app.authorized", data={"app": "acme/a"}, now=t0)
    delivery = WebhookDelivery.objects.get()
    assert delivery_attempt(delivery_id=delivery.pk, now=t0) == "retrying"

    page = admin_client.get(
        reverse("admin:integrations_webhookdelivery_change", args=[delivery.pk])
    ).content.decode()
    assert "http_500" in page and "retrying" not in page
    signature = receiver.received[0].headers["webhook-signature"]
    for secret_text in (made.secret, made.secret.removeprefix("whsec_"), signature):
        assert secret_text not in page

    listing = reverse("admin:integrations_webhookdelivery_changelist")
    assert admin_client.get(listing).status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        resp = admin_client.post(
            listing, {"action": "redeliver", "_selected_action": [delivery.pk]}
        )
    assert resp.status_code == 302
    delivery.refresh_from_db()
    assert delivery.status == "succeeded" and delivery.attempts == 2
    assert [a.status_code for a in WebhookAttempt.objects.order_by("number")] == [500, 200]
    audit = AuditEvent.objects.get(kind="webhook_redelivered")
    assert audit.user == admin_user and audit.detail["delivery_id"] == delivery.pk
    assert deliveries_due_claim(now=t0 + 2 * DELIVERY_LEASE) == []
    assert len(receiver.received) == 2


def test_events_are_read_only(admin_client):
    with transaction.atomic():
        event = event_emit(type="app.authorized", data={"app": "acme/a"})
    page = admin_client.get(reverse("admin:integrations_event_change", args=[event.pk]))
    assert page.status_code == 200 and event.uid in page.content.decode()
    assert admin_client.get(reverse("admin:integrations_event_add")).status_code == 403
