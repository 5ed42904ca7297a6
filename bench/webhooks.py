"""How fast webhooks are delivered from the outbox, and that none is lost.

Run from the repository root (PostgreSQL on 127.0.0.1:5432, trust auth, user
``postgres``; Redis on 127.0.0.1:6379)::

    python bench/webhooks.py [--events 10000] [--concurrency 50] [--quick]

It creates its own database (``bench_webhooks``, dropped at the end), migrates it,
starts a local receiver (a threaded HTTP server in this process) that answers after
``--latency`` (100 ms), registers it as an endpoint, then per scenario:

1. emits N events (``event_emit``, 500 per transaction, as services do: the event rows
   and their deliveries commit together, and their tasks are enqueued after commit);
2. starts a real Celery worker (``--pool threads --concurrency C``) and beat (the
   webhook sweep every 0.5 s) on Redis, with ``INTEGRATIONS_WEBHOOK_CONCURRENCY=C``,
   and waits until no delivery is pending;
3. counts at the receiver the distinct ``webhook-id`` values answered 2xx (events lost
   = N - that, must be 0) and the repeats, and reads the attempts' log.

Scenarios: the receiver answering 200 always, then 500 to 30 % of requests (drawn per
request), with the retry schedule compressed by ``INTEGRATIONS_WEBHOOK_RETRY_SCALE``
(``--retry-scale``, 0.001: 5 s becomes 5 ms, 8 h becomes 29 s).

Printed: requests per second (from the first attempt to the last), deliveries (events
delivered) per second, the limit ``C / latency`` (the most C requests in flight at once
can make), the ratio of requests per second to it, lost events and repeats.
"""

from __future__ import annotations

import argparse
import http.server
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._machine import cpu_and_load, postgres  # noqa: E402

PG = "postgres://postgres@127.0.0.1:5432"
REDIS = "redis://127.0.0.1:6379"


