"""Production: only hardens what base.py sets. Refuses to start without the keys it needs."""

from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F403
from .base import env

DEBUG = False
SECRET_KEY = env("DJANGO_SECRET_KEY")
if not INTEGRATIONS_TOKEN_KEYS:  # noqa: F405
    raise ImproperlyConfigured(
        "INTEGRATIONS_TOKEN_KEYS is not set. Tokens are encrypted at rest with these keys. "
        'Make one with: python -c "from cryptography.fernet import Fernet; '
        'print(Fernet.generate_key().decode())" and set INTEGRATIONS_TOKEN_KEYS to it '
        "(comma-separated; the first encrypts, all decrypt)."
    )
for _position, _key in enumerate(INTEGRATIONS_TOKEN_KEYS, start=1):  # noqa: F405
    try:
        Fernet(_key)
    except (ValueError, TypeError):
        # The position, never the key. `manage.py check` says the same (integrations.E002).
        raise ImproperlyConfigured(
            f"INTEGRATIONS_TOKEN_KEYS: key {_position} is not a Fernet key (32 url-safe "
            'base64-encoded bytes). Make one with: python -c "from cryptography.fernet '
            'import Fernet; print(Fernet.generate_key().decode())"'
        ) from None
if not REDIS_URL:  # noqa: F405
    raise ImproperlyConfigured(
        "REDIS_URL is not set. Production needs Redis for Celery (token refresh) and for "
        "the cache behind allauth's rate limits, e.g. REDIS_URL=redis://127.0.0.1:6379/0."
    )
if SANDBOX_ENABLED:  # noqa: F405
    raise ImproperlyConfigured("SANDBOX_ENABLED must not be set in production.")
if INTEGRATIONS_SERVICE_ACCOUNT_LOOPBACK_HTTP:  # noqa: F405
    raise ImproperlyConfigured(
        "INTEGRATIONS_SERVICE_ACCOUNT_LOOPBACK_HTTP must not be set in production."
    )

SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=True)
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=60 * 60 * 24 * 365)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SESSION_COOKIE_SAMESITE = "Lax"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
ACCOUNT_DEFAULT_HTTP_PROTOCOL = "https"
# allauth's rate limits need a cache shared by every web process.
CACHES = {"default": env.cache("CACHE_URL", default=env("REDIS_URL", default="locmemcache://"))}
