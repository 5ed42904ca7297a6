"""Every client test runs twice, against the live server: with ``HubClient`` and with
``AsyncHubClient``. The ``make_client`` fixture takes ``HubClient``'s arguments and
gives a client whose methods return results: the async one's coroutines run to their
end on one event loop (in a thread of its own, per test), so one test body checks both.

Sleeps are recorded (``make_client.sleeps``), never slept; ``on_sleep`` (a plain
function) runs at each, e.g. to bring a provider back while the client waits.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

import httpx
import pytest
from django.db import connection as db
from integrations_hub_client import AsyncHubClient, HubClient

# The connections API's fixtures: Google's token and revoke endpoints (``google``), a
# default connection of Alice's and of Bob's.
from tests.apps_registry.test_connections_api import alice_conn, bob_conn, google  # noqa: F401

T = TypeVar("T")


class Loop:
    """An event loop of its own thread: the main thread may already run one (the
    browser tests' session-wide Playwright does), and a loop cannot nest."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()


class Blocking:
    """An ``AsyncHubClient`` whose methods block: each coroutine runs on ``loop``."""

    def __init__(self, client: AsyncHubClient, loop: Loop) -> None:
        self.client = client
        self._loop = loop

    def __repr__(self) -> str:
        return repr(self.client)

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self.client, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            return self._loop.run(method(*args, **kwargs))

        return call


def _in_a_thread(on_sleep: Callable[[float], object], seconds: float) -> None:
    # Django refuses database work inside a running event loop: do it in a worker thread,
    # and close that thread's connection, as a request thread would.
    try:
        on_sleep(seconds)
    finally:
        db.close()


class ClientMaker:
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.sleeps: list[float] = []
        self._loop = Loop() if kind == "async" else None
        self._made: list[HubClient | AsyncHubClient] = []

    def __call__(
        self,
        base_url: str,
        *,
        token: str,
        on_sleep: Callable[[float], object] | None = None,
        **options: Any,
    ) -> Any:
        if self._loop is None:

            def sleep(seconds: float) -> None:
                self.sleeps.append(seconds)
                if on_sleep is not None:
                    on_sleep(seconds)

            client = HubClient(base_url, token=token, sleep=sleep, **options)
            self._made.append(client)
            return client

        async def asleep(seconds: float) -> None:
            self.sleeps.append(seconds)
            if on_sleep is not None:
                await asyncio.to_thread(_in_a_thread, on_sleep, seconds)

        aclient = AsyncHubClient(base_url, token=token, sleep=asleep, **options)
        self._made.append(aclient)
        return Blocking(aclient, self._loop)

    def run(self, coroutine: Any) -> Any:
        """Run ``coroutine`` on the async client's loop."""
        assert self._loop is not None
        return self._loop.run(coroutine)

    def new_http(self) -> httpx.Client | httpx.AsyncClient:
        """An httpx client of the caller's, of the kind this maker's client takes."""
        return httpx.Client() if self._loop is None else httpx.AsyncClient()

    def close(self) -> None:
        for client in self._made:
            if isinstance(client, HubClient):
                client.close()
            elif self._loop is not None:
                self._loop.run(client.aclose())
        if self._loop is not None:
            self._loop.close()


@pytest.fixture(params=["sync", "async"])
def make_client(request: pytest.FixtureRequest) -> Iterator[ClientMaker]:
    maker = ClientMaker(request.param)
    yield maker
    maker.close()
