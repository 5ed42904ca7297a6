"""Webhooks end to end in this process: every event type emitted once per change by the
services, delivered to a real local receiver and verified with the Standard Webhooks
library; the retry schedule (a receiver failing 3 times then succeeding gets the event
once more, not more); a rolled-back change emits nothing; the 5-day disabling; the
guard; Redeliver; and no credential in any payload. The provider is faked at the HTTP
edge (``responses``, passing the receiver's requests through); the clock is passed in."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import redis
import responses
from django.conf import settings
from django.core import mail
from django.db import transaction
from django.test import override_settings

from apps_registry import services as app_services
from integrations import metrics
from integrations.app_authorization import (
    AllowItem,
    app_access_remove_for_connection,
    app_authorization_allow,
    app_authorizations_remove_by_staff,
)
from integrations.connections.connect import connection_save_from_callback
from integrations.connections.disconnect import connection_disconnect
from integrations.connections.refresh import connection_refresh
from integrations.connections.store import connection_access_token, connection_refresh_token
from integrations.core import webhooks as policy
from integrations.core.tokens import TokenSet
from integrations.errors import (
    EventOutsideTransactionError,
    ProviderUnavailableError,
    ReauthorizationRequiredError,
)
from integrations.events.delivery import (
    deliveries_due_claim,
    delivery_attempt,
    delivery_redeliver,
)
from integrations.events.emit import EVENT_TYPES, event_emit
from integrations.events.endpoints import (
    webhook_endpoint_create,
    webhook_endpoint_rotate_secret,
    webhook_endpoint_update,
)
from integrations.models import (
    AppAuthorization,
    AuditEvent,
    Connection,
    Event,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from integrations.providers import registry
from tests.integrations.webhook_receiver import Receiver, start_receiver

pytestmark = pytest.mark.django_db

SHEETS = "https://www.googleapis.com/auth/spreadsheets.readonly"
DRIVE = "https://www.googleapis.com/auth/drive.readonly"
MANIFEST = """\
namespace: acme
name: sheets
integrations:
  - key: google.sheets.readonly
"""


@pytest.fixture
def staff_user(make_user):
    user = make_user("staff@example.com")
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    return user


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec, server = start_receiver()
    yield rec
    server.shutdown()
    server.server_close()


@pytest.fixture
def hook(receiver):
    """An endpoint for every event type at the receiver, and its secret."""
    made = webhook_endpoint_create(url=receiver.url)
    return made.endpoint, made.secret


@pytest.fixture
def provider(receiver):
    """Google's token and revocation endpoints, scripted; the receiver passes through."""
    config = registry.provider_config("google")
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.add_passthru(receiver.url)
        yield rsps, config


def run_due(now: datetime) -> list[str]:
    """What the beat sweep and the tasks do at ``now``."""
    return [delivery_attempt(delivery_id=i, now=now) for i in deliveries_due_claim(now=now)]


def connect(user, *, scopes, refresh="1//rt-secret-0", access="ya29.secret-0", cid=None):
    return connection_save_from_callback(
        user=user,
        provider_id="google",
        uid="sub-ada",
        email="ada@gmail.example",
        token=TokenSet(
            access_token=access,
            refresh_token=refresh,
            expires_at=datetime.now(UTC) + timedelta(minutes=1),
            scopes=("openid", "email", *scopes),
        ),
        requested=["google.sheets.readonly"],
        connection_id=cid,
    ).connection


def token_answer(rsps, config, status: int, body: dict) -> None:
    rsps.upsert(responses.POST, config.token_url, json=body, status=status)


def the_one(receiver: Receiver, type: str, secret: str) -> dict:
    (got,) = receiver.of_type(type)
    payload = got.verified(secret)
    assert payload["type"] == type
    assert got.headers["webhook-id"] == Event.objects.get(type=type).uid
    return payload


