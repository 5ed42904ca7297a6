"""``HubClient``: the protocol over ``httpx.Client``."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Concatenate, ParamSpec, TypeVar

import httpx

from . import _protocol
from ._base import ClientBase

P = ParamSpec("P")
T = TypeVar("T")


class SyncBase(ClientBase[httpx.Client, Callable[[float], object]]):
    def _new_http(self) -> httpx.Client:
        return httpx.Client()

    def _default_sleep(self) -> Callable[[float], object]:
        return time.sleep

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self: T) -> T:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _call(self, operation: _protocol.Operation[T]) -> T:
        steps = _protocol.exchange(operation, self.retry_policy)
        try:
            step = next(steps)
            while True:
                if isinstance(step, _protocol.Sleep):
                    self._sleep(step.seconds)
                    step = steps.send(None)
                else:
                    step = steps.send(self._send(step))
        except StopIteration as done:
            result: T = done.value  # the generator's return value
            return result

    def _send(self, request: _protocol.Request) -> _protocol.Answer:
        try:
            response = self._http.request(**self._options(request))
        except httpx.TransportError as exc:
            raise _protocol.transport_error(exc) from exc
        return _protocol.answer_of(response)


def endpoint(build: Callable[P, _protocol.Operation[T]]) -> Callable[Concatenate[SyncBase, P], T]:
    """A client method that sends the operation ``build`` makes of its arguments."""

    @functools.wraps(build)
    def method(self: SyncBase, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return self._call(build(*args, **kwargs))

    return method


class HubClient(SyncBase):
    """The hub's API over ``httpx.Client``:

        with HubClient("https://hub.example.com", token=os.environ["HUB_RUNNER_TOKEN"]) as hub:
            run = hub.run_environment(user="ada@example.com", app="google/sheets")

    Options: ``timeout`` (seconds, 10), ``max_retries`` (2), ``max_retry_wait`` (seconds
    slept in all, 30), ``retry_backoff`` (0.5: the first sleep when an answer has no
    ``Retry-After``), ``http`` (your ``httpx.Client``), ``sleep`` (``time.sleep``).
    """

    run_environment = endpoint(_protocol.run_environment)
    list_connections = endpoint(_protocol.list_connections)
    get_connection = endpoint(_protocol.get_connection)
    refresh_connection = endpoint(_protocol.refresh_connection)
    disconnect_connection = endpoint(_protocol.disconnect_connection)
