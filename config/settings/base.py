"""Settings shared by every environment, read through django-environ.

Every setting a deployer may change is listed in README.md ("Settings") and in
``.env.example``. ``local`` and ``test`` add development conveniences;
``production`` only hardens.
"""

from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured
from django.utils.csp import CSP

from config.log import TEXT_FORMAT

BASE_DIR = Path(__file__).resolve().parent.parent.parent
# The site-wide templates/ and static/: at the top of a checkout, inside config/ once
# installed from the wheel (pyproject.toml: force-include).
SHARED_DIR = (
    BASE_DIR if (BASE_DIR / "templates").is_dir() else Path(__file__).resolve().parent.parent
)

env = environ.Env()
if (BASE_DIR / ".env").is_file():
    environ.Env.read_env(BASE_DIR / ".env")

SECRET_KEY = env("DJANGO_SECRET_KEY", default="")
DEBUG = env.bool("DJANGO_DEBUG", default=False)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])
# The public base URL of this site, e.g. https://hub.example.com. Used where no
# request is at hand (emails sent by workers) and to print the OAuth redirect URIs.
SITE_URL = env("SITE_URL", default="http://127.0.0.1:8000").rstrip("/")


def sqlite_tuned(database: dict) -> dict:
    """SQLite (the embedded default) made fit for several processes at once: the web
    server, a worker of 8 threads and beat all write to one file, and so does the
    sandbox, whose token endpoint is a view of the same site.

    - ``journal_mode=WAL``: readers never block the writer, nor the writer readers.
      (``synchronous=NORMAL`` is WAL's usual companion: a commit is not flushed to disk
      on its own, at the price of the last commits on a power cut; a development
      database.)
    - ``transaction_mode: IMMEDIATE``: every ``atomic`` takes the write lock when it
      begins, so writers queue (for up to ``timeout`` seconds) instead of failing:
      with Django's default (DEFERRED), a transaction that reads and then writes fails
      at once with "database is locked" when another wrote meanwhile (SQLite cannot
      wait there without risking a deadlock).

    The price of IMMEDIATE is that a transaction holds the lock of the whole database
    while it lasts, so none may wait on something outside it: the refresh, which on
    PostgreSQL holds its row lock across the call to the token endpoint, holds no
    transaction across it on SQLite (``integrations.connections.locks``).
    """
    if database.get("ENGINE") == "django.db.backends.sqlite3":
        options = database.setdefault("OPTIONS", {})
        options.setdefault("init_command", "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL")
        options.setdefault("transaction_mode", "IMMEDIATE")
        # Seconds a writer waits for the lock (Python's default is 5).
        options.setdefault("timeout", 20)
    return database


DATABASES = {
    "default": sqlite_tuned(env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}"))
}
DATABASES["default"]["ATOMIC_REQUESTS"] = False
# Persistent connections: a new PostgreSQL session per request cost the run-environment
# API 13 ms of its 25 ms p50 (docs/benchmarks.md). Reused connections (Celery workers
# keep theirs too) are checked before use.
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django.contrib.sites",
    "allauth",
    "allauth.account",
    "allauth.socialaccount",
    "allauth.mfa",
    "integrations",
    "apps_registry",
]

MIDDLEWARE = [
    # Answers X-Request-ID: the id every log line of this request carries (config/log.py).
    "config.log.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Content-Security-Policy (SECURE_CSP; empty, hence off, unless production or the
    # tests set it) and Permissions-Policy (PERMISSIONS_POLICY).
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "config.csp.FormActionMiddleware",
    "django_permissions_policy.PermissionsPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # The signed-in user's time zone for the request (UserPreferences).
    "integrations.time_zone.TimeZoneMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "config.admin_mfa.AdminRequiresMFAMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
SITE_ID = 1

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [SHARED_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
            # The admin changelist's long cells (templates/admin/change_list_results.html).
            "libraries": {"admin_cells": "config.admin_cells"},
        },
    },
]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# Where collectstatic puts the files whitenoise serves (docs/deployment.md).
STATIC_ROOT = Path(env("STATIC_ROOT", default=str(BASE_DIR / "staticfiles")))
STATICFILES_DIRS = [SHARED_DIR / "static"]

# Sessions live in the database: allauth keeps the OAuth `state` and the PKCE
# verifier in the session, which must not be a client-side signed cookie.
SESSION_ENGINE = "django.contrib.sessions.backends.db"
SESSION_COOKIE_HTTPONLY = True

LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "integrations:page"

EMAIL_BACKEND = env("EMAIL_BACKEND", default="django.core.mail.backends.smtp.EmailBackend")
if env("EMAIL_URL", default=""):
    vars().update(env.email_url("EMAIL_URL"))
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="Integrations <noreply@localhost>")
# Seconds an SMTP connection may block (Django's default: forever). Emails are sent by
# worker tasks, the reconnect email under the connection's lock.
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=30)

# --- django-allauth: accounts --------------------------------------------------
ACCOUNT_ADAPTER = "config.account_adapter.AccountAdapter"
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_USER_MODEL_USERNAME_FIELD = "username"
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_EMAIL_VERIFICATION = env("ACCOUNT_EMAIL_VERIFICATION", default="mandatory")
ACCOUNT_LOGIN_BY_CODE_ENABLED = False
ACCOUNT_RATE_LIMITS: dict[str, str] | bool = {
    # allauth's defaults, spelled out so they stay on (rate limits need a shared cache
    # in production: see CACHES).
    "change_password": "5/m/user",
    "manage_email": "10/m/user",
    "reset_password": "20/m/ip,5/m/key",
    "reauthenticate": "10/m/user",
    "reset_password_from_key": "20/m/ip",
    "signup": "20/m/ip",
    "login": "30/m/ip",
    "login_failed": "10/m/ip,5/5m/key",
    "confirm_email": "1/3m/key",
}
ACCOUNT_LOGOUT_ON_GET = False

# --- the client's address, behind a reverse proxy ------------------------------------
# allauth's rate limits count per client address. Behind a proxy every request comes
# from the proxy's address, so one client's failed logins would lock everyone out.
# Either name how many proxies of yours append to X-Forwarded-For (the client is the
# address that many entries from the right; anything further left is client-supplied),
# or name the header your proxy sets to the client's address (CF-Connecting-IP,
# X-Real-IP), which then must be the only way in. Neither: REMOTE_ADDR, as without a
# proxy. See README "Behind a reverse proxy".
ALLAUTH_TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)
ALLAUTH_TRUSTED_CLIENT_IP_HEADER = env("TRUSTED_CLIENT_IP_HEADER", default=None) or None

# --- two-factor authentication (allauth.mfa) and the admin ---------------------------
# Every user may add an authenticator app (TOTP) and recovery codes under
# /accounts/2fa/. With INTEGRATIONS_ADMIN_REQUIRE_MFA (on by default in production), a
# staff member opens the admin only with one set up and used at this sign-in
# (config.admin_mfa).
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes"]
# TOTP secrets and recovery seeds encrypted under INTEGRATIONS_TOKEN_KEYS.
MFA_ADAPTER = "config.mfa_adapter.MFAAdapter"
MFA_TOTP_ISSUER = env("MFA_TOTP_ISSUER", default="Integrations Hub")
INTEGRATIONS_ADMIN_REQUIRE_MFA = env.bool("ADMIN_REQUIRE_MFA", default=False)

# --- response headers ----------------------------------------------------------------
# The Content-Security-Policy production sends (and the tests, so that every page is
# shown to pass it). No inline script or style anywhere: templates link static files.
# form-action also admits the authorization endpoints of the providers (added per
# response by config.csp.FormActionMiddleware): Connect is a form POST answered with a
# redirect to the provider, and Chromium checks form-action on that redirect too.
CONTENT_SECURITY_POLICY: dict[str, list[str]] = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF],
    "style-src": [CSP.SELF],
    # data: for allauth's TOTP QR code, an inline SVG image.
    "img-src": [CSP.SELF, "data:"],
    "form-action": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
    "base-uri": [CSP.NONE],
    "object-src": [CSP.NONE],
}
SECURE_CSP: dict[str, list[str]] = {}
# Powerful features no page of this site uses, denied to it and to anything it embeds.
PERMISSIONS_POLICY: dict[str, list[str]] = {
    feature: []
    for feature in (
        "accelerometer",
        "camera",
        "display-capture",
        "geolocation",
        "gyroscope",
        "hid",
        "magnetometer",
        "microphone",
        "midi",
        "payment",
        "serial",
        "usb",
    )
}