def test_every_event_type_once_per_change_signed_and_verified(
    alice, staff_user, receiver, hook, provider, django_capture_on_commit_callbacks
):
    _, secret = hook
    rsps, config = provider
    run = django_capture_on_commit_callbacks

    with run(execute=True):
        conn = connect(alice, scopes=[SHEETS])
    created = the_one(receiver, "connection.created", secret)["data"]
    assert created == {
        "connection_id": conn.pk,
        "user_id": alice.pk,
        "provider": "google",
        "account": {"uid": "sub-ada", "email": "ada@gmail.example"},
        "capabilities": ["google.sheets.readonly"],
        "status": "active",
        "error_code": "",
    }

    with run(execute=True):
        connect(alice, scopes=[SHEETS, DRIVE], cid=conn.pk)  # Add Permissions
    with run(execute=True):
        connect(alice, scopes=[SHEETS, DRIVE], cid=conn.pk)  # the same grant again
    updated = the_one(receiver, "connection.updated", secret)["data"]
    assert updated["capabilities"] == ["google.drive.readonly", "google.sheets.readonly"]
    assert updated["previous_capabilities"] == ["google.sheets.readonly"]

    token_answer(rsps, config, 503, {"error": "temporarily_unavailable"})
    now = datetime.now(UTC)
    for n in range(2):  # two failures of one streak: one event
        with run(execute=True), pytest.raises(ProviderUnavailableError):
            connection_refresh(
                connection_id=conn.pk,
                now=now + timedelta(hours=n),
                margin=3600,
                serve_valid_on_failure=False,
                override_backoff=True,
            )
    failed = the_one(receiver, "connection.refresh_failed", secret)["data"]
    assert failed["status"] == "refresh_failing"
    assert failed["error_code"] == "temporarily_unavailable"

    token_answer(rsps, config, 200, {"access_token": "ya29.secret-1", "expires_in": 60})
    with run(execute=True):
        connection_refresh(connection_id=conn.pk, now=now + timedelta(hours=3), margin=3600)
    assert the_one(receiver, "connection.recovered", secret)["data"]["status"] == "active"

    token_answer(rsps, config, 400, {"error": "invalid_grant"})
    with run(execute=True), pytest.raises(ReauthorizationRequiredError):
        connection_refresh(connection_id=conn.pk, now=now + timedelta(hours=5), margin=3600)
    dead = the_one(receiver, "connection.needs_reconnect", secret)["data"]
    assert dead["status"] == "needs_reconnect" and dead["error_code"] == "invalid_grant"
    # A reconnect brings it back: an update (its status changed).
    with run(execute=True):
        connect(alice, scopes=[SHEETS, DRIVE], cid=conn.pk, access="ya29.secret-2")
    assert len(receiver.of_type("connection.updated")) == 2

    with run(execute=True):
        version = app_services.manifest_upload(user=alice, text=MANIFEST)
    published = the_one(receiver, "app.version_published", secret)["data"]
    assert published == {
        "app": "acme/sheets",
        "user_id": alice.pk,
        "version": 1,
        "app_id": version.app_id,
        "version_id": version.pk,
    }

    item = AllowItem("capability", "google.sheets.readonly", conn.pk)
    with run(execute=True):
        app_authorization_allow(user=alice, app="acme/sheets", version=1, items=[item])
    with run(execute=True):  # allowed already: no change, no event
        app_authorization_allow(user=alice, app="acme/sheets", version=1, items=[item])
    authorized = the_one(receiver, "app.authorized", secret)["data"]
    assert authorized["items"] == [item.as_detail()] and authorized["user_id"] == alice.pk

    with run(execute=True):
        app_access_remove_for_connection(user=alice, app="acme/sheets", connection=conn)
    with run(execute=True):  # nothing left to remove
        app_access_remove_for_connection(user=alice, app="acme/sheets", connection=conn)
    with run(execute=True):
        app_authorization_allow(user=alice, app="acme/sheets", version=1, items=[item])
        app_authorizations_remove_by_staff(
            rows=AppAuthorization.objects.all(), by_staff_id=staff_user.pk
        )
    removed = [r.verified(secret)["data"] for r in receiver.of_type("app.authorization_removed")]
    assert [r["by_staff"] for r in removed] == [None, staff_user.pk]

    conn.refresh_from_db()
    tokens = [connection_access_token(connection=conn), connection_refresh_token(connection=conn)]
    rsps.add(responses.POST, config.revoke_url, status=200)
    with run(execute=True):
        connection_disconnect(connection=conn)
    deleted = the_one(receiver, "connection.deleted", secret)["data"]
    assert deleted["connection_id"] == conn.pk and deleted["revoked_at_provider"] is True

    # Each type once per change (updated: Add Permissions and the reconnect; authorized
    # twice, removed twice); every one delivered at its first attempt.
    counts = {t: Event.objects.filter(type=t).count() for t in EVENT_TYPES}
    assert counts == {
        **dict.fromkeys(EVENT_TYPES, 1),
        "connection.updated": 2,
        "app.authorized": 2,
        "app.authorization_removed": 2,
    }
    assert len(receiver.received) == sum(counts.values())
    assert set(WebhookDelivery.objects.values_list("status", flat=True)) == {"succeeded"}

    # The payload scan: no stored token or secret anywhere in what was sent or kept.
    hook_secret = secret.removeprefix("whsec_")
    needles = [*tokens, "ya29.secret-0", "ya29.secret-1", "ya29.secret-2", "1//rt-secret-0"]
    needles += [hook_secret, str(config.client_secret)]
    for got in receiver.received:
        text = got.body.decode() + json.dumps(dict(got.headers))
        for needle in needles:
            assert needle and needle not in text
    for event in Event.objects.all():
        for needle in needles:
            assert needle and needle not in json.dumps(event.data)


