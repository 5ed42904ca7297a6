"""The sweep has no ceiling: it keeps claiming while connections are due (not one batch
per beat), one sweep runs at a time across machines, and it stops publishing while the
broker's queue is full, then re-arms itself. The refresh task takes a batch of ids; a
refresh costs a pinned number of statements. The provider is faked at the HTTP edge
(`responses`, or the bench's token endpoint for a real worker)."""

from __future__ import annotations

import json
import re
import signal
import threading
import time
import urllib.request
from datetime import timedelta
from urllib.parse import parse_qs

import psycopg
import pytest
import redis
import responses
from django.conf import settings
from django.db import connection as db
from django.db import connections, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from config import log
from integrations import tasks
from integrations.connections import locks, refresh
from integrations.connections.refresh import connection_refresh_if_due, connections_due_claim
from integrations.connections.store import (
    connection_access_token,
    connection_refresh_token,
    store_tokens,
)
from integrations.core.tokens import TokenSet
from integrations.models import AuditEvent, Connection
from integrations.providers import registry
from tests.integrations.test_refresh import endpoint  # noqa: F401 (a fixture)
from tests.processes import (
    a_lock_is_waited_for,
    database_url,
    django_env,
    needs_postgres,
    start,
)


def due_connections(user, n: int, *, prefix: str = "rt") -> list[Connection]:
    """N connections in use whose tokens expire in 5 minutes: due for the sweep now, each
    with its own refresh token."""
    now = timezone.now()
    rows = []
    for i in range(n):
        conn = Connection(
            user=user,
            provider="google",
            account_uid=f"sub-{prefix}-{i}",
            account_email="alice@gmail.example",
            scopes=["openid", "email"],
            last_used_at=now,
            last_refreshed_at=now - timedelta(minutes=55),
            next_refresh_at=now - timedelta(seconds=1 + i),
        )
        store_tokens(
            conn,
            TokenSet(
                access_token=f"ya29.old-{i}",
                refresh_token=f"1//{prefix}-{i}",
                expires_at=now + timedelta(minutes=5),
                scopes=None,
            ),
        )
        rows.append(conn)
    return Connection.objects.bulk_create(rows)


def sweep_lock_taken_by(session: psycopg.Connection) -> bool:
    row = session.execute("SELECT pg_try_advisory_lock(%s)", [locks.SWEEP_LOCK_KEY]).fetchone()
    return bool(row and row[0])


def refreshed_since(moment) -> int:
    return Connection.objects.filter(last_refreshed_at__gte=moment).count()


@pytest.mark.django_db
def test_one_sweep_claims_every_due_connection_not_one_batch(alice, endpoint, settings):  # noqa: F811
    settings.INTEGRATIONS_SWEEP_BATCH_SIZE = 3
    settings.INTEGRATIONS_REFRESH_TASK_BATCH = 2
    due_connections(alice, 8)
    start_at = timezone.now()
    # One beat's sweep: 8 due, claimed 3 at a time, all of them (tasks run eagerly here).
    assert tasks.refresh_sweep() == 8
    assert len(endpoint.calls) == 8
    assert len({call["refresh_token"] for call in endpoint.calls}) == 8
    assert refreshed_since(start_at) == 8
    assert not Connection.objects.filter(next_refresh_at__lte=timezone.now()).exists()
    assert AuditEvent.objects.filter(kind=AuditEvent.Kind.REFRESH_SUCCEEDED).count() == 8
    # Nothing due: the next sweep claims nothing and makes no request.
    assert tasks.refresh_sweep() == 0
    assert len(endpoint.calls) == 8


