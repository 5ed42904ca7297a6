"""Log lines: JSON or text (LOG_FORMAT), a request id on every line of one request and
on the worker's lines of a task it enqueued, and no credential in any line of either
format. Lines are captured by real handlers with the formatters and filter of
config/log.py, on the root logger at DEBUG."""

from __future__ import annotations

import io
import json
import logging
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import redis
import responses
from django.conf import settings
from django.test import override_settings
from django.utils import timezone

from apps_registry import services as app_services
from apps_registry.tokens import RUNNER_TOKEN_PREFIX
from config import log
from integrations.models import Connection
from integrations.secrets import secret_set
from tests.authorization import allow_declared
from tests.integrations.fakes import FakeGoogle
from tests.integrations.test_flows import finish, start
from tests.processes import django_env
from tests.processes import start as start_process

pytestmark = pytest.mark.django_db

MANIFEST = """\
namespace: acme
name: sheets
secrets:
  - key: FAL_KEY
    description: The fal.ai key
integrations:
  - key: google.sheets.readonly
    description: Read the sheet
"""
SECRET_VALUE = "fal-0123456789abcdef-secret-value"


class Captured:
    def __init__(self) -> None:
        self.text = io.StringIO()
        self.json = io.StringIO()

    def json_lines(self) -> list[dict]:
        return [json.loads(line) for line in self.json.getvalue().splitlines()]


@pytest.fixture
def captured() -> Iterator[Captured]:
    """Root-logger handlers of both formats, as LOGGING configures them."""
    out = Captured()
    handlers = []
    for stream, formatter in (
        (out.text, logging.Formatter(log.TEXT_FORMAT)),
        (out.json, log.JsonFormatter()),
    ):
        handler = logging.StreamHandler(stream)
        handler.setFormatter(formatter)
        handler.addFilter(log.RequestIdFilter())
        handlers.append(handler)
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.DEBUG)
    for handler in handlers:
        root.addHandler(handler)
    yield out
    for handler in handlers:
        root.removeHandler(handler)
    root.setLevel(level)


def run_env(client, runner: str, user) -> Any:
    return client.post(
        "/api/v1/run-environments/",
        {"user": user.email, "app": "acme/sheets"},
        content_type="application/json",
        headers={"Authorization": f"Bearer {runner}"},
    )


@pytest.fixture
def story(client, alice):
    """Connect Google (the fake's tokens), set a secret, allow an app, make a runner."""
    client.force_login(alice)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        google = FakeGoogle(rsps)
        finish(client, google, start(client, ["google.sheets.readonly"]))
        secret_set(user=alice, key="FAL_KEY", value=SECRET_VALUE)
        app_services.manifest_upload(user=alice, text=MANIFEST)
        allow_declared(alice, "acme/sheets")
        runner = app_services.runner_token_create(name="runner-logs", all_namespaces=True)[1]
        yield google, runner


def test_no_credential_reaches_a_log_line_in_either_format(client, alice, captured, story):
    google, runner = story
    # Connected above (a code exchange); then a run gets the tokens and the secret.
    ok = run_env(client, runner, alice)
    assert ok.status_code == 200, ok.content
    assert ok.json()["env"]["FAL_KEY"] == SECRET_VALUE
    # The token expires: the refresh is refused (the fake knows no refresh grant), the
    # run is told to reconnect; and a runner with a bad token is refused.
    Connection.objects.update(expires_at=timezone.now() - timedelta(minutes=1))
    assert run_env(client, runner, alice).status_code == 409
    assert run_env(client, runner + "x", alice).status_code == 401

    credentials = [
        *google.issued,  # access and refresh tokens
        settings.GOOGLE_CLIENT_SECRET,
        SECRET_VALUE,
        runner,
        # The token's random part alone (itself URL-safe base64, which may hold "_").
        runner.removeprefix(RUNNER_TOKEN_PREFIX),
    ]
    text, lines = captured.text.getvalue(), captured.json.getvalue()
    assert "refresh failed" in text and "refresh failed" in lines  # there are lines
    for credential in credentials:
        assert len(credential) >= 12
        assert credential not in text, credential
        assert credential not in lines, credential


