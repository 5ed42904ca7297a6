"""Tests: the sandbox on, fast hashing, known keys; DATABASE_URL picks PostgreSQL in CI."""

from .base import BASE_DIR, CONTENT_SECURITY_POLICY, sqlite_tuned
from .local import *  # noqa: F403
from .local import LOGGING, env

DEBUG = False
SECRET_KEY = "test-secret-key-not-for-production"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
# Two fixed test keys: tests that rotate keys override this.
INTEGRATIONS_TOKEN_KEYS = ["aTxPN3GzW8yqUt1mDcBkFWnHQWb5w4EqTfsgtW2Lj3s="]
ACCOUNT_EMAIL_VERIFICATION = "optional"
# Tests run a service-account token endpoint on 127.0.0.1 over http.
INTEGRATIONS_SERVICE_ACCOUNT_LOOPBACK_HTTP = True
# The sandbox and the fakes listen on 127.0.0.1; the guard's tests turn this off.
INTEGRATIONS_ALLOW_PRIVATE_URLS = True
# Most tests' connections hold made-up tokens: no provider to ask. The tests of the
# check turn it on.
INTEGRATIONS_VERIFY_SECONDS = 0
ACCOUNT_RATE_LIMITS = False
# Production's Content-Security-Policy, so that every page a test renders (the browser
# tests watch for violations) is shown to pass it.
SECURE_CSP = CONTENT_SECURITY_POLICY
# Deterministic query counts: definitions are cached until changed (tests/conftest.py
# clears the cache around every test, as rollbacks send no signal).
INTEGRATIONS_PROVIDER_CACHE_SECONDS = 3600.0
DATABASES = {"default": sqlite_tuned(env.db("DATABASE_URL", default="sqlite:///test-db.sqlite3"))}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file, not Django's in-memory default: the tests that start workers, racing
    # processes and manage.py reach it, as `make run`'s processes reach db.sqlite3, and
    # it is configured as that one is (WAL, IMMEDIATE transactions). pytest-xdist
    # suffixes the name per worker.
    (BASE_DIR / ".local").mkdir(exist_ok=True)
    DATABASES["default"]["TEST"] = {"NAME": str(BASE_DIR / ".local" / "test-db.sqlite3")}
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.InMemoryStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
# Development quiets Celery's per-task lines (config/settings/local.py); tests read them
# as production prints them (the worker and beat tests look for the sweep's).
_quieted = ("celery.beat", "celery.worker.strategy", "celery.app.trace")
_loggers: dict[str, object] = LOGGING["loggers"]  # type: ignore[assignment]
LOGGING = {**LOGGING, "loggers": {k: v for k, v in _loggers.items() if k not in _quieted}}
# Tests type a code computed from the clock, as a person does: one typed at the end of
# its 30 s window reaches the server in the next, which allauth's default (no
# tolerance) refuses ("Incorrect code": a browser test failed so on CI). Production
# keeps allauth's default.
MFA_TOTP_TOLERANCE = 1
