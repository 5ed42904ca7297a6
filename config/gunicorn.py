"""gunicorn's settings (``gunicorn config.wsgi --config python:config.gunicorn``), from
the environment, as the Procfile and docs/deployment.md use them.

- ``PORT`` (8000) or ``GUNICORN_BIND`` (e.g. ``unix:/run/hub/gunicorn.sock``).
- ``WEB_CONCURRENCY``: worker processes, default 2 per CPU + 1 (gunicorn's advice).
- ``GUNICORN_THREADS``: threads per worker (4): a request mostly waits on PostgreSQL or
  a provider, so threads serve more of them per process's memory.
- ``GUNICORN_TIMEOUT``: seconds before a stuck worker is restarted (30; a run
  environment may wait on a provider's token endpoint, 5 + 15 s at most).
- ``GUNICORN_FORWARDED_ALLOW_IPS``: the proxies whose X-Forwarded-* gunicorn believes
  (127.0.0.1).
- ``GUNICORN_MAX_REQUESTS``: recycle a worker after about this many requests (0: never).
"""

import multiprocessing
import os

bind = os.environ.get("GUNICORN_BIND") or f"0.0.0.0:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", 2 * multiprocessing.cpu_count() + 1))
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
worker_class = "gthread"
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = 30
keepalive = 5
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "0"))
max_requests_jitter = max_requests // 10
forwarded_allow_ips = os.environ.get("GUNICORN_FORWARDED_ALLOW_IPS", "127.0.0.1")
# Errors to stderr; the access log off unless asked for (Django logs what matters, with
# its request id): GUNICORN_ACCESS_LOG=- writes it to stdout.
errorlog = "-"
accesslog = os.environ.get("GUNICORN_ACCESS_LOG") or None
