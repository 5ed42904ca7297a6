"""Refresh across threads and processes, against the real sandbox with rotating refresh
tokens that treats the reuse of an old one as theft (RFC 9700 §4.14.2:
django-oauth-toolkit's reuse protection revokes the whole grant), with a real Celery
worker and beat (on Redis, and on the filesystem queue of `make run`), and a worker
killed mid-refresh. On PostgreSQL and on SQLite (its test database is a file that the
processes share, and the sandbox answers from the live server, writing to that file
while the refresh waits for it: `make run`'s set-up)."""

from __future__ import annotations

import fcntl
import hashlib
import http.server
import json
import os
import signal
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
import redis
import requests
from django.conf import settings
from django.db import DatabaseError, transaction
from django.db import connection as db
from django.test import Client, override_settings
from django.utils import timezone
from oauth2_provider.settings import oauth2_settings

from apps_registry import services as app_services
from integrations.connections import locks
from integrations.connections.credentials import connection_credentials
from integrations.connections.refresh import connection_refresh_if_due
from integrations.connections.store import connection_access_token, store_tokens
from integrations.core.provider_definitions import PRESETS
from integrations.core.refresh_policy import next_refresh_at
from integrations.core.tokens import TokenSet
from integrations.models import Connection, ProviderDefinition
from integrations.providers import registry
from integrations.providers.definitions import provider_definition_set_secret
from integrations.sandbox.models import SandboxTokenRequest
from integrations.sandbox.services import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET
from tests.authorization import allow_declared
from tests.processes import django_env, start
from tests.sandbox.conftest import Flow

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

SHEETS = "https://www.googleapis.com/auth/spreadsheets.readonly"


@pytest.fixture
def rotating_sandbox(site):
    """The live sandbox, rotating refresh tokens, reuse of an old one revoking all."""
    with override_settings(
        OAUTH2_PROVIDER={
            **oauth2_settings.user_settings,
            "ROTATE_REFRESH_TOKEN": True,
            "REFRESH_TOKEN_REUSE_PROTECTION": True,
        }
    ):
        yield site


def x_preset_on_the_sandbox(site: str) -> str:
    """The X preset as staff would add it, its endpoints pointed at the sandbox (which
    rotates refresh tokens as X does): HTTP Basic client authentication, PKCE,
    ``rotates_refresh_tokens``. Returns its provider id."""
    preset = {**PRESETS["x"], "slug": "x"}
    definition = ProviderDefinition.objects.create(
        **{
            **preset,
            "authorize_url": site + "/sandbox/o/authorize/",
            "token_url": site + "/sandbox/o/token/",
            "revocation_url": site + "/sandbox/o/revoke_token/",
            "userinfo_url": site + "/sandbox/userinfo/",
            "client_id": SANDBOX_CLIENT_ID,
            "enabled": True,
            "last_check_ok": True,
        }
    )
    provider_definition_set_secret(definition=definition, secret=SANDBOX_CLIENT_SECRET)
    registry.definitions_changed()
    config = registry.provider_config("x")
    assert config.client_auth == "basic" and config.rotates_refresh_tokens
    return "x"


def sandbox_connection(user, *, expires_in: timedelta, provider: str = "google") -> Connection:
    """A connection holding a real sandbox grant (obtained through its consent flow),
    its access token an hour-long one that expires in ``expires_in``."""
    client = Client()
    client.force_login(user)
    tokens = Flow(client).tokens(["openid", "email", SHEETS], access_type="offline")
    assert tokens.get("refresh_token")
    now = timezone.now()
    conn = Connection(
        user=user,
        provider=provider,
        account_uid=f"sandbox-{user.pk}",
        account_email=user.email,
        scopes=tokens["scope"].split(),
        last_used_at=now,
        last_refreshed_at=now + expires_in - timedelta(hours=1),
        is_default=True,
    )
    store_tokens(
        conn,
        TokenSet(
            access_token=tokens["access_token"],
            refresh_token=tokens["refresh_token"],
            expires_at=now + expires_in,
            scopes=None,
        ),
    )
    conn.next_refresh_at = next_refresh_at(
        connection=conn, config=registry.provider_config(provider), now=now
    )
    conn.save()
    return conn


def refresh_requests() -> int:
    return SandboxTokenRequest.objects.filter(grant_type="refresh_token").count()


