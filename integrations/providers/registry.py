"""Which provider configuration applies: Google and Discord from the settings, the
providers staff define as data (``ProviderDefinition``), a user's own client in place of
the platform's (definitions that allow it, and Google per
``INTEGRATIONS_GOOGLE_USER_CLIENTS``); the one catalogue (built-in capabilities plus
the defined providers'); the env names integrations hand out. Definitions are cached per
process (``definitions_changed``)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from django.conf import settings

from integrations import app_settings
from integrations.core.catalogue import BUILTIN, Catalogue
from integrations.core.catalogue import ProviderInfo as CatalogueProvider
from integrations.core.provider_config import ProviderConfig
from integrations.core.provider_definitions import (
    DefinitionError,
    capabilities_from_data,
    quirks_of,
)
from integrations.errors import ProviderDisabledError, UnknownProviderError

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser, User


logger = logging.getLogger(__name__)


def _absolute_or_empty(url: str) -> str:
    return app_settings.absolute(url) if url else ""


def _sandboxed(authorize_url: str) -> bool:
    return authorize_url.startswith(app_settings.site_url() + "/sandbox/")


def _own_client_credentials(client: Any) -> tuple[str, str, int | None]:
    """A user's own client's ID, decrypted secret and row id."""
    from integrations.core import crypto

    secret = crypto.decrypt(client.client_secret_encrypted, keys=app_settings.token_keys())
    return client.client_id, secret, client.pk


def _google_config(client: Any = None) -> ProviderConfig:
    """Google from the settings; with ``client`` (a user's own ``UserOAuthClient``), its
    credentials in place of the platform's (``INTEGRATIONS_GOOGLE_USER_CLIENTS``)."""
    info = BUILTIN.providers["google"]
    mode = app_settings.google_user_clients()
    client_id, client_secret = settings.GOOGLE_CLIENT_ID, settings.GOOGLE_CLIENT_SECRET
    user_client_id = None
    if client is not None:
        client_id, client_secret, user_client_id = _own_client_credentials(client)
    return ProviderConfig(
        id="google",
        name=info.name,
        client_id=client_id,
        client_secret=client_secret,
        authorize_url=app_settings.absolute(settings.GOOGLE_OAUTH_AUTHORIZE_URL),
        token_url=app_settings.absolute(settings.GOOGLE_OAUTH_TOKEN_URL),
        revoke_url=app_settings.absolute(settings.GOOGLE_OAUTH_REVOKE_URL),
        userinfo_url=app_settings.absolute(settings.GOOGLE_OAUTH_USERINFO_URL),
        identity_scopes=info.identity_scopes,
        auth_params={"access_type": "offline"},
        incremental=True,
        refresh_margin=app_settings.refresh_margin("google"),
        keepalive_interval=app_settings.keepalive_interval("google"),
        env=dict(info.env),
        allow_user_clients=mode in ("allowed", "required"),
        # "required": the platform's client takes no new flows (its grants still refresh).
        managed=_google_platform_client() and mode != "required",
        user_client_id=user_client_id,
        is_sandbox=_sandboxed(app_settings.absolute(settings.GOOGLE_OAUTH_AUTHORIZE_URL)),
    )


def _google_platform_client() -> bool:
    return bool(settings.GOOGLE_CLIENT_ID and settings.GOOGLE_CLIENT_SECRET)


def _discord_config() -> ProviderConfig:
    """Discord's OAuth2 from the settings (https://discord.com/developers/docs/topics/oauth2):
    PKCE, HTTP Basic client authentication on the token and revocation endpoints, a new
    refresh token with every refresh (the old one is dead), the account from
    ``GET /users/@me`` (``id``; labelled by ``username``)."""
    info = BUILTIN.providers["discord"]
    return ProviderConfig(
        id="discord",
        name=info.name,
        client_id=settings.DISCORD_CLIENT_ID,
        client_secret=settings.DISCORD_CLIENT_SECRET,
        authorize_url=app_settings.absolute(settings.DISCORD_OAUTH_AUTHORIZE_URL),
        token_url=app_settings.absolute(settings.DISCORD_OAUTH_TOKEN_URL),
        revoke_url=app_settings.absolute(settings.DISCORD_OAUTH_REVOKE_URL),
        userinfo_url=app_settings.absolute(settings.DISCORD_OAUTH_USERINFO_URL),
        identity_scopes=info.identity_scopes,
        client_auth="basic",
        uid_field="id",
        email_field="username",
        refresh_margin=app_settings.refresh_margin("discord"),
        keepalive_interval=app_settings.keepalive_interval("discord"),
        rotates_refresh_tokens=True,
        env=dict(info.env),
        managed=_discord_configured(),
    )


def _discord_configured() -> bool:
    return bool(settings.DISCORD_CLIENT_ID and settings.DISCORD_CLIENT_SECRET)


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
        client_id, secret, _ = _own_client_credentials(client)
    elif definition.client_secret_encrypted:
        try:
            secret = crypto.decrypt(
                definition.client_secret_encrypted, keys=app_settings.token_keys()
            )
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
        authorize_url=app_settings.absolute(definition.authorize_url),
        token_url=app_settings.absolute(definition.token_url),
        revoke_url=app_settings.absolute(definition.revocation_url)
        if definition.revocation_url
        else "",
        userinfo_url=app_settings.absolute(definition.userinfo_url)
        if definition.userinfo_url
        else "",
        identity_scopes=tuple(definition.identity_scopes or ()),
        scope_separator=definition.scope_separator,
        auth_params=dict(definition.auth_params or {}),
        client_auth=definition.client_auth,
        uid_field=definition.uid_field,
        email_field=definition.email_field,
        refresh_margin=app_settings.refresh_margin(definition.slug),
        keepalive_interval=app_settings.keepalive_interval(definition.slug),
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
        is_sandbox=_sandboxed(app_settings.absolute(definition.authorize_url)),
        quirks=quirks_of(definition.token_url),
    )


