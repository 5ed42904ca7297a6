"""Google service-account keys a user uploads, and what app runs get from them.

- ``google_sa`` (capability ``google.sa``): the key file itself, for
  ``GOOGLE_SA_CREDENTIALS`` (``google_sa_credentials_json``).
- ``gcp`` (capabilities ``gcp.*``): the user's own GCP project. A short-lived access
  token (scope ``cloud-platform``) is minted from the key with the JWT bearer grant
  (RFC 7523 §2.1; https://developers.google.com/identity/protocols/oauth2/service-account#httprest)
  by google-auth, and cached until near expiry (``gcp_credentials``).

Token cache: Django's default cache (Redis in production, per process in
development), keyed by the key row's id and fingerprint, so a replaced or deleted key
never serves a token minted from the old one. The token is stored there encrypted
with ``INTEGRATIONS_TOKEN_KEYS`` like every token at rest; a cache entry that no
longer decrypts (keys rotated) is a miss. No lock: two runs that miss at once both
mint, which Google allows and costs one request each.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import google.auth.exceptions
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables
from google.oauth2 import service_account as google_service_account

from integrations import app_settings
from integrations.app_authorization import credential_authorizations_delete
from integrations.audit import audit_record
from integrations.core import catalogue, crypto
from integrations.core.catalogue import CredentialKind
from integrations.core.service_account_keys import (
    mint_token_uri,
    parse_project_number,
    parse_service_account_key,
)
from integrations.errors import (
    IntegrationError,
    InvalidServiceAccountKeyError,
    ProviderMisconfiguredError,
    ProviderUnavailableError,
    ReauthorizationRequiredError,
    ServiceAccountMissingError,
    error_from_response,
)
from integrations.models import AuditEvent, ServiceAccountKey
from integrations.providers import client as http

if TYPE_CHECKING:
    from django.contrib.auth.models import User


logger = logging.getLogger(__name__)

Purpose = ServiceAccountKey.Purpose
_KIND_OF_PURPOSE = {
    Purpose.GOOGLE_SA: CredentialKind.SERVICE_ACCOUNT,
    Purpose.GCP: CredentialKind.GCP_PROJECT,
}
# The audit log's provider column for each purpose.
_PROVIDER_OF_PURPOSE = {Purpose.GOOGLE_SA: "google", Purpose.GCP: "gcp"}
# Google's documented lifetime of an access token from the JWT grant, when a token
# response states none (https://developers.google.com/identity/protocols/oauth2/service-account).
_DEFAULT_LIFETIME = timedelta(hours=1)
_CACHE_PREFIX = "integrations:gcp-token"


def _keys() -> list[str]:
    return app_settings.token_keys()


def capabilities_needing(purpose: str) -> list[str]:
    """The capability keys a key of ``purpose`` satisfies (``google.sa``; ``gcp.*``)."""
    kind = _KIND_OF_PURPOSE[Purpose(purpose)]
    return [c.key for c in catalogue.CAPABILITIES if c.kind is kind]


# --- upload and delete -------------------------------------------------------------------


@dataclass(frozen=True)
class ServiceAccountKeySetResult:
    key: ServiceAccountKey
    replaced: bool  # a key of this purpose existed and was replaced


@sensitive_variables()
def service_account_key_set(
    *, user: User, purpose: str, key_text: bytes | str, project_number: str = ""
) -> ServiceAccountKeySetResult:
    """Store ``user``'s service-account key for ``purpose`` (``google_sa`` or ``gcp``),
    replacing the one they had for it.

    The key is checked by ``service_account_keys.parse_service_account_key``; ``gcp``
    also needs ``project_number`` (digits). Raises ``InvalidServiceAccountKeyError``
    with a message for the user that never quotes the key. The key file is stored
    encrypted, whole; the replaced row is deleted (its cached token with it) and a new
    one made, so ``created_at`` is the upload time. Audited without key material.
    """
    purpose = Purpose(purpose)
    info = parse_service_account_key(
        key_text, allow_loopback_http=app_settings.service_account_loopback_http()
    )
    number = parse_project_number(project_number) if purpose == Purpose.GCP else ""
    with transaction.atomic():
        old = (
            ServiceAccountKey.objects.select_for_update().filter(user=user, purpose=purpose).first()
        )
        if old is not None:
            _forget_token_on_commit(old)
            old.delete()
        key = ServiceAccountKey.objects.create(
            user=user,
            purpose=purpose,
            client_email=info.client_email,
            project_id=info.project_id,
            project_number=number,
            private_key_id=info.private_key_id,
            key_encrypted=crypto.encrypt(info.text, keys=_keys()),
            fingerprint=crypto.fingerprint(info.text),
        )
        audit_record(
            kind=AuditEvent.Kind.SERVICE_ACCOUNT_SET,
            provider=_PROVIDER_OF_PURPOSE[purpose],
            user=user,
            account=info.client_email,
            detail={
                "purpose": str(purpose),
                "project_id": info.project_id,
                "project_number": number,
                "private_key_id": info.private_key_id,
                "fingerprint": key.fingerprint,
                "replaced": old is not None,
            },
        )
    return ServiceAccountKeySetResult(key=key, replaced=old is not None)


@transaction.atomic
def service_account_key_delete(*, key: ServiceAccountKey) -> None:
    """Delete an uploaded key (got through ``selectors.service_account_key_for_user``)
    and its cached token. The key stays valid at Google: the user deletes it there
    (the page says so). Audited."""
    audit_record(
        kind=AuditEvent.Kind.SERVICE_ACCOUNT_DELETED,
        provider=_PROVIDER_OF_PURPOSE[Purpose(key.purpose)],
        user=key.user,
        account=key.client_email,
        detail={
            "purpose": key.purpose,
            "private_key_id": key.private_key_id,
            "fingerprint": key.fingerprint,
        },
    )
    _forget_token_on_commit(key)
    # Like a deleted secret's: a key uploaded again must be allowed to apps again.
    credential_authorizations_delete(user=key.user, keys=capabilities_needing(key.purpose))
    key.delete()


def _key_of(user: User, purpose: str) -> ServiceAccountKey:
    key = ServiceAccountKey.objects.filter(user=user, purpose=purpose).first()
    if key is None:
        what = "Google service account" if purpose == Purpose.GOOGLE_SA else "GCP project"
        raise ServiceAccountMissingError(
            f"no {what} set up: upload a key under Settings → Secrets → Service accounts",
            purpose=purpose,
            missing=capabilities_needing(purpose),
        )
    return key


# --- what runs get ------------------------------------------------------------------------


@sensitive_variables()
def google_sa_credentials_json(*, user: User) -> str:
    """The user's ``google_sa`` key file, as uploaded: the value of
    ``GOOGLE_SA_CREDENTIALS``. Never log it. ``ServiceAccountMissingError`` (missing
    ``google.sa``) when none was uploaded."""
    key = _key_of(user, Purpose.GOOGLE_SA)
    return crypto.decrypt(key.key_encrypted, keys=_keys())


@dataclass(frozen=True)
class GcpCredentials:
    """An access token for the user's own GCP project. Its repr never shows the token."""

    access_token: str = field(repr=False)
    expires_at: datetime
    project_number: str


