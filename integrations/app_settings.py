"""Every integrations setting is read here, at call time (so tests may override them).
Which provider configuration applies is the registry's (``integrations.providers.registry``)."""

from __future__ import annotations

from django.conf import settings


def site_url() -> str:
    return str(settings.SITE_URL).rstrip("/")


def absolute(url: str) -> str:
    """Endpoints may be given as paths on this site (the sandbox): make them absolute."""
    return site_url() + url if url.startswith("/") else url


def token_keys() -> list[str]:
    return list(settings.INTEGRATIONS_TOKEN_KEYS)


def http_timeout() -> tuple[float, float]:
    connect, read = settings.INTEGRATIONS_HTTP_TIMEOUT
    return (float(connect), float(read))


def refresh_margin(provider_id: str) -> int:
    """Seconds a token handed out for ``provider_id`` stays valid at least."""
    margins = settings.INTEGRATIONS_REFRESH_MARGIN_SECONDS
    return int(margins.get(provider_id, margins["default"]))


def keepalive_interval(provider_id: str) -> int:
    """Seconds between keep-alive refreshes of an idle connection of ``provider_id``."""
    intervals = settings.INTEGRATIONS_KEEPALIVE_SECONDS
    return int(intervals.get(provider_id, intervals["default"]))


def verify_interval() -> int:
    return int(settings.INTEGRATIONS_VERIFY_SECONDS)


def refresh_max_attempts_per_day() -> int:
    return int(settings.INTEGRATIONS_REFRESH_MAX_ATTEMPTS_PER_DAY)


def sweep_batch_size() -> int:
    """Connections claimed by one claim query of the sweep."""
    return int(settings.INTEGRATIONS_SWEEP_BATCH_SIZE)


def sweep_seconds() -> float:
    """Beat's interval between sweeps, and the longest one sweep keeps claiming."""
    return float(settings.INTEGRATIONS_SWEEP_SECONDS)


def sweep_max_pending() -> int:
    """Refresh messages waiting in the broker's queue above which the sweep stops
    publishing until the workers have taken some (backpressure)."""
    return int(settings.INTEGRATIONS_SWEEP_MAX_PENDING)


def refresh_task_batch() -> int:
    """Connection ids per refresh task."""
    return max(int(settings.INTEGRATIONS_REFRESH_TASK_BATCH), 1)


def refresh_concurrency() -> int:
    """Refresh requests in flight at once per worker process (the sweep's batches)."""
    return max(int(settings.INTEGRATIONS_REFRESH_CONCURRENCY), 1)


def service_account_loopback_http() -> bool:
    """Whether a service-account key's ``token_uri`` may be http:// to a loopback host
    (tests run a token endpoint on 127.0.0.1). Off unless set: in production it would
    let a user make this server POST to its own loopback services."""
    return bool(settings.INTEGRATIONS_SERVICE_ACCOUNT_LOOPBACK_HTTP)


def allow_private_urls() -> bool:
    """Whether the server may fetch URLs that lead to loopback, private, link-local or
    reserved addresses (``integrations.providers.client.PublicAddressAdapter``). On in
    development and tests (the sandbox and the fakes listen on 127.0.0.1), off in
    production unless staff's providers live on their private network."""
    return bool(settings.INTEGRATIONS_ALLOW_PRIVATE_URLS)


GOOGLE_USER_CLIENT_MODES = ("off", "allowed", "required")


def google_user_clients() -> str:
    """Whether users may bring their own Google OAuth client: ``off``, ``allowed`` or
    ``required``. Checked by ``checks.google_user_clients_check``."""
    return str(settings.INTEGRATIONS_GOOGLE_USER_CLIENTS)


def webhook_concurrency() -> int:
    """Webhook requests in flight at once, per worker process."""
    return max(1, int(settings.INTEGRATIONS_WEBHOOK_CONCURRENCY))


def webhook_retry_scale() -> float:
    """The retry schedule's delays are multiplied by this (1 but in the bench)."""
    return float(settings.INTEGRATIONS_WEBHOOK_RETRY_SCALE)


def webhook_disable_after_seconds() -> float:
    return float(settings.INTEGRATIONS_WEBHOOK_DISABLE_AFTER_DAYS) * 86400


def webhook_timeout() -> tuple[float, float]:
    connect, read = settings.INTEGRATIONS_WEBHOOK_TIMEOUT
    return (float(connect), float(read))


APP_AUTHORIZATION_MODES = ("per_app", "declared")


def app_authorization() -> str:
    """``per_app``: an app gets only what its user allowed it; ``declared``: everything
    its manifest declares that the user has (running an app is the consent). Checked
    by ``checks.app_authorization_check``."""
    return str(settings.INTEGRATIONS_APP_AUTHORIZATION)


def per_app_authorization() -> bool:
    return app_authorization() != "declared"


def forced_refresh_interval() -> int:
    """Seconds between two refreshes of one connection forced through the connections
    API (``INTEGRATIONS_FORCED_REFRESH_INTERVAL``)."""
    return int(settings.INTEGRATIONS_FORCED_REFRESH_INTERVAL)


def redis_url() -> str:
    """The Redis of Celery's broker and of the shared cache ("" : none, development)."""
    return str(settings.REDIS_URL)


def beat_max_age() -> int:
    """Seconds since the refresh sweep last ran past which ``/readyz`` fails (0: not
    checked)."""
    return int(settings.INTEGRATIONS_BEAT_MAX_AGE_SECONDS)


def metrics_token() -> str:
    return str(settings.METRICS_TOKEN)


def metrics_allowed_ips() -> list[str]:
    return list(settings.METRICS_ALLOWED_IPS)


def metrics_key_prefix() -> str:
    return str(settings.METRICS_KEY_PREFIX)