# --- django-allauth: the OAuth handshake for integrations -----------------------
# Integrations use allauth's OAuth 2.0 machinery (state, PKCE, code exchange) under
# provider ids of their own; they never create SocialAccount rows, so a connected
# integration can never be used to sign in. allauth's plaintext token storage is off.
SOCIALACCOUNT_ADAPTER = "integrations.oauth.adapter.IntegrationSocialAccountAdapter"
SOCIALACCOUNT_STORE_TOKENS = False
SOCIALACCOUNT_LOGIN_ON_GET = False
SOCIALACCOUNT_REQUESTS_TIMEOUT = 10

# --- integrations -----------------------------------------------------------------
# Comma-separated Fernet keys; the first encrypts, all decrypt.
# Make one with:
#   python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"
INTEGRATIONS_TOKEN_KEYS = env.list("INTEGRATIONS_TOKEN_KEYS", default=[])
GOOGLE_CLIENT_ID = env("GOOGLE_CLIENT_ID", default="")
GOOGLE_CLIENT_SECRET = env("GOOGLE_CLIENT_SECRET", default="")
GOOGLE_OAUTH_AUTHORIZE_URL = env(
    "GOOGLE_OAUTH_AUTHORIZE_URL", default="https://accounts.google.com/o/oauth2/v2/auth"
)
GOOGLE_OAUTH_TOKEN_URL = env(
    "GOOGLE_OAUTH_TOKEN_URL", default="https://oauth2.googleapis.com/token"
)
GOOGLE_OAUTH_REVOKE_URL = env(
    "GOOGLE_OAUTH_REVOKE_URL", default="https://oauth2.googleapis.com/revoke"
)
GOOGLE_OAUTH_USERINFO_URL = env(
    "GOOGLE_OAUTH_USERINFO_URL", default="https://openidconnect.googleapis.com/v1/userinfo"
)
# Users' own Google OAuth clients ("your own OAuth app"): "off" (default: only the
# platform's client above), "allowed" (a user may add their own client ID and secret on
# the Integrations page; their flows, refreshes and revocations use it) or "required"
# (Connect waits until the user has added one). Checked by integrations.E004.
INTEGRATIONS_GOOGLE_USER_CLIENTS = env.str("GOOGLE_USER_CLIENTS", default="off")
# Discord OAuth2 (discord.identify, discord.guilds): on once a client is set. Endpoints
# from https://discord.com/developers/docs/topics/oauth2 (overridable for tests).
DISCORD_CLIENT_ID = env("DISCORD_CLIENT_ID", default="")
DISCORD_CLIENT_SECRET = env("DISCORD_CLIENT_SECRET", default="")
DISCORD_OAUTH_AUTHORIZE_URL = env(
    "DISCORD_OAUTH_AUTHORIZE_URL", default="https://discord.com/oauth2/authorize"
)
DISCORD_OAUTH_TOKEN_URL = env(
    "DISCORD_OAUTH_TOKEN_URL", default="https://discord.com/api/oauth2/token"
)
DISCORD_OAUTH_REVOKE_URL = env(
    "DISCORD_OAUTH_REVOKE_URL", default="https://discord.com/api/oauth2/token/revoke"
)
DISCORD_OAUTH_USERINFO_URL = env(
    "DISCORD_OAUTH_USERINFO_URL", default="https://discord.com/api/users/@me"
)
# HTTP timeouts for every call to a provider: (connect, read) seconds.
INTEGRATIONS_HTTP_TIMEOUT = (
    env.float("INTEGRATIONS_HTTP_CONNECT_TIMEOUT", default=5.0),
    env.float("INTEGRATIONS_HTTP_READ_TIMEOUT", default=15.0),
)


def _seconds_by_provider(name: str) -> dict[str, int]:
    """``"x=1200,slack=900"`` → ``{"x": 1200, "slack": 900}``."""
    return {k.strip(): int(v) for k, v in env.dict(name, default={}).items()}


