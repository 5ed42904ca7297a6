"""The embedded default's database (`make run`: config.settings.local, no DATABASE_URL
pointing elsewhere) is configured for several processes at once: WAL, IMMEDIATE
transactions, a busy timeout (config/settings/base.py, sqlite_tuned)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from config.settings.base import sqlite_tuned

ROOT = Path(__file__).resolve().parents[1]

PROBE = """
import json, django
django.setup()
from django.db import connection as c
with c.cursor() as cur:
    cur.execute("PRAGMA journal_mode")
    mode = cur.fetchone()[0]
print(json.dumps({"journal_mode": mode, "transaction_mode": c.transaction_mode,
                  "timeout": c.settings_dict["OPTIONS"]["timeout"]}))
"""


def test_make_runs_database_is_wal_with_immediate_transactions(tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "DATABASE_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings.local",
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        CELERY_QUEUE_DIR=str(tmp_path / "queue"),
        INTEGRATIONS_TOKEN_KEYS="aTxPN3GzW8yqUt1mDcBkFWnHQWb5w4EqTfsgtW2Lj3s=",
        REDIS_URL="",
    )
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {
        "journal_mode": "wal",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }


def test_other_databases_are_left_as_they_are():
    pg = {"ENGINE": "django.db.backends.postgresql", "NAME": "hub"}
    assert sqlite_tuned(dict(pg)) == pg
    # Options set explicitly are kept.
    db = sqlite_tuned({"ENGINE": "django.db.backends.sqlite3", "OPTIONS": {"timeout": 3}})
    assert db["OPTIONS"]["timeout"] == 3 and db["OPTIONS"]["transaction_mode"] == "IMMEDIATE"
