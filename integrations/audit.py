"""The append-only audit log: one row per change worth tracing, never a credential."""

from __future__ import annotations

from typing import TYPE_CHECKING

from integrations.models import AuditEvent, Connection
from integrations.sql_rows import insert

if TYPE_CHECKING:
    from django.contrib.auth.models import User


def audit_record(
    *,
    kind: str,
    provider: str,
    user: User | None = None,
    connection: Connection | None = None,
    ok: bool = True,
    error_code: str = "",
    detail: dict | None = None,
    account: str = "",
) -> AuditEvent:
    """Append one event to the audit log. ``detail`` must never hold a credential.
    ``account`` defaults to the connection's account (a secret's key, a service
    account's email otherwise). One INSERT, composed once (``sql_rows.insert``: the
    run path writes one per call)."""
    return insert(
        audit_event(
            kind=kind,
            provider=provider,
            user=user,
            connection=connection,
            ok=ok,
            error_code=error_code,
            detail=detail,
            account=account,
        )
    )


def audit_event(
    *,
    kind: str,
    provider: str,
    user: User | None = None,
    connection: Connection | None = None,
    ok: bool = True,
    error_code: str = "",
    detail: dict | None = None,
    account: str = "",
) -> AuditEvent:
    """The unsaved event ``audit_record`` appends (for a caller that writes it in a
    statement of its own: the refresh, with its token write)."""
    return AuditEvent(
        kind=kind,
        provider=provider,
        # By id: reading `connection.user` would cost a query on the refresh path.
        user_id=user.pk if user is not None else (connection.user_id if connection else None),
        connection_id=connection.pk if connection else None,
        account=account
        or ((connection.account_email or connection.account_uid) if connection else ""),
        ok=ok,
        error_code=error_code,
        detail=detail or {},
    )