@pytest.mark.django_db
def test_the_batch_task_refreshes_each_id_and_one_failure_stops_nothing(alice, endpoint, caplog):  # noqa: F811
    conns = due_connections(alice, 3)
    endpoint.script = [(200, {"access_token": "ya29.a", "expires_in": 3599}), (503, {})]
    ids = [c.pk for c in conns]
    with caplog.at_level("INFO", logger="integrations.tasks"):
        assert tasks.refresh_connections(ids) == 3
    states = {c.pk: c for c in Connection.objects.filter(pk__in=ids)}
    assert [states[i].status for i in ids] == ["active", "refresh_failing", "active"]
    assert len(endpoint.calls) == 3
    # One line for the batch, naming the one that did not refresh.
    lines = [r.getMessage() for r in caplog.records if r.name == "integrations.tasks"]
    failed = states[ids[1]]
    assert lines == [
        f"refresh batch: 3 connections: {failed.last_error_code} 1, ok 2; "
        f"not refreshed: {ids[1]}={failed.last_error_code}"
    ]


@needs_postgres
@pytest.mark.django_db
def test_a_refresh_costs_two_statements_in_one_transaction(alice, endpoint):  # noqa: F811
    """The locked read, then the token write with its audit row in one statement, in the
    lock's transaction (a savepoint here, inside the test's). The provider's health
    mark is cleared at most once per process every few seconds, not with every
    refresh."""
    first, second = due_connections(alice, 2)
    assert connection_refresh_if_due(connection_id=first.pk) == "ok"  # clears the mark once
    with CaptureQueriesContext(db) as ctx:
        assert connection_refresh_if_due(connection_id=second.pk) == "ok"
    statements = [q["sql"].split()[0] for q in ctx.captured_queries]
    assert statements == ["SAVEPOINT", "SELECT", "WITH", "RELEASE"]
    assert "FOR UPDATE" in ctx.captured_queries[1]["sql"]
    write = ctx.captured_queries[2]["sql"]
    assert "UPDATE" in write and "INSERT INTO" in write
    second.refresh_from_db()
    event = AuditEvent.objects.get(kind=AuditEvent.Kind.REFRESH_SUCCEEDED, connection_id=second.pk)
    assert (event.user_id, event.account, event.ok) == (alice.pk, second.account_email, True)
    assert event.detail == {"rotated": False}
    assert second.last_refreshed_at is not None and event.created_at >= second.last_refreshed_at


@needs_postgres
@pytest.mark.django_db
def test_the_audit_row_is_not_written_when_the_token_write_finds_no_row(alice):
    """The one statement inserts its audit row only if the UPDATE found the connection's
    row: a refresh of a row deleted meanwhile records nothing."""
    from django.db import DatabaseError

    from integrations.audit import audit_event
    from integrations.connections.refresh import _row_update

    (conn,) = due_connections(alice, 1)
    Connection.objects.filter(pk=conn.pk).delete()
    event = audit_event(kind=AuditEvent.Kind.REFRESH_SUCCEEDED, provider="google", connection=conn)
    with pytest.raises(DatabaseError), transaction.atomic():
        _row_update(conn, ("updated_at",), then_insert=event)
    assert not AuditEvent.objects.filter(kind=AuditEvent.Kind.REFRESH_SUCCEEDED).exists()