# Refresh: an access token handed to an app is valid for at least this many seconds
# ("default", and per provider id: INTEGRATIONS_REFRESH_MARGIN_OVERRIDES="x=1200,slack=900");
# a transient failure is retried with exponential backoff and jitter, at most this many
# failed attempts per connection per day.
INTEGRATIONS_REFRESH_MARGIN_SECONDS = {
    **_seconds_by_provider("INTEGRATIONS_REFRESH_MARGIN_OVERRIDES"),
    "default": env.int("INTEGRATIONS_REFRESH_MARGIN_SECONDS", default=600),
}
# Keep-alive: a connection unused for a day is refreshed only this often, so that the
# provider does not expire its idle refresh token (Google: after six months unused).
# Per provider id: INTEGRATIONS_KEEPALIVE_OVERRIDES="notion=86400".
INTEGRATIONS_KEEPALIVE_SECONDS = {
    **_seconds_by_provider("INTEGRATIONS_KEEPALIVE_OVERRIDES"),
    "default": env.int("INTEGRATIONS_KEEPALIVE_SECONDS", default=7 * 24 * 3600),
}
# Before handing a token to a run, check that the provider still accepts it (one GET
# of its userinfo endpoint) when it was last shown good longer ago than this: a grant
# revoked at the provider is then found before its token expires. 0: never check.
INTEGRATIONS_VERIFY_SECONDS = env.int("INTEGRATIONS_VERIFY_SECONDS", default=300)
INTEGRATIONS_REFRESH_MAX_ATTEMPTS_PER_DAY = env.int(
    "INTEGRATIONS_REFRESH_MAX_ATTEMPTS_PER_DAY", default=10
)
# The sweep (integrations.tasks.refresh_sweep): beat starts it every SWEEP_SECONDS; it
# claims due connections BATCH_SIZE at a time and keeps claiming while any are due, for
# at most SWEEP_SECONDS, then re-arms itself; it stops publishing while the queue holds
# MAX_PENDING refresh messages or more (backpressure), each of REFRESH_TASK_BATCH ids.
INTEGRATIONS_SWEEP_SECONDS = env.float("INTEGRATIONS_SWEEP_SECONDS", default=60.0)
INTEGRATIONS_SWEEP_BATCH_SIZE = env.int("INTEGRATIONS_SWEEP_BATCH_SIZE", default=1000)
# A refresh forced through the connections API (POST /api/v1/connections/<id>/refresh/):
# at most one per connection per this many seconds (429 with Retry-After otherwise).
INTEGRATIONS_FORCED_REFRESH_INTERVAL = env.int("INTEGRATIONS_FORCED_REFRESH_INTERVAL", default=60)
INTEGRATIONS_SWEEP_MAX_PENDING = env.int("INTEGRATIONS_SWEEP_MAX_PENDING", default=100)
# 25 ids per task: against 10, about a tenth more refreshes per second at 0 ms with
# 2 x 32 threads and less worker CPU per refresh (bench/refresh_sweep.py, 2026-12-04);
# a sweep of few due connections uses fewer threads, which the sweep's lead absorbs.
INTEGRATIONS_REFRESH_TASK_BATCH = env.int("INTEGRATIONS_REFRESH_TASK_BATCH", default=25)
# A batch's requests to the providers are made together, at most this many at a time in
# one worker process (PostgreSQL; on SQLite one after the other): a thread of the worker
# waits for the slowest of its batch, not for each in turn.
INTEGRATIONS_REFRESH_CONCURRENCY = env.int("INTEGRATIONS_REFRESH_CONCURRENCY", default=32)
# Service-account keys: token_uri may be http:// to 127.0.0.1/localhost/::1 (tests'
# local token endpoint). Off by default; never turn it on in production.
INTEGRATIONS_SERVICE_ACCOUNT_LOOPBACK_HTTP = env.bool(
    "INTEGRATIONS_SERVICE_ACCOUNT_LOOPBACK_HTTP", default=False
)
# Every URL the server fetches (provider endpoints, discovery, the definition check) must
# lead to a public address: loopback, private, link-local (cloud metadata), reserved and
# CGNAT ones are refused after DNS resolution. True lifts that, for providers on your
# private network; development and tests turn it on (local.py).
INTEGRATIONS_ALLOW_PRIVATE_URLS = env.bool("INTEGRATIONS_ALLOW_PRIVATE_URLS", default=False)

