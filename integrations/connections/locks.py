"""One holder at a time per connection, across threads and processes: the lock the
refresh (and the reconnect email) runs under.

- **PostgreSQL** (any database with row locks): a transaction and ``SELECT ... FOR
  UPDATE`` of the connection's row, held for the whole block, the call to the provider
  included. Across machines; a killed holder's transaction rolls back and its lock goes
  with it. The block's writes are in that transaction. A sweep task locks its batch's
  rows in one statement (``connections_locked``), in id order.
- **SQLite** (the embedded default): ``SELECT ... FOR UPDATE`` is a no-op there, and the
  only lock SQLite has is the whole database's write lock. Holding it across the call to
  the token endpoint cannot work: the sandbox, playing Google on the same site, writes
  to the same file to answer (its token endpoint waited out SQLite's busy timeout and
  answered 500 "database is locked", and the refresh failed). Holding a read
  transaction across it cannot work either: in WAL mode a transaction that read before
  another connection wrote can no longer write. So on SQLite the block runs in autocommit,
  its writes in short transactions of their own, and the lock is an exclusive
  ``flock`` of a file of this connection beside the database file. A SQLite database
  lives on one machine, so a lock of that machine's kernel covers every process that
  can open it; ``flock`` locks belong to an open file, so two threads of one process
  exclude each other too (the Procfile's worker runs 8); and like the row lock, it is
  released by the kernel when its holder dies, however it dies.

  What the file lock does not do is keep other writers of the row out (a Disconnect or a
  Reconnect, which on PostgreSQL wait for the row lock): whoever writes after an
  unlocked stretch checks first that the row is still as it read it
  (``row_locks()`` says whether it must).

  Not chosen: the sandbox on a database of its own (its grants and tokens reference the
  site's users, who live in this one); WAL and a busy timeout alone (the sandbox could
  then answer, but a refresh whose transaction read before the sandbox wrote could not
  store its token); a lease column claimed by a conditional UPDATE (a schema change,
  and a lease outlives a killed holder, where a file lock does not).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import cache
from pathlib import Path

from django.db import connection as db
from django.db import transaction

from integrations import sql_rows
from integrations.models import Connection


def row_locks() -> bool:
    """Whether ``connection_locked`` holds the row itself (PostgreSQL), so that its
    block's writes need no check that the row is still as it was read."""
    return bool(db.features.has_select_for_update)


@contextmanager
def connection_locked(connection_id: int) -> Iterator[Connection]:
    """The connection's row, read once its lock is held; the lock is held until the
    block ends. ``Connection.DoesNotExist`` when there is no such row.

    On SQLite, not to be entered inside a transaction (an IMMEDIATE transaction holds
    the database's write lock, which the holder being waited for needs to finish), nor
    inside itself for the same connection (a second ``flock`` of the file waits for the
    first, even in the same thread).
    """
    if row_locks():
        with transaction.atomic():
            yield _locked_row(connection_id)
        return
    with _exclusive(connection_id):
        yield Connection.objects.get(pk=connection_id)


def _locked_row(connection_id: int) -> Connection:
    """``Connection.objects.select_for_update().get(pk=...)`` without compiling that
    query, nor building a RawQuerySet, each time (a quarter of a refresh's CPU went to
    the first, a tenth to the second: bench/refresh_sweep.py): the same statement,
    written once, its row made an instance as the ORM makes it (``sql_rows``)."""
    row = sql_rows.fetch(_locking_select("= %s"), [connection_id])
    if not row:
        raise Connection.DoesNotExist(f"no connection {connection_id}")
    conn: Connection = sql_rows.selected(Connection).build(row[0])
    return conn


def connections_locked(connection_ids: Sequence[int]) -> dict[int, Connection]:
    """PostgreSQL only (``row_locks()``), inside a transaction: the rows of
    ``connection_ids`` that exist, each locked as ``connection_locked`` locks it, in one
    statement, until the transaction ends. Locked in id order, so that two holders of
    overlapping sets wait for each other instead of deadlocking."""
    if not connection_ids:
        return {}
    rows = sql_rows.fetch(_locking_select("= ANY(%s) ORDER BY {pk}"), [sorted(set(connection_ids))])
    build = sql_rows.selected(Connection).build
    found = (build(row) for row in rows)
    return {conn.pk: conn for conn in found}


@cache
def _locking_select(pk_condition: str) -> str:
    """``SELECT <the model's columns> FROM <table> WHERE <pk> <pk_condition> FOR UPDATE``
    (``{pk}`` in the condition: the key's column), composed once per condition."""
    selected = sql_rows.selected(Connection)
    table = sql_rows.quote(Connection._meta.db_table)  # the model's, not input
    pk = sql_rows.column(Connection, "id")
    condition = pk_condition.format(pk=pk)
    return f"SELECT {selected.sql} FROM {table} WHERE {pk} {condition} FOR UPDATE"  # noqa: S608


# In-memory SQLite (one process only): a lock per connection id in this process.
_process_locks: dict[int, threading.Lock] = {}
_process_locks_guard = threading.Lock()


def lock_path(connection_id: int) -> Path | None:
    """The file ``flock``-ed for ``connection_id``: ``<database file>.locks/<id>``, beside
    the database so that every process that opens it agrees; None for an in-memory
    database."""
    if db.vendor != "sqlite" or db.is_in_memory_db():  # type: ignore[attr-defined]
        return None
    database = Path(db.settings_dict["NAME"]).resolve()
    return database.with_name(database.name + ".locks") / f"connection-{connection_id}"


@contextmanager
def _exclusive(connection_id: int) -> Iterator[None]:
    path = lock_path(connection_id)
    if path is None:
        with _process_locks_guard:
            lock = _process_locks.setdefault(connection_id, threading.Lock())
        with lock:
            yield
        return
    import fcntl  # POSIX (Linux, macOS): where `make run` runs

    path.parent.mkdir(mode=0o700, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # waits, as SELECT ... FOR UPDATE does
        yield
    finally:
        os.close(fd)  # and with it the lock


# --- the sweep: one at a time --------------------------------------------------------

# The key of the sweep's PostgreSQL advisory lock (any constant no other code uses).
SWEEP_LOCK_KEY = 0x1A7E_5EEF
_sweep_process_lock = threading.Lock()


@contextmanager
def sweep_single_flight() -> Iterator[bool]:
    """Whether this holder is the one sweep running now, across processes and machines;
    never waits (a sweep that finds another running has nothing to do).

    PostgreSQL: a session advisory lock (``pg_try_advisory_lock``), not a transaction:
    the sweep commits each claim as it goes. A killed holder's session ends and its lock
    with it. SQLite: a non-blocking ``flock`` of ``<database file>.locks/sweep`` (one
    machine); in memory, a lock of this process.
    """
    if db.vendor == "postgresql":
        with db.cursor() as cur:
            cur.execute("SELECT pg_try_advisory_lock(%s)", [SWEEP_LOCK_KEY])
            (held,) = cur.fetchone()
        try:
            yield bool(held)
        finally:
            if held and db.connection is not None:
                with db.cursor() as cur:
                    cur.execute("SELECT pg_advisory_unlock(%s)", [SWEEP_LOCK_KEY])
        return
    path = lock_path(0)
    if path is None:
        held = _sweep_process_lock.acquire(blocking=False)
        try:
            yield held
        finally:
            if held:
                _sweep_process_lock.release()
        return
    import fcntl

    path = path.with_name("sweep")
    path.parent.mkdir(mode=0o700, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
        else:
            yield True
    finally:
        os.close(fd)
