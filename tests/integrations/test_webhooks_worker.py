"""A real Celery worker and beat deliver from the outbox (Redis): an event whose task
was enqueued after commit, a retry woken by the sweep, and an event whose task was lost
(the sweep finds it once its lease ran out)."""

from __future__ import annotations

import signal
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
import redis
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from config.celery import app as celery_app
from integrations.events.emit import event_emit
from integrations.events.endpoints import webhook_endpoint_create
from integrations.models import Event, WebhookDelivery, WebhookEndpoint
from tests.integrations.webhook_receiver import start_receiver
from tests.processes import django_env, start

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@contextmanager
def _publishing_to(redis_url: str, queue: str) -> Iterator[None]:
    """This process's tasks go to the worker: to Redis and ``queue``, not run eagerly.
    Without REDIS_URL the settings name the filesystem transport, which would win over
    the URL (the first event's task would land in .local/celery-queue, and its delivery
    stay leased for ``DELIVERY_LEASE``); the broker connections cached so far are
    dropped on the way in and out."""
    conf = celery_app.conf
    names = ("task_always_eager", "broker_url", "broker_transport",
             "broker_transport_options", "task_default_queue")  # fmt: skip
    was = {name: conf[name] for name in names}
    conf.update(task_always_eager=False, broker_url=redis_url, broker_transport=None,
                broker_transport_options={}, task_default_queue=queue)  # fmt: skip
    celery_app._pool = celery_app.amqp._producer_pool = None
    try:
        yield
    finally:
        conf.update(was)
        if celery_app._pool is not None:
            celery_app._pool.force_close_all()
        celery_app._pool = celery_app.amqp._producer_pool = None


def test_a_worker_and_beat_deliver_from_the_outbox(tmp_path):
    redis_url = settings.REDIS_URL or "redis://127.0.0.1:6379/0"
    try:
        redis.Redis.from_url(redis_url).ping()
    except redis.RedisError:
        pytest.skip("Redis is not reachable")
    receiver, server = start_receiver()
    secret = webhook_endpoint_create(url=receiver.url).secret
    receiver.script = [500]  # the first request fails: retried by the sweep
    # Its own queue: other checkouts' tests may share this Redis database.
    queue = f"test-webhooks-{uuid.uuid4().hex}"
    env = django_env(
        REDIS_URL=redis_url,
        CELERY_QUEUE=queue,
        INTEGRATIONS_WEBHOOK_SWEEP_SECONDS="1",
        INTEGRATIONS_SWEEP_SECONDS="3600",
        # 5 s becomes 0.5 s.
        INTEGRATIONS_WEBHOOK_RETRY_SCALE="0.1",
    )
    worker = start(
        ["-m", "celery", "-A", "config", "worker", "--pool", "threads", "--concurrency", "4",
         "-Q", queue, "--without-gossip", "--without-mingle", "-l", "info"],
        env,
    )  # fmt: skip
    beat = start(
        ["-m", "celery", "-A", "config", "beat", "-l", "info", "-s",
         str(tmp_path / "beat-schedule"), "--pidfile", str(tmp_path / "beat.pid")],
        env,
    )  # fmt: skip
    try:
        # Its task is enqueued on commit, to the worker.
        with _publishing_to(redis_url, queue), transaction.atomic():
            first = event_emit(type="app.authorized", data={"app": "acme/a"})
        # As a delivery whose task was lost leaves its row: due, its lease over.
        now = timezone.now()
        lost = Event.objects.create(
            uid="msg_lost", type="app.authorized", data={"app": "acme/b"}, created_at=now
        )
        WebhookDelivery.objects.create(
            event=lost,
            endpoint=WebhookEndpoint.objects.get(),
            next_attempt_at=now,
            claimed_until=now - timedelta(seconds=1),
            created_at=now,
        )
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if WebhookDelivery.objects.filter(status="succeeded").count() == 2:
                break
            assert worker.poll() is None and beat.poll() is None
            time.sleep(0.5)
        else:
            pytest.fail("the worker did not deliver both events in 90 s")
    finally:
        for proc in (beat, worker):
            proc.send_signal(signal.SIGTERM)
        logs = [proc.communicate(timeout=30)[0] for proc in (beat, worker)]
        server.shutdown()
        server.server_close()
        # The queue's keys (kombu's names), not left in a shared Redis.
        redis.Redis.from_url(redis_url).delete(
            queue, f"_kombu.binding.{queue}", f"_kombu.binding_permanent.{queue}"
        )
    ids = [r.headers["webhook-id"] for r in receiver.received]
    assert sorted(set(ids)) == sorted([first.uid, lost.uid])
    assert len(ids) == 3  # one failed attempt, retried once
    for got in receiver.received:
        got.verified(secret)
    attempts = sorted(WebhookDelivery.objects.values_list("attempts", flat=True))
    assert attempts == [1, 2]
    assert "webhook-sweep" in logs[0] or "webhook_sweep" in logs[0]
    for log in logs:
        assert secret.removeprefix("whsec_") not in log
