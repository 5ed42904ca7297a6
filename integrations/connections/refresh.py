"""Refresh: one refresh at a time per connection, failures classified, attempts
bounded; the dead grant's email; the background sweep.

- ``connection_refresh`` refreshes under the connection's lock (``connections.locks``:
  the row lock, ``SELECT ... FOR UPDATE``, on PostgreSQL; a file lock on SQLite, which
  must not hold a transaction across the call to the token endpoint), so that across
  threads and processes (and machines, on PostgreSQL) one refresh of a grant is in
  flight at a time; whoever waited for the lock re-reads the row and, if the holder
  refreshed, returns its token instead of spending the refresh token again (which a
  rotating provider would treat as theft, RFC 9700 §4.14.2). A rotated refresh token is
  stored in the same transaction as the new access token; a response without one keeps
  the old.
- ``connections_refresh_if_due``, a sweep task's batch: on PostgreSQL its rows are
  locked together and it commits once, its requests made on its own thread while the
  provider answers quickly and together on a thread pool when it does not (``_calls``);
  on SQLite one ``connection_refresh`` after the other.
- Failures: ``invalid_grant`` (and Google's ``invalid_rapt``, ``admin_policy_enforced``)
  → ``needs_reconnect`` at once, no more attempts, one email (a task with retries:
  ``reconnect_notified_at`` is set once it was delivered). Timeouts, connection
  errors, 5xx and 429 → ``refresh_failing``, exponential backoff with jitter, at most
  N attempts per connection per day, the current token served while valid.
  ``invalid_client`` / ``unauthorized_client`` → a provider-level problem for staff.

Refresh request: RFC 6749 §6. Token errors: RFC 6749 §5.2.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from celery import current_app
from django.conf import settings
from django.core.mail import send_mail
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections, transaction
from django.db.models import F, Field
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from integrations import app_settings, metrics, sql_rows
from integrations.audit import audit_event, audit_record
from integrations.connections import locks
from integrations.connections.store import (
    Credentials,
    credentials_of,
    grant_fresh,
    is_fresh,
    margin_for,
    store_tokens,
)
from integrations.core import crypto
from integrations.core.provider_config import ProviderConfig
from integrations.core.refresh_policy import (
    ATTEMPTS_WINDOW,
    BACKOFF_CAP,
    DEAD_STATUSES,
    backoff_delay,
    next_refresh_at,
)
from integrations.core.tokens import TokenSet
from integrations.errors import (
    IntegrationError,
    PrivateAddressError,
    ProviderMisconfiguredError,
    ProviderUnavailableError,
    ReauthorizationRequiredError,
    UnknownProviderError,
)
from integrations.events.emit import event_emit
from integrations.events.payloads import connection_data
from integrations.models import AuditEvent, Connection, ProviderHealth
from integrations.providers import client as http
from integrations.providers import registry

logger = logging.getLogger(__name__)

# The task that sends the email of a dead grant (``integrations.tasks``).
RECONNECT_EMAIL_TASK = "integrations.tasks.reconnect_email"


# How long a connection picked by the sweep is reserved for its task before another
# sweep may pick it again (a lost task is retried after this).
SWEEP_LEASE = timedelta(minutes=5)


class _RowChanged(IntegrationError):
    """SQLite only: since the row was read under the file lock, a writer that lock does
    not keep out (a Disconnect, a Reconnect) changed it; what this refresh learned is
    not written over theirs. Caught in ``connection_refresh``; never leaves it."""

    status = 409
    code = "changed_meanwhile"


@dataclass(frozen=True)
class _AsRead:
    """What of the row, read under the lock, shows that nobody wrote it since: a
    Disconnect marks it revoked (then deletes it); a Reconnect stores a new grant, and
    with it a new ``last_refreshed_at``. (A refresh is the only other writer of those,
    and it holds the lock.)"""

    pk: int
    status: str
    last_refreshed_at: datetime | None

    @classmethod
    def of(cls, conn: Connection) -> _AsRead:
        return cls(pk=conn.pk, status=conn.status, last_refreshed_at=conn.last_refreshed_at)

    def unchanged(self) -> bool:
        return Connection.objects.filter(
            pk=self.pk, status=self.status, last_refreshed_at=self.last_refreshed_at
        ).exists()


@contextmanager
def _writing(as_read: _AsRead) -> Iterator[None]:
    """One group of writes under the lock. PostgreSQL: inside the lock's transaction,
    the row locked (no query more). SQLite: a transaction of its own (IMMEDIATE: it
    holds the write lock), in which the row is first checked to be as it was read."""
    with transaction.atomic(savepoint=False):
        if not locks.row_locks() and not as_read.unchanged():
            raise _RowChanged
        yield


def _credentials_now(connection_id: int) -> Credentials:
    """The row's credentials as they are now (after ``_RowChanged``): a Reconnect's new
    grant, or none when it was disconnected meanwhile."""
    conn = Connection.objects.filter(pk=connection_id).first()
    if conn is None or conn.status in DEAD_STATUSES:
        raise ReauthorizationRequiredError(
            "the connection was disconnected meanwhile",
            code=(conn.last_error_code if conn is not None else "") or "disconnected",
        )
    return credentials_of(conn)


def connection_refresh(
    *,
    connection_id: int,
    margin: int | None = None,
    now: datetime | None = None,
    only_if_due: bool = False,
    serve_valid_on_failure: bool = True,
    refused: bytes | None = None,
    override_backoff: bool = False,
) -> Credentials:
    """Refresh the connection's access token under its lock and return it.

    After taking the lock the row is re-read: if another holder already refreshed (the
    token is valid for ``margin`` seconds, by default the adapted margin of
    ``connection_credentials``, or with ``only_if_due`` it is not due any more), its
    token is returned and no request is made. While backing off, or past the daily
    attempt limit, no request is made either: the current token is returned while it is
    valid (unless ``serve_valid_on_failure`` is off), else ``ProviderUnavailableError``.
    ``refused``: the (encrypted) access token the provider just refused: it is replaced
    whatever its expiry, unless another holder has replaced it meanwhile; without a
    refresh token the connection needs reconnecting.
    ``override_backoff``: make the request even while backing off (the user's "Retry
    now", rate limited by its caller); the daily attempt limit still holds, and a
    failure backs off again as any other.
    """
    now = now or timezone.now()
    with locks.connection_locked(connection_id) as conn:
        try:
            step = _prepared(
                conn,
                now=now,
                margin=margin,
                only_if_due=only_if_due,
                refused=refused,
                override_backoff=override_backoff,
            )
            if isinstance(step, _Attempt):
                step = _attempted(step, _call(step))
        except _RowChanged:
            # SQLite: disconnected or reconnected while the provider was being asked.
            logger.info("connection %s changed during its refresh", connection_id)
            return _credentials_now(connection_id)
    return _served(step, now=now, serve_valid_on_failure=serve_valid_on_failure)


@dataclass
class _Attempt:
    """A refresh request to make, decided under the connection's lock (``_prepared``)."""

    conn: Connection
    config: ProviderConfig
    as_read: _AsRead
    refresh_token: str
    now: datetime


@dataclass
class _Done:
    """How a refresh ended, under the lock: the connection's credentials to serve, or
    the failure (already recorded) and whether its user must be emailed."""

    conn: Connection
    failure: IntegrationError | None = None
    notify: bool = False


def _prepared(
    conn: Connection,
    *,
    now: datetime,
    margin: int | None = None,
    only_if_due: bool = False,
    refused: bytes | None = None,
    override_backoff: bool = False,
) -> _Attempt | _Done:
    """What to do with the connection just read under its lock: nothing (another holder
    refreshed it, it is not due, it is backing off), record that it cannot refresh (no
    refresh token), or ask the provider (``_Attempt``, its attempt counted). Raises
    ``ReauthorizationRequiredError`` for a dead grant, ``UnknownProviderError`` and
    ``crypto.DecryptionError`` before writing anything."""
    as_read = _AsRead.of(conn)
    config = registry.connection_config(conn)
    if conn.status in DEAD_STATUSES:
        raise ReauthorizationRequiredError(
            f"the {config.name} connection needs reconnecting", code=conn.last_error_code
        )
    if only_if_due:
        due = next_refresh_at(connection=conn, config=config, now=now)
        if due is None or due > now:
            if conn.next_refresh_at != due:  # undo the sweep's lease
                Connection.objects.filter(pk=conn.pk).update(next_refresh_at=due)
            return _Done(conn)
    elif refused is not None:
        if bytes(conn.access_token_encrypted) != refused:
            return _Done(conn)  # another holder replaced it meanwhile
    elif is_fresh(conn, now=now, margin=margin_for(conn, config=config, margin=margin)):
        return _Done(conn)
    if not conn.refresh_token_encrypted:
        failure: IntegrationError = ReauthorizationRequiredError(
            "no refresh token is stored: connect again",
            code="token_rejected" if refused is not None else "no_refresh_token",
        )
        notify = _refresh_failed(conn, failure, config=config, now=now, as_read=as_read)
        return _Done(conn, failure, notify)
    refresh_token = crypto.decrypt(conn.refresh_token_encrypted, keys=app_settings.token_keys())
    if not _may_attempt(conn, now=now, override_backoff=override_backoff):
        # Backing off: no request, and nothing new to record.
        return _Done(
            conn,
            ProviderUnavailableError(
                f"{config.name} is backing off after errors",
                code=conn.last_error_code or "backoff",
            ),
        )
    _count_attempt(conn, now=now)
    return _Attempt(conn, config, as_read, refresh_token, now)


def _attempted(attempt: _Attempt, result: TokenSet | IntegrationError) -> _Done:
    """Record what the provider answered, under the lock."""
    conn, config = attempt.conn, attempt.config
    if isinstance(result, IntegrationError):
        metrics.refresh_counted(provider=conn.provider, failure=result)
        notify = _refresh_failed(
            conn, result, config=config, now=attempt.now, as_read=attempt.as_read
        )
        return _Done(conn, result, notify)
    metrics.refresh_counted(provider=conn.provider)
    _refresh_succeeded(conn, result, config=config, now=attempt.now, as_read=attempt.as_read)
    return _Done(conn)


def _served(step: _Done, *, now: datetime, serve_valid_on_failure: bool) -> Credentials:
    """After the lock: the credentials, or the failure raised (the dead grant's email
    enqueued); while the token is still valid a failure that is not a dead grant serves
    it (unless ``serve_valid_on_failure`` is off)."""
    conn, failure = step.conn, step.failure
    if failure is None:
        return credentials_of(conn)
    if step.notify:
        _reconnect_email_enqueue(conn.pk)
    if (
        serve_valid_on_failure
        and not isinstance(failure, ReauthorizationRequiredError)
        and conn.expires_at is not None
        and conn.expires_at > now
    ):
        # Still valid, if not for the whole margin: serve it rather than fail the run.
        return credentials_of(conn)
    raise failure


def _may_attempt(conn: Connection, *, now: datetime, override_backoff: bool = False) -> bool:
    """Not while backing off (unless overridden), and at most N attempts per connection
    per day."""
    if not override_backoff and conn.backoff_until is not None and conn.backoff_until > now:
        return False
    window_open = (
        conn.attempts_window_start is not None
        and now - conn.attempts_window_start < ATTEMPTS_WINDOW
    )
    limit = app_settings.refresh_max_attempts_per_day()
    return not (window_open and conn.attempts_in_window >= limit)


def _count_attempt(conn: Connection, *, now: datetime) -> None:
    if conn.attempts_window_start is None or now - conn.attempts_window_start >= ATTEMPTS_WINDOW:
        conn.attempts_window_start = now
        conn.attempts_in_window = 0
    conn.attempts_in_window += 1


def _refresh_succeeded(
    conn: Connection, token: TokenSet, *, config: ProviderConfig, now: datetime, as_read: _AsRead
) -> None:
    with _writing(as_read):
        _record_success(conn, token, config=config, now=now)


def _record_success(
    conn: Connection, token: TokenSet, *, config: ProviderConfig, now: datetime
) -> None:
    previous_status = conn.status
    previous_scopes = sorted(conn.scopes)
    fields = store_tokens(conn, token)
    if token.scopes is not None:
        conn.scopes = sorted(set(token.scopes))
        fields.append("scopes")
    fields += grant_fresh(conn, config=config, now=now)
    event = audit_event(
        kind=AuditEvent.Kind.REFRESH_SUCCEEDED,
        provider=conn.provider,
        connection=conn,
        detail={"rotated": bool(token.refresh_token)},
    )
    _row_update(conn, (*fields, "updated_at"), then_insert=event)
    _record_status_change(conn, previous_status)
    if conn.scopes != previous_scopes:
        # The provider narrowed (or widened) the grant: its capabilities may differ.
        was = registry.catalogue().granted_capabilities(conn.provider, previous_scopes)
        data = connection_data(conn, previous_capabilities=was)
        if data["capabilities"] != was:
            event_emit(type="connection.updated", data=data)
    _provider_recovered(conn.provider, now=now)


def _refresh_failed(
    conn: Connection,
    failure: IntegrationError,
    *,
    config: ProviderConfig,
    now: datetime,
    as_read: _AsRead,
) -> bool:
    """Record a failed attempt; returns whether the user must be emailed."""
    with _writing(as_read):
        return _record_failure(conn, failure, config=config, now=now)


@cache
def _update_sql(names: tuple[str, ...]) -> tuple[str, tuple[Field[Any, Any], ...]]:
    meta = Connection._meta
    fields = tuple(meta.get_field(name) for name in names)
    assignments = ", ".join(f"{sql_rows.quote(str(f.column))} = %s" for f in fields)  # type: ignore[union-attr]
    sql = (
        f"UPDATE {sql_rows.quote(meta.db_table)} SET {assignments} "  # noqa: S608 (names from the model)
        f"WHERE {sql_rows.quote(str(meta.pk.column))} = %s"
    )
    return sql, fields  # type: ignore[return-value]


_together = threading.local()


@contextmanager
def _writes_together() -> Iterator[None]:
    """PostgreSQL, inside a transaction (a batch, its rows locked): the token writes of
    the refreshes in the block (each with its audit row, ``_row_update``) are collected
    and sent at its end, each statement's rows together (``sql_rows.execute_each``: one
    round trip, not one per refresh). Only those: a failure's write is made at once, for
    what runs after it reads the row (``_off_sweep``). Nothing is sent when the block
    raises (its transaction rolls back)."""
    writes: dict[str, list[list[Any]]] = {}
    _together.writes = writes
    try:
        yield
    finally:
        _together.writes = None
    for statement, rows in writes.items():
        if sql_rows.execute_each(statement, rows) != len(rows):
            raise DatabaseError("a connection's row did not update")


def _row_update(
    conn: Connection, names: tuple[str, ...], *, then_insert: AuditEvent | None = None
) -> None:
    """``conn.save(update_fields=names)`` in one statement composed once per field set
    (the ORM compiles it on every call: a third of a refresh's CPU, bench/refresh_sweep.py).
    Values prepared as ``save()`` prepares them (``auto_now`` set); Connection has no
    ``save()`` logic and no signal receivers. Raises ``DatabaseError`` when the row is
    gone, as ``save(update_fields=...)`` does. ``then_insert``: the audit row written
    with it, in the same statement on PostgreSQL (``sql_rows.insert_after_update``),
    after it elsewhere."""
    names = tuple(dict.fromkeys(names))
    sql, fields = _update_sql(names)
    db = connections[DEFAULT_DB_ALIAS]
    params = [
        *(f.get_db_prep_save(f.pre_save(conn, False), connection=db) for f in fields),
        conn.pk,
    ]
    if then_insert is not None and db.vendor == "postgresql":
        together: dict[str, list[list[Any]]] | None = getattr(_together, "writes", None)
        if together is not None:  # inside _writes_together: sent at its end
            statement, values = sql_rows.insert_after_update_statement(sql, params, then_insert)
            together.setdefault(statement, []).append(values)
            return
        if sql_rows.insert_after_update(sql, params, then_insert) != 1:
            raise DatabaseError("the connection's row did not update")
        return
    with db.cursor() as cursor:
        cursor.execute(sql, params)
        if cursor.rowcount != 1:
            raise DatabaseError("the connection's row did not update")
    if then_insert is not None:
        sql_rows.insert(then_insert)


def _record_failure(
    conn: Connection, failure: IntegrationError, *, config: ProviderConfig, now: datetime
) -> bool:
    previous_status = conn.status
    notify = False
    conn.last_error_code = failure.code[:64]
    if isinstance(failure, ReauthorizationRequiredError):
        # The grant just died (a dead one is never refreshed: this runs once per death).
        # The email goes unless one was delivered for it already; the task sets
        # reconnect_notified_at once it is, and a Reconnect clears it.
        conn.status = Connection.Status.NEEDS_RECONNECT
        conn.backoff_until = None
        notify = conn.reconnect_notified_at is None
    elif (
        isinstance(failure, ProviderMisconfiguredError)
        and config.user_client_id is not None
        and not isinstance(failure, PrivateAddressError)
    ):
        # The user's own client is refused (deleted, or its secret reset, at the
        # provider): the user's to fix (replace the client, then reconnect), not staff's;
        # the provider is fine for everyone else.
        conn.status = Connection.Status.NEEDS_RECONNECT
        conn.backoff_until = None
        notify = conn.reconnect_notified_at is None
    elif isinstance(failure, ProviderMisconfiguredError):
        # Our client is refused: staff must act; users are not emailed. Retried slowly.
        _provider_failed(conn.provider, failure, now=now)
        conn.backoff_until = now + BACKOFF_CAP
    elif not isinstance(failure, ProviderUnavailableError):
        # Another 4xx (invalid_request, invalid_scope, ...): retrying soon will not
        # help, and it is not known to be the user's to fix. Retried slowly.
        conn.status = Connection.Status.REFRESH_FAILING
        conn.refresh_failures += 1
        conn.backoff_until = now + BACKOFF_CAP
    else:
        conn.status = Connection.Status.REFRESH_FAILING
        conn.refresh_failures += 1
        retry_at = now + backoff_delay(conn.refresh_failures)
        if conn.attempts_in_window >= app_settings.refresh_max_attempts_per_day():
            # The day's attempts are spent: wait for the window to end.
            window_end = (conn.attempts_window_start or now) + ATTEMPTS_WINDOW
            retry_at = max(retry_at, window_end)
        conn.backoff_until = retry_at
    conn.next_refresh_at = next_refresh_at(connection=conn, config=config, now=now)
    _row_update(
        conn,
        (
            "status",
            "last_error_code",
            "next_refresh_at",
            "backoff_until",
            "refresh_failures",
            "attempts_window_start",
            "attempts_in_window",
            "updated_at",
        ),
    )
    audit_record(
        kind=AuditEvent.Kind.REFRESH_FAILED,
        provider=conn.provider,
        connection=conn,
        ok=False,
        error_code=conn.last_error_code,
        detail={
            "attempt_today": conn.attempts_in_window,
            "next_attempt_at": conn.next_refresh_at.isoformat() if conn.next_refresh_at else None,
        },
    )
    _record_status_change(conn, previous_status)
    logger.warning(
        "refresh failed: connection=%s provider=%s error=%s status=%s",
        conn.pk,
        conn.provider,
        conn.last_error_code,
        conn.status,
    )
    return notify


# The event of a status a refresh leads to (active: only from refresh_failing). A
# failure that leaves the status as it was (the second of a streak) emits nothing.
_STATUS_EVENTS = {
    Connection.Status.ACTIVE: "connection.recovered",
    Connection.Status.REFRESH_FAILING: "connection.refresh_failed",
    Connection.Status.NEEDS_RECONNECT: "connection.needs_reconnect",
}


def _record_status_change(conn: Connection, previous_status: str) -> None:
    if conn.status != previous_status:
        event_type = _STATUS_EVENTS.get(Connection.Status(conn.status))
        if event_type is not None:
            event_emit(
                type=event_type,
                data=connection_data(conn, previous_status=previous_status),
            )
        audit_record(
            kind=AuditEvent.Kind.STATUS_CHANGED,
            provider=conn.provider,
            connection=conn,
            ok=conn.status == Connection.Status.ACTIVE,
            error_code=conn.last_error_code,
            detail={"from": previous_status, "to": conn.status},
        )


# When this process last cleared (or found clear) each provider's failure mark, by
# the monotonic clock: the UPDATE that clears it runs at most once per
# HEALTH_RECHECK_SECONDS per provider and process, not with every refresh (a
# statement per refresh; the mark is staff's signal, and a few seconds late is fine).
HEALTH_RECHECK_SECONDS = 10.0
_health_clear_seen: dict[str, float] = {}


def _provider_recovered(provider: str, *, now: datetime) -> None:
    """A refresh of ``provider`` succeeded: whatever was marked against our client there
    is over (``ProviderHealth``)."""
    seen = _health_clear_seen.get(provider)
    if seen is not None and time.monotonic() - seen < HEALTH_RECHECK_SECONDS:
        return
    later = _health_later()
    if later is not None:
        later.append((provider, None, now))
        return
    ProviderHealth.objects.filter(provider=provider, ok=False).update(
        ok=True, last_success_at=now, failures=0
    )
    _health_clear_seen[provider] = time.monotonic()


# Inside a batch (``_batch_refresh``): the providers' marks to write once it committed.
_HealthChange = tuple[str, IntegrationError | None, datetime]


def _health_later() -> list[_HealthChange] | None:
    return getattr(_together, "health", None)


@contextmanager
def _provider_health_after() -> Iterator[None]:
    """The providers' marks (``ProviderHealth``) that the block's refreshes change are
    written after it, each in a statement of its own, in its order: not in a batch's
    transaction, where two batches marking two providers in opposite orders would
    deadlock, and after what the providers answered was committed."""
    changes: list[_HealthChange] = []
    _together.health = changes
    try:
        yield
    finally:
        _together.health = None
    for provider, failure, now in changes:
        if failure is None:
            _provider_recovered(provider, now=now)
        else:
            _provider_failed(provider, failure, now=now)


def provider_health_forget() -> None:
    """Forget which providers this process saw healthy (tests: between cases)."""
    _health_clear_seen.clear()


def _provider_failed(provider: str, failure: IntegrationError, *, now: datetime) -> None:
    later = _health_later()
    if later is not None:
        later.append((provider, failure, now))
        return
    _health_clear_seen.pop(provider, None)
    health, _ = ProviderHealth.objects.get_or_create(provider=provider)
    ProviderHealth.objects.filter(pk=health.pk).update(
        ok=False,
        error_code=failure.code[:64],
        failures=F("failures") + 1,
        first_failure_at=health.first_failure_at if not health.ok else now,
        last_failure_at=now,
    )
    logger.error("provider %s refused our client: %s", provider, failure.code)


def _reconnect_email_enqueue(connection_id: int) -> None:
    """Once the dead grant is committed, a task sends the email (and retries it)."""

    def enqueue() -> None:
        try:
            # By name: the tasks module imports this one.
            current_app.tasks[RECONNECT_EMAIL_TASK].delay(connection_id)
        except Exception:
            # The broker is unreachable: the status change stands, and the caller gets
            # its answer (the integrations page shows the banner regardless).
            logger.exception("could not enqueue the reconnect email: connection=%s", connection_id)

    transaction.on_commit(enqueue)


def reconnect_email_send(*, connection_id: int, now: datetime | None = None) -> str:
    """Send the one "reconnect" email of a dead grant (the task's work). Returns what
    happened: "sent", or why nothing was: "gone", "not_needed" (reconnected or
    disconnected meanwhile), "already_sent", "no_address".

    Under the connection's lock, so that two tasks for one grant (a message delivered
    twice, a retry racing its original) never both send: the second waits, then finds
    it sent. ``reconnect_notified_at`` is set only once the backend accepted the email,
    so it means "delivered"; a failed send raises, for the task to retry. A Reconnect
    clears it (``connection_save_from_callback``): a later dead grant is emailed again.
    """
    now = now or timezone.now()
    try:
        with locks.connection_locked(connection_id) as conn:
            if conn.status != Connection.Status.NEEDS_RECONNECT:
                return "not_needed"
            if conn.reconnect_notified_at is not None:
                return "already_sent"
            address = conn.user.email
            if not address:
                return "no_address"
            _email_reconnect(conn, to=address)
            # SQLite: no row lock; only if still the same dead grant.
            Connection.objects.filter(
                pk=conn.pk, status=Connection.Status.NEEDS_RECONNECT, reconnect_notified_at=None
            ).update(reconnect_notified_at=now)
    except Connection.DoesNotExist:
        return "gone"
    return "sent"


def _email_reconnect(conn: Connection, *, to: str) -> None:
    """The email about a dead grant. Raises what the email backend raises."""
    try:
        name = registry.provider_info(conn.provider).name  # decrypts nothing
    except UnknownProviderError:
        name = conn.provider
    context = {
        "provider": name,
        "account": conn.account_email or conn.account_uid,
        "url": app_settings.site_url() + reverse("integrations:page"),
    }
    send_mail(
        subject=f"Reconnect your {name} account",
        message=render_to_string("integrations/email/reconnect.txt", context),
        from_email=settings.DEFAULT_FROM_EMAIL,
        recipient_list=[to],
    )


# --- the background sweep ---------------------------------------------------------


def connections_due_claim(*, now: datetime | None = None, limit: int | None = None) -> list[int]:
    """Claim the connections due for a refresh, soonest first, at most ``limit``.

    One indexed range scan (``next_refresh_at <= now``, partial index), rows locked
    with SKIP LOCKED so that concurrent sweeps split the work, and each claimed row is
    leased for SWEEP_LEASE so the next sweep does not enqueue it again while its task
    is pending.
    """
    now = now or timezone.now()
    limit = limit or app_settings.sweep_batch_size()
    with transaction.atomic():
        ids = list(
            Connection.objects.select_for_update(skip_locked=True)
            .filter(next_refresh_at__lte=now)
            .order_by("next_refresh_at")
            .values_list("id", flat=True)[:limit]
        )
        if ids:
            Connection.objects.filter(id__in=ids).update(next_refresh_at=now + SWEEP_LEASE)
    return ids


def connections_refresh_if_due(
    *, connection_ids: Sequence[int], now: datetime | None = None
) -> list[tuple[int, str]]:
    """The work of one refresh task: each connection refreshed if it is (still) due, so
    that one failure stops nothing else. Returns each id with its outcome.

    PostgreSQL: the batch's rows locked in one statement and one transaction
    (``locks.connections_locked``), its requests to the providers made inline or
    together (``_calls``), the token writes sent together (``_writes_together``), and
    one COMMIT: a batch of 25 costs 4 round trips to the database, not 100, and one
    wait for the WAL to reach the disk, not 25. It holds its locks while its requests
    are made (a quarter of a second of quick ones, then the slowest of the rest). A
    failure is recorded at once, row by row; one connection's failure stops nothing
    else. SQLite, whose lock is a file per connection held outside any transaction
    (``locks``): one after the other (``connection_refresh_if_due``)."""
    now = now or timezone.now()
    with metrics.buffered():  # the batch's counts in one round trip
        if not locks.row_locks():
            return [
                (connection_id, connection_refresh_if_due(connection_id=connection_id, now=now))
                for connection_id in connection_ids
            ]
        return _batch_refresh(connection_ids, now=now)


def _batch_refresh(connection_ids: Sequence[int], *, now: datetime) -> list[tuple[int, str]]:
    outcomes: dict[int, str] = {}
    attempts: list[_Attempt] = []
    done: list[_Done] = []
    with _provider_health_after(), transaction.atomic():
        rows = locks.connections_locked(connection_ids)
        for connection_id in dict.fromkeys(connection_ids):  # each once: one refresh token
            conn = rows.get(connection_id)
            if conn is None:
                outcomes[connection_id] = "gone"
                continue
            try:
                step = _prepared(conn, now=now, only_if_due=True)
            except (IntegrationError, crypto.DecryptionError) as exc:  # the rest go on
                outcomes[connection_id] = _off_sweep(connection_id, exc, now=now)
                continue
            if isinstance(step, _Attempt):
                attempts.append(step)
            else:
                done.append(step)
        with _writes_together():
            for attempt, result in zip(attempts, _calls(attempts), strict=True):
                done.append(_attempted(attempt, result))
        for step in done:
            if step.failure is None:
                outcomes[step.conn.pk] = "ok"  # no credentials built: nobody reads them
                continue
            if step.notify:
                _reconnect_email_enqueue(step.conn.pk)  # sent once the batch committed
            outcomes[step.conn.pk] = _off_sweep(step.conn.pk, step.failure, now=now)
    return [(connection_id, outcomes[connection_id]) for connection_id in connection_ids]


def connection_refresh_if_due(*, connection_id: int, now: datetime | None = None) -> str:
    """The sweep's work for one connection: refresh it if it is (still) due. Returns
    "ok" or the error code, for the task's log line."""
    try:
        connection_refresh(
            connection_id=connection_id, now=now, only_if_due=True, serve_valid_on_failure=False
        )
    except (Connection.DoesNotExist, IntegrationError, crypto.DecryptionError) as exc:
        return _off_sweep(connection_id, exc, now=now or timezone.now())
    return "ok"


def _off_sweep(connection_id: int, exc: Exception, *, now: datetime) -> str:
    """The outcome code of a sweep's refresh that failed with ``exc``, and the
    connection's next sweep where the failure decides it. Raises what it does not know."""
    if isinstance(exc, Connection.DoesNotExist):
        return "gone"
    if isinstance(exc, ReauthorizationRequiredError):
        # A dead grant: off the sweep (undo the lease), until the user reconnects.
        Connection.objects.filter(pk=connection_id, status__in=DEAD_STATUSES).update(
            next_refresh_at=None
        )
        return exc.code
    if isinstance(exc, UnknownProviderError):
        # Its definition was deleted: nothing to refresh with until staff restore it.
        Connection.objects.filter(pk=connection_id).update(next_refresh_at=None)
        logger.error("connection %s: its provider is not defined any more", connection_id)
        return "unknown_provider"
    if isinstance(exc, crypto.DecryptionError):
        # INTEGRATIONS_TOKEN_KEYS lost the key it was written under: staff's to fix.
        # Not retried every sweep: once per backoff cap.
        Connection.objects.filter(pk=connection_id).update(next_refresh_at=now + BACKOFF_CAP)
        logger.error("connection %s: its refresh token does not decrypt", connection_id)
        return "undecryptable"
    if isinstance(exc, IntegrationError):  # after its subclasses above
        return exc.code
    raise exc


# --- the providers' answers, several at a time --------------------------------------------

# A batch whose requests are expected to take at most this long one after the other is
# asked on the task's own thread (a provider that answers in a millisecond gains nothing
# from other threads, and their switching costs CPU: bench/refresh_sweep.py at 0 ms);
# a longer one goes to the pool. What to expect: each provider's recent answers here.
INLINE_BUDGET_SECONDS = 0.25
# How much of the expectation the newest answer makes (an exponential moving average).
_LATENCY_WEIGHT = 0.2
# Provider id -> seconds, for this process. Threads update it without a lock: two
# answers at once may leave one of them out of the average, which is an estimate.
_latency: dict[str, float] = {}

_pool: ThreadPoolExecutor | None = None
_pool_guard = threading.Lock()


def _calls(attempts: Sequence[_Attempt]) -> list[TokenSet | IntegrationError]:
    """The refresh requests of ``attempts``, in their order. On this thread, one after
    the other, while they are expected to be quick (``INLINE_BUDGET_SECONDS``); when
    they are not, or once they have taken longer, together on a pool of at most
    INTEGRATIONS_REFRESH_CONCURRENCY threads per process. A request waits on the
    network, not on the CPU: made together, a batch takes about as long as its slowest
    one. The standard library's thread pool rather than asyncio: the client is requests,
    with its public-address guard (``client.PublicAddressAdapter``)."""
    expected = sum(_latency.get(a.conn.provider, 0.0) for a in attempts)
    if len(attempts) > 1 and expected > INLINE_BUDGET_SECONDS:
        return _pooled(attempts)
    results: list[TokenSet | IntegrationError] = []
    started = time.monotonic()
    for i, attempt in enumerate(attempts):
        if len(attempts) - i > 1 and time.monotonic() - started > INLINE_BUDGET_SECONDS:
            # Slower than expected (a provider slowing down): the rest together.
            results += _pooled(attempts[i:])
            break
        results.append(_call(attempt))
    return results


def _pooled(attempts: Sequence[_Attempt]) -> list[TokenSet | IntegrationError]:
    """``attempts`` asked together on the pool, each in a copy of this thread's context
    (its log lines keep the task's request id, ``config.log``)."""
    pool = _calls_pool()
    futures = [pool.submit(contextvars.copy_context().run, _call, a) for a in attempts]
    return [future.result() for future in futures]


def _calls_pool() -> ThreadPoolExecutor:
    global _pool
    with _pool_guard:
        if _pool is None:
            _pool = ThreadPoolExecutor(
                max_workers=app_settings.refresh_concurrency(),
                thread_name_prefix="refresh-call",
            )
        return _pool


def _call(attempt: _Attempt) -> TokenSet | IntegrationError:
    """The refresh request of ``attempt``: the token set, or the classified failure.
    Touches no database (``_calls`` may run it on another thread)."""
    provider = attempt.conn.provider
    started = time.monotonic()
    try:
        return http.refresh_grant(attempt.config, attempt.refresh_token, now=attempt.now)
    except IntegrationError as exc:
        return exc
    except Exception as exc:
        # Not a classified failure: a fault on our side of the request (a compliance
        # hook, the HTTP stack). Recorded as this connection's failure (retried with
        # backoff) rather than raised: raised, it would roll back what the providers
        # answered the batch's other connections, their rotated refresh tokens
        # included. The type only: the message may quote the request.
        logger.error(
            "refresh request of connection %s failed: %s", attempt.conn.pk, type(exc).__name__
        )
        return ProviderUnavailableError("the refresh request failed", code="request_failed")
    finally:
        took = time.monotonic() - started
        seen = _latency.get(provider)
        _latency[provider] = took if seen is None else seen + _LATENCY_WEIGHT * (took - seen)


def call_latency_forget() -> None:
    """Forget the providers' latencies seen by this process (tests: between cases)."""
    _latency.clear()