def test_every_line_of_one_request_carries_its_id(client, alice, captured, story):
    _google, runner = story
    Connection.objects.update(expires_at=timezone.now() - timedelta(minutes=1))
    captured.json.truncate(0)
    captured.json.seek(0)
    response = run_env(client, runner, alice)
    assert response.status_code == 409
    rid = response["X-Request-ID"]
    lines = captured.json_lines()
    assert len(lines) >= 2, lines  # the refresh's warning and the 409's
    assert {line["request_id"] for line in lines} == {rid}
    assert all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    conflict = next(line for line in lines if line["logger"] == "django.request")
    assert conflict["status_code"] == 409 and "request" not in conflict  # no query string
    # The next request has another id; a line outside any request has none.
    assert client.get("/healthz")["X-Request-ID"] != rid
    logging.getLogger("tests").warning("outside")
    assert captured.json_lines()[-1]["request_id"] == "-"
    assert captured.text.getvalue().splitlines()[-1].endswith("[-] outside")


def test_x_request_id_is_taken_only_from_trusted_proxies(client):
    given = "edge-" + uuid.uuid4().hex
    response = client.get("/healthz", headers={"X-Request-ID": given})
    assert response["X-Request-ID"] != given
    assert len(response["X-Request-ID"]) == 32
    with override_settings(LOG_REQUEST_ID_TRUSTED_PROXIES=["127.0.0.0/8"]):
        assert client.get("/healthz", headers={"X-Request-ID": given})["X-Request-ID"] == given
        hostile = client.get("/healthz", headers={"X-Request-ID": 'a" b'})["X-Request-ID"]
        assert hostile != 'a" b' and len(hostile) == 32
        other = client.get("/healthz", headers={"X-Request-ID": given}, REMOTE_ADDR="10.0.0.9")
        assert other["X-Request-ID"] != given


def test_an_eager_task_logs_with_the_request_id(captured):
    from integrations.tasks import refresh_connection

    token = log.request_id.set("rid-eager-1")
    try:
        refresh_connection.delay(987654321)
    finally:
        log.request_id.reset(token)
    (line,) = [x for x in captured.json_lines() if x["message"].startswith("refresh connection")]
    assert line["request_id"] == "rid-eager-1"


@pytest.mark.slow
def test_the_workers_lines_carry_the_request_id_that_enqueued_the_task(tmp_path):
    """A real worker on Redis, logging JSON: the id travels in the task's headers."""
    if not settings.REDIS_URL:
        pytest.skip("needs Redis (REDIS_URL)")
    try:
        redis.Redis.from_url(settings.REDIS_URL).ping()
    except redis.RedisError:
        pytest.skip("Redis is not reachable")
    from config.celery import app
    from integrations.tasks import refresh_connection

    queue = f"test-logs-{tmp_path.name}"
    worker = start_process(
        [
            *("-m", "celery", "-A", "config", "worker", "--pool", "threads", "-Q", queue),
            *("--without-gossip", "--without-mingle", "-l", "info"),
        ],
        django_env(LOG_FORMAT="json", REDIS_URL=settings.REDIS_URL, CELERY_QUEUE=queue),
    )
    rid = "rid-" + uuid.uuid4().hex
    app.conf.task_always_eager = False
    token = log.request_id.set(rid)
    try:
        refresh_connection.apply_async((987654321,), queue=queue)
    finally:
        log.request_id.reset(token)
        app.conf.task_always_eager = True
    try:
        deadline = time.monotonic() + 60
        assert worker.stdout is not None
        while time.monotonic() < deadline:
            raw = worker.stdout.readline()
            if not raw:
                break
            try:
                line = json.loads(raw)
            except ValueError:
                continue  # the banner
            if line.get("message", "").startswith("refresh connection=987654321"):
                assert line["request_id"] == rid
                assert line["level"] == "INFO"
                break
        else:
            pytest.fail("the worker did not log the task in 60 s")
    finally:
        worker.terminate()
        worker.wait(timeout=30)


@override_settings(LOG_REQUEST_ID_TRUSTED_PROXIES=["10.0.0.0/8"])
def test_asgi_requests_take_the_id_from_the_scope():
    def begun(client: str) -> str:
        log.request_begun(
            scope={"headers": [(b"x-request-id", b"edge-42")], "client": (client, 5000)}
        )
        try:
            return log.request_id.get()
        finally:
            log.request_ended()

    assert begun("10.1.1.1") == "edge-42"
    assert begun("192.0.2.1") != "edge-42"
    assert log.request_id.get() == "-"
