"""What a connection's card says about its state, and the one step that helps. Pure:
the template words each ``StatusLine.kind``; the caller passes the clock."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from integrations.core import statuses


class StatusKind(StrEnum):
    # Active, with a refresh token and an unexpired access token.
    RENEWED = "renewed"
    # Active, with a refresh token, its access token expired: the next use renews it.
    RENEWED_ON_USE = "renewed_on_use"
    # Active, no refresh token, an expiry: works until then, then needs a reconnect.
    UNTIL_EXPIRY = "until_expiry"
    # Active, no refresh token, an expiry passed.
    EXPIRED = "expired"
    # Active, a token without a stated expiry.
    NO_EXPIRY = "no_expiry"
    # The last renewal failed (transiently); the current access token still works.
    FAILING = "failing"
    # The last renewal failed and the access token has expired: apps are refused.
    FAILING_EXPIRED = "failing_expired"
    NEEDS_RECONNECT = "needs_reconnect"
    REVOKED = "revoked"


class Action(StrEnum):
    NONE = ""
    RETRY = "retry"
    RECONNECT = "reconnect"


# How the provider failed the last renewal, in words: the refresh records ``timeout``,
# ``connection_error``, ``http_<status>`` or the provider's OAuth error code.
_NO_ANSWER = ("timeout", "connection_error")


@dataclass(frozen=True)
class StatusLine:
    kind: StatusKind
    action: Action
    # For FAILING*: what the provider did with the last renewal ("did not answer our
    # last renewal"), to follow its name.
    failure: str = ""
    # For FAILING*: when the automatic retry is due (None: as soon as the sweep runs).
    retry_at: datetime | None = None


def failure_words(code: str) -> str:
    """What the provider did with the last renewal, from the code the refresh recorded."""
    if code in _NO_ANSWER or code.startswith("http_5"):
        return "did not answer our last renewal"
    if code == "http_429":
        return "asked us to slow down at our last renewal"
    return "refused our last renewal"


def status_line(
    *,
    status: str,
    has_refresh_token: bool,
    expires_at: datetime | None,
    last_error_code: str,
    backoff_until: datetime | None,
    now: datetime,
) -> StatusLine:
    """The card's status line for a connection in ``status`` (``statuses``)."""
    expired = expires_at is not None and expires_at <= now
    if status == statuses.NEEDS_RECONNECT:
        return StatusLine(StatusKind.NEEDS_RECONNECT, Action.RECONNECT)
    if status == statuses.REVOKED:
        return StatusLine(StatusKind.REVOKED, Action.RECONNECT)
    if status == statuses.REFRESH_FAILING:
        kind = StatusKind.FAILING_EXPIRED if expired else StatusKind.FAILING
        return StatusLine(
            kind,
            Action.RETRY,
            failure=failure_words(last_error_code),
            retry_at=backoff_until if backoff_until and backoff_until > now else None,
        )
    if expires_at is None:
        return StatusLine(StatusKind.NO_EXPIRY, Action.NONE)
    if has_refresh_token:
        return StatusLine(StatusKind.RENEWED_ON_USE if expired else StatusKind.RENEWED, Action.NONE)
    if expired:
        return StatusLine(StatusKind.EXPIRED, Action.RECONNECT)
    return StatusLine(StatusKind.UNTIL_EXPIRY, Action.NONE)
