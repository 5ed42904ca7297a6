"""The errors of the client: one per API code the hub answers, all ``HubError``.

Each carries ``status`` (HTTP; None when no answer came), ``code`` (the API's ``error``,
or the client's own for a timeout or a broken connection), ``message`` and, for
answers that say when to come back, ``retry_after`` (seconds). No message ever holds
the token the client sends.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .models import Action, MissingItem, Outage


class HubError(Exception):
    """The hub refused or failed a request."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str = "hub_error",
        detail: Any = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        # The body's ``detail`` as sent: a text, or the problems by field for a 400.
        self.detail = detail
        self.retry_after = retry_after


class InvalidRequestError(HubError):
    """The hub found the request malformed (400); ``detail`` names the fields."""


class AuthenticationError(HubError):
    """The token is missing, wrong, expired or revoked (401)."""


class PermissionDeniedError(HubError):
    """The token may not do this (403): ``runner_scope`` (the app's namespace is outside
    the runner's scope), ``scope_missing`` (a platform credential without the scope)."""


class NotFoundError(HubError):
    """No such user, app, version or connection, or not one this token may see (404)."""


class NotAuthorizedYetError(HubError):
    """The user has not granted (or must renew, or allow the app to use) something the
    app requires (409 ``not_ready``): ``missing`` says what, ``actions`` where the user
    fixes it, ``unavailable`` the outages of what is there."""

    def __init__(
        self,
        message: str = "",
        *,
        status: int | None = 409,
        code: str = "not_ready",
        detail: Any = None,
        retry_after: float | None = None,
        missing: Sequence[MissingItem] = (),
        actions: Sequence[Action] = (),
        unavailable: Sequence[Outage] = (),
    ) -> None:
        keys = ", ".join(m.key for m in missing)
        super().__init__(
            message or f"not authorized yet: {keys}",
            status=status,
            code=code,
            detail=detail,
            retry_after=retry_after,
        )
        self.missing = list(missing)
        self.actions = list(actions)
        self.unavailable = list(unavailable)


class NeedsReconnectError(NotAuthorizedYetError):
    """A grant is dead (the provider answered ``invalid_grant``): the user must connect
    again, at the ``reconnect`` action's ``url`` where the hub gives one."""


class RateLimitedError(HubError):
    """Too many requests (429); ``retry_after`` says when to try again."""


class ProviderUnavailableError(HubError):
    """A provider cannot give a valid token now (503): ``outages`` names the connections,
    ``retry_after`` when the hub tries again."""

    def __init__(self, message: str, *, outages: Sequence[Outage] = (), **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.outages = list(outages)


class HubTimeoutError(HubError):
    """The hub did not answer within the client's timeout."""


class HubConnectionError(HubError):
    """The hub could not be reached (refused, reset, unknown host)."""