def fingerprint(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()[:16]


@pytest.mark.parametrize(
    "preset,lifetime",
    [
        ("google", 3600),
        ("x", 3600),
        # Tokens that live shorter than the 600 s margin: the margin adapts (half the
        # lifetime), or each ask would refresh again.
        ("x", 300),
    ],
)
def test_fifty_concurrent_asks_make_one_refresh(
    rotating_sandbox, alice, tmp_path: Path, preset: str, lifetime: int, settings
):
    settings.SANDBOX_ACCESS_TOKEN_SECONDS = lifetime  # read by the live server's sandbox
    provider = x_preset_on_the_sandbox(rotating_sandbox) if preset == "x" else "google"
    assert registry.provider_config(provider).refresh_margin == 600
    conn = sandbox_connection(alice, expires_in=timedelta(seconds=-1), provider=provider)
    go = tmp_path / "go"
    env = django_env(SITE_URL=rotating_sandbox)
    racers = [
        start(["-m", "tests.integrations.racer", "credentials", str(conn.pk), "12", str(go)], env)
        for _ in range(2)
    ]
    for proc in racers:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"

    tokens: list[str] = []
    errors: list[str] = []

    def ask() -> None:
        try:
            while not go.exists():
                time.sleep(0.001)
            fresh = Connection.objects.get(pk=conn.pk)
            tokens.append(fingerprint(connection_credentials(connection=fresh).access_token))
        except Exception as exc:
            errors.append(repr(exc))
        finally:
            db.close()

    threads = [threading.Thread(target=ask) for _ in range(26)]
    for t in threads:
        t.start()
    go.touch()  # 26 threads here and 2 x 12 in the other processes, at once
    for t in threads:
        t.join(timeout=60)
    for proc in racers:
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0, out
        result = json.loads(out.strip().splitlines()[-1])
        tokens += result["tokens"]
        errors += result["errors"]

    assert errors == []
    assert len(tokens) == 50
    conn.refresh_from_db()
    assert refresh_requests() == 1  # counted by the authorization server
    assert set(tokens) == {fingerprint(connection_access_token(connection=conn))}
    assert conn.status == "active"
    # A fresh token is not due at once: neither for the sweep nor for the next ask.
    now = timezone.now()
    assert conn.expires_at is not None
    assert now + timedelta(seconds=lifetime - 60) < conn.expires_at
    assert conn.next_refresh_at is not None and conn.next_refresh_at > now
    assert connection_refresh_if_due(connection_id=conn.pk) == "ok"
    assert connection_credentials(connection=conn).access_token
    assert refresh_requests() == 1
    # The rotated grant is alive: the stored refresh token still works.
    conn.expires_at = timezone.now()
    conn.save(update_fields=["expires_at"])
    assert connection_credentials(connection=conn).access_token
    conn.refresh_from_db()
    assert conn.status == "active" and refresh_requests() == 2


RUN_MANIFEST = """\
namespace: acme
name: sheets
integrations:
  - key: google.sheets.readonly
    description: Read the sheet
"""


def run_environment(site: str, *, runner: str, user) -> requests.Response:
    """What a runner gets for a run, from the live server."""
    return requests.post(
        site + "/api/v1/run-environments/",
        json={"user": user.email, "app": "acme/sheets"},
        headers={"Authorization": f"Bearer {runner}"},
        timeout=30,
    )


@pytest.mark.parametrize("broker", ["redis", "filesystem"])
def test_celery_worker_and_beat_refresh_a_connection_about_to_expire(site, alice, tmp_path, broker):
    """On the real Redis broker, and on the embedded default used without REDIS_URL
    (kombu's filesystem transport: `make run` on a bare machine). Then a run gets the
    new token from the live server."""
    redis_url = settings.REDIS_URL or "redis://127.0.0.1:6379/0"
    if broker == "redis":
        try:
            redis.Redis.from_url(redis_url).ping()
        except redis.RedisError:
            pytest.skip("Redis is not reachable")
    conn = sandbox_connection(alice, expires_in=timedelta(minutes=5))
    before = connection_access_token(connection=conn)
    app_services.manifest_upload(user=alice, text=RUN_MANIFEST)
    allow_declared(alice, "acme/sheets")
    runner = app_services.runner_token_create(name="runner-test", all_namespaces=True)[1]
    queue = f"test-refresh-{tmp_path.name}"
    env = django_env(
        SITE_URL=site,
        REDIS_URL=redis_url if broker == "redis" else "",
        CELERY_QUEUE_DIR=str(tmp_path / "queue"),
        CELERY_QUEUE=queue,
        INTEGRATIONS_SWEEP_SECONDS="1",
    )
    worker = start(
        [
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "--pool",
            "threads",
            "--concurrency",
            "4",
            "-Q",
            queue,
            "--without-gossip",
            "--without-mingle",
            "-l",
            "info",
        ],
        env,
    )
    beat = start(
        [
            "-m",
            "celery",
            "-A",
            "config",
            "beat",
            "-l",
            "info",
            "-s",
            str(tmp_path / "beat-schedule"),
            "--pidfile",
            str(tmp_path / "beat.pid"),
        ],
        env,
    )
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            conn.refresh_from_db()
            if connection_access_token(connection=conn) != before:
                break
            assert worker.poll() is None and beat.poll() is None
            time.sleep(0.5)
        else:
            pytest.fail("the worker did not refresh the connection in 90 s")
        run = run_environment(site, runner=runner, user=alice)
    finally:
        for proc in (beat, worker):
            proc.send_signal(signal.SIGTERM)
        logs = [proc.communicate(timeout=30)[0] for proc in (beat, worker)]
    assert conn.status == "active"
    assert conn.expires_at is not None and conn.expires_at > timezone.now() + timedelta(minutes=30)
    assert conn.next_refresh_at is not None and conn.next_refresh_at > timezone.now()
    assert refresh_requests() == 1
    assert "refresh-sweep" in logs[0] or "refresh_sweep" in logs[0]
    assert "refresh batch: 1 connection: ok 1" in logs[1]
    assert run.status_code == 200, run.text
    assert run.json()["env"]["GOOGLE_OAUTH_ACCESS_TOKEN"] == connection_access_token(
        connection=conn
    )
    assert refresh_requests() == 1  # the run did not refresh again
    for log in logs:  # task arguments are ids; no token in any log line
        assert before not in log
        assert connection_access_token(connection=conn) not in log


class _Hang(http.server.BaseHTTPRequestHandler):
    got_request = threading.Event()

    def do_POST(self) -> None:
        type(self).got_request.set()
        time.sleep(30)

    def log_message(self, *args: object) -> None:
        pass


def refresh_lock_held(connection_id: int) -> bool:
    """Whether some holder has the connection's refresh lock (without waiting for it)."""
    if locks.row_locks():
        try:
            with transaction.atomic():
                Connection.objects.select_for_update(nowait=True).get(pk=connection_id)
        except DatabaseError:
            return True
        return False
    path = locks.lock_path(connection_id)
    assert path is not None
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def test_a_worker_killed_mid_refresh_leaves_the_row_as_it_was_and_unlocked(alice):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hang)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    now = timezone.now()
    conn = Connection(user=alice, provider="google", account_uid="sub-k", last_used_at=now)
    store_tokens(
        conn,
        TokenSet(access_token="ya29.k", refresh_token="1//k", expires_at=now, scopes=None),
    )
    conn.save()
    snapshot = Connection.objects.filter(pk=conn.pk).values().get()
    env = django_env(
        GOOGLE_CLIENT_ID="c",
        GOOGLE_CLIENT_SECRET="s",
        SANDBOX_ENABLED="false",
        GOOGLE_OAUTH_TOKEN_URL=f"http://127.0.0.1:{server.server_port}/token",
    )
    proc = start(["-m", "tests.integrations.racer", "refresh", str(conn.pk)], env)
    try:
        assert _Hang.got_request.wait(30), "the refresh never reached the token endpoint"
        # The dying worker holds the lock right now (PostgreSQL: the row lock; SQLite:
        # the connection's file lock).
        assert refresh_lock_held(conn.pk)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        deadline = time.monotonic() + 10
        while refresh_lock_held(conn.pk):
            assert time.monotonic() < deadline, "the lock outlived its holder"
            time.sleep(0.05)
    finally:
        proc.kill()
        server.shutdown()
    assert Connection.objects.filter(pk=conn.pk).values().get() == snapshot