@sensitive_variables()
def gcp_credentials(
    *, user: User, margin_seconds: int = 600, now: datetime | None = None
) -> GcpCredentials:
    """An access token (scope ``cloud-platform``) for ``user``'s GCP project, valid for
    at least ``margin_seconds`` when Google allows (a freshly minted token is returned
    even if its whole lifetime is shorter), with the project number:
    ``GCP_ACCESS_TOKEN`` and ``GCP_PROJECT_NUMBER``.

    Served from the cache while valid beyond the margin; minted otherwise (RFC 7523
    JWT bearer grant at the key's ``token_uri``, through the pooled session and its
    timeouts). Raises ``ServiceAccountMissingError`` (a ``MissingCapabilitiesError``
    listing the ``gcp.*`` capabilities) without a key, ``ReauthorizationRequiredError``
    when Google refuses the key (``invalid_grant``: the key or the service account was
    deleted or disabled; the user must upload a new key), ``ProviderUnavailableError``
    for timeouts, connection errors, 5xx and 429 (after google-auth's own bounded
    retries), another ``IntegrationError`` for other refusals.
    """
    now = now or timezone.now()
    key = _key_of(user, Purpose.GCP)
    if key.refused_at is not None:
        # Refused before: not sent to Google again until a new key is uploaded.
        raise ReauthorizationRequiredError(
            f"Google refused the GCP project's service-account key {key.client_email} "
            f"({key.refused_code}): upload a new key",
            code=key.refused_code or "invalid_grant",
        )
    cached = _cached_token(key)
    if cached is not None and cached[1] - now >= timedelta(seconds=margin_seconds):
        return GcpCredentials(
            access_token=cached[0], expires_at=cached[1], project_number=key.project_number
        )
    token, expires_at = _mint(key)
    _cache_token(key, token, expires_at)
    return GcpCredentials(
        access_token=token, expires_at=expires_at, project_number=key.project_number
    )


# --- minting ------------------------------------------------------------------------------


