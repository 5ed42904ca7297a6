"""Prometheus metrics (``/metrics``), in the text format of prometheus_client.

Counters and histograms live in Redis (``REDIS_URL``, keys under ``METRICS_KEY_PREFIX``):
every gunicorn worker and every Celery worker process, on every machine, adds to the
same hash with one pipelined round trip, and any web process answers a scrape with the
totals. prometheus_client's own multi-process mode would add up only the processes of
one machine that share a ``PROMETHEUS_MULTIPROC_DIR``, so each machine (workers
included, which serve no HTTP) would need a scrape target of its own. Without Redis
(development's filesystem broker) the counts are this process's only.

Gauges (the due backlog, the oldest due connection's lag, dead grants) are read from
the database at scrape time, so they are right whatever process asks.

Labels never carry user data: provider ids (built in or staff's), outcomes and HTTP
statuses from fixed vocabularies; anything else is counted as ``other``.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from functools import wraps
from typing import Any

import redis
from django.http import HttpRequest, HttpResponseBase
from django.utils import timezone
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from integrations import app_settings, selectors
from integrations.errors import (
    IntegrationError,
    ProviderMisconfiguredError,
    ProviderUnavailableError,
    ReauthorizationRequiredError,
)

logger = logging.getLogger(__name__)

# Refresh outcomes: the class of the answer, never the provider's own words.
REFRESH_OUTCOMES = ("ok", "needs_reconnect", "unavailable", "misconfigured", "refused")
# Seconds: a run environment is a few statements, a refresh on the way a provider call.
RUN_ENV_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
WEBHOOK_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# A label value we accept as it is: a short slug (provider ids, outcomes).
_SLUG = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,39}$")
OTHER = "other"

# Metric name → (help, label names); counters end in _total in the exposition.
COUNTERS = {
    "hub_refreshes": ("Token refreshes asked of providers, by outcome.", ("provider", "outcome")),
    "hub_run_environment_answers": ("Run-environment API answers, by HTTP status.", ("status",)),
    "hub_webhook_deliveries": ("Webhook delivery attempts, by outcome.", ("outcome",)),
}
HISTOGRAMS = {
    "hub_run_environment_seconds": ("Run-environment API latency.", RUN_ENV_BUCKETS),
    "hub_webhook_delivery_seconds": ("Webhook delivery latency.", WEBHOOK_BUCKETS),
}


def _label(value: str) -> str:
    value = str(value).lower()
    return value if _SLUG.match(value) else OTHER


# --- the store: Redis, or this process ----------------------------------------------


class _LocalStore:
    """This process's counts (no Redis: development)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._data: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))

    def add(self, increments: Sequence[tuple[str, str, float]]) -> None:
        with self._lock:
            for key, field, amount in increments:
                self._data[key][field] += amount

    def read(self, key: str) -> dict[str, float]:
        with self._lock:
            return dict(self._data.get(key, {}))


class _RedisStore:
    def __init__(self, url: str) -> None:
        # Short timeouts: a count is never worth holding up a refresh or an answer.
        self._client = redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)

    def add(self, increments: Sequence[tuple[str, str, float]]) -> None:
        pipe = self._client.pipeline(transaction=False)
        for key, field, amount in increments:
            pipe.hincrbyfloat(key, field, amount)
        pipe.execute()

    def read(self, key: str) -> dict[str, float]:
        raw: dict[bytes, bytes] = self._client.hgetall(key)  # type: ignore[assignment]
        return {k.decode(): float(v) for k, v in raw.items()}


_stores: dict[str, _LocalStore | _RedisStore] = {}
_stores_lock = threading.Lock()


def _store() -> _LocalStore | _RedisStore:
    url = app_settings.redis_url()
    with _stores_lock:
        if url not in _stores:
            _stores[url] = _RedisStore(url) if url else _LocalStore()
        return _stores[url]


def _key(name: str) -> str:
    return app_settings.metrics_key_prefix() + name


_buffer = threading.local()


@contextmanager
def buffered() -> Iterator[None]:
    """Counts made in this thread inside the block are added up and sent at its end, in
    one round trip (a batch of refreshes pays the store once, not once per refresh).
    Nested blocks send with the outermost. Sent also when the block raises."""
    if getattr(_buffer, "pending", None) is not None:
        yield
        return
    pending: dict[tuple[str, str], float] = {}
    _buffer.pending = pending
    try:
        yield
    finally:
        _buffer.pending = None
        if pending:
            _add([(name, field, amount) for (name, field), amount in pending.items()])


