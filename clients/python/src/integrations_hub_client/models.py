"""What the hub answers, as frozen dataclasses. None of them holds a token but
``RunEnvironment.env``, which its repr never shows."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class MissingItem:
    """One thing a run needs that the user has not granted, set or allowed."""

    kind: str  # "capability" or "secret"
    key: str
    reason: str  # "not_granted", "needs_reconnect", "not_set", "not_allowed", "unknown", …
    provider: str | None = None
    description: str = ""


@dataclass(frozen=True)
class Action:
    """What the user must do: e.g. Add Permissions for these capabilities at ``url``."""

    kind: str  # "add_permissions", "connect", "reconnect", "set_secret", "upload_key",
    # "authorize_app" (the user has these and must allow the app to use them, at ``url``)
    url: str
    provider: str | None = None
    capabilities: tuple[str, ...] = ()
    connection_id: int | None = None
    secrets: tuple[str, ...] = ()  # authorize_app: the secret keys to allow


@dataclass(frozen=True)
class Outage:
    """A connection whose provider cannot give a valid token now (in a 503, or in a 409
    beside what is missing)."""

    provider: str
    connection_id: int | None
    reason: str  # the last error code of the refresh, e.g. "timeout", "http_503"
    retry_at: datetime | None  # when the hub tries again; None: now


@dataclass(frozen=True)
class RunEnvironment:
    """The env of one run. Its repr never shows the values."""

    env: Mapping[str, str] = field(repr=False)
    expires_at: datetime | None
    keys: tuple[str, ...]
    app: str = ""
    version: int | None = None


@dataclass(frozen=True)
class ConnectionUser:
    id: int
    email: str


@dataclass(frozen=True)
class Account:
    """The account at the provider (its OpenID ``sub`` and email, where it tells them)."""

    email: str | None
    subject: str | None


@dataclass(frozen=True)
class Connection:
    """One user's account at one provider, as the connections API describes it: never
    a token (tokens come only through the run environment)."""

    id: int
    user: ConnectionUser
    provider: str
    account: Account
    capabilities: tuple[str, ...]
    status: str  # "active", "refresh_failing", "needs_reconnect", "revoked"
    error_code: str | None
    expires_at: datetime | None
    connected_at: datetime | None
    last_used_at: datetime | None
    last_refreshed_at: datetime | None
    is_default: bool


@dataclass(frozen=True)
class Refresh:
    """The answer to a forced refresh."""

    connection: Connection
    refreshed: bool


@dataclass(frozen=True)
class Disconnection:
    """The answer to a disconnect: deleted here, and how the revocation at the provider
    went (e.g. "revoked", "failed", "not_supported")."""

    deleted: bool
    revocation: str
