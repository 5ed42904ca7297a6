"""The ``data`` of each event: ids, names, capabilities, status and error code, from
the rows the services changed. Never a token, secret or client secret: these read no
encrypted column (``tests/integrations/test_webhooks.py`` scans every payload)."""

from __future__ import annotations

from typing import Any

from integrations.errors import UnknownProviderError
from integrations.models import Connection
from integrations.providers import registry


def connection_capabilities(connection: Connection) -> list[str]:
    try:
        return registry.catalogue().granted_capabilities(connection.provider, connection.scopes)
    except UnknownProviderError:
        return []


def connection_data(connection: Connection, **extra: Any) -> dict[str, Any]:
    """What an event tells of a connection (before its row is deleted, for
    ``connection.deleted``)."""
    return {
        "connection_id": connection.pk,
        "user_id": connection.user_id,
        "provider": connection.provider,
        "account": {"uid": connection.account_uid, "email": connection.account_email},
        "capabilities": connection_capabilities(connection),
        "status": connection.status,
        "error_code": connection.last_error_code,
        **extra,
    }


def app_data(*, app: str, user_id: int | None = None, **extra: Any) -> dict[str, Any]:
    """What an event tells of an app (``namespace/name``) and, if any, its user."""
    data: dict[str, Any] = {"app": app}
    if user_id is not None:
        data["user_id"] = user_id
    return {**data, **extra}