def provider_config(provider_id: str, *, client: Any = None) -> ProviderConfig:
    """The configuration of a connectable OAuth provider; ``UnknownProviderError`` when
    unknown.

    ``client``: a ``UserOAuthClient`` whose credentials replace the platform's.
    """
    if provider_id == "google":
        return _google_config(client)
    if provider_id == "discord":
        return _discord_config()
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


def flow_config(provider_id: str, *, user: User | AnonymousUser | None) -> ProviderConfig:
    """The configuration a Connect or Add Permissions flow of ``user`` uses: their own
    client when the provider allows it and they set one, else the platform's.
    ``UnknownProviderError`` when unknown, ``ProviderDisabledError`` when not enabled."""
    config = provider_config(provider_id)
    if not config.enabled:
        raise ProviderDisabledError(provider_id)
    if config.allow_user_clients and user is not None and user.is_authenticated:
        from integrations.models import UserOAuthClient

        client = UserOAuthClient.objects.filter(user=user, provider=provider_id).first()
        if client is not None:
            return provider_config(provider_id, client=client)
        if not config.managed:
            # No client of the user's and none of the platform's offered for new grants
            # (Google with INTEGRATIONS_GOOGLE_USER_CLIENTS=required): not configured,
            # so that no flow starts (``connection_start``) with the platform's.
            return replace(config, client_id="", client_secret="")
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
        mode = app_settings.google_user_clients()
        return ProviderInfo(
            id="google",
            name=BUILTIN.provider_name("google"),
            enabled=True,
            configured=_google_platform_client() and mode != "required",
            allow_user_clients=mode in ("allowed", "required"),
        )
    if provider_id == "discord":
        return ProviderInfo(
            id="discord",
            name=BUILTIN.provider_name("discord"),
            enabled=True,
            configured=_discord_configured(),
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
    if _discord_configured():
        configs.append(_discord_config())
    for definition in sorted(_definitions().values(), key=lambda d: d.name):
        if definition.enabled:
            configs.append(provider_config(definition.slug))
    return configs


def connectable_ids() -> set[str]:
    """The providers a user can Connect now: enabled, with the platform's client or
    taking users' own (which the user adds on the integrations page first). Decrypts
    nothing (the run path asks for it on every call)."""
    ids = {
        provider
        for provider in ("google", "discord")
        if (info := provider_info(provider)).configured or info.allow_user_clients
    }
    for definition in _definitions_state()[0].values():
        info = _info_of(definition)
        if info.enabled and (info.configured or info.allow_user_clients):
            ids.add(info.id)
    return ids


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


def authorization_origins() -> list[str]:
    """The origins (``scheme://host[:port]``) of the authorization endpoints of Google
    and of every enabled provider staff defined, sorted: where a Connect form's redirect
    may lead, for the Content-Security-Policy's ``form-action`` (config/csp.py). Read
    with the cached definitions (no query of its own when they are fresh)."""
    from urllib.parse import urlsplit

    urls = [app_settings.absolute(settings.GOOGLE_OAUTH_AUTHORIZE_URL)]
    if _discord_configured():
        urls.append(app_settings.absolute(settings.DISCORD_OAUTH_AUTHORIZE_URL))
    urls += [
        app_settings.absolute(d.authorize_url)
        for d in _definitions_state()[0].values()
        if d.enabled and d.authorize_url
    ]
    origins = set()
    for url in urls:
        parts = urlsplit(url)
        if parts.scheme in ("http", "https") and parts.netloc:
            origins.add(f"{parts.scheme}://{parts.netloc}")
    return sorted(origins)
