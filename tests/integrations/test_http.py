"""One pooled session for every provider call, with connect and read timeouts."""

from __future__ import annotations

import http.server
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
import requests
from allauth.socialaccount.adapter import get_adapter
from django.test import override_settings

from integrations.connections.refresh import connection_refresh
from integrations.errors import ProviderUnavailableError
from integrations.providers import client as provider_http
from tests.integrations.test_refresh import make_connection


class _Slow(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        time.sleep(2)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def slow_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Slow)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def test_one_pooled_session_per_thread_shared_with_allauth():
    assert provider_http.session() is provider_http.session()
    assert get_adapter().get_requests_session() is provider_http.session()
    with provider_http.session() as s:  # allauth's `with`: the pool survives it
        assert s is provider_http.session()
    adapter = provider_http.session().get_adapter("https://oauth2.googleapis.com/token")
    assert adapter._pool_maxsize >= 16  # type: ignore[attr-defined]


def test_every_call_has_a_read_timeout(slow_server):
    # The server never answers (it closes after 2 s): only our read timeout can make
    # this a ReadTimeout.
    with (
        override_settings(INTEGRATIONS_HTTP_TIMEOUT=(1.0, 0.2)),
        pytest.raises(requests.ReadTimeout),
    ):
        provider_http.session().post(slow_server + "/token")


@pytest.mark.django_db
def test_a_slow_token_endpoint_is_a_timeout_error(alice, slow_server):
    now = datetime.now(UTC)
    conn = make_connection(alice, expires_at=now - timedelta(seconds=1))
    with (
        override_settings(
            INTEGRATIONS_HTTP_TIMEOUT=(1.0, 0.2), GOOGLE_OAUTH_TOKEN_URL=slow_server + "/token"
        ),
        pytest.raises(ProviderUnavailableError) as exc,
    ):
        connection_refresh(connection_id=conn.pk, now=now)
    assert exc.value.code == "timeout"
    conn.refresh_from_db()
    assert conn.status == "refresh_failing"