def test_the_envelope_follows_standard_webhooks(alice, receiver, hook):
    _, secret = hook
    with transaction.atomic():
        event = event_emit(type="app.authorized", data={"app": "a/b", "user_id": alice.pk})
    assert run_due(datetime.now(UTC) + DELIVERY_LEASE_PLUS) == ["delivered"]
    (got,) = receiver.received
    assert set(json.loads(got.body)) == {"type", "timestamp", "data"}
    assert got.headers["Content-Type"] == "application/json"
    assert got.headers["webhook-id"] == event.uid
    assert got.headers["webhook-signature"].startswith("v1,")
    assert got.verified(secret)["data"] == {"app": "a/b", "user_id": alice.pk}
    # Another secret does not verify it.
    with pytest.raises(Exception, match="signature"):
        got.verified(policy.secret_generate())


def test_a_rolled_back_change_emits_nothing(
    alice, receiver, hook, django_capture_on_commit_callbacks
):
    class Boom(Exception):
        pass

    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(Boom),
        transaction.atomic(),
    ):
        connect(alice, scopes=[SHEETS])
        assert Event.objects.filter(type="connection.created").count() == 1
        raise Boom
    assert callbacks == []
    assert not Connection.objects.exists()
    assert not Event.objects.exists() and not WebhookDelivery.objects.exists()
    assert run_due(datetime.now(UTC) + timedelta(days=2)) == []
    assert receiver.received == []


@pytest.mark.django_db(transaction=True)
def test_an_event_outside_a_transaction_is_refused():
    with pytest.raises(EventOutsideTransactionError):
        event_emit(type="app.authorized", data={"app": "a/b"})
    assert not Event.objects.exists()


def test_failing_three_times_then_succeeding_delivers_once_more_not_more(alice, receiver, hook):
    endpoint, secret = hook
    receiver.script = [500, 503, 502]
    t0 = datetime.now(UTC)
    with transaction.atomic():
        event = event_emit(type="app.authorized", data={"app": "a/b"}, now=t0)
    delivery = WebhookDelivery.objects.get(event=event)

    assert run_due(t0) == []  # its task holds it (the lease): the sweep leaves it
    assert delivery_attempt(delivery_id=delivery.pk, now=t0) == "retrying"
    at = t0
    outcomes = []
    for delay in policy.RETRY_SCHEDULE[:3]:
        # Not before the jittered delay (at least 80 % of the schedule's)...
        assert run_due(at + timedelta(seconds=delay * 0.79)) == []
        at += timedelta(seconds=delay * 1.21)
        outcomes += run_due(at)
    assert outcomes == ["retrying", "retrying", "delivered"]
    # ... and never again: a day of sweeps later nothing more was sent.
    for hours in (1, 6, 24, 48):
        assert run_due(at + timedelta(hours=hours)) == []
    assert [r.answered for r in receiver.received] == [500, 503, 502, 200]
    assert {r.headers["webhook-id"] for r in receiver.received} == {event.uid}
    for got in receiver.received:
        got.verified(secret)
    delivery.refresh_from_db()
    assert delivery.status == "succeeded" and delivery.attempts == 4
    log = list(WebhookAttempt.objects.filter(delivery=delivery).order_by("number"))
    assert [(a.number, a.status_code, a.error_code) for a in log] == [
        (1, 500, "http_500"),
        (2, 503, "http_503"),
        (3, 502, "http_502"),
        (4, 200, ""),
    ]
    endpoint.refresh_from_db()
    assert endpoint.failing_since is None and endpoint.last_success_at == at


