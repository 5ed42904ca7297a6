"""The refresh's lock against the other writers of a connection, with real threads on
the real database: on PostgreSQL they wait for the row lock; on SQLite, where the
refresh holds no transaction across the call to the provider (integrations.connections.locks), the
refresh checks that the row is still as it read it before writing."""

from __future__ import annotations

import json
import threading
from datetime import timedelta

import pytest
import responses
from django.db import connection as db
from django.utils import timezone

from integrations.connections.connect import connection_save_from_callback
from integrations.connections.credentials import connection_credentials
from integrations.connections.disconnect import connection_disconnect
from integrations.connections.store import Credentials, connection_access_token, store_tokens
from integrations.core.tokens import TokenSet
from integrations.errors import ReauthorizationRequiredError
from integrations.models import Connection
from integrations.providers import registry

pytestmark = pytest.mark.django_db(transaction=True)


def expired_connection(user) -> Connection:
    now = timezone.now()
    conn = Connection(
        user=user,
        provider="google",
        account_uid="sub-d",
        account_email="d@gmail.example",
        scopes=["openid", "email"],
        last_used_at=now,
        last_refreshed_at=now - timedelta(hours=1),
    )
    store_tokens(
        conn,
        TokenSet(access_token="ya29.old", refresh_token="1//rt", expires_at=now, scopes=None),
    )
    conn.save()
    return conn


class SlowTokenEndpoint:
    """The token endpoint, holding each refresh until ``go`` is set."""

    def __init__(self, rsps: responses.RequestsMock) -> None:
        self.reached, self.go = threading.Event(), threading.Event()
        rsps.add_callback(
            responses.POST, registry.provider_config("google").token_url, callback=self.answer
        )

    def answer(self, request):
        self.reached.set()
        assert self.go.wait(10)
        body = {"access_token": "ya29.refreshed", "expires_in": 3599}
        return (200, {"Content-Type": "application/json"}, json.dumps(body))


def in_thread(outcomes: dict[str, object], name: str, work) -> threading.Thread:
    def run() -> None:
        try:
            outcomes[name] = work()
        except Exception as exc:
            outcomes[name] = exc
        finally:
            db.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_a_reconnect_during_a_refresh_keeps_the_new_grant(alice):
    """The refresh of the old grant was waiting for the provider when the user came back
    from a Reconnect with a new one: the new grant stays, and is what the refresh
    returns on SQLite (on PostgreSQL the Reconnect waits for the refresh to commit)."""
    conn = expired_connection(alice)
    outcomes: dict[str, object] = {}
    with responses.RequestsMock() as rsps:
        endpoint = SlowTokenEndpoint(rsps)
        refreshing = in_thread(outcomes, "refresh", lambda: connection_credentials(connection=conn))
        assert endpoint.reached.wait(10)
        reconnecting = in_thread(
            outcomes,
            "reconnect",
            lambda: connection_save_from_callback(
                user=alice,
                provider_id="google",
                uid=conn.account_uid,
                email=conn.account_email,
                token=TokenSet(
                    access_token="ya29.reconnected",
                    refresh_token="1//rt-reconnected",
                    expires_at=timezone.now() + timedelta(hours=1),
                    scopes=("openid", "email"),
                ),
                requested=[],
                connection_id=conn.pk,
            ),
        )
        reconnecting.join(2)  # SQLite: done; PostgreSQL: waiting for the row lock
        endpoint.go.set()
        refreshing.join(10)
        reconnecting.join(10)

    assert not refreshing.is_alive() and not reconnecting.is_alive()
    assert not isinstance(outcomes["reconnect"], Exception), outcomes
    refreshed = outcomes["refresh"]
    assert isinstance(refreshed, Credentials), outcomes
    conn.refresh_from_db()
    assert conn.status == "active"
    assert connection_access_token(connection=conn) == "ya29.reconnected"
    assert refreshed.access_token in ("ya29.refreshed", "ya29.reconnected")


def test_a_disconnect_during_a_refresh_is_not_undone(alice):
    """Disconnect marks the row revoked, revokes at the provider, then deletes the row,
    unless a Reconnect made it active meanwhile. A refresh that was waiting for the
    provider must not make it active again by storing its new token."""
    conn = expired_connection(alice)
    at_revoke, revoke_go = threading.Event(), threading.Event()

    def revoke(request):
        at_revoke.set()
        assert revoke_go.wait(10)
        return (200, {}, "")

    outcomes: dict[str, object] = {}
    with responses.RequestsMock() as rsps:
        endpoint = SlowTokenEndpoint(rsps)
        rsps.add_callback(
            responses.POST, registry.provider_config("google").revoke_url, callback=revoke
        )
        refreshing = in_thread(outcomes, "refresh", lambda: connection_credentials(connection=conn))
        assert endpoint.reached.wait(10)
        disconnecting = in_thread(
            outcomes, "disconnect", lambda: connection_disconnect(connection=conn)
        )
        # SQLite: the Disconnect gets as far as the provider; PostgreSQL: it waits for
        # the refresh's row lock (and gets there once the refresh committed).
        at_revoke.wait(2)
        endpoint.go.set()
        refreshing.join(10)
        revoke_go.set()
        disconnecting.join(10)

    assert not refreshing.is_alive() and not disconnecting.is_alive()
    assert getattr(outcomes["disconnect"], "ok", None) is True, outcomes
    assert not Connection.objects.filter(pk=conn.pk).exists(), outcomes
    # PostgreSQL: refreshed before the Disconnect began; SQLite: told it is gone.
    assert isinstance(outcomes["refresh"], Credentials | ReauthorizationRequiredError), outcomes
