"""Writes. Keyword-only, typed; views and the allauth adapter call these."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import requests
from allauth.socialaccount.adapter import get_adapter as get_social_adapter
from django.db import models, transaction
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from integrations import app_settings, crypto, http
from integrations.errors import AccountMismatchError, IntegrationError, UnknownProviderError
from integrations.models import (
    AuditEvent,
    Connection,
    ProviderDefinition,
    Secret,
    ServiceAccountKey,
    UserOAuthClient,
)
from integrations.oauth.provider import allauth_provider_id
from integrations.refresh_policy import next_refresh_at
from integrations.secret_rules import check_secret_key, check_secret_value
from integrations.tokens import TokenSet

logger = logging.getLogger(__name__)


# --- tokens at rest -------------------------------------------------------------


def _encrypt(value: str) -> bytes:
    return crypto.encrypt(value, keys=app_settings.token_keys())


def connection_access_token(*, connection: Connection) -> str:
    """The stored access token in clear. Only for code that hands it to the provider
    or to an app run; never log it."""
    return crypto.decrypt(connection.access_token_encrypted, keys=app_settings.token_keys())


def connection_refresh_token(*, connection: Connection) -> str | None:
    if not connection.refresh_token_encrypted:
        return None
    return crypto.decrypt(connection.refresh_token_encrypted, keys=app_settings.token_keys())


def store_tokens(connection: Connection, token: TokenSet) -> list[str]:
    """Put ``token`` on ``connection``; a response without a refresh token keeps the
    stored one. Returns the fields changed, for ``save(update_fields=...)``."""
    connection.access_token_encrypted = _encrypt(token.access_token)
    connection.token_fingerprint = crypto.fingerprint(token.access_token)
    connection.expires_at = token.expires_at
    fields = ["access_token_encrypted", "token_fingerprint", "expires_at"]
    if token.refresh_token:
        connection.refresh_token_encrypted = _encrypt(token.refresh_token)
        fields.append("refresh_token_encrypted")
    return fields


def audit_record(
    *,
    kind: str,
    provider: str,
    user: Any = None,
    connection: Connection | None = None,
    ok: bool = True,
    error_code: str = "",
    detail: dict | None = None,
    account: str = "",
) -> AuditEvent:
    """Append one event to the audit log. ``detail`` must never hold a credential.
    ``account`` defaults to the connection's account (a secret's key, a service
    account's email otherwise)."""
    return AuditEvent.objects.create(
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


# --- Connect and Add Permissions --------------------------------------------------


def _validate_capabilities(provider_id: str, capabilities: Sequence[str]) -> list[str]:
    allowed = {c.key for c in app_settings.catalogue().oauth_capabilities_of(provider_id)}
    keys = list(dict.fromkeys(capabilities))
    unknown = [k for k in keys if k not in allowed]
    if unknown:
        raise IntegrationError(f"unknown capabilities: {', '.join(unknown)}", code="invalid_scope")
    if not keys:
        raise IntegrationError("choose at least one permission", code="invalid_scope")
    return keys


def connection_start(
    *,
    request: HttpRequest,
    provider_id: str,
    capabilities: Sequence[str],
    connection: Connection | None = None,
    next_url: str | None = None,
    reconnect: bool = False,
) -> HttpResponse:
    """Start Connect (``connection`` None) or Add Permissions at the provider.

    Goes through allauth in ``connect`` mode with the scopes chosen here, on the server:
    PKCE S256 and a single-use ``state`` come from allauth; ``access_type=offline``
    from the provider's parameters; ``include_granted_scopes=true`` and ``login_hint``
    for incremental authorization
    (https://developers.google.com/identity/protocols/oauth2/web-server#incrementalAuth);
    ``prompt=consent`` whenever we hold no refresh token, as Google sends one only then.
    """
    config = app_settings.flow_config(provider_id, user=request.user)
    keys = _validate_capabilities(provider_id, capabilities)
    scopes = list(config.identity_scopes) + app_settings.catalogue().scopes_for(keys)
    auth_params = dict(config.auth_params)
    if connection is None or not connection.has_refresh_token or reconnect:
        auth_params["prompt"] = "consent"
    if config.incremental:
        # On every flow, Connect included: the account chosen at the provider may be one
        # already connected (or another tab's flow may have connected it meanwhile), and
        # the answer must then keep what it granted before. Google's token `scope` is
        # the union of this client's grants for the account.
        auth_params["include_granted_scopes"] = "true"
    if connection is not None:
        if not config.incremental:
            scopes += [s for s in connection.scopes if s not in scopes]
        if connection.account_email:
            auth_params["login_hint"] = connection.account_email
    provider = get_social_adapter(request).get_provider(
        request, provider=allauth_provider_id(provider_id)
    )
    data = {
        "capabilities": keys,
        "connection_id": connection.pk if connection else None,
        "user_id": request.user.pk,
    }
    return provider.redirect(
        request,
        process="connect",
        next_url=next_url,
        data=data,
        scope=scopes,
        auth_params=auth_params,
    )


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
    user: Any,
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
    config = app_settings.flow_config(provider_id, user=user)
    cat = app_settings.catalogue()
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
        # A fresh grant: whatever was failing is over.
        now = timezone.now()
        target.status = Connection.Status.ACTIVE
        target.refresh_failures = 0
        target.backoff_until = None
        target.last_error_code = ""
        target.reconnect_notified_at = None
        target.attempts_in_window = 0
        target.attempts_window_start = None
        target.last_refreshed_at = now
        target.last_used_at = now
        target.next_refresh_at = next_refresh_at(connection=target, config=config, now=now)
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
        Connection.objects.select_for_update().filter(
            user_id=connection.user_id, provider=connection.provider
        ).update(is_default=False)
        Connection.objects.filter(pk=connection.pk).update(is_default=True)
    connection.is_default = True


# --- Disconnect -----------------------------------------------------------------------


@dataclass(frozen=True)
class RevocationOutcome:
    ok: bool
    error_code: str = ""


def _revoke_at_provider(connection: Connection) -> RevocationOutcome:
    """RFC 7009 revocation of the refresh token (which ends the whole grant at Google),
    or of the access token when there is none. Never raises: what went wrong is the
    outcome's ``error_code``."""
    try:
        config = app_settings.connection_config(connection)
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
    data = {
        "token": refresh or access,
        "token_type_hint": "refresh_token" if refresh else "access_token",
    }
    auth = config.authenticate(data)
    try:
        resp = http.session().post(config.revoke_url, data=data, auth=auth)
    except requests.RequestException as exc:
        return RevocationOutcome(ok=False, error_code=type(exc).__name__)
    if resp.status_code == 200:
        return RevocationOutcome(ok=True)
    code = ""
    try:
        body = resp.json()
        code = str(body.get("error", "")) if isinstance(body, dict) else ""
    except ValueError:
        pass
    return RevocationOutcome(ok=False, error_code=code[:40] or f"http_{resp.status_code}")


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


# --- secrets --------------------------------------------------------------------------------


@dataclass(frozen=True)
class SecretSetResult:
    secret: Secret
    replaced: bool  # the key existed and its value was replaced


@sensitive_variables("value")
@transaction.atomic
def secret_set(*, user: Any, key: str, value: str) -> SecretSetResult:
    """Add or replace the user's secret ``key`` (``secret_rules``: an env-style key, a
    non-empty value of at most 16 KiB, a key no integration hands out; ``InvalidSecretError``
    otherwise). The value is encrypted; only its fingerprint is kept in clear. Audited
    (key and fingerprint, never the value)."""
    check_secret_key(key, reserved=app_settings.reserved_env_names())
    check_secret_value(value, key=key)
    secret, created = Secret.objects.update_or_create(
        user=user,
        key=key,
        defaults={"value_encrypted": _encrypt(value), "fingerprint": crypto.fingerprint(value)},
    )
    audit_record(
        kind=AuditEvent.Kind.SECRET_SET,
        provider="secrets",
        user=user,
        account=key,
        detail={"key": key, "fingerprint": secret.fingerprint, "replaced": not created},
    )
    return SecretSetResult(secret=secret, replaced=not created)


@transaction.atomic
def secret_delete(*, secret: Secret) -> None:
    """Delete a secret (got through ``selectors.secret_for_user``). Audited."""
    audit_record(
        kind=AuditEvent.Kind.SECRET_DELETED,
        provider="secrets",
        user=secret.user,
        account=secret.key,
        detail={"key": secret.key, "fingerprint": secret.fingerprint},
    )
    secret.delete()


def secret_value(*, secret: Secret) -> str:
    """The secret in clear: only for a run environment; never log it."""
    return crypto.decrypt(secret.value_encrypted, keys=app_settings.token_keys())


# --- key rotation ------------------------------------------------------------------------

# Every encrypted column, by model: what `rotate_token_keys` rewrites.
ENCRYPTED_FIELDS: list[tuple[type[models.Model], tuple[str, ...]]] = [
    (Connection, ("access_token_encrypted", "refresh_token_encrypted")),
    (Secret, ("value_encrypted",)),
    (ServiceAccountKey, ("key_encrypted",)),
    (ProviderDefinition, ("client_secret_encrypted",)),
    (UserOAuthClient, ("client_secret_encrypted",)),
]


def encryption_keys_rotate(*, batch_size: int = 500) -> dict[str, int]:
    """Re-encrypt every stored token and secret under the first key of
    ``INTEGRATIONS_TOKEN_KEYS``.

    Batches under row locks, so that a concurrent refresh never writes a token that
    this then overwrites with an older one. Returns rows rewritten per model.
    """
    keys = app_settings.token_keys()
    done: dict[str, int] = {}
    for model, fields in ENCRYPTED_FIELDS:
        count = 0
        last_id = 0
        while True:
            with transaction.atomic():
                batch = list(
                    model._default_manager.select_for_update()
                    .filter(pk__gt=last_id)
                    .order_by("pk")[:batch_size]
                )
                if not batch:
                    break
                for row in batch:
                    changed = [f for f in fields if getattr(row, f)]
                    for name in changed:
                        setattr(row, name, crypto.rotate(getattr(row, name), keys=keys))
                    row.save(update_fields=changed)
                count += len(batch)
                last_id = batch[-1].pk
        done[str(model._meta.verbose_name_plural)] = count
    return done