# Which items of a user's an app gets (docs/authorization.md): "per_app" (default) only
# those the user allowed that app, once, on its page; "declared" everything its manifest
# declares that the user has (for platforms where running an app is the consent).
INTEGRATIONS_APP_AUTHORIZATION = env.str("INTEGRATIONS_APP_AUTHORIZATION", default="per_app")
# Provider definitions are re-read from the database at most this often per process
# (at once after a change made in the same process).
INTEGRATIONS_PROVIDER_CACHE_SECONDS = env.float("INTEGRATIONS_PROVIDER_CACHE_SECONDS", default=5.0)
# Webhooks (integrations/events, README "Webhooks"): requests in flight at once per worker
# process; the retry schedule's delays multiplied by the scale (the bench compresses a
# day into seconds; keep 1 elsewhere); an endpoint failing this many days is disabled.
INTEGRATIONS_WEBHOOK_CONCURRENCY = env.int("INTEGRATIONS_WEBHOOK_CONCURRENCY", default=16)
INTEGRATIONS_WEBHOOK_RETRY_SCALE = env.float("INTEGRATIONS_WEBHOOK_RETRY_SCALE", default=1.0)
INTEGRATIONS_WEBHOOK_DISABLE_AFTER_DAYS = env.float(
    "INTEGRATIONS_WEBHOOK_DISABLE_AFTER_DAYS", default=5.0
)
INTEGRATIONS_WEBHOOK_TIMEOUT = (
    env.float("INTEGRATIONS_WEBHOOK_CONNECT_TIMEOUT", default=5.0),
    env.float("INTEGRATIONS_WEBHOOK_READ_TIMEOUT", default=15.0),
)

# --- health and metrics (integrations.health, integrations.metrics) -----------------
# /readyz fails when beat's refresh sweep last ran longer ago than this (0: not checked).
# Default: five sweeps missed (INTEGRATIONS_SWEEP_SECONDS, below), at least 300 s.
INTEGRATIONS_BEAT_MAX_AGE_SECONDS = env.int(
    "INTEGRATIONS_BEAT_MAX_AGE_SECONDS",
    default=max(300, int(5 * env.float("INTEGRATIONS_SWEEP_SECONDS", default=60.0))),
)
# /metrics (Prometheus) answers a scrape that presents this bearer token, or that comes
# from one of these addresses or networks (REMOTE_ADDR); with neither set it is off (404).
METRICS_TOKEN = env("METRICS_TOKEN", default="")
METRICS_ALLOWED_IPS = env.list("METRICS_ALLOWED_IPS", default=[])
# Counters live in Redis (REDIS_URL) under this prefix, so that every web and worker
# process, on every machine, adds to the same series.
METRICS_KEY_PREFIX = env("METRICS_KEY_PREFIX", default="hub:metrics:")

# --- Celery -------------------------------------------------------------------------
# Redis when REDIS_URL is set; otherwise kombu's filesystem transport, which needs no
# server (one machine only, polled once a second: development only).
REDIS_URL = env("REDIS_URL", default="")
CELERY_BROKER_URL = REDIS_URL or "filesystem://"
if not REDIS_URL:
    # kombu's, with each message written whole before the worker can read it
    # (config/kombu_filesystem.py).
    CELERY_BROKER_TRANSPORT = "config.kombu_filesystem:Transport"
    _queue_dir = Path(env("CELERY_QUEUE_DIR", default=str(BASE_DIR / ".local" / "celery-queue")))
    _queue_dir.mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_queue_dir),
        "data_folder_out": str(_queue_dir),
        "processed_folder": str(_queue_dir),
        # kombu's default is ./control, in whatever folder the process started.
        "control_folder": str(_queue_dir / "control"),
        "store_processed": False,
    }
# One queue name per deployment (tests run several side by side on one Redis).
CELERY_TASK_DEFAULT_QUEUE = env("CELERY_QUEUE", default="celery")
CELERY_TASK_IGNORE_RESULT = True
# Keep each worker thread's database connection across tasks (Celery's Django fixup
# otherwise opens a PostgreSQL session per task: bench/refresh_sweep.py measured that
# as the bottleneck of the refresh sweep).
CELERY_DB_REUSE_MAX = env.int("CELERY_DB_REUSE_MAX", default=1000)
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 4
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULE = {
    "refresh-sweep": {
        "task": "integrations.tasks.refresh_sweep",
        "schedule": INTEGRATIONS_SWEEP_SECONDS,
    },
    # Wakes the webhook deliveries that are due (retries, and any whose task was lost).
    "webhook-sweep": {
        "task": "integrations.tasks.webhook_sweep",
        "schedule": env.float("INTEGRATIONS_WEBHOOK_SWEEP_SECONDS", default=15.0),
    },
}

# The sandbox: a built-in OAuth 2.0 server that plays Google, for development and
# tests. Never on in production (production.py refuses it).
SANDBOX_ENABLED = env.bool("SANDBOX_ENABLED", default=False)
SANDBOX_ACCESS_TOKEN_SECONDS = env.int("SANDBOX_ACCESS_TOKEN_SECONDS", default=3600)

