"""How to talk to one provider's authorization server: a plain, frozen value that the
registry builds (``integrations.providers.registry``) and the refresh policy reads. Pure."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True)
class ProviderConfig:
    """How to talk to one provider's authorization server. Its repr hides the secret."""

    id: str
    name: str
    client_id: str
    client_secret: str = field(repr=False)
    authorize_url: str
    token_url: str
    revoke_url: str
    userinfo_url: str
    identity_scopes: tuple[str, ...] = ()
    scope_separator: str = " "
    # Extra authorization-request parameters, e.g. Google's access_type=offline.
    auth_params: dict[str, str] = field(default_factory=dict)
    client_auth: Literal["basic", "post"] = "post"
    # Google's incremental authorization (include_granted_scopes) and login_hint.
    incremental: bool = False
    uid_field: str = "sub"
    email_field: str = "email"
    # An access token handed out is valid for at least this long (seconds).
    refresh_margin: int = 600
    # The background sweep refreshes this much earlier still, so that on-demand callers
    # rarely wait for a refresh (seconds).
    sweep_lead: int = 300
    # A connection unused this long is idle: no refresh ahead of expiry, only a
    # keep-alive every `keepalive_interval` so the provider does not expire the idle
    # refresh token (Google: six months unused).
    idle_after: int = 24 * 3600
    keepalive_interval: int = 7 * 24 * 3600
    # Access-token lifetime to assume when the token response states none (seconds).
    default_lifetime: int | None = None
    pkce: bool = True
    token_params: dict[str, str] = field(default_factory=dict)
    refresh_params: dict[str, str] = field(default_factory=dict)
    rotates_refresh_tokens: bool = False
    # RFC 6749 §6: a refresh may ask for a narrower scope; runs then get narrowed tokens.
    narrow_scope_on_refresh: bool = False
    # Env names apps receive: {"access_token": ..., "expires_at": ..., "credentials": ...}.
    env: dict[str, str] = field(default_factory=dict)
    # Users may bring their own client ("your own" mode); whether a platform client is set.
    allow_user_clients: bool = False
    managed: bool = True
    # The user's own client in use, if any (UserOAuthClient id).
    user_client_id: int | None = None
    # Staff switched it on (definitions): only then may users Connect or Add Permissions.
    # Connections made before keep refreshing, serving runs and disconnecting.
    enabled: bool = True
    # Its endpoints are this site's built-in sandbox (development and tests).
    is_sandbox: bool = False
    # Known quirks of its server (e.g. "slack"): the keys its compliance hooks are
    # registered under (``integrations.providers.client``), besides its id.
    quirks: tuple[str, ...] = ()

    def authenticate(self, data: dict[str, str]) -> tuple[str, str] | None:
        """Client authentication for a token or revocation request (RFC 6749 §2.3.1):
        HTTP Basic credentials to pass as ``auth``, or the client in the form ``data``."""
        if self.client_auth == "basic":
            return (self.client_id, self.client_secret)
        data.update(client_id=self.client_id, client_secret=self.client_secret)
        return None

    @property
    def configured(self) -> bool:
        return bool(self.client_id and self.client_secret)
