"""The run-environment call of both clients against a live server: each answer of
``POST /api/v1/run-environments/`` becomes the documented result or error; 503s are
retried as ``Retry-After`` says, within the bounds; a hub that never answers is a
``HubTimeoutError``."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import datetime, timedelta

import httpx
import pytest
import responses
from integrations_hub_client import (
    AuthenticationError,
    HubConnectionError,
    HubTimeoutError,
    InvalidRequestError,
    NeedsReconnectError,
    NotAuthorizedYetError,
    NotFoundError,
    PermissionDeniedError,
    ProviderUnavailableError,
)

from apps_registry import services
from integrations.core.catalogue import GOOGLE_SCOPE_PREFIX as G
from integrations.models import Connection
from tests.apps_registry.test_outages import failing, token_url
from tests.apps_registry.test_run_env import MANIFEST
from tests.authorization import allow_declared
from tests.integrations.factories import ConnectionFactory

pytestmark = pytest.mark.django_db(transaction=True)

V1 = "namespace: acme\nname: sheet\nintegrations:\n  - key: google.sheets.readonly\n"
V2 = V1 + "  - key: google.gmail.send\n"
GOOGLE_KEYS = {
    "GOOGLE_OAUTH_ACCESS_TOKEN",
    "GOOGLE_OAUTH_TOKEN_EXPIRES_AT",
    "GOOGLE_OAUTH_CREDENTIALS",
}


@pytest.fixture
def hub(live_server, alice) -> tuple[str, str]:
    services.manifest_upload(user=alice, text=V1)
    services.manifest_upload(user=alice, text=V2)  # version 2 is current
    services.manifest_upload(user=alice, text=MANIFEST)  # acme/digest
    token = services.runner_token_create(name="client-test", all_namespaces=True)[1]
    return live_server.url, token


def test_a_ready_environment(hub, make_client, bob):
    url, token = hub
    client = make_client(url, token=token)
    ConnectionFactory.create(user=bob, scopes=["openid", "email", G + "spreadsheets.readonly"])
    allow_declared(bob, "acme/sheet")

    run = client.run_environment(user=bob.pk, app="acme/sheet", version=1)
    assert set(run.keys) == GOOGLE_KEYS == set(run.env)
    assert (run.app, run.version) == ("acme/sheet", 1)
    assert isinstance(run.expires_at, datetime) and run.expires_at.tzinfo is not None
    assert run.env["GOOGLE_OAUTH_ACCESS_TOKEN"] not in repr(run)
    assert token not in repr(client) and url in repr(client)
    assert make_client.sleeps == []


def test_an_httpx_client_of_the_callers_is_used_and_left_open(hub, make_client, bob):
    url, token = hub
    http = make_client.new_http()
    client = make_client(url, token=token, http=http)
    with pytest.raises(NotFoundError):
        client.run_environment(user="nobody@example.com", app="acme/sheet")
    if isinstance(http, httpx.Client):
        client.close()
        assert not http.is_closed  # the caller's to close
        http.close()
    else:
        client.aclose()  # Blocking: runs to its end
        assert not http.is_closed
        make_client.run(http.aclose())


def test_not_ready_is_a_409_with_the_missing_items_and_the_actions(hub, make_client, bob):
    url, token = hub
    client = make_client(url, token=token)
    ConnectionFactory.create(user=bob, scopes=["openid", "email", G + "spreadsheets.readonly"])

    # The current version (2) also needs Gmail: Add Permissions.
    with pytest.raises(NotAuthorizedYetError) as not_yet:
        client.run_environment(user="bob@example.com", app="acme/sheet")
    assert type(not_yet.value) is NotAuthorizedYetError
    assert (not_yet.value.status, not_yet.value.code) == (409, "not_ready")
    assert [m.key for m in not_yet.value.missing] == ["google.gmail.send"]
    assert "google.gmail.send" in str(not_yet.value)
    (action,) = not_yet.value.actions
    assert action.kind == "add_permissions" and action.capabilities == ("google.gmail.send",)
    assert action.url.startswith("http")

    # Version 1: granted, but the app is not allowed yet.
    with pytest.raises(NotAuthorizedYetError) as not_allowed:
        client.run_environment(user=bob.pk, app="acme/sheet", version=1)
    (action,) = not_allowed.value.actions
    assert action.kind == "authorize_app" and action.url.endswith("/apps/acme/sheet/#allow")
    assert action.capabilities == ("google.sheets.readonly",) and action.secrets == ()
    assert [m.reason for m in not_allowed.value.missing] == ["not_allowed"]


def test_a_dead_grant_is_needs_reconnect(hub, make_client, bob):
    url, token = hub
    client = make_client(url, token=token)
    conn = ConnectionFactory.create(user=bob, scopes=["openid", "email", G + "spreadsheets"])
    allow_declared(bob, "acme/sheet")
    Connection.objects.filter(pk=conn.pk).update(status="needs_reconnect")

    with pytest.raises(NeedsReconnectError) as dead:
        client.run_environment(user=bob.pk, app="acme/sheet", version=1)
    assert dead.value.status == 409 and isinstance(dead.value, NotAuthorizedYetError)
    (reconnect,) = [a for a in dead.value.actions if a.kind == "reconnect"]
    assert (reconnect.provider, reconnect.connection_id) == ("google", conn.pk)


def test_a_bad_token_is_401_and_never_repeated(hub, make_client, bob):
    url, _ = hub
    client = make_client(url, token="ihub_run_not-a-token")
    with pytest.raises(AuthenticationError) as refused:
        client.run_environment(user=bob.pk, app="acme/sheet")
    assert refused.value.status == 401
    assert "not-a-token" not in str(refused.value) and "not-a-token" not in repr(refused.value)


def test_an_app_outside_the_runners_scope_is_403_runner_scope(hub, make_client, bob):
    url, _ = hub
    token = services.runner_token_create(name="beta-only", namespaces=["beta"])[1]
    client = make_client(url, token=token)
    with pytest.raises(PermissionDeniedError) as denied:
        client.run_environment(user=bob.pk, app="acme/sheet")
    assert (denied.value.status, denied.value.code) == (403, "runner_scope")
    assert "acme" in denied.value.message


def test_unknown_version_user_and_a_malformed_request(hub, make_client, bob):
    url, token = hub
    client = make_client(url, token=token)
    with pytest.raises(NotFoundError) as missing:
        client.run_environment(user=bob.pk, app="acme/sheet", version=3)
    assert (missing.value.status, missing.value.code) == (404, "not_found")
    with pytest.raises(NotFoundError):
        client.run_environment(user="nobody@example.com", app="acme/sheet")
    with pytest.raises(InvalidRequestError) as invalid:
        client.run_environment(user=bob.pk, app="Not A Slug")
    assert invalid.value.status == 400 and "app" in invalid.value.detail


# --- 503: retried as Retry-After says ---------------------------------------------------


def test_a_503_is_retried_after_its_retry_after_and_then_succeeds(hub, make_client, bob):
    url, token = hub
    conn = failing(bob)  # Google did not answer; the hub backs off for 10 minutes

    def google_is_back(seconds: float) -> None:
        # While the client waits, the backoff ends (the clock is an edge).
        Connection.objects.filter(pk=conn.pk).update(backoff_until=None)

    client = make_client(url, token=token, max_retry_wait=700, on_sleep=google_is_back)
    with responses.RequestsMock() as rsps:
        rsps.add(
            "POST",
            token_url(),
            json={"access_token": "ya29.fresh", "expires_in": 3600, "token_type": "Bearer"},
        )
        run = client.run_environment(user="bob@example.com", app="acme/digest")
        assert len(rsps.calls) == 1  # the first answer came from the backoff, no request
    assert run.env["GOOGLE_OAUTH_ACCESS_TOKEN"] == "ya29.fresh"
    (slept,) = make_client.sleeps
    assert 500 < slept <= 601  # the answer's Retry-After: the end of the backoff


def test_a_retry_after_past_the_budget_is_raised_at_once(hub, make_client, bob):
    url, token = hub
    conn = failing(bob)
    client = make_client(url, token=token)  # max_retry_wait: 30 s
    with pytest.raises(ProviderUnavailableError) as down:
        client.run_environment(user="bob@example.com", app="acme/digest")
    assert make_client.sleeps == []
    error = down.value
    assert (error.status, error.code) == (503, "provider_unavailable")
    assert error.retry_after is not None and 500 < error.retry_after <= 601
    (outage,) = error.outages
    assert (outage.provider, outage.connection_id, outage.reason) == ("google", conn.pk, "timeout")
    assert outage.retry_at is not None and outage.retry_at.tzinfo is not None


def test_503_retries_are_bounded(hub, make_client, bob):
    url, token = hub
    failing(bob, backoff=timedelta(seconds=5))
    client = make_client(url, token=token, max_retries=2)
    # Backing off: Google is not asked.
    with responses.RequestsMock(), pytest.raises(ProviderUnavailableError) as down:
        client.run_environment(user="bob@example.com", app="acme/digest")
    # Two more attempts, each after the answer's Retry-After (the backoff left, + 1 s).
    assert len(make_client.sleeps) == 2
    assert all(1 <= s <= 6 for s in make_client.sleeps)
    assert down.value.retry_after is not None


# --- no answer ------------------------------------------------------------------------


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A socket that accepts connections (the kernel's backlog) and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


def test_a_hub_that_never_answers_is_a_timeout(silent_server, make_client):
    client = make_client(silent_server, token="ihub_run_x", timeout=0.2)
    with pytest.raises(HubTimeoutError) as late:
        client.run_environment(user="bob@example.com", app="acme/sheet")
    assert late.value.status is None and late.value.code == "timeout"
    assert "ihub_run_x" not in str(late.value)
    assert make_client.sleeps == []  # not retried: the run may have started on the hub


def test_a_hub_that_is_not_there_is_a_connection_error(make_client):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    client = make_client(f"http://127.0.0.1:{port}", token="ihub_run_x")
    with pytest.raises(HubConnectionError) as refused:
        client.run_environment(user="bob@example.com", app="acme/sheet")
    assert refused.value.code == "connection_error"