@needs_postgres
@pytest.mark.django_db(transaction=True)
def test_one_sweep_at_a_time_across_processes(alice, endpoint):  # noqa: F811
    """Another session (another machine's sweep) holds the sweep's lock: this sweep
    claims nothing and returns; once it is released, the sweep runs."""
    due_connections(alice, 2)
    with psycopg.connect(database_url(), autocommit=True) as other:
        assert sweep_lock_taken_by(other)
        assert tasks.refresh_sweep() == 0
        assert len(endpoint.calls) == 0
        assert Connection.objects.filter(next_refresh_at__lte=timezone.now()).count() == 2
        with locks.sweep_single_flight() as mine:
            assert not mine
        other.execute("SELECT pg_advisory_unlock(%s)", [locks.SWEEP_LOCK_KEY])
    assert tasks.refresh_sweep() == 2
    assert len(endpoint.calls) == 2
    # And released afterwards: another session may take it.
    with psycopg.connect(database_url(), autocommit=True) as other:
        assert sweep_lock_taken_by(other)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_backpressure_then_a_real_worker_drains_everything_without_beat(alice, tmp_path):
    """On Redis: with no worker, the sweep claims (more than one batch) and publishes
    until the queue holds INTEGRATIONS_SWEEP_MAX_PENDING messages, then claims nothing
    more, and when its time is up re-arms itself (one more message). Then a real worker,
    with no beat running, refreshes every due connection: the re-armed sweep carries on
    by itself."""
    if not settings.REDIS_URL:
        pytest.skip("REDIS_URL is not set: the backpressure reads a Redis queue")
    broker = redis.Redis.from_url(settings.REDIS_URL)
    try:
        broker.ping()
    except redis.RedisError:
        pytest.skip("Redis is not reachable")
    if db.vendor != "postgresql":
        pytest.skip("the worker's threads share the SQLite file with this test's writes")
    server = start(["bench/_token_server.py", "--port", "0"], django_env())
    assert server.stdout is not None
    line = server.stdout.readline()
    assert line.startswith("PORT "), line
    port = int(line.split()[1])
    queue = f"test-sweep-{tmp_path.name}"
    env = django_env(
        REDIS_URL=settings.REDIS_URL,
        CELERY_QUEUE=queue,
        SANDBOX_ENABLED="false",
        GOOGLE_CLIENT_ID="test",
        GOOGLE_CLIENT_SECRET="test",
        GOOGLE_OAUTH_TOKEN_URL=f"http://127.0.0.1:{port}/token",
        INTEGRATIONS_SWEEP_SECONDS="2",
        INTEGRATIONS_SWEEP_MAX_PENDING="3",
        INTEGRATIONS_REFRESH_TASK_BATCH="2",
        INTEGRATIONS_SWEEP_BATCH_SIZE="3",
    )
    n = 12
    due_connections(alice, n, prefix="bp")
    start_at = timezone.now()
    worker = None
    try:
        sweep = start(
            [
                "manage.py",
                "shell",
                "-c",
                "from integrations.tasks import refresh_sweep; print('SWEPT', refresh_sweep())",
            ],
            env,
        )
        out = sweep.communicate(timeout=60)[0]
        assert sweep.returncode == 0, out
        # Claimed 3 (2 messages: 2 ids and 1), then 2 (room for one message more), then
        # the queue was full; when its time was up it re-armed: 4 messages.
        assert "SWEPT 5" in out, out
        assert broker.llen(queue) == 4
        assert Connection.objects.filter(next_refresh_at__lte=timezone.now()).count() == n - 5
        assert refreshed_since(start_at) == 0

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
        deadline = time.monotonic() + 90
        while refreshed_since(start_at) < n:
            assert worker.poll() is None
            if time.monotonic() > deadline:
                pytest.fail(f"{refreshed_since(start_at)}/{n} refreshed in 90 s")
            time.sleep(0.2)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stats", timeout=10) as resp:
            stats = json.loads(resp.read())
    finally:
        logs = ""
        if worker is not None:
            worker.send_signal(signal.SIGTERM)
            logs = worker.communicate(timeout=30)[0]
        server.terminate()
        server.wait(10)
        broker.delete(queue)
    # One line per batch task: "refresh batch: 10 connections: ok 10".
    batches = re.findall(r"refresh batch: (\d+) connections?: ok (\d+)$", logs, re.MULTILINE)
    assert batches
    assert sum(int(ok) for _, ok in batches) == sum(int(size) for size, _ in batches) == n
    assert not Connection.objects.filter(next_refresh_at__lte=timezone.now()).exists()
    # One request per refresh token; ids only in the logs, never a token.
    assert (stats["requests"], stats["distinct_refresh_tokens"]) == (n, n)
    for i in range(n):
        assert f"1//bp-{i}" not in logs
    assert "ya29.bench-" not in logs


