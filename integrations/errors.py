"""One error family for the product; provider error codes map to classes through one
table (as oauthlib's ``raise_from_error``). Messages never carry a credential.

Pure: no Django, so that ``core.crypto``, whose ``DecryptionError`` is one of the family,
stays pure.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, ClassVar


class IntegrationError(Exception):
    """Base of every error the product raises on purpose (the manifest's are
    ``ManifestError``). Each class knows its API answer (oauthlib's ``status_code``):
    ``status`` (HTTP), ``code`` (the API code: the ``error`` of the JSON body
    ``{"error": code, "detail": message}``), ``payload()`` and ``headers()``; the API
    answers them in one handler (``apps_registry.api.errors.exception_handler``).

    ``code`` may be given per instance: a provider's refusal carries the provider's
    error code (RFC 6749 §5.2), which the refresh records. A provider's refusal (this
    class itself, as ``error_from_response`` makes it for a code no subclass names, and
    the classes below that keep ``refused_as``) is answered
    ``{"error": refused_as, "detail": code}``: the code, never the provider's words.
    """

    status: ClassVar[int] = 502
    code = "integration_error"
    # The API code of a provider's refusal; None: the error is ours, its API code ``code``.
    refused_as: ClassVar[str | None] = "provider_error"
    # How the API handler logs an answer of this class (None: not at all).
    log_level: ClassVar[int | None] = logging.WARNING

    def __init__(self, message: str = "", *, code: str | None = None) -> None:
        super().__init__(message or self.__class__.__doc__ or self.code)
        if code:
            self.code = code

    def payload(self) -> dict[str, Any]:
        """The JSON body of the API's answer."""
        if self.refused_as is not None:
            return {"error": self.refused_as, "detail": self.code}
        return {"error": self.code, "detail": str(self)}

    def headers(self) -> dict[str, str]:
        """Headers of the API's answer besides the JSON body's."""
        return {}


class UnknownProviderError(IntegrationError):
    """No provider has this id (never built in, or its definition was deleted)."""

    status = 404
    code = "unknown_provider"
    refused_as = None
    log_level = None

    def __init__(self, provider_id: str) -> None:
        super().__init__(f"no provider has the id {provider_id!r}")
        self.provider_id = provider_id


class ProviderDisabledError(IntegrationError):
    """The provider is defined but disabled: no Connect or Add Permissions flow starts
    or completes with it (404, as for an unknown one)."""

    status = 404
    code = "provider_disabled"
    refused_as = None
    log_level = None

    def __init__(self, provider_id: str) -> None:
        super().__init__(f"the provider {provider_id!r} is disabled")
        self.provider_id = provider_id


class OwnClientNotAllowedError(IntegrationError):
    """The provider does not take users' own OAuth clients."""

    status = 403
    code = "own_client_not_allowed"
    refused_as = None
    log_level = None


class OwnClientRequiredError(IntegrationError):
    """No flow can start: the provider takes new grants only through the user's own
    OAuth client (or has no client of the platform's), and the user has not added one.
    The message names the next step."""

    status = 409
    code = "own_client_required"
    refused_as = None
    log_level = None


class ProviderNotConfiguredError(IntegrationError):
    """The provider has no client on this server yet: staff must set it."""

    status = 409
    code = "provider_not_configured"
    refused_as = None
    log_level = None


class AuditEventImmutableError(IntegrationError, PermissionError):
    """An audit event, once written, is never changed or deleted through the ORM. A
    ``PermissionError`` too: it guards the model, as Django's own guards do."""

    status = 500
    code = "audit_event_immutable"
    refused_as = None
    log_level = logging.ERROR


class ReauthorizationRequiredError(IntegrationError):
    """The grant is dead (invalid_grant): the user must connect again."""

    code = "invalid_grant"


class ProviderUnavailableError(IntegrationError):
    """The provider timed out, refused the connection, or answered 5xx or 429."""

    status = 503
    code = "temporarily_unavailable"
    refused_as = "provider_unavailable"
    log_level = None

    def headers(self) -> dict[str, str]:
        return {"Retry-After": "60"}


class ProviderMisconfiguredError(IntegrationError):
    """The provider rejected our client (invalid_client, unauthorized_client): staff must act."""

    code = "invalid_client"


class PrivateAddressError(ProviderMisconfiguredError):
    """A URL this server was to fetch (a provider's endpoint, its discovery document)
    leads to an address that is not public: loopback, private, link-local (with the
    cloud metadata address), reserved. Refused before any connection, with the same
    message whatever the port, so that an answer never tells which internal ports are
    open. Staff's to fix (the definition's URL), as a refused client is: a
    ``ProviderMisconfiguredError``, whose API answer names the code, not the host."""

    code = "private_address"

    def __init__(self, *, host: str) -> None:
        super().__init__(
            f"{host or 'the URL'} is not a public address (it is loopback, private, "
            "link-local or reserved), and this server fetches public addresses only. "
            "Use the provider's public URL; to reach providers on a private network, "
            "staff can set INTEGRATIONS_ALLOW_PRIVATE_URLS=true."
        )
        self.host = host


class AccountMismatchError(IntegrationError):
    """Add Permissions came back signed in as another account than the connection's."""

    status = 409
    code = "account_mismatch"
    refused_as = None
    log_level = None