@sensitive_variables()
def _mint(key: ServiceAccountKey) -> tuple[str, datetime]:
    """One JWT bearer grant (RFC 7523 §2.1) with google-auth: it signs the assertion
    (``iss`` the service account, ``aud`` Google's token endpoint, ``scope``
    cloud-platform, one hour) with the key and posts it to the key's ``token_uri``."""
    info = json.loads(crypto.decrypt(key.key_encrypted, keys=_keys()))
    info["token_uri"] = mint_token_uri(
        str(info.get("token_uri", "")),
        allow_loopback_http=app_settings.service_account_loopback_http(),
    )
    try:
        credentials = google_service_account.Credentials.from_service_account_info(
            info, scopes=[catalogue.GCP_SCOPE]
        )
    except (ValueError, KeyError, TypeError):
        # Checked at upload; a stored key that no longer loads is a bug, not the user's.
        raise InvalidServiceAccountKeyError(
            "the stored service-account key does not load; upload it again"
        ) from None
    transport = http.GoogleAuthTransport()
    try:
        credentials.refresh(transport)
    except google.auth.exceptions.TransportError as exc:
        raise ProviderUnavailableError(
            f"the token endpoint of the GCP project's key did not answer ({exc.args[0]})",
            code="timeout" if "Timeout" in str(exc.args[0]) else "connection_error",
        ) from None
    except google.auth.exceptions.RefreshError as exc:
        raise _classify(key, exc, transport.last_status) from None
    if not credentials.token:
        raise IntegrationError("the token endpoint answered without an access token")
    expiry = credentials.expiry
    expires_at = (
        expiry.replace(tzinfo=UTC) if expiry is not None else timezone.now() + _DEFAULT_LIFETIME
    )
    logger.info(
        "minted a GCP access token from service-account key %s (user %s), expires %s",
        key.pk,
        key.user_id,
        expires_at.isoformat(),
    )
    return str(credentials.token), expires_at


def _classify(
    key: ServiceAccountKey, exc: google.auth.exceptions.RefreshError, status: int | None
) -> IntegrationError:
    """Our error for a refused grant (RFC 6749 §5.2). google-auth retries 5xx, 408 and
    429 itself and marks those ``retryable``. Never carries the response text."""
    body = exc.args[1] if len(exc.args) > 1 else None
    if exc.retryable:
        return ProviderUnavailableError(
            f"the token endpoint answered {status}", code=f"http_{status}"
        )
    error = error_from_response(status or 400, body)
    # invalid_grant: the key or its service account was deleted or disabled;
    # invalid_client / unauthorized_client: the same, as Google words it for JWT grants.
    # Both are the user's key, not the platform's client: they must upload a new one.
    if isinstance(error, ReauthorizationRequiredError | ProviderMisconfiguredError):
        ServiceAccountKey.objects.filter(pk=key.pk).update(
            refused_at=timezone.now(), refused_code=error.code[:64]
        )
        audit_record(
            kind=AuditEvent.Kind.SERVICE_ACCOUNT_REJECTED,
            provider=_PROVIDER_OF_PURPOSE[Purpose(key.purpose)],
            user=key.user,
            account=key.client_email,
            ok=False,
            error_code=error.code,
            detail={"purpose": key.purpose, "private_key_id": key.private_key_id},
        )
        logger.warning(
            "Google refused service-account key %s (user %s): %s",
            key.pk,
            key.user_id,
            error.code,
        )
        return ReauthorizationRequiredError(
            f"Google refused the GCP project's service-account key {key.client_email} "
            f"({error.code}): the key or the service account may have been deleted or "
            "disabled; upload a new key",
            code=error.code,
        )
    return error


# --- the token cache ---------------------------------------------------------------------


def _cache_key(key: ServiceAccountKey) -> str:
    return f"{_CACHE_PREFIX}:{key.pk}:{key.fingerprint}"


@sensitive_variables()
def _cached_token(key: ServiceAccountKey) -> tuple[str, datetime] | None:
    entry = cache.get(_cache_key(key))
    if not isinstance(entry, dict):
        return None
    try:
        token = crypto.decrypt(entry["token"], keys=_keys())
        expires_at = datetime.fromisoformat(entry["expires_at"])
    except (crypto.DecryptionError, KeyError, TypeError, ValueError):
        return None
    return token, expires_at


@sensitive_variables()
def _cache_token(key: ServiceAccountKey, token: str, expires_at: datetime) -> None:
    ttl = int((expires_at - timezone.now()).total_seconds())
    if ttl <= 0:
        return
    cache.set(
        _cache_key(key),
        {"token": crypto.encrypt(token, keys=_keys()), "expires_at": expires_at.isoformat()},
        timeout=ttl,
    )


def _forget_token_on_commit(key: ServiceAccountKey) -> None:
    cache_key = _cache_key(key)
    transaction.on_commit(lambda: cache.delete(cache_key))
