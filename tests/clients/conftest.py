"""Every client test runs twice, against the live server: with ``HubClient`` and with
``AsyncHubClient``. The ``make_client`` fixture takes ``HubClient``'s arguments and
gives a client whose methods return results: the async one's coroutines run to their
end on one event loop (an ``asyncio.Runner`` per test), so one test body checks both.

Sleeps are recorded (``make_client.sleeps``), never slept; ``on_sleep`` (a plain
function) runs at each, e.g. to bring a provider back while the client waits.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from django.db import connection as db
from integrations_hub_client import AsyncHubClient, HubClient

# The connections API's fixtures: Google's token and revoke endpoints (``google``), a
# default connection of Alice's and of Bob's.
from tests.apps_registry.test_connections_api import alice_conn, bob_conn, google  # noqa: F401


class Blocking:
    """An ``AsyncHubClient`` whose methods block: each coroutine runs on ``runner``."""

    def __init__(self, client: AsyncHubClient, runner: asyncio.Runner) -> None:
        self.client = client
        self._runner = runner

    def __repr__(self) -> str:
        return repr(self.client)

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self.client, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            return self._runner.run(method(*args, **kwargs))

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
        self._runner = asyncio.Runner() if kind == "async" else None
        self._made: list[HubClient | AsyncHubClient] = []

    def __call__(
        self,
        base_url: str,
        *,
        token: str,
        on_sleep: Callable[[float], object] | None = None,
        **options: Any,
    ) -> Any:
        if self._runner is None:

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
        return Blocking(aclient, self._runner)

    def run(self, coroutine: Any) -> Any:
        """Run ``coroutine`` on the async client's loop."""
        assert self._runner is not None
        return self._runner.run(coroutine)

    def new_http(self) -> httpx.Client | httpx.AsyncClient:
        """An httpx client of the caller's, of the kind this maker's client takes."""
        return httpx.Client() if self._runner is None else httpx.AsyncClient()

    def close(self) -> None:
        for client in self._made:
            if isinstance(client, HubClient):
                client.close()
            elif self._runner is not None:
                self._runner.run(client.aclose())
        if self._runner is not None:
            self._runner.close()


@pytest.fixture(params=["sync", "async"])
def make_client(request: pytest.FixtureRequest) -> Iterator[ClientMaker]:
    maker = ClientMaker(request.param)
    yield maker
    maker.close()
