"""/healthz, /readyz and /metrics: against the real PostgreSQL and Redis of the test
settings; Redis "stopped" is a closed port, a wrong key another Fernet key, a stale beat
an old heartbeat."""

from __future__ import annotations

import re
import socket
import uuid
from datetime import timedelta

import pytest
import redis
from cryptography.fernet import Fernet
from django.conf import settings
from django.test import override_settings
from django.utils import timezone

from integrations import health, metrics
from integrations.models import Connection, HealthMark
from integrations.tasks import refresh_sweep

from . import test_refresh
from .factories import ConnectionFactory
from .test_refresh import T0, make_connection

pytestmark = pytest.mark.django_db
endpoint = test_refresh.endpoint  # Google's token endpoint, scripted (a fixture)

needs_redis = pytest.mark.skipif(not settings.REDIS_URL, reason="needs Redis (REDIS_URL)")


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the block ends


@pytest.fixture
def metrics_prefix(settings):
    """Counters of this test only (xdist workers share one Redis)."""
    settings.METRICS_KEY_PREFIX = f"test:{uuid.uuid4().hex}:"
    yield settings.METRICS_KEY_PREFIX
    if settings.REDIS_URL:
        client = redis.Redis.from_url(settings.REDIS_URL)
        keys = list(client.scan_iter(settings.METRICS_KEY_PREFIX + "*"))
        if keys:
            client.delete(*keys)


# --- /healthz, /readyz -------------------------------------------------------------------


def test_healthz_answers_without_the_database(client, django_assert_num_queries):
    with django_assert_num_queries(0):
        response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert "no-cache" in response["Cache-Control"]


def test_readyz_ok_once_beat_has_run(client):
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["beat"] == {
        "ok": False,
        "reason": "the refresh sweep has never run",
    }

    refresh_sweep()  # what beat runs every minute
    response = client.get("/readyz")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["status"] == "ok"
    assert set(body["checks"]) == {"database", "broker", "token_keys", "beat"}
    assert all(check["ok"] for check in body["checks"].values())
    # The first check wrote the canary, under the first key.
    canary = HealthMark.objects.get(name=health.KEY_CANARY)
    assert Fernet(settings.INTEGRATIONS_TOKEN_KEYS[0]).decrypt(bytes(canary.value)) == (
        health.CANARY_TEXT.encode()
    )


def test_readyz_fails_when_beat_is_stale(client):
    health.health_mark_stamp(name=health.REFRESH_SWEEP, now=timezone.now() - timedelta(hours=1))
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["beat"]["reason"].startswith("the refresh sweep last ran 36")
    with override_settings(INTEGRATIONS_BEAT_MAX_AGE_SECONDS=0):
        assert client.get("/readyz").status_code == 200


@needs_redis
def test_readyz_fails_when_redis_is_unreachable(client):
    refresh_sweep()
    assert client.get("/readyz").status_code == 200
    port = closed_port()
    url = f"redis://127.0.0.1:{port}/0"
    with override_settings(REDIS_URL=url, CELERY_BROKER_URL=url):
        response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "failing"
    assert body["checks"]["broker"] == {"ok": False, "reason": "ConnectionError"}
    assert body["checks"]["database"]["ok"] and body["checks"]["token_keys"]["ok"]
    assert str(port) not in response.content.decode()


def test_readyz_fails_when_a_key_is_wrong(client):
    refresh_sweep()
    assert client.get("/readyz").status_code == 200  # the canary written
    wrong = Fernet.generate_key().decode()
    with override_settings(INTEGRATIONS_TOKEN_KEYS=[wrong]):
        response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["token_keys"] == {
        "ok": False,
        "reason": "the keys do not decrypt the canary",
    }
    assert wrong not in response.content.decode()
    with override_settings(INTEGRATIONS_TOKEN_KEYS=["not a key"]):
        assert client.get("/readyz").json()["checks"]["token_keys"]["ok"] is False