@needs_postgres
@pytest.mark.django_db(transaction=True)
def test_claims_racing_across_sessions_never_hand_out_a_connection_twice(alice):
    """A claim whose transaction is still open holds its rows: a claim in another
    session meanwhile (SKIP LOCKED) takes the others, and none is claimed twice."""
    ids = {c.pk for c in due_connections(alice, 7)}
    other: list[int] = []

    def claim_elsewhere() -> None:
        try:
            other.extend(connections_due_claim())
        finally:
            connections.close_all()

    with transaction.atomic():
        first = connections_due_claim(limit=3)
        thread = threading.Thread(target=claim_elsewhere)
        thread.start()
        thread.join(30)
    assert len(first) == 3 and len(other) == 4
    assert set(first) | set(other) == ids and not set(first) & set(other)


# --- a batch on PostgreSQL: its rows locked together, its requests made together --------


class _SlowTokenEndpoint:
    """Google's token endpoint answering after ``seconds``: each call's thread and its
    start and end, and a new access token named after the refresh token it was sent."""

    def __init__(self, rsps: responses.RequestsMock, seconds: float) -> None:
        self.seconds = seconds
        self.calls: list[tuple[str, float, float]] = []
        self.request_ids: list[str] = []
        self._lock = threading.Lock()
        rsps.add_callback(
            responses.POST, registry.provider_config("google").token_url, callback=self._answer
        )

    def _answer(self, request):
        started = time.monotonic()
        time.sleep(self.seconds)
        with self._lock:
            self.calls.append((threading.current_thread().name, started, time.monotonic()))
            self.request_ids.append(log.request_id.get())
        refresh_token = parse_qs(request.body)["refresh_token"][0]
        body = {"access_token": f"ya29.for-{refresh_token}", "expires_in": 3599}
        return (200, {"Content-Type": "application/json"}, json.dumps(body))


def most_at_once(calls: list[tuple[str, float, float]]) -> int:
    """The most calls in flight at the same moment."""
    edges = sorted([(start, 1) for _, start, _ in calls] + [(end, -1) for _, _, end in calls])
    level = top = 0
    for _, step in edges:
        level += step
        top = max(top, level)
    return top


def stored_access_tokens(conns: list[Connection]) -> dict[str | None, str]:
    return {
        connection_refresh_token(connection=c): connection_access_token(connection=c)
        for c in Connection.objects.filter(pk__in=[c.pk for c in conns])
    }


@needs_postgres
@pytest.mark.django_db
def test_a_batch_locks_its_rows_in_one_statement_and_writes_them_together(alice, endpoint):  # noqa: F811
    """PostgreSQL: the batch's rows locked by one SELECT ... FOR UPDATE, the token writes
    (each with its audit row) sent together in one round trip, all in one transaction (a
    savepoint here, inside the test's; BEGIN and COMMIT in production): one commit per
    batch, not one per refresh."""
    warm, *batch = due_connections(alice, 4)
    assert connection_refresh_if_due(connection_id=warm.pk) == "ok"  # clears the mark once
    with CaptureQueriesContext(db) as ctx:
        assert tasks.refresh_connections([c.pk for c in batch]) == 3
    statements = [q["sql"].split()[0] for q in ctx.captured_queries]
    assert statements == ["SAVEPOINT", "SELECT", "3", "RELEASE"]
    lock, writes = ctx.captured_queries[1]["sql"], ctx.captured_queries[2]["sql"]
    assert "= ANY(" in lock and lock.endswith("FOR UPDATE")
    # The three token writes, each with its audit row, sent together (executemany).
    assert writes.startswith("3 times: WITH updated AS (UPDATE") and "INSERT INTO" in writes
    assert len(endpoint.calls) == 4
    assert AuditEvent.objects.filter(kind=AuditEvent.Kind.REFRESH_SUCCEEDED).count() == 4


@needs_postgres
@pytest.mark.django_db
def test_a_fast_providers_batch_is_asked_on_the_tasks_own_thread(alice):
    """Answers in a few milliseconds: the batch's requests one after the other on the
    task's thread (other threads would only add their switching to the CPU it costs)."""
    conns = due_connections(alice, 5)
    with responses.RequestsMock() as rsps:
        provider = _SlowTokenEndpoint(rsps, seconds=0)
        assert tasks.refresh_connections([c.pk for c in conns]) == 5
    here = threading.current_thread().name
    assert [name for name, _, _ in provider.calls] == [here] * 5
    assert stored_access_tokens(conns) == {f"1//rt-{i}": f"ya29.for-1//rt-{i}" for i in range(5)}


