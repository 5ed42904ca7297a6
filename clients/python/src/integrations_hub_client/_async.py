"""``AsyncHubClient``: the protocol over ``httpx.AsyncClient``."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Concatenate, ParamSpec, TypeVar

import httpx

from . import _protocol
from ._base import ClientBase

P = ParamSpec("P")
T = TypeVar("T")


class AsyncBase(ClientBase[httpx.AsyncClient, Callable[[float], Awaitable[object]]]):
    def _new_http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient()

    def _default_sleep(self) -> Callable[[float], Awaitable[object]]:
        return asyncio.sleep

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self: T) -> T:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def _call(self, operation: _protocol.Operation[T]) -> T:
        steps = _protocol.exchange(operation, self.retry_policy)
        try:
            step = next(steps)
            while True:
                if isinstance(step, _protocol.Sleep):
                    await self._sleep(step.seconds)
                    step = steps.send(None)
                else:
                    step = steps.send(await self._send(step))
        except StopIteration as done:
            result: T = done.value  # the generator's return value
            return result

    async def _send(self, request: _protocol.Request) -> _protocol.Answer:
        try:
            response = await self._http.request(**self._options(request))
        except httpx.TransportError as exc:
            raise _protocol.transport_error(exc) from exc
        return _protocol.answer_of(response)


def endpoint(
    build: Callable[P, _protocol.Operation[T]],
) -> Callable[Concatenate[AsyncBase, P], Coroutine[Any, Any, T]]:
    """A client coroutine method that sends the operation ``build`` makes of its arguments."""

    @functools.wraps(build)
    async def method(self: AsyncBase, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return await self._call(build(*args, **kwargs))

    return method


class AsyncHubClient(AsyncBase):
    """The hub's API over ``httpx.AsyncClient``; the same methods as ``HubClient``, as
    coroutines:

        async with AsyncHubClient("https://hub.example.com", token=token) as hub:
            run = await hub.run_environment(user="ada@example.com", app="google/sheets")

    Options as ``HubClient``'s; ``http`` is an ``httpx.AsyncClient``, ``sleep`` a
    coroutine function (``asyncio.sleep``).
    """

    run_environment = endpoint(_protocol.run_environment)
    list_connections = endpoint(_protocol.list_connections)
    get_connection = endpoint(_protocol.get_connection)
    refresh_connection = endpoint(_protocol.refresh_connection)
    disconnect_connection = endpoint(_protocol.disconnect_connection)