class MissingCapabilitiesError(IntegrationError):
    """Capabilities an app needs that the user has not granted."""

    status = 409
    code = "missing_capabilities"
    refused_as = None
    log_level = None

    def __init__(self, message: str = "", *, missing: Sequence[str]) -> None:
        super().__init__(message or "missing: " + ", ".join(missing))
        self.missing = list(missing)


class ServiceAccountMissingError(MissingCapabilitiesError):
    """The user has not uploaded the service-account key these capabilities need.

    A ``MissingCapabilitiesError`` (callers that handle missing grants handle this
    too); ``missing`` lists every capability the absent key would satisfy, so a caller
    intersects it with what the app declares."""

    code = "service_account_missing"

    def __init__(self, message: str = "", *, purpose: str, missing: Sequence[str]) -> None:
        super().__init__(message, missing=missing)
        self.purpose = purpose


class InvalidServiceAccountKeyError(IntegrationError):
    """An uploaded service-account key or project number was refused. The message says
    why, for the user, and never quotes the key's content."""

    status = 400
    code = "invalid_service_account_key"
    refused_as = None
    log_level = None


_BY_CODE: dict[str, type[IntegrationError]] = {
    "invalid_grant": ReauthorizationRequiredError,
    # Google: reauthentication required by a Workspace policy, or blocked by an admin.
    "invalid_rapt": ReauthorizationRequiredError,
    "admin_policy_enforced": ReauthorizationRequiredError,
    "invalid_client": ProviderMisconfiguredError,
    "unauthorized_client": ProviderMisconfiguredError,
    # Slack's words for the same (https://api.slack.com/methods/oauth.v2.access#errors).
    "invalid_refresh_token": ReauthorizationRequiredError,
    "invalid_client_id": ProviderMisconfiguredError,
    "bad_client_secret": ProviderMisconfiguredError,
    "temporarily_unavailable": ProviderUnavailableError,
    "server_error": ProviderUnavailableError,
    # Slack's transient errors, answered with HTTP 200.
    "fatal_error": ProviderUnavailableError,
    "internal_error": ProviderUnavailableError,
    "service_unavailable": ProviderUnavailableError,
    "request_timeout": ProviderUnavailableError,
    "ratelimited": ProviderUnavailableError,
}


def error_from_response(status: int, body: object, *, description: str = "") -> IntegrationError:
    """The error for a failed token-endpoint answer (RFC 6749 §5.2).

    The provider's ``error_description`` is kept out of the message: some providers echo
    request parameters in it.
    """
    code = body.get("error") if isinstance(body, dict) else None
    if isinstance(code, str) and code in _BY_CODE:
        return _BY_CODE[code](f"provider answered {status} {code}", code=code)
    if status == 429 or status >= 500:
        return ProviderUnavailableError(f"provider answered {status}", code=f"http_{status}")
    return IntegrationError(
        f"provider answered {status} {code or 'without an error code'}",
        code=code if isinstance(code, str) else f"http_{status}",
    )


class InvalidSecretError(IntegrationError):
    """A secret's key or value was refused. The message never quotes the value."""

    status = 400
    code = "invalid_secret"
    refused_as = None
    log_level = None


class InvalidAppSlugError(IntegrationError):
    """An app named otherwise than ``namespace/name`` (per-app authorization)."""

    status = 400
    code = "invalid_app"
    refused_as = None
    log_level = None


class RefreshRateLimitedError(IntegrationError):
    """A forced refresh of this connection came too soon after the last one (429
    ``rate_limited``, ``Retry-After``: the seconds until the next is allowed)."""

    status = 429
    code = "rate_limited"
    refused_as = None
    log_level = None

    def __init__(self, *, retry_after: int) -> None:
        self.retry_after = max(1, retry_after)
        super().__init__(
            "This connection's last forced refresh was too recent: try again in "
            f"{self.retry_after} s."
        )

    def payload(self) -> dict[str, Any]:
        return {**super().payload(), "retry_after": self.retry_after}

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class ConnectionNeedsReconnectError(IntegrationError):
    """The connection's grant has ended (``invalid_grant``, or no refresh token): only
    the user can bring it back, by reconnecting (409 ``needs_reconnect``; ``reason`` is
    the provider's or our code)."""

    status = 409
    code = "needs_reconnect"
    refused_as = None
    log_level = None

    def __init__(self, *, reason: str) -> None:
        self.reason = reason
        super().__init__("The connection needs reconnecting: its user must connect it again.")

    def payload(self) -> dict[str, Any]:
        return {**super().payload(), "reason": self.reason}


class UnknownEventTypeError(IntegrationError):
    """An event type that is not one of ``integrations.events.emit.EVENT_TYPES``."""

    status = 400
    code = "unknown_event_type"
    refused_as = None
    log_level = None


class EventOutsideTransactionError(IntegrationError):
    """An event was emitted outside a transaction: it must commit with its change (the
    outbox), so the caller's ``transaction.atomic`` is required. A bug, not a request's."""

    status = 500
    code = "event_outside_transaction"
    refused_as = None
    log_level = logging.ERROR


class InvalidWebhookEndpointError(IntegrationError):
    """A webhook endpoint's URL or event types were refused; the message says why."""

    status = 400
    code = "invalid_webhook_endpoint"
    refused_as = None
    log_level = None