def test_readyz_canary_follows_a_key_rotation(client):
    refresh_sweep()
    old = settings.INTEGRATIONS_TOKEN_KEYS[0]
    new = Fernet.generate_key().decode()
    assert client.get("/readyz").status_code == 200
    with override_settings(INTEGRATIONS_TOKEN_KEYS=[new, old]):
        assert client.get("/readyz").status_code == 200  # re-encrypted under `new`
    with override_settings(INTEGRATIONS_TOKEN_KEYS=[new]):
        assert client.get("/readyz").status_code == 200  # the old key dropped
    assert client.get("/readyz").status_code == 503  # back to the old one alone


# --- /metrics ----------------------------------------------------------------------------


def scrape(client, **headers) -> str:
    response = client.get("/metrics", headers={"Authorization": "Bearer s3cret-scrape", **headers})
    assert response.status_code == 200, response.status_code
    assert response["Content-Type"].startswith("text/plain")
    return response.content.decode()


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of the series ``name{labels}`` (labels in any order), None if absent."""
    for line in text.splitlines():
        match = re.fullmatch(r"(\w+)(?:\{(.*)\})? (\S+)", line)
        if (
            match
            and match[1] == name
            and dict(re.findall(r'(\w+)="([^"]*)"', match[2] or "")) == labels
        ):
            return float(match[3])
    return None


@override_settings(METRICS_TOKEN="s3cret-scrape")
def test_metrics_need_the_token_or_an_allowed_address(client, metrics_prefix):
    assert client.get("/metrics").status_code == 403
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 403
    assert client.get("/metrics", headers={"Authorization": "Basic s3cret-scrape"}).status_code == (
        403
    )
    assert "hub_refresh_due" in scrape(client)
    with override_settings(METRICS_TOKEN="", METRICS_ALLOWED_IPS=[]):
        assert client.get("/metrics").status_code == 404
    with override_settings(METRICS_TOKEN="", METRICS_ALLOWED_IPS=["10.0.0.0/8"]):
        assert client.get("/metrics").status_code == 403  # the test client is 127.0.0.1
        assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 200


@needs_redis
@override_settings(METRICS_TOKEN="s3cret-scrape")
def test_refreshes_counted_by_provider_and_outcome(client, alice, endpoint, metrics_prefix):
    from integrations.connections.refresh import connection_refresh_if_due

    ok = make_connection(alice, expires_at=T0 + timedelta(minutes=1), uid="sub-ok")
    dead = make_connection(alice, expires_at=T0 + timedelta(minutes=1), uid="sub-dead")
    endpoint.script = [(200, {"access_token": "ya29.new", "expires_in": 3599})]
    assert connection_refresh_if_due(connection_id=ok.pk, now=T0) == "ok"
    endpoint.script = [(400, {"error": "invalid_grant"})]
    assert connection_refresh_if_due(connection_id=dead.pk, now=T0) == "invalid_grant"
    text = scrape(client)
    assert sample(text, "hub_refreshes_total", provider="google", outcome="ok") == 1.0
    assert sample(text, "hub_refreshes_total", provider="google", outcome="needs_reconnect") == 1.0
    assert sample(text, "hub_connections_needs_reconnect", provider="google") == 1.0


@override_settings(METRICS_TOKEN="s3cret-scrape")
def test_backlog_and_oldest_lag_are_read_at_scrape(client, alice, metrics_prefix):
    now = timezone.now()
    for minutes in (1, 5, -10):
        conn = ConnectionFactory.create(user=alice)
        Connection.objects.filter(pk=conn.pk).update(
            next_refresh_at=now - timedelta(minutes=minutes)
        )
    text = scrape(client)
    assert sample(text, "hub_refresh_due") == 2.0
    lag = sample(text, "hub_refresh_oldest_due_lag_seconds")
    assert lag is not None and 300 <= lag < 400
    Connection.objects.update(next_refresh_at=None)
    text = scrape(client)
    assert sample(text, "hub_refresh_due") == 0.0
    assert sample(text, "hub_refresh_oldest_due_lag_seconds") == 0.0


@needs_redis
@override_settings(METRICS_TOKEN="s3cret-scrape")
def test_run_environment_answers_counted_and_timed(client, metrics_prefix):
    for _ in range(2):
        response = client.post(
            "/api/v1/run-environments/",
            {"user": "a@example.com", "app": "acme/x"},
            content_type="application/json",
            headers={"Authorization": "Bearer hub_rt_not-a-token"},
        )
        assert response.status_code == 401
    text = scrape(client)
    assert sample(text, "hub_run_environment_answers_total", status="401") == 2.0
    assert sample(text, "hub_run_environment_seconds_count") == 2.0
    assert sample(text, "hub_run_environment_seconds_bucket", le="+Inf") == 2.0
    assert (sample(text, "hub_run_environment_seconds_sum") or 0) > 0


@needs_redis
@override_settings(METRICS_TOKEN="s3cret-scrape")
def test_webhook_delivery_counted(client, metrics_prefix):
    metrics.webhook_delivery_counted(outcome="delivered", seconds=0.2)
    metrics.webhook_delivery_counted(outcome="delivered", seconds=3.0)
    metrics.webhook_delivery_counted(outcome="failed", seconds=40.0)
    metrics.webhook_delivery_counted(outcome="https://hooks.example/ada?token=1", seconds=0.01)
    text = scrape(client)
    assert sample(text, "hub_webhook_deliveries_total", outcome="delivered") == 2.0
    assert sample(text, "hub_webhook_deliveries_total", outcome="failed") == 1.0
    assert sample(text, "hub_webhook_deliveries_total", outcome="other") == 1.0
    assert sample(text, "hub_webhook_delivery_seconds_bucket", le="0.25") == 2.0
    assert sample(text, "hub_webhook_delivery_seconds_bucket", le="5.0") == 3.0
    assert sample(text, "hub_webhook_delivery_seconds_bucket", le="+Inf") == 4.0
    assert sample(text, "hub_webhook_delivery_seconds_sum") == pytest.approx(43.21)


@needs_redis
def test_counts_add_up_across_processes(metrics_prefix):
    """Two stores (as two processes have) on one Redis: one total."""
    metrics.webhook_delivery_counted(outcome="delivered", seconds=0.1)
    metrics._stores.clear()  # what a second process starts with
    metrics.webhook_delivery_counted(outcome="delivered", seconds=0.1)
    text = metrics.metrics_text()[0].decode()
    assert sample(text, "hub_webhook_deliveries_total", outcome="delivered") == 2.0


@override_settings(METRICS_TOKEN="s3cret-scrape")
def test_a_count_lost_to_redis_never_fails_the_caller(client, metrics_prefix):
    url = f"redis://127.0.0.1:{closed_port()}/0"
    with override_settings(REDIS_URL=url):
        metrics.webhook_delivery_counted(outcome="delivered", seconds=0.1)  # no raise


@override_settings(METRICS_TOKEN="s3cret-scrape")
def test_labels_never_carry_user_data(client, alice, endpoint, metrics_prefix):
    """A refresh, a dead grant and run-environment calls for a user with an email and
    tokens: no label value is anything but a provider id, an outcome or a status."""
    from integrations.connections.refresh import connection_refresh_if_due

    conn = make_connection(alice, expires_at=T0 + timedelta(minutes=1), uid="sub-label")
    endpoint.script = [(400, {"error": "invalid_grant", "error_description": "alice"})]
    connection_refresh_if_due(connection_id=conn.pk, now=T0)
    client.post(
        "/api/v1/run-environments/",
        {"user": alice.email, "app": "acme/x"},
        content_type="application/json",
        headers={"Authorization": "Bearer hub_rt_alice"},
    )
    metrics.refresh_counted(provider="alice@example.com")  # a provider id never is
    text = scrape(client)
    for needle in ("alice", "@", "sub-label", "ya29", "1//rt"):
        assert needle not in text, needle
    # No id either (the connection's, the user's): every label value is from the lists.
    values = set(re.findall(r'(\w+)="([^"]*)"', text))
    allowed = {
        "provider": {"google", "other"},
        "outcome": set(metrics.REFRESH_OUTCOMES) | {"other"},
        "status": {"401"},
        "le": {str(b) for b in metrics.RUN_ENV_BUCKETS + metrics.WEBHOOK_BUCKETS} | {"+Inf"},
    }
    for name, value in values:
        assert value in allowed[name], (name, value)
