"""What a provider's callback gives us becomes a connection (or updates one); which
connection of a provider runs by default."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from django.db import transaction
from django.utils import timezone

from integrations.audit import audit_record
from integrations.connections.store import grant_fresh, store_tokens
from integrations.core.tokens import TokenSet
from integrations.errors import AccountMismatchError
from integrations.events.emit import event_emit
from integrations.events.payloads import connection_data
from integrations.models import AuditEvent, Connection
from integrations.providers import registry

if TYPE_CHECKING:
    from django.contrib.auth.models import User


@dataclass(frozen=True)
class ConnectResult:
    connection: Connection
    added: bool  # a new connection (False: an existing one was updated)
    requested: list[str]
    granted: list[str]  # capability keys the connection now has
    not_granted: list[str] = field(default_factory=list)  # asked for, not granted
    # Capability keys the connection has now and did not have before this flow.
    newly_granted: list[str] = field(default_factory=list)


def connection_save_from_callback(
    *,
    user: User,
    provider_id: str,
    uid: str,
    email: str,
    token: TokenSet,
    requested: Sequence[str],
    connection_id: int | None,
) -> ConnectResult:
    """Store what the provider's callback gave us, for ``user``.

    Add Permissions (``connection_id`` set) must come back with the same account
    (``uid``, the OpenID ``sub``), or ``AccountMismatchError``. The granted scopes are
    the token response's ``scope``; only when the response has none are they the
    requested ones (RFC 6749 §5.1).
    """
    config = registry.flow_config(provider_id, user=user)
    cat = registry.catalogue()
    asked_scopes = list(config.identity_scopes) + cat.scopes_for(requested)
    if connection_id is not None:
        current = Connection.objects.filter(
            pk=connection_id, user=user, provider=provider_id
        ).first()
        if current is not None and current.account_uid != uid:
            audit_record(
                kind=AuditEvent.Kind.CONNECT_REFUSED,
                provider=provider_id,
                connection=current,
                ok=False,
                error_code=AccountMismatchError.code,
                detail={"requested": list(requested)},
            )
            raise AccountMismatchError("signed in as another account than the connection's")
    with transaction.atomic():
        target: Connection | None = None
        if connection_id is not None:
            # An account's uid never changes, so the check above still holds under the lock.
            target = (
                Connection.objects.select_for_update()
                .filter(pk=connection_id, user=user, provider=provider_id, account_uid=uid)
                .first()
            )
        if target is None:
            target = (
                Connection.objects.select_for_update()
                .filter(user=user, provider=provider_id, account_uid=uid)
                .first()
            )
        added = target is None
        if target is None:
            target = Connection(user=user, provider=provider_id, account_uid=uid)
        previous_status = target.status
        granted_before = [] if added else cat.granted_capabilities(provider_id, target.scopes)
        granted_scopes = list(token.scopes) if token.scopes is not None else asked_scopes
        target.scopes = sorted(set(granted_scopes))
        target.account_email = email or target.account_email
        # The grant belongs to the client that obtained it (the user's own, or the
        # platform's: None), whichever held it before.
        target.oauth_client_id = config.user_client_id
        if (
            not Connection.objects.filter(user=user, provider=provider_id, is_default=True)
            .exclude(pk=target.pk)
            .exists()
        ):
            target.is_default = True  # the first connection of a provider runs by default
        store_tokens(target, token)
        # A fresh grant, in use from now (next_refresh_at reads last_used_at).
        now = timezone.now()
        target.last_used_at = now
        grant_fresh(target, config=config, now=now)
        target.save()
        granted = cat.granted_capabilities(provider_id, target.scopes)
        not_granted = [k for k in requested if not cat.is_satisfied(k, granted)]
        newly_granted = cat.effective_capabilities(k for k in granted if k not in granted_before)
        audit_record(
            kind=AuditEvent.Kind.CONNECT
            if connection_id is None
            else AuditEvent.Kind.ADD_PERMISSIONS,
            provider=provider_id,
            connection=target,
            ok=True,
            detail={
                "requested": list(requested),
                "granted": granted,
                "not_granted": not_granted,
                "refresh_token_received": bool(token.refresh_token),
            },
        )
        if not added and previous_status != Connection.Status.ACTIVE:
            audit_record(
                kind=AuditEvent.Kind.STATUS_CHANGED,
                provider=provider_id,
                connection=target,
                detail={"from": previous_status, "to": target.status, "reason": "reconnected"},
            )
        if added:
            event_emit(type="connection.created", data=connection_data(target), user=user)
        elif sorted(granted_before) != sorted(granted) or previous_status != target.status:
            event_emit(
                type="connection.updated",
                data=connection_data(target, previous_capabilities=sorted(granted_before)),
                user=user,
            )
    return ConnectResult(
        connection=target,
        added=added,
        requested=list(requested),
        granted=granted,
        not_granted=not_granted,
        newly_granted=newly_granted,
    )


def connection_make_default(*, connection: Connection) -> None:
    """Runs use this connection of its provider when an app names none."""
    with transaction.atomic():
        theirs = Connection.objects.filter(user_id=connection.user_id, provider=connection.provider)
        # Locked first, in id order, as a refresh batch locks its rows
        # (locks.connections_locked): an UPDATE alone locks in the order it scans, and the
        # two could deadlock.
        list(theirs.select_for_update().order_by("pk").values_list("pk", flat=True))
        theirs.update(is_default=False)
        Connection.objects.filter(pk=connection.pk).update(is_default=True)
    connection.is_default = True
