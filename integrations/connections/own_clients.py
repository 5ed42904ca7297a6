"""Users' own OAuth clients ("your own OAuth app"): set, replace, delete.

Here, not in ``providers/``, because retiring a client changes its connections (they
need reconnecting), and a connection's change is told to platforms as an event.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db import transaction

from integrations import app_settings
from integrations.core import crypto
from integrations.errors import OwnClientNotAllowedError
from integrations.events.emit import event_emit
from integrations.events.payloads import connection_data
from integrations.models import Connection, UserOAuthClient
from integrations.providers import registry

if TYPE_CHECKING:
    from django.contrib.auth.models import User


def user_client_set(*, user: User, provider: str, client_id: str, client_secret: str) -> None:
    """Store (or replace) the user's own client for ``provider``; the secret encrypted.

    Connections made with the previous client keep working with it until replaced: a
    grant belongs to the client that obtained it, so replacing the client asks the
    user to connect again.
    """
    config = registry.provider_info(provider)
    if not config.allow_user_clients:
        raise OwnClientNotAllowedError(f"{config.name} does not take users' own clients")
    with transaction.atomic():
        client = (
            UserOAuthClient.objects.select_for_update().filter(user=user, provider=provider).first()
        )
        encrypted = crypto.encrypt(client_secret, keys=app_settings.token_keys())
        if client is not None and client.client_id == client_id:
            client.client_secret_encrypted = encrypted
            client.save(update_fields=["client_secret_encrypted", "updated_at"])
            return
        if client is not None:
            _client_retire(client)
        UserOAuthClient.objects.create(
            user=user, provider=provider, client_id=client_id, client_secret_encrypted=encrypted
        )


def user_client_delete(*, client: UserOAuthClient) -> int:
    """Delete the user's own client; its connections need reconnecting. Returns how many."""
    with transaction.atomic():
        return _client_retire(client)


def _client_retire(client: UserOAuthClient) -> int:
    # A grant belongs to the client that obtained it: without the client, it cannot be
    # refreshed, so its connections need reconnecting (with whichever client comes next).
    # Each one's change is an event (connection.needs_reconnect), as a dead grant's is.
    # Locked in id order, as a refresh batch locks its rows (locks.connections_locked):
    # the two wait for each other instead of deadlocking.
    connections = list(
        Connection.objects.select_for_update().filter(oauth_client=client).order_by("pk")
    )
    for conn in connections:
        previous_status = conn.status
        conn.status = Connection.Status.NEEDS_RECONNECT
        conn.next_refresh_at = None
        conn.oauth_client = None
        conn.last_error_code = "client_removed"
        conn.save(
            update_fields=[
                "status",
                "next_refresh_at",
                "oauth_client",
                "last_error_code",
                "updated_at",
            ]
        )
        if previous_status != Connection.Status.NEEDS_RECONNECT:
            event_emit(
                type="connection.needs_reconnect",
                data=connection_data(conn, previous_status=previous_status),
            )
    client.delete()
    return len(connections)
