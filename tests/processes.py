"""Helpers for tests that start real processes (workers, beat, racing clients) against
the test database: PostgreSQL, or SQLite's test database, a file (config/settings/test.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import connection

ROOT = Path(__file__).resolve().parents[1]

needs_postgres = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="needs PostgreSQL (row locks across processes)"
)


def database_url() -> str:
    s = connection.settings_dict
    if connection.vendor == "sqlite":
        assert not connection.is_in_memory_db(), "another process cannot reach it"  # type: ignore[attr-defined]
        return f"sqlite:///{Path(s['NAME']).resolve()}"
    user = s.get("USER") or "postgres"
    host = s.get("HOST") or "127.0.0.1"
    port = s.get("PORT") or 5432
    return f"postgres://{user}@{host}:{port}/{s['NAME']}"


def django_env(**extra: str) -> dict[str, str]:
    """The environment of a process that works on this test's database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings.test",
        DATABASE_URL=database_url(),
        PYTHONPATH=str(ROOT),
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def start(args: list[str], env: dict[str, str], **kwargs: object) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **kwargs,  # type: ignore[call-overload]
    )


def a_lock_is_waited_for(timeout: float = 10) -> bool:
    """PostgreSQL: whether, within ``timeout`` seconds, a session of the test database
    waits on a lock (``pg_stat_activity``), as a racing thread blocked on a row does."""
    deadline = time.monotonic() + timeout
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND datname = current_database()"
            )
            if cursor.fetchone()[0]:
                return True
            time.sleep(0.01)
    return False
