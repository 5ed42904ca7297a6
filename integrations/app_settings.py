"""Every integrations setting is read here, at call time (so tests may override them)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from django.conf import settings

from integrations.core.catalogue import BUILTIN, Catalogue
from integrations.core.catalogue import ProviderInfo as CatalogueProvider
from integrations.core.provider_definitions import DefinitionError, capabilities_from_data
from integrations.errors import ProviderDisabledError, UnknownProviderError

logger = logging.getLogger(__name__)


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

    @property
    def is_sandbox(self) -> bool:
        return self.authorize_url.startswith(site_url() + "/sandbox/")


def site_url() -> str:
    return str(settings.SITE_URL).rstrip("/")


def absolute(url: str) -> str:
    """Endpoints may be given as paths on this site (the sandbox): make them absolute."""
    return site_url() + url if url.startswith("/") else url


def token_keys() -> list[str]:
    return list(settings.INTEGRATIONS_TOKEN_KEYS)


def http_timeout() -> tuple[float, float]:
    connect, read = settings.INTEGRATIONS_HTTP_TIMEOUT
    return (float(connect), float(read))


def _google_config() -> ProviderConfig:
    info = BUILTIN.providers["google"]
    return ProviderConfig(
        id="google",
        name=info.name,
        client_id=settings.GOOGLE_CLIENT_ID,
        client_secret=settings.GOOGLE_CLIENT_SECRET,
        authorize_url=absolute(settings.GOOGLE_OAUTH_AUTHORIZE_URL),
        token_url=absolute(settings.GOOGLE_OAUTH_TOKEN_URL),
        revoke_url=absolute(settings.GOOGLE_OAUTH_REVOKE_URL),
        userinfo_url=absolute(settings.GOOGLE_OAUTH_USERINFO_URL),
        identity_scopes=info.identity_scopes,
        auth_params={"access_type": "offline"},
        incremental=True,
        refresh_margin=_margin("google"),
        keepalive_interval=_keepalive("google"),
        env=dict(info.env),
    )


def _margin(provider_id: str) -> int:
    margins = settings.INTEGRATIONS_REFRESH_MARGIN_SECONDS
    return int(margins.get(provider_id, margins["default"]))


def _keepalive(provider_id: str) -> int:
    intervals = settings.INTEGRATIONS_KEEPALIVE_SECONDS
    return int(intervals.get(provider_id, intervals["default"]))


# Definitions are read from the database at most every few seconds per process (and at
# once after a change in this process): the refresh and run paths ask for them often.
# ``state`` is (rows by slug, the catalogue built from them or None, the configurations
# built from them), swapped whole so that nothing is kept against rows it was not built
# from. Configurations are kept so that the run and refresh paths do not decrypt a
# client secret on every call.
_State = tuple[dict[str, Any], Catalogue | None, dict[tuple[Any, ...], "ProviderConfig"]]
_definitions_cache: dict[str, Any] = {"at": -1e9, "state": ({}, None, {})}


def definitions_changed() -> None:
    _definitions_cache["at"] = -1e9


def _definitions_state() -> _State:
    from integrations.models import ProviderDefinition

    now = time.monotonic()
    if now - _definitions_cache["at"] > settings.INTEGRATIONS_PROVIDER_CACHE_SECONDS:
        rows = {d.slug: d for d in ProviderDefinition.objects.all()}
        _definitions_cache["state"] = (rows, None, {})
        _definitions_cache["at"] = now
    state: _State = _definitions_cache["state"]
    return state


def _definitions() -> dict[str, Any]:
    return dict(_definitions_state()[0])


def _definition_config(definition: Any, client: Any = None) -> ProviderConfig:
    from integrations.core import crypto

    client_id, secret = definition.client_id, ""
    if client is not None:
        client_id = client.client_id
        secret = crypto.decrypt(client.client_secret_encrypted, keys=token_keys())
    elif definition.client_secret_encrypted:
        try:
            secret = crypto.decrypt(definition.client_secret_encrypted, keys=token_keys())
        except crypto.DecryptionError:
            # The keys lost the one it was written under: the provider acts as if it
            # had no platform client (pages still render; refreshes fail as
            # invalid_client, which ProviderHealth shows staff), until staff set it again.
            logger.error("the client secret of provider %s does not decrypt", definition.slug)
            client_id = ""
    return ProviderConfig(
        id=definition.slug,
        name=definition.name,
        client_id=client_id,
        client_secret=secret,
        authorize_url=absolute(definition.authorize_url),
        token_url=absolute(definition.token_url),
        revoke_url=absolute(definition.revocation_url) if definition.revocation_url else "",
        userinfo_url=absolute(definition.userinfo_url) if definition.userinfo_url else "",
        identity_scopes=tuple(definition.identity_scopes or ()),
        scope_separator=definition.scope_separator,
        auth_params=dict(definition.auth_params or {}),
        client_auth=definition.client_auth,
        uid_field=definition.uid_field,
        email_field=definition.email_field,
        refresh_margin=_margin(definition.slug),
        keepalive_interval=_keepalive(definition.slug),
        default_lifetime=definition.default_lifetime,
        pkce=definition.pkce,
        token_params=dict(definition.token_params or {}),
        refresh_params=dict(definition.refresh_params or {}),
        rotates_refresh_tokens=definition.rotates_refresh_tokens,
        narrow_scope_on_refresh=definition.narrow_scope_on_refresh,
        env=dict(definition.env or {}),
        allow_user_clients=definition.allow_user_clients,
        managed=bool(definition.client_id and definition.client_secret_encrypted),
        user_client_id=client.pk if client is not None else None,
        enabled=definition.enabled,
    )


def provider_config(provider_id: str, *, client: Any = None) -> ProviderConfig:
    """The configuration of a connectable OAuth provider; ``UnknownProviderError`` when
    unknown.

    ``client``: a ``UserOAuthClient`` whose credentials replace the platform's.
    """
    if provider_id == "google":
        return _google_config()
    rows, _, configs = _definitions_state()
    definition = rows.get(provider_id)
    if definition is None:
        raise UnknownProviderError(provider_id)
    # A user's client is keyed by its stored secret too: replaced, it is a new entry.
    key: tuple[Any, ...] = (
        (provider_id, client.pk, bytes(client.client_secret_encrypted))
        if client is not None
        else (provider_id,)
    )
    config = configs.get(key)
    if config is None:
        config = configs[key] = _definition_config(definition, client)
    return config


def connection_config(connection: Any) -> ProviderConfig:
    """The configuration a connection's refreshes and revocation use: with the user's
    own client when the grant was made with it."""
    return provider_config(connection.provider, client=connection.oauth_client)


def flow_config(provider_id: str, *, user: Any) -> ProviderConfig:
    """The configuration a Connect or Add Permissions flow of ``user`` uses: their own
    client when the provider allows it and they set one, else the platform's.
    ``UnknownProviderError`` when unknown, ``ProviderDisabledError`` when not enabled."""
    config = provider_config(provider_id)
    if not config.enabled:
        raise ProviderDisabledError(provider_id)
    if config.allow_user_clients and getattr(user, "is_authenticated", False):
        from integrations.models import UserOAuthClient

        client = UserOAuthClient.objects.filter(user=user, provider=provider_id).first()
        if client is not None:
            return provider_config(provider_id, client=client)
    return config


def catalogue() -> Catalogue:
    """The built-in capabilities and providers plus the providers defined as data
    (each with its name, identity scopes and env names) and their capabilities (built
    once per read of the definitions)."""
    state = _definitions_state()
    rows, cached, configs = state
    if cached is not None:
        return cached
    extra = []
    for definition in rows.values():
        try:
            extra += capabilities_from_data(definition.slug, definition.capabilities)
        except DefinitionError:
            continue  # the admin refuses these; never break every page for one row
    providers = [_catalogue_provider(d) for d in rows.values()]
    built = BUILTIN.extended(extra, providers) if rows else BUILTIN
    if _definitions_cache["state"] is state:  # not re-read meanwhile by another thread
        _definitions_cache["state"] = (rows, built, configs)
    return built


def _catalogue_provider(definition: Any) -> CatalogueProvider:
    """What the catalogue knows of a provider defined as data (its name even when its
    capabilities do not validate)."""
    env = definition.env if isinstance(definition.env, dict) else {}
    scopes = definition.identity_scopes if isinstance(definition.identity_scopes, list) else []
    return CatalogueProvider(
        id=definition.slug,
        name=definition.name or definition.slug,
        identity_scopes=tuple(str(s) for s in scopes),
        env={str(k): str(v) for k, v in env.items()},
    )


@dataclass(frozen=True)
class ProviderInfo:
    """What pages need to know of a provider without decrypting its client secret."""

    id: str
    name: str
    enabled: bool
    configured: bool  # the platform's client is set (managed mode)
    allow_user_clients: bool


def provider_info(provider_id: str) -> ProviderInfo:
    """``UnknownProviderError`` when there is no such provider. Decrypts nothing, so
    it works when a stored client secret no longer decrypts."""
    if provider_id == "google":
        return ProviderInfo(
            id="google",
            name=BUILTIN.provider_name("google"),
            enabled=True,
            configured=bool(settings.GOOGLE_CLIENT_ID and settings.GOOGLE_CLIENT_SECRET),
            allow_user_clients=False,
        )
    definition = _definitions_state()[0].get(provider_id)
    if definition is None:
        raise UnknownProviderError(provider_id)
    return _info_of(definition)


def _info_of(definition: Any) -> ProviderInfo:
    return ProviderInfo(
        id=definition.slug,
        name=definition.name,
        enabled=definition.enabled,
        configured=bool(definition.client_id and definition.client_secret_encrypted),
        allow_user_clients=definition.allow_user_clients,
    )


def connectable_providers() -> list[ProviderConfig]:
    """Providers a user can Connect on the integrations page, in display order."""
    configs = [_google_config()]
    for definition in sorted(_definitions().values(), key=lambda d: d.name):
        if definition.enabled:
            configs.append(provider_config(definition.slug))
    return configs


def connectable_ids() -> set[str]:
    """The providers a user can Connect now: enabled, with the platform's client or
    taking users' own (which the user adds on the integrations page first). Decrypts
    nothing (the run path asks for it on every call)."""
    ids = {"google"} if provider_info("google").configured else set()
    for definition in _definitions_state()[0].values():
        info = _info_of(definition)
        if info.enabled and (info.configured or info.allow_user_clients):
            ids.add(info.id)
    return ids


def verify_interval() -> int:
    return int(settings.INTEGRATIONS_VERIFY_SECONDS)


def refresh_max_attempts_per_day() -> int:
    return int(settings.INTEGRATIONS_REFRESH_MAX_ATTEMPTS_PER_DAY)


def sweep_batch_size() -> int:
    return int(settings.INTEGRATIONS_SWEEP_BATCH_SIZE)


def service_account_loopback_http() -> bool:
    """Whether a service-account key's ``token_uri`` may be http:// to a loopback host
    (tests run a token endpoint on 127.0.0.1). Off unless set: in production it would
    let a user make this server POST to its own loopback services."""
    return bool(settings.INTEGRATIONS_SERVICE_ACCOUNT_LOOPBACK_HTTP)


def reserved_env_names() -> frozenset[str]:
    """Every env name an integration hands to app runs: the built-in ones
    (``secret_rules.BUILTIN_ENV_NAMES``) and the ``env`` names of the providers staff
    defined (read with the definitions, no query of its own when they are fresh)."""
    from integrations.core.secret_rules import BUILTIN_ENV_NAMES

    defined = {
        str(name)
        for definition in _definitions_state()[0].values()
        if isinstance(definition.env, dict)
        for name in definition.env.values()
    }
    return BUILTIN_ENV_NAMES | defined if defined else BUILTIN_ENV_NAMES