@needs_postgres
@pytest.mark.django_db
def test_a_slow_providers_batch_requests_are_made_together(alice, settings):
    """A provider slower than the inline budget: once a batch has taken longer than it,
    the rest of its requests go out together on the pool's threads; the next batch,
    whose provider is now known to be slow, goes out together from its first request.
    Every answer is stored with its own connection, and the pool's threads log under
    the task's request id."""
    settings.INTEGRATIONS_REFRESH_CONCURRENCY = 8
    conns = due_connections(alice, 12)
    first, second = conns[:6], conns[6:]
    here = threading.current_thread().name
    task_id = log.request_id.set("task-7f3a")
    try:
        with responses.RequestsMock() as rsps:
            provider = _SlowTokenEndpoint(rsps, seconds=0.15)
            assert tasks.refresh_connections([c.pk for c in first]) == 6
            first_calls, provider.calls = provider.calls, []
            assert tasks.refresh_connections([c.pk for c in second]) == 6
            second_calls = provider.calls
    finally:
        log.request_id.reset(task_id)
    # The first batch starts on the task's thread (nothing is known of the provider),
    # then hands the rest to the pool, which asks them at once.
    assert first_calls[0][0] == here
    pooled = [call for call in first_calls if call[0] != here]
    assert len(pooled) >= 3 and all(name.startswith("refresh-call") for name, _, _ in pooled)
    assert most_at_once(pooled) >= 2
    # The second: the pool from the start.
    assert all(name.startswith("refresh-call") for name, _, _ in second_calls)
    assert most_at_once(second_calls) >= 2
    assert stored_access_tokens(conns) == {f"1//rt-{i}": f"ya29.for-1//rt-{i}" for i in range(12)}
    assert AuditEvent.objects.filter(kind=AuditEvent.Kind.REFRESH_SUCCEEDED).count() == 12
    assert provider.request_ids == ["task-7f3a"] * 12


@pytest.mark.django_db
def test_a_batch_with_a_dead_grant_and_a_deleted_row(
    alice,
    endpoint,  # noqa: F811
    django_capture_on_commit_callbacks,
    mailoutbox,
):
    """In one batch: a grant the provider refuses (needs reconnecting, off the sweep, its
    email sent once the batch committed), a row deleted since it was claimed ("gone"),
    and the others refreshed."""
    conns = due_connections(alice, 4)
    gone = conns[2]
    Connection.objects.filter(pk=gone.pk).delete()
    endpoint.script = [
        (200, {"access_token": "ya29.a", "expires_in": 3599}),
        (400, {"error": "invalid_grant"}),
        (200, {"access_token": "ya29.c", "expires_in": 3599}),
    ]
    ids = [c.pk for c in conns]
    with django_capture_on_commit_callbacks(execute=True):
        outcomes = refresh.connections_refresh_if_due(connection_ids=ids)
    assert outcomes == [(ids[0], "ok"), (ids[1], "invalid_grant"), (ids[2], "gone"), (ids[3], "ok")]
    dead = Connection.objects.get(pk=ids[1])
    assert (dead.status, dead.next_refresh_at) == ("needs_reconnect", None)
    assert [m.subject for m in mailoutbox] == ["Reconnect your Google account"]
    assert {c.pk: c.status for c in Connection.objects.filter(pk__in=[ids[0], ids[3]])} == {
        ids[0]: "active",
        ids[3]: "active",
    }
    assert len(endpoint.calls) == 3