class Receiver:
    """Answers every POST after ``latency`` seconds: 500 to ``fail_rate`` of them, else
    200; records which webhook-ids it answered 2xx, and how often."""

    def __init__(self, latency: float) -> None:
        self.latency = latency
        self.fail_rate = 0.0
        self.lock = threading.Lock()
        self.ok: dict[str, int] = {}
        self.requests = 0
        self.rand = random.Random(12)
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                time.sleep(receiver.latency)
                with receiver.lock:
                    receiver.requests += 1
                    failed = receiver.rand.random() < receiver.fail_rate
                    if not failed:
                        msg = self.headers["webhook-id"]
                        receiver.ok[msg] = receiver.ok.get(msg, 0) + 1
                self.send_response(500 if failed else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.request_queue_size = 1024
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"

    def reset(self, fail_rate: float) -> None:
        with self.lock:
            self.fail_rate = fail_rate
            self.ok.clear()
            self.requests = 0


@dataclass
class Result:
    name: str
    events: int
    requests: int
    delivered: int
    seconds: float
    limit: float
    lost: int
    repeats: int
    emit_seconds: float
    drain_seconds: float
    max_attempts: int

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def deliveries_per_s(self) -> float:
        return self.delivered / self.seconds if self.seconds else 0.0


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="bench_webhooks_"))
        self.procs: list[subprocess.Popen[bytes]] = []

    def create_database(self) -> None:
        import psycopg

        with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.args.db_name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{self.args.db_name}"')

    def drop_database(self) -> None:
        import psycopg
        from django.db import connections

        connections.close_all()
        with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.args.db_name}" WITH (FORCE)')

    def setup(self) -> None:
        self.env = {
            "DJANGO_SETTINGS_MODULE": "config.settings.test",
            "DATABASE_URL": f"{PG}/{self.args.db_name}",
            "REDIS_URL": f"{REDIS}/{self.args.redis_db}",
            "CELERY_QUEUE": self.args.queue,
            "LOG_LEVEL": "WARNING",
            "INTEGRATIONS_WEBHOOK_CONCURRENCY": str(self.args.concurrency),
            "INTEGRATIONS_WEBHOOK_RETRY_SCALE": str(self.args.retry_scale),
            "INTEGRATIONS_WEBHOOK_SWEEP_SECONDS": "0.5",
            "INTEGRATIONS_SWEEP_SECONDS": "3600",
        }
        os.environ.update(self.env)
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0, interactive=False)
        import redis

        self.redis = redis.Redis.from_url(self.env["REDIS_URL"])
        self.redis.delete(self.args.queue)  # tasks of an earlier run, if one was cut short

    def start_processes(self) -> None:
        celery = str(Path(sys.executable).parent / "celery")
        env = {**os.environ, **self.env, "PYTHONPATH": str(ROOT)}
        c = str(self.args.concurrency)
        log = open(self.tmp / "worker.log", "ab")  # noqa: SIM115 (closed with the process)
        self.procs.append(
            subprocess.Popen(
                [celery, "-A", "config", "worker", "--pool", "threads", "--concurrency", c,
                 "-Q", self.args.queue, "--without-gossip", "--without-mingle", "-l", "warning"],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
            )
        )  # fmt: skip
        self.procs.append(
            subprocess.Popen(
                [celery, "-A", "config", "beat", "-l", "warning", "-s",
                 str(self.tmp / "beat-schedule"), "--pidfile", str(self.tmp / "beat.pid")],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
            )
        )  # fmt: skip

    def stop_processes(self) -> None:
        for proc in self.procs:
            proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.procs.clear()

    def run(self, name: str, receiver: Receiver, fail_rate: float) -> Result:
        from django.db import transaction
        from django.db.models import Max, Min

        from config.celery import app
        from integrations.events.emit import event_emit
        from integrations.models import Event, WebhookAttempt, WebhookDelivery

        app.conf.task_default_queue = self.args.queue
        Event.objects.all().delete()
        receiver.reset(fail_rate)
        n = self.args.events
        started = time.monotonic()
        for first in range(0, n, 500):
            with transaction.atomic():
                for i in range(first, min(first + 500, n)):
                    event_emit(
                        type="connection.refresh_failed",
                        data={"connection_id": i, "user_id": i % 100, "provider": "google",
                              "status": "refresh_failing", "error_code": "http_503"},
                    )  # fmt: skip
        emit_seconds = time.monotonic() - started
        drain_started = time.monotonic()
        self.start_processes()
        try:
            deadline = time.monotonic() + self.args.timeout
            while WebhookDelivery.objects.filter(status="pending").exists():
                if time.monotonic() > deadline:
                    raise SystemExit(f"{name}: deliveries still pending after the timeout")
                if any(p.poll() is not None for p in self.procs):
                    raise SystemExit(f"{name}: the worker or beat exited ({self.tmp})")
                time.sleep(0.5)
            drain_seconds = time.monotonic() - drain_started
        finally:
            self.stop_processes()
        span = WebhookAttempt.objects.aggregate(first=Min("at"), last=Max("at"))
        seconds = (span["last"] - span["first"]).total_seconds()
        with receiver.lock:
            ok = dict(receiver.ok)
            requests = receiver.requests
        uids = set(Event.objects.values_list("uid", flat=True))
        return Result(
            name=name,
            events=n,
            requests=requests,
            delivered=WebhookDelivery.objects.filter(status="succeeded").count(),
            seconds=seconds,
            limit=self.args.concurrency / self.args.latency,
            lost=len(uids - set(ok)),
            repeats=sum(ok.values()) - len(ok),
            emit_seconds=emit_seconds,
            drain_seconds=drain_seconds,
            max_attempts=WebhookDelivery.objects.aggregate(m=Max("attempts"))["m"] or 0,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--latency", type=float, default=0.1, help="receiver, seconds")
    parser.add_argument("--fail-rate", type=float, default=0.3)
    parser.add_argument("--retry-scale", type=float, default=0.001)
    parser.add_argument("--quick", action="store_true", help="1,000 events")
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--db-name", default="bench_webhooks")
    parser.add_argument("--redis-db", type=int, default=1)
    parser.add_argument("--queue", default="bench_webhooks")
    args = parser.parse_args()
    if args.quick:
        args.events = 1000
    bench = Bench(args)
    bench.create_database()
    lines: list[str] = []
    try:
        bench.setup()
        version, pg = postgres("max_connections", "synchronous_commit")
        lines += [*cpu_and_load(), f"{version}; {pg}"]
        from integrations.events.endpoints import webhook_endpoint_create

        receiver = Receiver(args.latency)
        webhook_endpoint_create(url=receiver.url)
        results = [
            bench.run("receiver answers 200", receiver, 0.0),
            bench.run(f"receiver answers 500 to {args.fail_rate:.0%}", receiver, args.fail_rate),
        ]
    finally:
        bench.stop_processes()
        bench.drop_database()
    lines += [
        f"events per scenario: {args.events:,}; receiver latency {args.latency * 1000:.0f} ms; "
        f"INTEGRATIONS_WEBHOOK_CONCURRENCY={args.concurrency} (worker --pool threads "
        f"--concurrency {args.concurrency}); limit = {args.concurrency} / "
        f"{args.latency:g} s = {args.concurrency / args.latency:,.0f} requests/s; "
        f"retry schedule x{args.retry_scale:g}",
        "",
        "| scenario | requests | requests/s | ratio to limit | deliveries/s | lost | "
        "repeats | most attempts | emit s | drain s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        lines.append(
            f"| {r.name} | {r.requests:,} | {r.requests_per_s:,.0f} | "
            f"{r.requests_per_s / r.limit:.2f} | {r.deliveries_per_s:,.0f} | {r.lost} | "
            f"{r.repeats} | {r.max_attempts} | {r.emit_seconds:.1f} | {r.drain_seconds:.1f} |"
        )
    print("\n".join(lines))
    if any(r.lost for r in results):
        raise SystemExit("events were lost")


if __name__ == "__main__":
    main()