def test_the_schedule_spans_about_a_day_then_the_delivery_fails(alice, receiver, hook):
    assert 22 * 3600 < sum(policy.RETRY_SCHEDULE) < 26 * 3600
    receiver.script = [500] * 50
    t0 = datetime.now(UTC)
    with transaction.atomic():
        event_emit(type="app.authorized", data={"app": "a/b"}, now=t0)
    outcomes = run_due(t0 + DELIVERY_LEASE_PLUS)
    at = t0 + DELIVERY_LEASE_PLUS
    for _ in range(40):
        at += timedelta(hours=9)
        outcomes += run_due(at)
    assert outcomes == ["retrying"] * (policy.MAX_ATTEMPTS - 1) + ["failed"]
    assert len(receiver.received) == policy.MAX_ATTEMPTS == 11
    assert WebhookDelivery.objects.get().status == "failed"


DELIVERY_LEASE_PLUS = policy.DELIVERY_LEASE + timedelta(seconds=1)


def test_a_lost_task_is_woken_by_the_sweep_after_its_lease(alice, receiver, hook):
    t0 = datetime.now(UTC)
    with transaction.atomic():
        event_emit(type="app.authorized", data={"app": "a/b"}, now=t0)  # no task ran
    assert run_due(t0 + timedelta(minutes=1)) == []
    assert run_due(t0 + DELIVERY_LEASE_PLUS) == ["delivered"]
    assert len(receiver.received) == 1


def test_an_endpoint_failing_five_days_is_disabled_and_staff_emailed_once(
    alice, staff_user, make_user, receiver, hook, django_capture_on_commit_callbacks
):
    endpoint, _ = hook
    inactive = make_user("gone@example.com")
    inactive.is_staff, inactive.is_active = True, False
    inactive.save()
    receiver.script = [500] * 100
    t0 = datetime.now(UTC)
    day = timedelta(days=1)
    with django_capture_on_commit_callbacks(execute=True):
        for n in range(6):
            with transaction.atomic():
                event_emit(type="app.authorized", data={"app": "a/b", "n": n}, now=t0 + n * day)
            run_due(t0 + n * day + DELIVERY_LEASE_PLUS)
            endpoint.refresh_from_db()
            assert endpoint.enabled is (n < 5)
    assert endpoint.disabled_reason == "failing" and endpoint.failing_since is not None
    (email,) = mail.outbox
    assert email.to == [staff_user.email]
    assert endpoint.url in email.subject
    # Disabled: its pending deliveries are not sent, and new events get none.
    sent = len(receiver.received)
    with transaction.atomic():
        event_emit(type="app.authorized", data={"app": "a/b"}, now=t0 + 6 * day)
    with django_capture_on_commit_callbacks(execute=True):
        run_due(t0 + 8 * day)
    assert len(receiver.received) == sent
    assert len(mail.outbox) == 1
    assert not WebhookDelivery.objects.filter(status="pending").exists()
    # Enabled again: the streak starts anew.
    webhook_endpoint_update(endpoint=endpoint, enabled=True, by=staff_user)
    endpoint.refresh_from_db()
    assert endpoint.enabled and endpoint.failing_since is None


def test_a_success_ends_the_failing_streak(alice, receiver, hook):
    endpoint, _ = hook
    receiver.script = [500, 200, 500]
    t0 = datetime.now(UTC)
    day = timedelta(days=1)
    with transaction.atomic():
        event_emit(type="app.authorized", data={"app": "a/b"}, now=t0)
    assert run_due(t0 + DELIVERY_LEASE_PLUS) == ["retrying"]
    assert run_due(t0 + 3 * day) == ["delivered"]
    endpoint.refresh_from_db()
    assert endpoint.failing_since is None and endpoint.last_success_at == t0 + 3 * day
    with transaction.atomic():
        event_emit(type="app.authorized", data={"app": "a/b"}, now=t0 + 5.5 * day)
    assert run_due(t0 + 5.5 * day + DELIVERY_LEASE_PLUS) == ["retrying"]
    endpoint.refresh_from_db()
    # 5.5 days after the first failure, but failing since the last one only.
    assert endpoint.enabled
    assert endpoint.failing_since == t0 + 5.5 * day + DELIVERY_LEASE_PLUS


