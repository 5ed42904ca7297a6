"""Provider definitions as data: the shape staff fill in, its validation, and the
presets shipped in code. Pure: no models.

A definition describes an OAuth 2.0 authorization server (RFC 6749) well enough for the
one set of machinery (connect, refresh, revoke, status, audit) to work with it: no code
per provider.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from integrations.core.catalogue import BUILTIN, Capability

SLUG_RE = re.compile(r"^[a-z][a-z0-9-]{0,31}$")
ENV_RE = re.compile(r"^[A-Z_][A-Z0-9_]*$")
ENV_SLOTS = ("access_token", "expires_at", "credentials")
# Built in from the environment, or not OAuth at all: staff cannot redefine these.
RESERVED_SLUGS = frozenset({"google", "gcp", "discord"})


class DefinitionError(ValueError):
    """A provider definition that cannot work; the message says which field and why."""


def capabilities_from_data(provider: str, data: object) -> list[Capability]:
    """The capabilities a definition lists: ``[{key, label, description, scopes,
    covers, restricted}]``; keys must start with ``<provider>.``."""
    if data in (None, ""):
        return []
    if not isinstance(data, list):
        raise DefinitionError("capabilities: a list of objects")
    caps = []
    for i, item in enumerate(data):
        where = f"capabilities[{i}]"
        if not isinstance(item, Mapping):
            raise DefinitionError(f"{where}: an object with key, label, scopes")
        key = item.get("key")
        if not isinstance(key, str) or not key.startswith(provider + "."):
            raise DefinitionError(f"{where}.key: a string starting with '{provider}.'")
        scopes = item.get("scopes", [])
        covers = item.get("covers", [])
        if not isinstance(scopes, list) or not all(isinstance(s, str) and s for s in scopes):
            raise DefinitionError(f"{where}.scopes: a list of scope strings")
        if not isinstance(covers, list) or not all(isinstance(s, str) for s in covers):
            raise DefinitionError(f"{where}.covers: a list of capability keys")
        caps.append(
            Capability(
                key=key,
                provider=provider,
                label=str(item.get("label") or key),
                description=str(item.get("description") or ""),
                scopes=tuple(scopes),
                covers=tuple(covers),
                restricted=bool(item.get("restricted", False)),
                read_only=bool(item.get("read_only", False)),
            )
        )
    keys = {c.key for c in caps}
    for cap in caps:
        unknown = [k for k in cap.covers if k not in keys and k not in BUILTIN.by_key]
        if unknown:
            raise DefinitionError(f"{cap.key} covers unknown keys: {', '.join(unknown)}")
    return caps


def validate_definition(data: Mapping[str, Any]) -> None:
    """Raise ``DefinitionError`` when a definition cannot work."""
    slug = data.get("slug", "")
    if not SLUG_RE.match(str(slug)) or slug in RESERVED_SLUGS:
        raise DefinitionError(
            "slug: 1 to 32 lowercase letters, digits and hyphens, starting with a letter"
            + (f"; '{slug}' is built in" if slug in RESERVED_SLUGS else "")
        )
    if not data.get("discovery_url") and not (data.get("authorize_url") and data.get("token_url")):
        raise DefinitionError("give an OIDC discovery URL, or the authorize and token URLs")
    if data.get("scope_separator") not in (" ", ","):
        raise DefinitionError("scope_separator: a space or a comma")
    if data.get("client_auth") not in ("basic", "post"):
        raise DefinitionError("client_auth: basic or post")
    for name in ("auth_params", "token_params", "refresh_params", "env"):
        value = data.get(name) or {}
        if not isinstance(value, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            raise DefinitionError(f"{name}: an object of strings")
    env = data.get("env") or {}
    for slot, name in env.items():
        if slot not in ENV_SLOTS or not ENV_RE.match(name):
            raise DefinitionError(
                f"env.{slot}: slots are {', '.join(ENV_SLOTS)}; names like X_ACCESS_TOKEN"
            )
    capabilities_from_data(str(slug), data.get("capabilities"))


def _caps(provider: str, *rows: tuple[str, str, str, list[str]]) -> list[dict[str, Any]]:
    return [
        {"key": f"{provider}.{k}", "label": label, "description": d, "scopes": s}
        for k, label, d, s in rows
    ]


# Presets: what staff start from in the admin. Endpoints from each provider's docs.
PRESETS: dict[str, dict[str, Any]] = {
    # https://docs.x.com/resources/fundamentals/authentication/oauth-2-0/authorization-code
    "x": {
        "slug": "x",
        "name": "X",
        "authorize_url": "https://x.com/i/oauth2/authorize",
        "token_url": "https://api.x.com/2/oauth2/token",
        "revocation_url": "https://api.x.com/2/oauth2/revoke",
        "userinfo_url": "https://api.x.com/2/users/me",
        "uid_field": "data.id",
        "email_field": "data.username",
        "scope_separator": " ",
        "client_auth": "basic",
        "pkce": True,
        "rotates_refresh_tokens": True,
        "default_lifetime": 7200,
        "identity_scopes": ["users.read", "offline.access"],
        # The x.* capabilities are built in (DESIGN.md); none to add.
        "capabilities": [],
        "env": {"access_token": "X_ACCESS_TOKEN"},
        "allow_user_clients": True,
    },
    # https://api.slack.com/authentication/oauth-v2 (bot tokens)
    "slack": {
        "slug": "slack",
        "name": "Slack",
        "authorize_url": "https://slack.com/oauth/v2/authorize",
        "token_url": "https://slack.com/api/oauth.v2.access",
        "revocation_url": "https://slack.com/api/auth.revoke",
        # The token response names the workspace: {"team": {"id": ..., "name": ...}}.
        "userinfo_url": "",
        "uid_field": "team.id",
        "email_field": "team.name",
        "scope_separator": ",",
        "client_auth": "post",
        "pkce": True,
        "rotates_refresh_tokens": True,
        "identity_scopes": [],
        "capabilities": _caps(
            "slack",
            ("chat.write", "Slack: post messages", "Post messages as the bot", ["chat:write"]),
            (
                "channels.read",
                "Slack: list channels",
                "See public channels and their details",
                ["channels:read"],
            ),
        ),
        "env": {"access_token": "SLACK_BOT_TOKEN"},
        "allow_user_clients": True,
    },
    # https://docs.github.com/en/apps/oauth-apps/building-oauth-apps/authorizing-oauth-apps
    "github": {
        "slug": "github",
        "name": "GitHub",
        "authorize_url": "https://github.com/login/oauth/authorize",
        "token_url": "https://github.com/login/oauth/access_token",
        "revocation_url": "",
        "userinfo_url": "https://api.github.com/user",
        "uid_field": "id",
        "email_field": "login",
        "scope_separator": " ",
        "client_auth": "post",
        "pkce": True,
        "rotates_refresh_tokens": True,
        "identity_scopes": [],
        "capabilities": _caps(
            "github",
            ("user.read", "GitHub: profile", "Read your profile", ["read:user"]),
            ("repo", "GitHub: repositories", "Read and write your repositories", ["repo"]),
        ),
        "env": {"access_token": "GITHUB_TOKEN"},
        "allow_user_clients": True,
    },
    # https://developers.notion.com/docs/authorization
    "notion": {
        "slug": "notion",
        "name": "Notion",
        "authorize_url": "https://api.notion.com/v1/oauth/authorize",
        "token_url": "https://api.notion.com/v1/oauth/token",
        "revocation_url": "",
        # /v1/users/me needs a Notion-Version header; the token response names the
        # workspace and the user who authorized: {"workspace_id", "workspace_name",
        # "owner": {"user": {...}}}.
        "userinfo_url": "",
        # One bot per authorization (a user may authorize two workspaces, or one twice).
        "uid_field": "bot_id",
        "email_field": "workspace_name",
        "scope_separator": " ",
        "client_auth": "basic",
        "pkce": True,
        "auth_params": {"owner": "user"},
        "identity_scopes": [],
        "capabilities": _caps(
            "notion",
            ("workspace", "Notion: pages you share", "Read and edit the pages you share", []),
        ),
        "env": {"access_token": "NOTION_TOKEN"},
        "allow_user_clients": True,
    },
}


# Servers with known quirks, by the host of their token endpoint: a provider defined from
# a preset keeps them whatever slug staff give it. Their hooks: integrations.providers.client.
QUIRKS_BY_HOST: dict[str, tuple[str, ...]] = {"slack.com": ("slack",)}


def quirks_of(token_url: str) -> tuple[str, ...]:
    """The quirks of the server whose token endpoint is ``token_url`` (``("slack",)``)."""
    host = (urlsplit(token_url).hostname or "").lower()
    for known, quirks in QUIRKS_BY_HOST.items():
        if host == known or host.endswith("." + known):
            return quirks
    return ()


def lookup(data: Mapping[str, Any], path: str) -> Any:
    """A dotted path into a JSON object (``data.id`` for X's ``{"data": {"id": …}}``)."""
    value: Any = data
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value
