"""The one pooled HTTP session for every call to a provider, with connect and read
timeouts on every request."""

from __future__ import annotations

import threading
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from integrations import app_settings

_local = threading.local()


class _ProviderSession(requests.Session):
    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("timeout", app_settings.http_timeout())
        return super().request(str(method), str(url), *args, **kwargs)

    # allauth uses `with get_requests_session() as s:`; closing would drop the pool.
    def __exit__(self, *args: Any) -> None:
        return None


def session() -> requests.Session:
    """This thread's pooled session (requests sessions are not thread-safe to share)."""
    sess = getattr(_local, "session", None)
    if sess is None:
        sess = _ProviderSession()
        adapter = HTTPAdapter(pool_connections=16, pool_maxsize=64, max_retries=0)
        sess.mount("https://", adapter)
        sess.mount("http://", adapter)
        sess.headers["User-Agent"] = "integrations-hub/0.1"
        _local.session = sess
    return sess
