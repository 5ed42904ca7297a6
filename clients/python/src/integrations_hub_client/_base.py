"""What the sync and the async client share besides the protocol: the constructor,
the request options, the repr (never the token)."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from . import _protocol

HttpT = TypeVar("HttpT")
SleepT = TypeVar("SleepT")


class ClientBase(Generic[HttpT, SleepT]):
    """``HttpT``: the httpx client class; ``SleepT``: the sleep function's type."""

    def __init__(
        self,
        base_url: str,
        *,
        token: str,
        timeout: float = _protocol.DEFAULT_TIMEOUT,
        max_retries: int = 2,
        max_retry_wait: float = 30.0,
        retry_backoff: float = 0.5,
        http: HttpT | None = None,
        sleep: SleepT | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.retry_policy = _protocol.RetryPolicy(
            max_retries=max_retries, max_wait=max_retry_wait, backoff=retry_backoff
        )
        self._headers = _protocol.headers(token)
        # A client passed in is the caller's to close; one made here is closed by ``close``.
        self._owns_http = http is None
        self._http: HttpT = http if http is not None else self._new_http()
        self._sleep: SleepT = sleep if sleep is not None else self._default_sleep()

    def _new_http(self) -> HttpT:
        raise NotImplementedError

    def _default_sleep(self) -> SleepT:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.base_url!r})"

    def _options(self, request: _protocol.Request) -> dict[str, Any]:
        """The keyword arguments of ``httpx.Client.request`` for ``request``."""
        return {
            "method": request.method,
            "url": self.base_url + request.path,
            "params": request.params,
            "json": request.json,
            "headers": self._headers,
            "timeout": self.timeout,
        }
