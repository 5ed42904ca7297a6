"""Production: only hardens what base.py sets. Refuses to start without the keys it needs."""

from django.core.exceptions import ImproperlyConfigured

from integrations.core import crypto  # pure: no Django

from .base import *  # noqa: F403
from .base import CONTENT_SECURITY_POLICY, env

DEBUG = False
SECRET_KEY = env("DJANGO_SECRET_KEY")
# Refused here too, as `manage.py check` refuses them (a WSGI server runs no checks).
if _key_problems := crypto.key_problems(INTEGRATIONS_TOKEN_KEYS):  # noqa: F405
    raise ImproperlyConfigured(
        " ".join(_key_problems)
        + " Tokens are encrypted at rest with these keys. "
        + crypto.MAKE_A_KEY
    )
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
# Probes and scrapes come from inside, often over plain HTTP to the process itself.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
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
# Staff open the admin only after two-factor authentication (config/admin_mfa.py).
INTEGRATIONS_ADMIN_REQUIRE_MFA = env.bool("ADMIN_REQUIRE_MFA", default=True)
# No inline script or style on any page; Permissions-Policy is base.py's.
SECURE_CSP = CONTENT_SECURITY_POLICY
