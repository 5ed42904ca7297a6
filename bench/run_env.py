"""How fast the run environment is built, against the floor: the same rows fetched and
decrypted with no other logic.

Run from the repository root (PostgreSQL on 127.0.0.1:5432, trust auth, user
``postgres``)::

    python bench/run_env.py [--iterations 2000] [--profile]

It creates its own database (``bench_runenv``, dropped at the end), migrates it with
``config.settings.test`` (``SANDBOX_ENABLED`` left to its default), and builds an app
whose manifest declares 3 Google capabilities and 2 secrets, and a user whose default
Google connection grants them with a fresh token (expires in an hour, used now) and
who has both secrets set. Then, interleaved in blocks so that drift on a shared
machine hits every path alike, it times per call (p50 and p99):

* in-process: ``run_target`` + ``run_environment_build``, the service the API view
  calls (its audit INSERT included);
* the floor: the same SQL statements (the app with its current version, the user's
  connections with the user, the 2 secrets, the audit INSERT) and the 3 decryptions
  (the access token, the 2 secret values) and the env dict assembled, with no other
  logic (the target is measured against it); the floor as reads only (the runner
  token by hash, the app, the connections, the secrets; no audit row); and the floor
  in plain SQL through the database cursor, without the ORM;
* the service and the floor with the user named by email instead of id;
* the API view in-process (Django's test client: middleware, DRF, runner token);
* over HTTP: ``POST /api/v1/run-environments/`` with a runner token through a real
  server in its own process (Django's threaded WSGI server, HTTP/1.1 keep-alive; the
  client a ``requests.Session``), with the product's database settings (persistent
  connections: ``CONN_MAX_AGE`` is 60) and, for comparison, with a new PostgreSQL
  session per request (``CONN_MAX_AGE`` 0); and the same server's answer to a
  request without a token (401, no query), the cost of HTTP and the stack alone.

It counts the SQL statements per call (``CaptureQueriesContext``; over HTTP in the
server, and the new PostgreSQL sessions from ``pg_stat_database``), and times the
service and the floors with the user having 1, 10 and 100 connections. With
``--profile``, or when the service is over 1.5x a floor, it profiles the service
(cProfile) and prints where the time goes. Figures and findings: docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PG = "postgres://postgres@127.0.0.1:5432"
URL = "/api/v1/run-environments/"
APP = "bench/run-env"
CAPABILITIES = ["google.sheets.readonly", "google.gmail.send", "google.calendar.readonly"]
SECRETS = {"FAL_KEY": "fal-" + "k" * 60, "OPENAI_API_KEY": "sk-" + "o" * 61}
MANIFEST = (
    "namespace: bench\nname: run-env\ntitle: Run environment bench\nintegrations:\n"
    + "".join(f"  - key: {key}\n    description: {key}\n" for key in CAPABILITIES)
    + "secrets:\n"
    + "".join(f"  - key: {key}\n    description: {key}\n" for key in SECRETS)
)
TARGET_RATIO = 1.5
TARGET_SQL_RATIO = 2.0  # issue 14: in-process at most 2x the floor in SQL
TARGET_QUERIES = 5


# --- timing --------------------------------------------------------------------------------


@dataclass
class Timed:
    """One way of getting the environment, and its times per call."""

    name: str
    call: Callable[[], Any]
    samples: list[int] = field(default_factory=list)  # ns
    cpu: list[int] = field(default_factory=list)  # ns of this thread's CPU per call
    queries: float | None = None

    @property
    def cpu50(self) -> float:
        """The median CPU time of the bench's own thread per call, in milliseconds:
        the Python side (the ORM, the service's logic, decryption), without waiting for
        PostgreSQL or for a core; steadier than wall time on a busy machine."""
        return statistics.median(self.cpu) / 1e6 if self.cpu else float("nan")

    def p(self, q: float) -> float:
        """The q-quantile in milliseconds (nearest rank)."""
        ordered = sorted(self.samples)
        rank = max(1, min(len(ordered), round(q * len(ordered) + 0.5)))
        return ordered[rank - 1] / 1e6

    @property
    def p50(self) -> float:
        return statistics.median(self.samples) / 1e6

    @property
    def p99(self) -> float:
        return self.p(0.99)


def run_interleaved(paths: list[Timed], iterations: int, block: int, warmup: int) -> None:
    """``iterations`` timed calls of each path, in rotating blocks of ``block``."""
    for path in paths:
        for _ in range(warmup):
            path.call()
    done = 0
    clock, cpu_clock = time.perf_counter_ns, time.thread_time_ns
    while done < iterations:
        n = min(block, iterations - done)
        for path in paths:
            call, samples, cpu = path.call, path.samples, path.cpu
            for _ in range(n):
                start, cpu_start = clock(), cpu_clock()
                call()
                cpu.append(cpu_clock() - cpu_start)
                samples.append(clock() - start)
        done += n


def in_mode(mode: str, call: Callable[[], Any]) -> Callable[[], Any]:
    """``call`` with ``INTEGRATIONS_APP_AUTHORIZATION`` set to ``mode`` (``per_app``, the
    product's default, or ``declared``) while it runs."""
    from django.conf import settings

    def called() -> Any:
        before = settings.INTEGRATIONS_APP_AUTHORIZATION
        settings.INTEGRATIONS_APP_AUTHORIZATION = mode
        try:
            return call()
        finally:
            settings.INTEGRATIONS_APP_AUTHORIZATION = before

    return called


# --- the HTTP server (its own process) -----------------------------------------------------


QUERIES_PATH = "/__bench__/queries"


def serve() -> None:
    """Django's threaded WSGI server (the one ``runserver`` uses, without the autoreloader
    or the checks), HTTP/1.1 keep-alive, on a free port; prints ``PORT n``.

    Two changes from ``runserver``: Nagle's algorithm is off on accepted sockets, as
    production servers do (gunicorn sets ``TCP_NODELAY``); with it on, every answer on
    a kept-alive connection waits about 40 ms for the client's delayed ACK, because
    wsgiref sends the headers and the body in separate writes. And no log line per
    request. The SQL statements the application sends are counted (through Django's
    ``execute_wrapper``) and read at ``QUERIES_PATH``."""
    import threading

    import django

    django.setup()
    from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler
    from django.db import connection

    from config.wsgi import application

    for name in ("django.server", "django.request"):
        logging.getLogger(name).setLevel(logging.ERROR)  # no line per request

    class Handler(WSGIRequestHandler):
        disable_nagle_algorithm = True

    lock = threading.Lock()
    counts = {"statements": 0, "requests": 0}

    def count(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        with lock:
            counts["statements"] += 1
        return execute(sql, params, many, context)

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        if environ["PATH_INFO"] == QUERIES_PATH:
            start_response("200 OK", [("Content-Type", "application/json")])
            return [json.dumps(counts).encode()]
        with lock:
            counts["requests"] += 1
        with connection.execute_wrapper(count):
            return application(environ, start_response)

    httpd = ThreadedWSGIServer(("127.0.0.1", 0), Handler, ipv6=False)
    httpd.set_app(app)
    print(f"PORT {httpd.server_address[1]}", flush=True)
    httpd.serve_forever()


class Server:
    def __init__(self, database_url: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--serve"],
            cwd=ROOT,
            env={**os.environ, "DATABASE_URL": database_url},
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("PORT "):
            self.stop()
            raise SystemExit(f"the HTTP server did not start: {line!r}")
        self.url = f"http://127.0.0.1:{int(line.split()[1])}"

    def counts(self) -> dict[str, int]:
        """SQL statements sent and requests served so far."""
        import requests

        return dict(requests.get(self.url + QUERIES_PATH, timeout=10).json())

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


# --- the machine -----------------------------------------------------------------------------

CLK_TCK = os.sysconf("SC_CLK_TCK")


def machine_busy() -> float:
    """CPU seconds the whole machine has spent busy, all cores (from /proc/stat)."""
    with open("/proc/stat") as fh:
        values = [int(v) for v in fh.readline().split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values[:8]) - idle) / CLK_TCK


def proc_cpu(pid: int) -> float:
    """CPU seconds (user + system) of one process."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            data = fh.read()
    except OSError:
        return 0.0
    fields = data[data.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def wait_for_quiet(limit: float, *, busy_below: float = 0.3) -> tuple[float, float]:
    """Wait up to ``limit`` seconds for a second in which the machine is less than
    ``busy_below`` cores busy; returns (seconds waited, cores busy in the last second)."""
    start = time.monotonic()
    while True:
        before = machine_busy()
        time.sleep(1.0)
        busy = machine_busy() - before
        waited = time.monotonic() - start
        if busy < busy_below or waited >= limit:
            return waited, busy


# --- the bench -----------------------------------------------------------------------------


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.db = args.db_name
        self.database_url = f"{PG}/{self.db}"
        self.servers: list[Server] = []
        self.user: Any = None
        self.runner_token = ""

    def create_database(self) -> None:
        import psycopg

        with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.db}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{self.db}"')

    def drop_database(self) -> None:
        import psycopg

        if "django" in sys.modules:
            from django.db import connections

            connections.close_all()
        with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.db}" WITH (FORCE)')

    def setup_django(self) -> None:
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0, interactive=False)

    def cleanup(self) -> None:
        for server in self.servers:
            server.stop()
        self.servers = []

    # --- data ------------------------------------------------------------------------------

    def make_data(self) -> None:
        from django.contrib.auth import get_user_model
        from django.utils import timezone

        from apps_registry import services
        from integrations.app_authorization import AllowItem, app_authorization_allow
        from integrations.connections.store import store_tokens
        from integrations.core.catalogue import BUILTIN
        from integrations.core.tokens import TokenSet
        from integrations.models import Connection
        from integrations.secrets import secret_set

        User = get_user_model()
        # Other accounts in the table: a runner names its user by id or email.
        User.objects.bulk_create(
            [
                User(username=f"other{i}", email=f"other{i}@example.com", password="!")
                for i in range(self.args.users)
            ]
        )
        owner = User.objects.create_user(username="owner", email="owner@example.com")
        version = services.manifest_upload(user=owner, text=MANIFEST)
        assert version.valid and version.app.slug == APP, version.errors
        _, self.runner_token = services.runner_token_create(name="bench", all_namespaces=True)

        self.user = User.objects.create_user(username="runs", email="runs@example.com")
        now = timezone.now()
        conn = Connection(
            user=self.user,
            provider="google",
            account_uid="bench-default",
            account_email="runs@gmail.example",
            scopes=["openid", "email", *BUILTIN.scopes_for(CAPABILITIES)],
            status=Connection.Status.ACTIVE,
            is_default=True,
            last_used_at=now,
        )
        store_tokens(
            conn,
            TokenSet(
                access_token="ya29." + "a" * 150,
                refresh_token="1//" + "r" * 100,
                expires_at=now + timedelta(hours=1),
                scopes=None,
            ),
        )
        conn.save()
        for key, value in SECRETS.items():
            secret_set(user=self.user, key=key, value=value)
        # The user allowed the app (per-app authorization, the default): what it declares.
        app_authorization_allow(
            user=self.user,
            app=APP,
            version=version.number,
            items=[AllowItem("capability", k, conn.pk) for k in CAPABILITIES]
            + [AllowItem("secret", k) for k in SECRETS],
        )

    def set_connections(self, total: int) -> None:
        """The user has ``total`` connections: the default one and others (other Google
        accounts, some granting everything the app declares, some not)."""
        from django.utils import timezone

        from integrations import app_settings
        from integrations.core import crypto
        from integrations.core.catalogue import BUILTIN
        from integrations.models import Connection

        Connection.objects.filter(user=self.user, is_default=False).delete()
        keys = app_settings.token_keys()
        now = timezone.now()
        extra = []
        for i in range(total - 1):
            granted = CAPABILITIES if i % 2 else CAPABILITIES[:1]
            access = f"ya29.extra-{i}-" + "x" * 140
            extra.append(
                Connection(
                    user=self.user,
                    provider="google",
                    account_uid=f"bench-extra-{i}",
                    account_email=f"extra{i}@gmail.example",
                    scopes=["openid", "email", *BUILTIN.scopes_for(granted)],
                    status=Connection.Status.ACTIVE,
                    access_token_encrypted=crypto.encrypt(access, keys=keys),
                    refresh_token_encrypted=crypto.encrypt(f"1//extra-{i}", keys=keys),
                    token_fingerprint=crypto.fingerprint(access),
                    expires_at=now + timedelta(hours=1),
                    last_used_at=now,
                )
            )
        Connection.objects.bulk_create(extra)
        self.freshen()
        assert Connection.objects.filter(user=self.user).count() == total

    def freshen(self) -> None:
        """Tokens that expire in an hour, used now: no refresh, no use to record."""
        from django.utils import timezone

        from integrations.models import Connection

        now = timezone.now()
        Connection.objects.filter(user=self.user).update(
            expires_at=now + timedelta(hours=1), last_used_at=now
        )

    # --- the paths -------------------------------------------------------------------------

    def service(self, user: str, *, mode: str = "per_app") -> Callable[[], Any]:
        from apps_registry.run_env import run_environment_build, run_target

        def call() -> Any:
            manifest = run_target(app=APP)
            return run_environment_build(user=user, manifest=manifest, runner="bench").env

        return in_mode(mode, call)

    def floor(self, user: str, *, runner_token: bool, audit: bool) -> Callable[[], Any]:
        """The same rows, fetched with the same querysets as the product, decrypted, and
        the env assembled; no readiness, no catalogue, no choosing beyond "the default
        Google connection". ``runner_token``: the token looked up by its hash first;
        ``audit``: the audit row written (keys only), as the service does."""
        from django.db.models import Q

        from apps_registry.models import App, RunnerToken
        from apps_registry.tokens import hash_api_token
        from integrations import app_settings
        from integrations.core import crypto
        from integrations.models import AuditEvent, Connection, Secret

        namespace, name = APP.split("/")
        keys = app_settings.token_keys()
        by_user = (Q(user__email__iexact=user) if "@" in user else Q(user__pk=int(user))) & Q(
            user__is_active=True
        )
        secret_keys = list(SECRETS)

        def iso(moment: datetime) -> str:
            return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")

        def call() -> Any:
            if runner_token:
                digest = hash_api_token(self.runner_token)
                row = RunnerToken.objects.filter(token_hash=digest, revoked_at__isnull=True).first()
                assert row is not None
            app = (
                App.objects.select_related("current_version")
                .filter(namespace=namespace, name=name)
                .first()
            )
            assert app is not None and app.current_version is not None
            conns = list(
                Connection.objects.select_related("user")
                .filter(by_user)
                .order_by("created_at", "id")
            )
            conn = next(c for c in conns if c.provider == "google" and c.is_default)
            account = conn.user
            secrets = Secret.objects.filter(user=account, key__in=secret_keys)
            token = crypto.decrypt(conn.access_token_encrypted, keys=keys)
            assert conn.expires_at is not None
            expiry = iso(conn.expires_at)
            env = {
                "GOOGLE_OAUTH_ACCESS_TOKEN": token,
                "GOOGLE_OAUTH_TOKEN_EXPIRES_AT": expiry,
                "GOOGLE_OAUTH_CREDENTIALS": json.dumps(
                    {
                        "token": token,
                        "expiry": expiry,
                        "scopes": list(conn.scopes),
                        "token_type": "Bearer",
                    }
                ),
            }
            for secret in secrets:
                env[secret.key] = crypto.decrypt(secret.value_encrypted, keys=keys)
            if audit:
                AuditEvent.objects.create(
                    kind=AuditEvent.Kind.RUN_ENVIRONMENT,
                    provider="",
                    user=account,
                    detail={
                        "app": APP,
                        "version": app.current_version.number,
                        "keys": sorted(env),
                        "connections": {"google": conn.pk},
                        "runner": "bench",
                    },
                )
            return env

        return call

    def floor_sql(self, user_id: int, *, per_app: bool = False) -> Callable[[], Any]:
        """The floor without the ORM: the same 4 statements (the same rows, every column)
        in SQL through the database cursor, then the same decryption and env. With
        ``per_app``, the connections and secrets statements carry the same allowance
        subqueries as the service's (per-app authorization), their results read."""
        from django.db import connection
        from django.utils import timezone

        from integrations import app_settings
        from integrations.core import crypto

        namespace, name = APP.split("/")
        keys = app_settings.token_keys()
        secret_keys = tuple(SECRETS)
        column: dict[str, int] = {}

        def iso(moment: datetime) -> str:
            return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")

        auth = (
            "SELECT {what} FROM integrations_appauthorization z WHERE z.user_id = {table}.user_id "
            "AND z.app = %s AND z.kind = %s AND "
        )
        conn_extra = secret_extra = ""
        conn_params: list[Any] = []
        secret_params: list[Any] = []
        if per_app:
            joined = "STRING_AGG(z.key, ',')"
            conn_extra = (
                ", ("
                + auth.format(what=joined, table="c")
                + "z.connection_id = c.id) AS allowed_keys"
            )
            secret_extra = (
                ", EXISTS("
                + auth.format(what="1", table="s")
                + "z.connection_id IS NULL AND z.key = s.key) AS allowed, ("
                + auth.format(what=joined, table="s")
                + "z.connection_id IS NULL) AS allowed_credentials"
            )
            conn_params = [APP, "capability"]
            secret_params = [APP, "secret", APP, "capability"]

        def call() -> Any:
            with connection.cursor() as cur:
                cur.execute(
                    "SELECT a.*, v.* FROM apps_registry_app a LEFT JOIN "
                    "apps_registry_manifestversion v ON v.id = a.current_version_id "
                    "WHERE a.namespace = %s AND a.name = %s ORDER BY a.id LIMIT 1",
                    [namespace, name],
                )
                app = cur.fetchone()
                assert app is not None
                cur.execute(
                    f"SELECT c.*, u.*{conn_extra} FROM integrations_connection c "
                    "INNER JOIN auth_user u ON u.id = c.user_id "
                    "WHERE c.user_id = %s AND u.is_active ORDER BY c.created_at, c.id",
                    [*conn_params, user_id],
                )
                if not column:
                    for i, d in enumerate(cur.description):
                        column.setdefault(d.name, i)  # the connection's, before the user's
                p = column
                conn = next(
                    r for r in cur.fetchall() if r[p["provider"]] == "google" and r[p["is_default"]]
                )
                cur.execute(
                    f"SELECT s.*{secret_extra} FROM integrations_secret s "
                    "WHERE s.user_id = %s AND s.key IN (%s, %s)",
                    [*secret_params, user_id, *secret_keys],
                )
                names = [d.name for d in cur.description]
                secrets = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
                token = crypto.decrypt(conn[p["access_token_encrypted"]], keys=keys)
                expiry = iso(conn[p["expires_at"]])
                scopes = conn[p["scopes"]]
                env = {
                    "GOOGLE_OAUTH_ACCESS_TOKEN": token,
                    "GOOGLE_OAUTH_TOKEN_EXPIRES_AT": expiry,
                    "GOOGLE_OAUTH_CREDENTIALS": json.dumps(
                        {
                            "token": token,
                            "expiry": expiry,
                            "scopes": json.loads(scopes) if isinstance(scopes, str) else scopes,
                            "token_type": "Bearer",
                        }
                    ),
                }
                if per_app:
                    assert conn[p["allowed_keys"]]
                    assert all(secret["allowed"] for secret in secrets)
                for secret in secrets:
                    env[secret["key"]] = crypto.decrypt(secret["value_encrypted"], keys=keys)
                detail = {
                    "app": APP,
                    "version": 1,
                    "keys": sorted(env),
                    "connections": {"google": conn[p["id"]]},
                    "runner": "bench",
                }
                cur.execute(
                    "INSERT INTO integrations_auditevent (created_at, user_id, connection_id, "
                    "provider, account, kind, ok, error_code, detail) VALUES "
                    "(%s, %s, NULL, '', '', 'run_environment', true, '', %s) RETURNING id",
                    [timezone.now(), user_id, json.dumps(detail)],
                )
                cur.fetchone()
            return env

        return call

    def view(self, user: str, *, mode: str = "per_app") -> Callable[[], Any]:
        from django.test import Client

        client = Client(HTTP_HOST="localhost")
        body = json.dumps({"user": user, "app": APP})
        auth = f"Bearer {self.runner_token}"

        def call() -> Any:
            resp = client.post(URL, body, content_type="application/json", HTTP_AUTHORIZATION=auth)
            assert resp.status_code == 200, resp.content[:300]
            return resp.json()["env"]

        return in_mode(mode, call)

    def http(self, base: str, user: str, *, token: bool = True) -> Callable[[], Any]:
        import requests

        session = requests.Session()
        url = base + URL
        body = json.dumps({"user": user, "app": APP}).encode()
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {self.runner_token}"
        expected = 200 if token else 401

        def call() -> Any:
            resp = session.post(url, data=body, headers=headers)
            assert resp.status_code == expected, (resp.status_code, resp.content[:300])
            return resp.json().get("env")

        return call

    def start_server(self, database_url: str) -> Server:
        server = Server(database_url)
        self.servers.append(server)
        return server

    def pg_sessions(self) -> int:
        """Sessions opened on the bench's database so far (PostgreSQL's statistics)."""
        from django.db import connection

        with connection.cursor() as cur:
            cur.execute("SELECT pg_stat_clear_snapshot()")
            cur.execute("SELECT sessions FROM pg_stat_database WHERE datname = %s", [self.db])
            return int(cur.fetchone()[0])

    # --- SQL -------------------------------------------------------------------------------

    @staticmethod
    def statements(call: Callable[[], Any]) -> list[str]:
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        call()  # warm: provider definitions cached, as in steady state
        with CaptureQueriesContext(connection) as ctx:
            call()
        return [q["sql"] for q in ctx.captured_queries]


# --- profiling -------------------------------------------------------------------------------

# The service's own logic, part by part (module, function, label): what is neither
# building nor running the SQL statements.
LOGIC = [
    ("apps_registry/serialization.py", "requirements_from_json", "requirements_from_json (x2)"),
    ("integrations/providers/registry.py", "catalogue", "registry.catalogue"),
    (
        "integrations/providers/registry.py",
        "connectable_providers",
        "registry.connectable_providers",
    ),
    ("apps_registry/selectors.py", "grant_of", "grant_of (per connection)"),
    ("apps_registry/readiness.py", "assess_readiness", "assess_readiness"),
    ("apps_registry/run_env.py", "_chosen_connections", "_chosen_connections"),
    (
        "integrations/connections/credentials.py",
        "connection_narrowed_credentials",
        "credentials.connection_narrowed_credentials (1 decrypt)",
    ),
    ("integrations/secrets.py", "secret_value", "secrets.secret_value (x2, 1 decrypt each)"),
    ("apps_registry/run_env.py", "_oauth_env", "_oauth_env (JSON of the credentials)"),
]


def profile(call: Callable[[], Any], runs: int) -> list[str]:
    """Where one call's time goes, from cProfile's cumulative times."""
    import cProfile
    import pstats

    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(runs):
        call()
    profiler.disable()
    raw: dict[Any, Any] = pstats.Stats(profiler).stats  # type: ignore[attr-defined]

    def cumulative(suffix: str, name: str) -> float:
        return sum(
            ct
            for (file, _, func), (_, _, _, ct, _) in raw.items()
            if func == name and file.endswith(suffix)
        )

    total = max(ct for (_, _, _, ct, _) in raw.values())  # the outermost frame
    wire = cumulative("django/db/backends/utils.py", "execute")
    decrypt = cumulative("integrations/core/crypto.py", "decrypt")
    parts = [(label, cumulative(suffix, name)) for suffix, name, label in LOGIC]
    logic = sum(t for _, t in parts)
    statements = [
        ("    run_target: the app and its version", cumulative("run_env.py", "run_target")),
        (
            "    _user_and_connections: the connections with the user",
            cumulative("run_env.py", "_user_and_connections"),
        ),
        ("    the secrets (run_rows.secrets_of)", cumulative("run_rows.py", "secrets_of")),
        ("    audit_record: the INSERT", cumulative("integrations/audit.py", "audit_record")),
    ]
    sql = sum(t for _, t in statements)

    def row(label: str, seconds: float) -> str:
        return f"  {label:<62} {seconds / runs * 1000:>7.3f} {seconds / total:>6.1%}"

    lines = [
        f"cProfile, {runs} calls of run_target + run_environment_build, "
        f"{total / runs * 1000:.3f} ms per call under the profiler (which inflates Python "
        "against waiting on PostgreSQL)",
        f"  {'':<62} {'ms/call':>7} {'share':>6}",
        row("the 4 statements, composed, run, rows to models", sql),
        row("  of which sent and awaited (psycopg, PostgreSQL)", wire),
        "  each statement, from the call to the model instances:",
        *(row(label, t) for label, t in statements),
        row("the service's own logic", logic),
        *(row("  " + label, t) for label, t in parts),
        row("  (of the above: Fernet decryption, 3 values)", decrypt),
        row("the rest (the call, readiness's inputs, the env)", total - sql - logic),
        "  top functions by own time (tottime):",
    ]
    by_own = sorted(raw.items(), key=lambda item: item[1][2], reverse=True)[:12]
    for (file, line, func), (_, calls, tt, _, _) in by_own:
        where = file.replace(str(ROOT) + "/", "").split("site-packages/")[-1]
        lines.append(
            f"    {tt / runs * 1000:>7.3f} ms {tt / total:>6.1%}  {calls / runs:>5.1f}x  "
            f"{func} ({where}:{line})"
        )
    return lines


# --- reporting -------------------------------------------------------------------------------


def machine_facts() -> list[str]:
    import cryptography
    import django
    from django.conf import settings

    from bench._machine import cpu_and_load, postgres

    version, pg = postgres("synchronous_commit", "shared_buffers")
    db = settings.DATABASES["default"]
    return [
        *cpu_and_load(),
        f"{version}, on 127.0.0.1 over TCP; synchronous_commit={pg['synchronous_commit']}, "
        f"shared_buffers={pg['shared_buffers']}",
        f"Python {platform.python_version()}, Django {django.get_version()}, cryptography "
        f"{cryptography.__version__}; settings {os.environ['DJANGO_SETTINGS_MODULE']}, "
        f"SANDBOX_ENABLED={settings.SANDBOX_ENABLED}, CONN_MAX_AGE={db.get('CONN_MAX_AGE', 0)}, "
        f"INTEGRATIONS_PROVIDER_CACHE_SECONDS={settings.INTEGRATIONS_PROVIDER_CACHE_SECONDS:g}",
    ]


def describe(sql: str) -> str:
    """A statement's gist, without values: ``SELECT integrations_connection``."""
    import re

    verb = sql.split()[0].upper()
    tables = re.findall(r'(?:FROM|INTO|UPDATE|JOIN) "(\w+)"', sql)
    seen = list(dict.fromkeys(tables))
    return f"{verb} {'+'.join(seen)}" if seen else verb


def main() -> None:
    parser = argparse.ArgumentParser(
        description="The run environment per call: in-process, over HTTP, and the floor."
    )
    parser.add_argument("--iterations", type=int, default=2000, help="timed calls per path")
    parser.add_argument("--block", type=int, default=100, help="calls per path per round")
    parser.add_argument("--warmup", type=int, default=200, help="untimed calls per path first")
    parser.add_argument(
        "--scaling-iterations", type=int, default=500, help="timed calls at 1/10/100 connections"
    )
    parser.add_argument("--connections", default="1,10,100", help="the user's connections")
    parser.add_argument("--users", type=int, default=1000, help="other accounts in auth_user")
    parser.add_argument("--profile", action="store_true", help="profile even if on target")
    parser.add_argument("--profile-runs", type=int, default=2000)
    parser.add_argument(
        "--wait-idle",
        type=float,
        default=60.0,
        help="before timing, wait up to this many seconds for a quiet machine (60)",
    )
    parser.add_argument("--db-name", default="bench_runenv")
    parser.add_argument(
        "--no-http",
        action="store_true",
        help="in-process paths only (no servers: a shared PostgreSQL may be out of sessions)",
    )
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings.test"
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    if args.serve:
        serve()
        return

    bench = Bench(args)
    os.environ["DATABASE_URL"] = bench.database_url
    out: list[str] = []

    def emit(line: str = "") -> None:
        print(line, flush=True)
        out.append(line)

    bench.create_database()
    try:
        bench.setup_django()
        bench.make_data()
        bench.set_connections(1)
        user_id, email = str(bench.user.pk), bench.user.email

        emit("== machine")
        for line in machine_facts():
            emit(line)
        emit()
        emit(
            f"app {APP}: {len(CAPABILITIES)} Google capabilities ({', '.join(CAPABILITIES)}) "
            f"and {len(SECRETS)} secrets. The user has 1 Google connection granting them "
            "(token expiring in 1 h, used now) and both secrets; the runner names the user "
            f"by id unless said; {args.users:,} other accounts in auth_user."
        )

        # Every path builds the same env before anything is timed.
        service = bench.service(user_id)
        reference = service()
        assert sorted(reference) == sorted(
            [
                "GOOGLE_OAUTH_ACCESS_TOKEN",
                "GOOGLE_OAUTH_TOKEN_EXPIRES_AT",
                "GOOGLE_OAUTH_CREDENTIALS",
                *SECRETS,
            ]
        ), sorted(reference)
        floor = bench.floor(user_id, runner_token=False, audit=True)
        t_service = Timed("in-process: run_target + run_environment_build (per_app)", service)
        t_declared = Timed(
            "in-process, declared authorization (no subqueries)",
            bench.service(user_id, mode="declared"),
        )
        t_floor = Timed("floor: the same statements (3 reads + audit INSERT), decrypt, env", floor)
        t_reads = Timed(
            "floor, reads only (runner token + app + conns + secrets)",
            bench.floor(user_id, runner_token=True, audit=False),
        )
        t_sql = Timed(
            "floor in SQL, no ORM (the same 4 statements), decrypt, env",
            bench.floor_sql(bench.user.pk),
        )
        t_sql_app = Timed(
            "floor in SQL, with the per_app allowance subqueries",
            bench.floor_sql(bench.user.pk, per_app=True),
        )
        t_view = Timed("API view in-process (Django test client, per_app)", bench.view(user_id))
        t_view_declared = Timed(
            "API view in-process, declared", bench.view(user_id, mode="declared")
        )
        paths = [
            t_service,
            t_declared,
            t_floor,
            t_reads,
            t_sql,
            t_sql_app,
            Timed("in-process, user by email", bench.service(email)),
            Timed("floor, user by email", bench.floor(email, runner_token=False, audit=True)),
            t_view,
            t_view_declared,
        ]
        servers: dict[str, Server] = {}
        http: tuple[Timed, Timed, Timed] | None = None
        if not args.no_http:
            # The product's CONN_MAX_AGE (config/settings/base.py), and 0 for comparison.
            persistent = bench.start_server(bench.database_url + "?conn_max_age=60")
            product = bench.start_server(bench.database_url)
            http = (
                Timed(
                    "HTTP, a new DB session per request (CONN_MAX_AGE=0)",
                    bench.http(product.url, user_id),
                ),
                Timed(
                    "HTTP, product settings (CONN_MAX_AGE=60)", bench.http(persistent.url, user_id)
                ),
                Timed(
                    "HTTP baseline: 401 (no token), no SQL",
                    bench.http(persistent.url, "", token=False),
                ),
            )
            paths += http
            servers = {http[0].name: product, http[1].name: persistent, http[2].name: persistent}
        sessions: dict[str, float] = {}
        for path in paths:
            if path.name not in servers:
                assert path.call() == reference, path.name
                path.queries = len(Bench.statements(path.call))
                continue
            if http is None or path is not http[2]:
                assert path.call() == reference, path.name
            server = servers[path.name]
            before, pg_before = server.counts(), bench.pg_sessions()
            for _ in range(100):
                path.call()
            time.sleep(1.5)  # backends report their statistics within a second
            after, pg_after = server.counts(), bench.pg_sessions()
            path.queries = (after["statements"] - before["statements"]) / (
                after["requests"] - before["requests"]
            )
            sessions[path.name] = (pg_after - pg_before) / 100

        bench.freshen()
        waited, busy = wait_for_quiet(args.wait_idle)
        emit()
        emit(
            f"(waited {waited:.0f} s for a quiet machine: {busy:.2f} cores busy in the last "
            "second before timing)"
        )
        ours = [os.getpid(), *(s.proc.pid for s in bench.servers)]
        cpu_before = sum(proc_cpu(pid) for pid in ours), machine_busy()
        start = time.monotonic()
        run_interleaved(paths, args.iterations, args.block, args.warmup)
        elapsed = time.monotonic() - start
        cpu_after = sum(proc_cpu(pid) for pid in ours), machine_busy()

        emit()
        emit(
            f"== per call: {args.iterations:,} timed calls per path after {args.warmup} "
            f"untimed, interleaved in blocks of {args.block} ({elapsed:.0f} s)"
        )
        header = (
            f"{'path':<66} {'SQL':>4} {'p50 ms':>7} {'p99 ms':>7} {'p50/floor':>9} "
            f"{'p99/floor':>9} {'CPU ms':>7}"
        )
        emit(header)
        emit("-" * len(header))
        for path in paths:
            sql = f"{path.queries:g}" if path.queries is not None else "?"
            emit(
                f"{path.name:<66} {sql:>4} {path.p50:>7.3f} {path.p99:>7.3f} "
                f"{path.p50 / t_floor.p50:>8.2f}x {path.p99 / t_floor.p99:>8.2f}x "
                f"{path.cpu50:>7.3f}"
            )
        ratio50 = t_service.p50 / t_floor.p50
        ratio99 = t_service.p99 / t_floor.p99
        emit(
            f"in-process / floor (the same statements): p50 {ratio50:.2f}x, p99 {ratio99:.2f}x; "
            f"against the reads-only floor: p50 {t_service.p50 / t_reads.p50:.2f}x, "
            f"p99 {t_service.p99 / t_reads.p99:.2f}x; against the floor in SQL (no ORM): "
            f"p50 {t_service.p50 / t_sql.p50:.2f}x, p99 {t_service.p99 / t_sql.p99:.2f}x"
        )
        emit(
            "against the floor in SQL of the same statements, p50 (p99): per_app "
            f"{t_service.p50 / t_sql_app.p50:.2f}x ({t_service.p99 / t_sql_app.p99:.2f}x), "
            f"declared {t_declared.p50 / t_sql.p50:.2f}x ({t_declared.p99 / t_sql.p99:.2f}x); "
            f"the API view: per_app {t_view.p50 / t_sql_app.p50:.2f}x, declared "
            f"{t_view_declared.p50 / t_sql.p50:.2f}x (one statement more: the runner token)"
        )
        emit(
            "CPU of the bench's thread per call (p50), against the floor in SQL of the same "
            f"statements: per_app {t_service.cpu50 / t_sql_app.cpu50:.2f}x, declared "
            f"{t_declared.cpu50 / t_sql.cpu50:.2f}x; the API view: per_app "
            f"{t_view.cpu50 / t_sql_app.cpu50:.2f}x, declared "
            f"{t_view_declared.cpu50 / t_sql.cpu50:.2f}x"
        )
        orm = t_floor.p50 - t_sql.p50
        logic = t_service.p50 - t_floor.p50
        emit(
            f"of the in-process p50 ({t_service.p50:.3f} ms): the SQL floor (round trips, "
            f"decryption, env) {t_sql.p50:.3f} ms ({t_sql.p50 / t_service.p50:.0%}); the ORM "
            f"building the same statements and models (floor - SQL floor) {orm:.3f} ms "
            f"({orm / t_service.p50:.0%}); the service's own logic (in-process - floor) "
            f"{logic:.3f} ms ({logic / t_service.p50:.0%})"
        )
        if http is not None:
            t_product, t_persistent, t_baseline = http
            emit(
                "HTTP: SQL counted in the server (Django's statements; not the connection "
                "set-up nor CONN_HEALTH_CHECKS' SELECT 1 on a reused connection); new "
                "PostgreSQL sessions per call: "
                + ", ".join(f"{name.split(',')[1].strip()} {n:.2f}" for name, n in sessions.items())
            )
            emit(
                f"HTTP above its 401 baseline (persistent connections): p50 "
                f"{t_persistent.p50 - t_baseline.p50:.3f} ms; a new PostgreSQL session per "
                f"request (CONN_MAX_AGE=0) adds p50 {t_product.p50 - t_persistent.p50:.3f} ms"
            )
        busy_cores = (cpu_after[1] - cpu_before[1]) / elapsed
        own_cores = (cpu_after[0] - cpu_before[0]) / elapsed
        emit(
            f"machine busy {busy_cores:.2f} cores on average while timing, of which the "
            f"bench's client and servers {own_cores:.2f} (the rest: PostgreSQL, and anything "
            "else running)"
        )

        emit()
        emit("== SQL per call")
        for label, call in [
            ("in-process (service)", service),
            ("API view (what HTTP runs)", t_view.call),
            ("floor", floor),
            ("floor in SQL", t_sql.call),
        ]:
            sqls = Bench.statements(call)
            emit(f"{label}: {len(sqls)}: " + "; ".join(describe(s) for s in sqls))

        emit()
        emit("== the user's connections: SQL per call, and p50 (user by id)")
        header = (
            f"{'connections':>11} {'service SQL':>11} {'view SQL':>8} {'floor SQL':>9} "
            f"{'service ms':>10} {'floor ms':>8} {'ratio':>6} {'SQL floor ms':>12} "
            f"{'ratio':>6} {'busy':>5}"
        )
        emit(header)
        emit("-" * len(header))
        scaling = []
        for total in [int(n) for n in args.connections.split(",")]:
            bench.set_connections(total)
            counts = [len(Bench.statements(c)) for c in (service, t_view.call, floor)]
            timed = [Timed("service", service), Timed("floor", floor), Timed("sql", t_sql.call)]
            wait_for_quiet(args.wait_idle / 3)
            busy_before, begun = machine_busy(), time.monotonic()
            run_interleaved(timed, args.scaling_iterations, args.block, 50)
            busy = (machine_busy() - busy_before) / (time.monotonic() - begun)
            scaling.append((total, counts))
            emit(
                f"{total:>11} {counts[0]:>11} {counts[1]:>8} {counts[2]:>9} "
                f"{timed[0].p50:>10.3f} {timed[1].p50:>8.3f} "
                f"{timed[0].p50 / timed[1].p50:>5.2f}x {timed[2].p50:>12.3f} "
                f"{timed[0].p50 / timed[2].p50:>5.2f}x {busy:>5.2f}"
            )
        emit(
            "(p50 of each path; ratio: the service's to that floor's; busy: cores the machine "
            "was busy meanwhile, all processes)"
        )
        bench.set_connections(1)

        emit()
        most = max(counts[1] for _, counts in scaling)
        grows = len({counts[1] for _, counts in scaling}) > 1
        emit(
            f"target: at most {TARGET_RATIO}x the floor: p50 {ratio50:.2f}x, p99 {ratio99:.2f}x: "
            + ("MET" if max(ratio50, ratio99) <= TARGET_RATIO else "NOT MET")
        )
        emit(
            f"target: at most {TARGET_QUERIES} queries per call whatever the connections: "
            f"at most {most} (API view), "
            + ("growing with the connections: " if grows else "constant: ")
            + ("MET" if most <= TARGET_QUERIES and not grows else "NOT MET")
        )

        sql_ratios = [t_service.p50 / t_sql_app.p50, t_declared.p50 / t_sql.p50]
        emit(
            f"target: in-process at most {TARGET_SQL_RATIO}x the floor in SQL (issue 14): p50 "
            f"per_app {sql_ratios[0]:.2f}x, declared {sql_ratios[1]:.2f}x: "
            + ("MET" if max(sql_ratios) <= TARGET_SQL_RATIO else "NOT MET")
        )

        sql_ratio = max(sql_ratios)
        if args.profile or max(ratio50, ratio99) > TARGET_RATIO or sql_ratio > TARGET_SQL_RATIO:
            emit()
            emit("== where the time goes (the user has 1 connection)")
            bench.freshen()
            for line in profile(service, args.profile_runs):
                emit(line)
    finally:
        bench.cleanup()
        bench.drop_database()
        print(f"\n(database {bench.db} dropped)")


if __name__ == "__main__":
    main()