def test_a_private_address_is_refused_when_the_guard_is_on(alice, receiver, hook):
    t0 = datetime.now(UTC)
    with transaction.atomic():
        event_emit(type="app.authorized", data={"app": "a/b"}, now=t0)
    with override_settings(INTEGRATIONS_ALLOW_PRIVATE_URLS=False):
        assert run_due(t0 + DELIVERY_LEASE_PLUS) == ["retrying"]
    assert receiver.received == []
    attempt = WebhookAttempt.objects.get()
    assert attempt.status_code is None and attempt.error_code == "private_address"


def test_redeliver_sends_again_and_is_audited(alice, staff_user, receiver, hook):
    _, secret = hook
    t0 = datetime.now(UTC)
    with transaction.atomic():
        event = event_emit(type="app.authorized", data={"app": "a/b"}, now=t0)
    assert run_due(t0 + DELIVERY_LEASE_PLUS) == ["delivered"]
    delivery = WebhookDelivery.objects.get()
    delivery_redeliver(delivery=delivery, by=staff_user, now=t0 + timedelta(hours=1))
    assert delivery_attempt(delivery_id=delivery.pk, now=t0 + timedelta(hours=1)) == "delivered"
    assert len(receiver.received) == 2
    assert {r.headers["webhook-id"] for r in receiver.received} == {event.uid}
    second = WebhookAttempt.objects.get(number=2)
    assert second.redelivery is True
    audit = AuditEvent.objects.get(kind="webhook_redelivered")
    assert audit.user == staff_user
    assert audit.detail["delivery_id"] == delivery.pk and audit.detail["by_staff"] == staff_user.pk
    assert secret.removeprefix("whsec_") not in json.dumps(audit.detail)


def test_subscriptions_and_rotation(alice, receiver, hook):
    endpoint, old = hook
    webhook_endpoint_update(endpoint=endpoint, event_types=["connection.deleted"])
    with transaction.atomic():
        event_emit(type="app.authorized", data={"app": "a/b"})
    assert not WebhookDelivery.objects.exists()
    new = webhook_endpoint_rotate_secret(endpoint=endpoint)
    assert new != old and new.startswith("whsec_")
    webhook_endpoint_update(endpoint=endpoint, event_types=[])
    t0 = datetime.now(UTC)
    with transaction.atomic():
        event_emit(type="app.authorized", data={"app": "a/b"}, now=t0)
    run_due(t0 + DELIVERY_LEASE_PLUS)
    (got,) = receiver.received
    got.verified(new)
    with pytest.raises(Exception, match="signature"):
        got.verified(old)
    stored = WebhookEndpoint.objects.get()
    assert new.encode() not in bytes(stored.secret_encrypted)
    assert new not in repr(stored) and new not in str(stored)


@pytest.mark.skipif(not settings.REDIS_URL, reason="needs Redis (REDIS_URL)")
def test_deliveries_are_counted_for_metrics_by_outcome(alice, receiver, hook, settings):
    """Each attempt reaches /metrics' webhook series (integrations.metrics), by outcome."""
    settings.METRICS_KEY_PREFIX = f"test:{uuid.uuid4().hex}:"
    receiver.script = [500]
    t0 = datetime.now(UTC)
    with transaction.atomic():
        event = event_emit(type="app.authorized", data={"app": "a/b"}, now=t0)
    delivery = WebhookDelivery.objects.get(event=event)
    assert delivery_attempt(delivery_id=delivery.pk, now=t0) == "retrying"
    later = t0 + timedelta(seconds=policy.RETRY_SCHEDULE[0] * 1.21)
    assert delivery_attempt(delivery_id=delivery.pk, now=later) == "delivered"
    text = metrics.metrics_text()[0].decode()
    try:
        for outcome in ("retrying", "delivered"):
            line = f'hub_webhook_deliveries_total{{outcome="{outcome}"}} 1.0'
            assert line in text.splitlines(), outcome
        assert "hub_webhook_delivery_seconds_count 2.0" in text.splitlines()
    finally:
        client = redis.Redis.from_url(settings.REDIS_URL)
        keys = list(client.scan_iter(settings.METRICS_KEY_PREFIX + "*"))
        if keys:
            client.delete(*keys)