def _add(increments: Sequence[tuple[str, str, float]]) -> None:
    pending: dict[tuple[str, str], float] | None = getattr(_buffer, "pending", None)
    if pending is not None:
        for name, field, amount in increments:
            pending[(name, field)] = pending.get((name, field), 0.0) + amount
        return
    try:
        _store().add([(_key(name), field, amount) for name, field, amount in increments])
    except redis.RedisError as exc:
        logger.warning("metrics not recorded: Redis answered %s", type(exc).__name__)


def _count(name: str, *labels: str) -> tuple[str, str, float]:
    return (name, json.dumps([_label(v) for v in labels]), 1.0)


def _observe(name: str, seconds: float) -> list[tuple[str, str, float]]:
    buckets = HISTOGRAMS[name][1]
    # Stored per bucket (the first that holds it), made cumulative at scrape.
    bucket = next((str(b) for b in buckets if seconds <= b), "+Inf")
    return [(name, "b:" + bucket, 1.0), (name, "sum", max(seconds, 0.0)), (name, "count", 1.0)]


# --- what the code calls ---------------------------------------------------------------


def refresh_outcome(failure: IntegrationError | None) -> str:
    if failure is None:
        return "ok"
    if isinstance(failure, ReauthorizationRequiredError):
        return "needs_reconnect"
    if isinstance(failure, ProviderMisconfiguredError):
        return "misconfigured"
    if isinstance(failure, ProviderUnavailableError):
        return "unavailable"
    return "refused"


def refresh_counted(*, provider: str, failure: IntegrationError | None = None) -> None:
    """One refresh grant asked of ``provider``, answered by success or ``failure``."""
    _add([_count("hub_refreshes", provider, refresh_outcome(failure))])


def run_environment_answered(*, status: int, seconds: float) -> None:
    _add(
        [
            _count("hub_run_environment_answers", str(status)),
            *_observe("hub_run_environment_seconds", seconds),
        ]
    )


def webhook_delivery_counted(*, outcome: str, seconds: float) -> None:
    """One webhook delivery attempt: ``outcome`` a short word ("delivered", "failed",
    "gave_up"...; anything else counts as "other"), ``seconds`` how long it took."""
    _add(
        [
            _count("hub_webhook_deliveries", outcome),
            *_observe("hub_webhook_delivery_seconds", seconds),
        ]
    )


def run_environment_observed(
    view: Callable[..., HttpResponseBase],
) -> Callable[..., HttpResponseBase]:
    """Decorates the run-environment view's ``dispatch``: every answer (401 and the
    error handler's included) is counted by status and timed."""

    @wraps(view)
    def observed(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        started = time.perf_counter()
        response = view(request, *args, **kwargs)
        run_environment_answered(status=response.status_code, seconds=time.perf_counter() - started)
        return response

    return observed


# --- the scrape --------------------------------------------------------------------------


class _HubCollector(Collector):
    def collect(self) -> Iterable[Metric]:
        store = _store()
        for name, (doc, label_names) in COUNTERS.items():
            family = CounterMetricFamily(name, doc, labels=label_names)
            for field, value in sorted(store.read(_key(name)).items()):
                family.add_metric(json.loads(field), value)
            yield family
        for name, (doc, buckets) in HISTOGRAMS.items():
            yield _histogram(name, doc, buckets, store.read(_key(name)))
        yield from _gauges()


def _histogram(
    name: str, doc: str, buckets: Sequence[float], data: dict[str, float]
) -> HistogramMetricFamily:
    cumulative = 0.0
    points = []
    for bound in [*map(str, buckets), "+Inf"]:
        cumulative += data.get("b:" + bound, 0.0)
        points.append((bound, cumulative))
    family = HistogramMetricFamily(name, doc)
    family.add_metric([], points, sum_value=data.get("sum", 0.0))
    return family


def _gauges() -> Iterator[Metric]:
    now = timezone.now()
    backlog = selectors.refresh_backlog(now=now)
    due = GaugeMetricFamily("hub_refresh_due", "Connections due for a refresh now.")
    due.add_metric([], backlog.due)
    yield due
    lag = GaugeMetricFamily(
        "hub_refresh_oldest_due_lag_seconds",
        "How long the oldest due connection has been due (0: none is).",
    )
    lag.add_metric([], backlog.oldest_lag_seconds)
    yield lag
    dead = GaugeMetricFamily(
        "hub_connections_needs_reconnect",
        "Connections whose grant is dead (needs_reconnect), by provider.",
        labels=["provider"],
    )
    counts: dict[str, int] = defaultdict(int)
    for provider, count in selectors.dead_grants_by_provider():
        counts[_label(provider)] += count
    for provider, count in sorted(counts.items()):
        dead.add_metric([provider], count)
    yield dead


def metrics_text() -> tuple[bytes, str]:
    """The exposition and its content type."""
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_HubCollector())
    return generate_latest(registry), CONTENT_TYPE_LATEST
