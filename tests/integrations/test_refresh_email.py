"""The "reconnect" email of a dead grant: sent by a Celery task (eager here) that
retries a failed send, under the connection's lock so that it goes once;
``reconnect_notified_at`` means "delivered". The email backend fails at the edge
(``tests/integrations/mail_backends.py``), as an SMTP server would."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from datetime import timedelta

import pytest
import responses
from django.core import mail
from django.db import connection as db
from django.utils import timezone

from integrations import tasks
from integrations.connections import refresh
from integrations.connections.connect import connection_save_from_callback
from integrations.connections.credentials import connection_credentials
from integrations.core.tokens import TokenSet
from integrations.errors import ReauthorizationRequiredError
from integrations.models import Connection

from .mail_backends import FlakyBackend, SlowBackend
from .test_refresh import T0, TokenEndpoint, make_connection

pytestmark = pytest.mark.django_db

FLAKY = "tests.integrations.mail_backends.FlakyBackend"


@pytest.fixture
def endpoint():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield TokenEndpoint(rsps)


def die(conn: Connection, endpoint, capture, *, now=T0) -> None:
    """A refresh that meets invalid_grant; the email task runs once it is committed."""
    endpoint.default = (400, {"error": "invalid_grant"})
    with capture(execute=True), pytest.raises(ReauthorizationRequiredError):
        connection_credentials(connection=Connection.objects.get(pk=conn.pk), now=now)


def test_the_email_is_retried_after_a_failed_send_and_sent_once(
    alice, endpoint, settings, django_capture_on_commit_callbacks
):
    settings.EMAIL_BACKEND = FLAKY
    FlakyBackend.reset(failures=1)
    conn = make_connection(alice, expires_at=T0 - timedelta(minutes=1))

    die(conn, endpoint, django_capture_on_commit_callbacks)

    assert FlakyBackend.attempts == 2  # refused once, retried, delivered
    (message,) = mail.outbox
    assert message.to == ["alice@example.com"]
    assert "Reconnect your Google account" in message.subject
    conn.refresh_from_db()
    assert conn.status == "needs_reconnect"
    assert conn.reconnect_notified_at is not None
    # The task again (a message delivered twice): nothing more is sent.
    tasks.reconnect_email.delay(conn.pk)
    assert refresh.reconnect_email_send(connection_id=conn.pk) == "already_sent"
    assert FlakyBackend.attempts == 2 and len(mail.outbox) == 1


def test_an_email_never_delivered_is_not_marked_delivered(
    alice, endpoint, settings, django_capture_on_commit_callbacks
):
    settings.EMAIL_BACKEND = FLAKY
    FlakyBackend.reset(failures=10**6)
    conn = make_connection(alice, expires_at=T0 - timedelta(minutes=1))

    die(conn, endpoint, django_capture_on_commit_callbacks)

    assert FlakyBackend.attempts == tasks.EMAIL_MAX_RETRIES + 1
    assert mail.outbox == []
    conn.refresh_from_db()
    assert conn.status == "needs_reconnect" and conn.reconnect_notified_at is None
    # The backend is back: a later run of the task delivers it.
    FlakyBackend.reset(failures=0)
    tasks.reconnect_email.delay(conn.pk)
    assert len(mail.outbox) == 1
    conn.refresh_from_db()
    assert conn.reconnect_notified_at is not None


def test_no_email_once_reconnected_and_one_per_dead_grant(
    alice, endpoint, settings, django_capture_on_commit_callbacks
):
    settings.EMAIL_BACKEND = FLAKY
    FlakyBackend.reset(failures=0)
    conn = make_connection(alice, expires_at=T0 - timedelta(minutes=1))
    die(conn, endpoint, django_capture_on_commit_callbacks)
    assert len(mail.outbox) == 1

    # Reconnected (which clears the flag); a task still queued from before sends nothing.
    connection_save_from_callback(
        user=alice,
        provider_id="google",
        uid=conn.account_uid,
        email=conn.account_email,
        token=TokenSet(
            access_token="ya29.again",
            refresh_token="1//rt-again",
            expires_at=timezone.now() - timedelta(seconds=1),
            scopes=tuple(conn.scopes),
        ),
        requested=["google.sheets.readonly"],
        connection_id=conn.pk,
    )
    conn.refresh_from_db()
    assert conn.status == "active" and conn.reconnect_notified_at is None
    assert refresh.reconnect_email_send(connection_id=conn.pk) == "not_needed"
    assert len(mail.outbox) == 1

    # The new grant dies too: its own email.
    die(conn, endpoint, django_capture_on_commit_callbacks, now=timezone.now())
    assert len(mail.outbox) == 2
    assert refresh.reconnect_email_send(connection_id=conn.pk) == "already_sent"
    assert refresh.reconnect_email_send(connection_id=conn.pk + 1000) == "gone"


@pytest.mark.django_db(transaction=True)
def test_two_tasks_for_one_dead_grant_send_one_email(alice, settings):
    """A message delivered twice, or a retry racing its original: the second copy waits
    for the first one's lock (PostgreSQL: the row lock; SQLite: the connection's file
    lock), then finds the email delivered."""
    settings.EMAIL_BACKEND = "tests.integrations.mail_backends.SlowBackend"
    SlowBackend.reset()
    conn = make_connection(alice, expires_at=T0)
    Connection.objects.filter(pk=conn.pk).update(status="needs_reconnect", next_refresh_at=None)
    outcomes: list[str] = []

    def send() -> None:
        try:
            outcomes.append(refresh.reconnect_email_send(connection_id=conn.pk))
        finally:
            db.close()

    first = threading.Thread(target=send)
    first.start()
    assert SlowBackend.sending.wait(10)
    second = threading.Thread(target=send)
    second.start()
    time.sleep(0.5)
    assert second.is_alive() and SlowBackend.attempts == 1  # waiting for the lock
    SlowBackend.release.set()
    first.join(10)
    second.join(10)

    assert sorted(outcomes) == ["already_sent", "sent"]
    assert SlowBackend.attempts == 1 and len(mail.outbox) == 1
    assert Connection.objects.get(pk=conn.pk).reconnect_notified_at is not None


def test_a_web_process_knows_the_email_task_by_its_name():
    """The web server enqueues the email by name: the task must be registered after
    ``django.setup()`` alone, without the worker's autodiscovery (a fresh interpreter:
    this test process has imported the tasks already)."""
    code = (
        "import django; django.setup(); from config.celery import app; "
        "from integrations.connections.refresh import RECONNECT_EMAIL_TASK as name; "
        "print(name in app.tasks)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.test"},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert out.stdout.strip() == "True", out.stderr[-2000:]
