"""The connections calls of both clients against a live server (the API of
``apps_registry.api.connections``): typed connections, never a token; ownership and
scopes as typed errors; a forced refresh's 429 retried after its ``Retry-After``; a
dead grant as ``NeedsReconnectError``; disconnect. Google is faked at the HTTP edge."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from django.utils import timezone
from integrations_hub_client import (
    Account,
    AuthenticationError,
    Connection,
    ConnectionUser,
    Disconnection,
    InvalidRequestError,
    NeedsReconnectError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
)

from apps_registry import services
from integrations.models import Connection as ConnectionRow
from tests.apps_registry.test_connections_api import READ, WRITE, platform

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def url(live_server) -> str:
    return live_server.url


def test_a_personal_token_lists_and_gets_its_own_connections(
    url, make_client, alice, alice_conn, bob_conn
):
    client = make_client(url, token=services.api_token_create(user=alice, name="mine")[1])

    (conn,) = client.list_connections()
    assert isinstance(conn, Connection) and conn.id == alice_conn.pk
    assert conn.user == ConnectionUser(id=alice.pk, email="alice@example.com")
    assert conn.account == Account(email=alice_conn.account_email, subject=alice_conn.account_uid)
    assert (conn.provider, conn.status, conn.error_code, conn.is_default) == (
        "google",
        "active",
        None,
        True,
    )
    assert conn.capabilities == ("google.gmail.send", "google.sheets.readonly")
    assert isinstance(conn.expires_at, datetime) and conn.expires_at.tzinfo is not None
    assert isinstance(conn.connected_at, datetime)
    assert client.get_connection(alice_conn.pk) == conn
    assert client.list_connections(user="alice@example.com", provider="google") == [conn]
    assert client.list_connections(provider="x") == []

    # Another user's connection is not found, as one that does not exist.
    for missing in (bob_conn.pk, 99999999):
        with pytest.raises(NotFoundError) as not_found:
            client.get_connection(missing)
        assert (not_found.value.status, not_found.value.code) == (404, "not_found")
    with pytest.raises(NotFoundError) as no_user:
        client.list_connections(user="bob@example.com")
    assert no_user.value.code == "user_not_found"


def test_a_platform_credential_lists_a_named_users_connections(
    url, make_client, bob, alice_conn, bob_conn
):
    client = make_client(url, token=platform(READ))
    assert [c.id for c in client.list_connections(user="bob@example.com")] == [bob_conn.pk]
    assert [c.id for c in client.list_connections(user=bob.pk)] == [bob_conn.pk]
    assert client.get_connection(alice_conn.pk).user.email == "alice@example.com"
    with pytest.raises(InvalidRequestError) as unnamed:
        client.list_connections()
    assert (unnamed.value.status, unnamed.value.code) == (400, "user_required")


def test_a_missing_scope_is_403_scope_missing(url, make_client, bob_conn, google):
    reader = make_client(url, token=platform(READ))
    with pytest.raises(PermissionDeniedError) as denied:
        reader.refresh_connection(bob_conn.pk)
    assert (denied.value.status, denied.value.code) == (403, "scope_missing")
    assert "connections:write" in denied.value.message
    with pytest.raises(PermissionDeniedError):
        reader.disconnect_connection(bob_conn.pk)
    with pytest.raises(PermissionDeniedError):
        make_client(url, token=platform(WRITE)).list_connections(user="bob@example.com")
    assert google.refreshes == [] and google.revoked == []
    assert ConnectionRow.objects.filter(pk=bob_conn.pk).exists()


def test_a_bad_credential_is_401(url, make_client, bob_conn):
    for token in ("ihp_not-a-credential", "ihub_not-a-token"):
        with pytest.raises(AuthenticationError) as refused:
            make_client(url, token=token).get_connection(bob_conn.pk)
        assert refused.value.status == 401 and "not-a-" not in str(refused.value)


def test_a_rate_limited_refresh_is_retried_after_its_retry_after(
    url, make_client, bob_conn, google, settings
):
    settings.INTEGRATIONS_FORCED_REFRESH_INTERVAL = 20

    def interval_passes(seconds: float) -> None:
        # While the client waits, the interval passes (the clock is the column).
        ConnectionRow.objects.filter(pk=bob_conn.pk).update(
            last_forced_refresh_at=timezone.now() - timedelta(seconds=21)
        )

    client = make_client(url, token=platform(WRITE, READ), on_sleep=interval_passes)
    first = client.refresh_connection(bob_conn.pk)
    assert first.refreshed and first.connection.id == bob_conn.pk
    assert first.connection.last_refreshed_at is not None

    again = client.refresh_connection(bob_conn.pk)  # 429, then 200 after the wait
    assert again.refreshed and len(google.refreshes) == 2
    (slept,) = make_client.sleeps
    assert 1 <= slept <= 20


def test_a_rate_limit_past_the_budget_is_raised(url, make_client, bob_conn, google, settings):
    settings.INTEGRATIONS_FORCED_REFRESH_INTERVAL = 600
    client = make_client(url, token=platform(WRITE))
    client.refresh_connection(bob_conn.pk)
    with pytest.raises(RateLimitedError) as limited:
        client.refresh_connection(bob_conn.pk)
    assert (limited.value.status, limited.value.code) == (429, "rate_limited")
    assert limited.value.retry_after is not None and 500 < limited.value.retry_after <= 600
    assert make_client.sleeps == [] and len(google.refreshes) == 1


def test_a_dead_grant_on_refresh_is_needs_reconnect(url, make_client, bob_conn, google):
    google.token_answer = (400, {"error": "invalid_grant"})
    client = make_client(url, token=platform(WRITE, READ))
    with pytest.raises(NeedsReconnectError) as dead:
        client.refresh_connection(bob_conn.pk)
    assert (dead.value.status, dead.value.code) == (409, "needs_reconnect")
    assert client.get_connection(bob_conn.pk).status == "needs_reconnect"


def test_disconnect_revokes_and_deletes(url, make_client, alice, alice_conn, google):
    client = make_client(url, token=services.api_token_create(user=alice, name="mine")[1])
    assert client.disconnect_connection(alice_conn.pk) == Disconnection(
        deleted=True, revocation="revoked"
    )
    assert len(google.revoked) == 1
    assert not ConnectionRow.objects.filter(pk=alice_conn.pk).exists()
    with pytest.raises(NotFoundError):
        client.get_connection(alice_conn.pk)
