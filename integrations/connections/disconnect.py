"""Disconnect: revoke the grant at the provider (RFC 7009), then delete the tokens."""

from __future__ import annotations

import logging

from django.db import transaction

from integrations.audit import audit_record
from integrations.connections.connect import connection_make_default
from integrations.connections.store import connection_access_token, connection_refresh_token
from integrations.core import crypto
from integrations.errors import UnknownProviderError
from integrations.events.emit import event_emit
from integrations.events.payloads import connection_data
from integrations.models import AuditEvent, Connection
from integrations.providers import client as http
from integrations.providers import registry
from integrations.providers.client import RevocationOutcome

logger = logging.getLogger(__name__)


def _revoke_at_provider(connection: Connection) -> RevocationOutcome:
    """RFC 7009 revocation of the refresh token (which ends the whole grant at Google),
    or of the access token when there is none. Never raises: what went wrong is the
    outcome's ``error_code``."""
    try:
        config = registry.connection_config(connection)
    except UnknownProviderError:
        # Staff deleted the provider's definition: nowhere to revoke at.
        return RevocationOutcome(ok=False, error_code="unknown_provider")
    except crypto.DecryptionError:
        # The user's own client secret does not decrypt: no way to authenticate.
        return RevocationOutcome(ok=False, error_code="undecryptable")
    if not config.revoke_url:
        return RevocationOutcome(ok=False, error_code="no_revocation_endpoint")
    try:
        refresh = connection_refresh_token(connection=connection)
        access = connection_access_token(connection=connection)
    except crypto.DecryptionError:
        return RevocationOutcome(ok=False, error_code="undecryptable")
    return http.revoke(
        config,
        token=refresh or access,
        token_type_hint="refresh_token" if refresh else "access_token",
    )


def connection_disconnect(*, connection: Connection) -> RevocationOutcome:
    """Revoke the grant at the provider, then delete the connection and its tokens.

    The row is first marked ``revoked`` under its lock, so that no refresh starts (or
    hands out a token) while the revocation is in flight; a refresh already holding
    the lock finishes first. A failed revocation is recorded in the audit log and
    returned, and the local tokens are deleted anyway: keeping them would not make the
    grant less alive.
    """
    connection_id = connection.pk
    with transaction.atomic():
        locked = Connection.objects.select_for_update().filter(pk=connection_id).first()
        if locked is None or locked.status == Connection.Status.REVOKED:
            # Disconnected meanwhile, or a Disconnect is in flight (a double submit).
            return RevocationOutcome(ok=True)
        locked.status = Connection.Status.REVOKED
        locked.next_refresh_at = None
        locked.save(update_fields=["status", "next_refresh_at", "updated_at"])
    outcome = _revoke_at_provider(locked)
    with transaction.atomic():
        # Only the row this marked: a Reconnect that came back meanwhile made it active
        # again with a new grant, which stays.
        if (
            Connection.objects.select_for_update()
            .filter(pk=connection_id, status=Connection.Status.REVOKED)
            .only("id")
            .first()
            is None
        ):
            logger.warning("connection %s was reconnected during its Disconnect", connection_id)
            return outcome
        audit_record(
            kind=AuditEvent.Kind.REVOCATION,
            provider=locked.provider,
            connection=locked,
            ok=outcome.ok,
            error_code=outcome.error_code,
        )
        audit_record(kind=AuditEvent.Kind.DISCONNECT, provider=locked.provider, connection=locked)
        event_emit(
            type="connection.deleted",
            data=connection_data(
                locked,
                revoked_at_provider=outcome.ok,
                revocation_error_code=outcome.error_code,
            ),
        )
        locked.delete()
        if locked.is_default:
            # Another connection of the provider, if any, becomes the default.
            heir = (
                Connection.objects.filter(user_id=locked.user_id, provider=locked.provider)
                .order_by("created_at", "id")
                .first()
            )
            if heir is not None:
                connection_make_default(connection=heir)
    if not outcome.ok:
        logger.warning(
            "revocation failed for connection %s (%s): %s",
            connection_id,
            locked.provider,
            outcome.error_code,
        )
    return outcome
