"""Development: embedded defaults (SQLite, console email, the sandbox playing Google)."""

from .base import *  # noqa: F403
from .base import BASE_DIR, LOGGING, REDIS_URL, enable_sandbox, env

DEBUG = env.bool("DJANGO_DEBUG", default=True)
SECRET_KEY = env("DJANGO_SECRET_KEY", default="django-insecure-local-development-only")
# Printed decoded, so a verification link can be copied whole (config/dev_mail.py).
EMAIL_BACKEND = env("EMAIL_BACKEND", default="config.dev_mail.ReadableConsoleEmailBackend")
# `make run PORT=8100` runs the web process on that port (DEV_PORT: honcho sets PORT
# for each process itself); the site's address follows unless SITE_URL is given.
DEV_PORT = env.int("DEV_PORT", default=8000)
SITE_URL = env("SITE_URL", default=f"http://127.0.0.1:{DEV_PORT}").rstrip("/")
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
# The sandbox and local providers listen on 127.0.0.1 (base.py refuses private addresses).
INTEGRATIONS_ALLOW_PRIVATE_URLS = env.bool("INTEGRATIONS_ALLOW_PRIVATE_URLS", default=True)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])


def _local_token_keys() -> list[str]:
    """Make a Fernet key once and keep it in .local/ (git-ignored), so that tokens
    stored in the development database survive restarts."""
    import os
    import tempfile

    from cryptography.fernet import Fernet

    path = BASE_DIR / ".local" / "token_keys"
    if not path.exists():
        path.parent.mkdir(exist_ok=True)
        # Written private to a file of its own, then linked into place: never readable
        # by others, never seen half-written, and when two processes start at once
        # (web and worker) the link of the second fails and it keeps the first's key.
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix="token_keys.")  # mode 0600
        with os.fdopen(fd, "w") as out:
            out.write(Fernet.generate_key().decode() + "\n")
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            os.unlink(tmp)
    return [k.strip() for k in path.read_text().split(",") if k.strip()]


INTEGRATIONS_TOKEN_KEYS = env.list("INTEGRATIONS_TOKEN_KEYS", default=[]) or _local_token_keys()

SANDBOX_ENABLED = env.bool("SANDBOX_ENABLED", default=True)
if SANDBOX_ENABLED:
    from integrations.sandbox import tokens as _sandbox_tokens

    OAUTH2_PROVIDER = enable_sandbox(INSTALLED_APPS)["OAUTH2_PROVIDER"]  # noqa: F405
    # DOT takes callables here as they are (no import strings).
    OAUTH2_PROVIDER["EXTRA_SERVER_KWARGS"]["token_expires_in"] = _sandbox_tokens.expires_in
    # Unless a real Google client is configured, "Google" is the sandbox on this site.
    if not env("GOOGLE_CLIENT_ID", default=""):
        GOOGLE_CLIENT_ID = "sandbox-google-client"
        GOOGLE_CLIENT_SECRET = "sandbox-google-secret"
        GOOGLE_OAUTH_AUTHORIZE_URL = "/sandbox/o/authorize/"
        GOOGLE_OAUTH_TOKEN_URL = "/sandbox/o/token/"
        GOOGLE_OAUTH_REVOKE_URL = "/sandbox/o/revoke_token/"
        GOOGLE_OAUTH_USERINFO_URL = "/sandbox/userinfo/"

# Celery's per-task lines ("received", "succeeded in 0.005s") every few seconds for the
# beat's sweeps drown the web's lines in `make run`; failures are logged at WARNING and up.
_loggers: dict[str, dict[str, str]] = LOGGING["loggers"]  # type: ignore[assignment]
for _quiet in ("celery.beat", "celery.worker.strategy", "celery.app.trace"):
    _loggers[_quiet] = {"level": env("CELERY_TASK_LOG_LEVEL", default="WARNING")}
# The file-based broker of `make run` has no host: kombu warns so on every connection
# ("No hostname was supplied. Reverting to default 'localhost'"), each minute.
if not REDIS_URL:
    _loggers["kombu.connection"] = {"level": "ERROR"}