@needs_postgres
@pytest.mark.django_db(transaction=True)
def test_a_batch_waits_for_a_row_another_holder_has_and_then_does_not_ask_again(
    alice,
    endpoint,  # noqa: F811
):
    """One of the batch's rows is locked by another holder (an on-demand refresh, in
    another session): the batch waits for it, re-reads it, finds it refreshed, and
    spends no refresh token on it; the others are refreshed."""
    conns = due_connections(alice, 3)
    ids = [c.pk for c in conns]
    outcomes: list[tuple[int, str]] = []

    def batch() -> None:
        try:
            outcomes.extend(refresh.connections_refresh_if_due(connection_ids=ids))
        finally:
            connections.close_all()

    with psycopg.connect(database_url().replace("postgres://", "postgresql://", 1)) as holder:
        holder.execute("SELECT 1 FROM integrations_connection WHERE id = %s FOR UPDATE", [ids[1]])
        thread = threading.Thread(target=batch)
        thread.start()
        if not a_lock_is_waited_for():
            pytest.fail("the batch never waited for the held row")
        # The holder refreshed it: valid for an hour, not due any more.
        holder.execute(
            "UPDATE integrations_connection SET expires_at = now() + interval '1 hour', "
            "last_refreshed_at = now() WHERE id = %s",
            [ids[1]],
        )
        holder.commit()
        thread.join(30)
    assert outcomes == [(ids[0], "ok"), (ids[1], "ok"), (ids[2], "ok")]
    assert sorted(call["refresh_token"] for call in endpoint.calls) == ["1//rt-0", "1//rt-2"]


@pytest.mark.django_db
def test_an_unexpected_error_in_one_request_fails_that_connection_not_the_batch(
    alice,
    endpoint,  # noqa: F811
    caplog,
):
    """A request that fails with something other than a classified provider error (a
    fault on our side: a hook, the HTTP stack) is that connection's failure, retried with
    backoff; the others' answers, rotated refresh tokens included, are stored. Its log
    line names the error's type, not its message."""
    conns = due_connections(alice, 3)
    endpoint.script = [
        (200, {"access_token": "ya29.a", "refresh_token": "1//rotated-a", "expires_in": 3599}),
        RuntimeError("boom 1//rt-1"),
        (200, {"access_token": "ya29.c", "refresh_token": "1//rotated-c", "expires_in": 3599}),
    ]
    ids = [c.pk for c in conns]
    with caplog.at_level("ERROR", logger="integrations.connections.refresh"):
        outcomes = refresh.connections_refresh_if_due(connection_ids=ids)
    assert outcomes == [(ids[0], "ok"), (ids[1], "request_failed"), (ids[2], "ok")]
    rows = {c.pk: c for c in Connection.objects.filter(pk__in=ids)}
    assert connection_refresh_token(connection=rows[ids[0]]) == "1//rotated-a"
    assert connection_refresh_token(connection=rows[ids[2]]) == "1//rotated-c"
    failed = rows[ids[1]]
    assert (failed.status, failed.last_error_code) == ("refresh_failing", "request_failed")
    assert failed.backoff_until is not None
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [f"refresh request of connection {ids[1]} failed: RuntimeError"]


@needs_postgres
@pytest.mark.django_db
def test_a_batch_writes_the_providers_mark_after_its_transaction(alice, endpoint):  # noqa: F811
    """The provider's failure mark is cleared by a batch that refreshed, but not inside
    the batch's transaction (two batches clearing two providers' marks in opposite orders
    would deadlock there): after it, once."""
    from integrations.models import ProviderHealth

    ProviderHealth.objects.create(provider="google", ok=False, error_code="invalid_client")
    conns = due_connections(alice, 2)
    with CaptureQueriesContext(db) as ctx:
        assert tasks.refresh_connections([c.pk for c in conns]) == 2
    sqls = [q["sql"] for q in ctx.captured_queries]
    marks = [i for i, sql in enumerate(sqls) if "integrations_providerhealth" in sql]
    (committed,) = [i for i, sql in enumerate(sqls) if sql.startswith("RELEASE")]
    assert len(marks) == 1 and marks[0] > committed and sqls[marks[0]].startswith("UPDATE")
    assert ProviderHealth.objects.get(provider="google").ok
