"""One error family for integrations; provider error codes map to classes through one
table (as oauthlib's ``raise_from_error``). Messages never carry a credential."""

from __future__ import annotations

from collections.abc import Sequence


class IntegrationError(Exception):
    """Base of every integrations error. ``code`` is an RFC 6749 error code or ours."""

    code = "integration_error"

    def __init__(self, message: str = "", *, code: str | None = None) -> None:
        super().__init__(message or self.__class__.__doc__ or self.code)
        if code:
            self.code = code


class UnknownProviderError(KeyError):
    """No provider has this id (never built in, or its definition was deleted). A
    ``KeyError``, as a lookup by id is."""


class ReauthorizationRequiredError(IntegrationError):
    """The grant is dead (invalid_grant): the user must connect again."""

    code = "invalid_grant"


class ProviderUnavailableError(IntegrationError):
    """The provider timed out, refused the connection, or answered 5xx or 429."""

    code = "temporarily_unavailable"


class ProviderMisconfiguredError(IntegrationError):
    """The provider rejected our client (invalid_client, unauthorized_client): staff must act."""

    code = "invalid_client"


class AccountMismatchError(IntegrationError):
    """Add Permissions came back signed in as another account than the connection's."""

    code = "account_mismatch"


class MissingCapabilitiesError(IntegrationError):
    """Capabilities an app needs that the user has not granted."""

    code = "missing_capabilities"

    def __init__(self, message: str = "", *, missing: Sequence[str]) -> None:
        super().__init__(message or "missing: " + ", ".join(missing))
        self.missing = list(missing)


class RevocationError(IntegrationError):
    """The provider did not confirm a revocation."""

    code = "revocation_failed"


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

    code = "invalid_service_account_key"


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

    code = "invalid_secret"