# --- logs (config/log.py) -------------------------------------------------------------
# "text" (default) or "json": one JSON object per line, for a log shipper. Either way every
# line carries the request id of the request it was logged for (or of the request that
# enqueued the Celery task that logged it; "-" for neither).
LOG_FORMAT = env.str("LOG_FORMAT", default="text")
if LOG_FORMAT not in ("text", "json"):
    raise ImproperlyConfigured(f"LOG_FORMAT must be text or json, not {LOG_FORMAT!r}")
# X-Request-ID is taken from a request only when REMOTE_ADDR is one of these addresses or
# networks (your reverse proxy); any other request gets an id of its own.
LOG_REQUEST_ID_TRUSTED_PROXIES = env.list("LOG_REQUEST_ID_TRUSTED_PROXIES", default=[])
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "config.log.RequestIdFilter"}},
    "formatters": {
        "text": {"format": TEXT_FORMAT},
        "json": {"()": "config.log.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["request_id"],
        }
    },
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
    "loggers": {
        # oauthlib logs request bodies (tokens included) at DEBUG.
        "oauthlib": {"level": "WARNING"},
        "urllib3": {"level": "WARNING"},
        # Django's own handlers (DEFAULT_LOGGING: "django" prints to the console when
        # DEBUG, "django.server" has a formatter of its own) are replaced by the root's,
        # so each line is printed once, in LOG_FORMAT, with its request id.
        "django": {"handlers": [], "propagate": True},
        "django.server": {"handlers": [], "propagate": True},
    },
}
# The worker logs through LOGGING above (its format, its request ids), not Celery's own.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False


def enable_sandbox(installed_apps: list[str]) -> dict:
    """Settings fragment that turns the sandbox on: installs django-oauth-toolkit and
    points Google's endpoints at it unless they were set explicitly."""
    from integrations.core.catalogue import BUILTIN, GOOGLE_SCOPE_PREFIX

    installed_apps += ["oauth2_provider", "integrations.sandbox"]
    scopes = {s: s for c in BUILTIN.oauth_capabilities_of("google") for s in c.scopes}
    scopes.update({s: s for s in BUILTIN.providers["google"].identity_scopes})
    assert all(s.startswith(GOOGLE_SCOPE_PREFIX) or s in ("openid", "email") for s in scopes)
    return {
        "OAUTH2_PROVIDER": {
            "SCOPES": scopes,
            "DEFAULT_SCOPES": ["openid", "email"],
            "PKCE_REQUIRED": True,
            "ROTATE_REFRESH_TOKEN": env.bool("SANDBOX_ROTATE_REFRESH_TOKENS", default=False),
            "REFRESH_TOKEN_REUSE_PROTECTION": True,
            "REQUEST_APPROVAL_PROMPT": "force",
            "ALLOWED_REDIRECT_URI_SCHEMES": ["http", "https"],
            "ACCESS_TOKEN_GENERATOR": "integrations.sandbox.tokens.access_token",
            "REFRESH_TOKEN_GENERATOR": "integrations.sandbox.tokens.refresh_token",
            "EXTRA_SERVER_KWARGS": {},
            "OAUTH2_VALIDATOR_CLASS": "integrations.sandbox.validators.SandboxValidator",
        },
    }


# --- apps registry / API ------------------------------------------------------------
# Namespaces no upload may claim (only staff upload there, and assign owners): the
# built-in providers' ids and the platform's own words, so that a fresh install is not
# open to anyone claiming `google`. Staff reserve more in the admin.
APPS_RESERVED_NAMESPACES = env.list(
    "APPS_RESERVED_NAMESPACES",
    default=["google", "x", "discord", "gcp", "admin", "api", "staff", "www", "apps", "platform"],
)
# The JSON API for CI uploads: Django REST framework with drf-spectacular's OpenAPI
# schema (/api/schema/). Authentication is by our own hashed API tokens
# (apps_registry.models.ApiToken), not DRF's authtoken, which keeps tokens in clear.
INSTALLED_APPS += ["rest_framework", "drf_spectacular"]
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "apps_registry.api.authentication.ApiTokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["apps_registry.api.parsers.BoundedJSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "apps_registry.api.errors.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Integrations Hub API",
    "DESCRIPTION": "Upload inf.yml manifests from CI and read apps' versions; run "
    "environments for runners; a user's connections for platforms (docs/connections-api.md).",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
}
