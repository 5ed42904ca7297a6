"""The capability catalogue and its scope math.

Pure data and functions: no Django models are imported here, so the catalogue is
usable (and tested) without a database. A *capability* is what an app declares in
its ``inf.yml`` (``google.sheets.readonly``); it maps to provider scopes. Coverage
("a write capability satisfies its read-only twin") is data (``covers``), never
code per key. A :class:`Catalogue` also knows its providers (name, identity scopes,
env names). ``BUILTIN`` is the one shipped in code, for pure callers that want exactly
that; everything that serves users or apps takes ``integrations.providers.registry.catalogue()``
(``BUILTIN`` plus the providers staff define as data) or is given it.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from enum import StrEnum

GOOGLE_SCOPE_PREFIX = "https://www.googleapis.com/auth/"
GCP_SCOPE = "https://www.googleapis.com/auth/cloud-platform"


class CredentialKind(StrEnum):
    """How a capability is satisfied."""

    OAUTH = "oauth"  # a user's OAuth connection at the provider
    SERVICE_ACCOUNT = "service_account"  # an uploaded Google service-account key
    GCP_PROJECT = "gcp_project"  # the user's own GCP project (key + project number)
    BOT_TOKEN = "bot_token"  # a token the user brings (Discord bot)


@dataclass(frozen=True)
class Capability:
    key: str
    provider: str
    label: str
    description: str
    scopes: tuple[str, ...] = ()
    covers: tuple[str, ...] = ()
    restricted: bool = False
    kind: CredentialKind = CredentialKind.OAUTH
    read_only: bool = False
    # The permission picker's row ("Gmail") and this capability's level in it ("Read");
    # a row's levels are in catalogue order, least first. Empty: a row of its own.
    product: str = ""
    level: str = ""


def _google(
    key: str,
    scope: str,
    label: str,
    description: str,
    *,
    covers: tuple[str, ...] = (),
    restricted: bool = False,
    read_only: bool = False,
) -> Capability:
    return Capability(
        key=key,
        provider="google",
        label=label,
        description=description,
        scopes=(GOOGLE_SCOPE_PREFIX + scope,),
        covers=covers,
        restricted=restricted,
        read_only=read_only,
    )


def _x(
    key: str,
    scopes: tuple[str, ...],
    label: str,
    description: str,
    *,
    covers: tuple[str, ...] = (),
    read_only: bool = False,
) -> Capability:
    # Every X capability also asks for offline.access so that a refresh token is issued.
    return Capability(
        key=key,
        provider="x",
        label=label,
        description=description,
        scopes=(*scopes, "offline.access"),
        covers=covers,
        read_only=read_only,
    )


def _gcp(key: str, label: str, description: str) -> Capability:
    return Capability(
        key=key,
        provider="gcp",
        label=label,
        description=description,
        scopes=(GCP_SCOPE,),
        kind=CredentialKind.GCP_PROJECT,
    )


_CAPABILITIES: tuple[Capability, ...] = (
    # Google (https://developers.google.com/identity/protocols/oauth2/scopes).
    # Restricted scopes need Google's verification and a yearly security assessment.
    _google(
        "google.gmail.readonly",
        "gmail.readonly",
        "Gmail: read",
        "Read your email messages and settings",
        restricted=True,
        read_only=True,
    ),
    _google("google.gmail.send", "gmail.send", "Gmail: send", "Send email on your behalf"),
    _google(
        "google.gmail.compose",
        "gmail.compose",
        "Gmail: drafts and send",
        "Create, update and send email drafts",
        covers=("google.gmail.send",),
        restricted=True,
    ),
    _google(
        "google.gmail.modify",
        "gmail.modify",
        "Gmail: read and organize",
        "Read, compose, send, label and archive email (no permanent deletion)",
        covers=("google.gmail.readonly", "google.gmail.send", "google.gmail.compose"),
        restricted=True,
    ),
    _google(
        "google.calendar.readonly",
        "calendar.readonly",
        "Calendar: read",
        "See your calendars and events",
        read_only=True,
    ),
    _google(
        "google.calendar",
        "calendar",
        "Calendar: read and write",
        "See, create, change and delete events on your calendars",
        covers=("google.calendar.readonly",),
    ),
    _google(
        "google.drive.readonly",
        "drive.readonly",
        "Drive: read",
        "See and download all your Google Drive files",
        restricted=True,
        read_only=True,
    ),
    _google(
        "google.drive",
        "drive",
        "Drive: read and write",
        "See, edit, create and delete all your Google Drive files",
        covers=("google.drive.readonly",),
        restricted=True,
    ),
    _google(
        "google.sheets.readonly",
        "spreadsheets.readonly",
        "Sheets: read",
        "See your Google Sheets spreadsheets",
        read_only=True,
    ),
    _google(
        "google.sheets",
        "spreadsheets",
        "Sheets: read and write",
        "See, edit, create and delete your Google Sheets spreadsheets",
        covers=("google.sheets.readonly",),
    ),
    _google(
        "google.docs.readonly",
        "documents.readonly",
        "Docs: read",
        "See your Google Docs documents",
        read_only=True,
    ),
    _google(
        "google.docs",
        "documents",
        "Docs: read and write",
        "See, edit, create and delete your Google Docs documents",
        covers=("google.docs.readonly",),
    ),
    _google(
        "google.slides.readonly",
        "presentations.readonly",
        "Slides: read",
        "See your Google Slides presentations",
        read_only=True,
    ),
    _google(
        "google.slides",
        "presentations",
        "Slides: read and write",
        "See, edit, create and delete your Google Slides presentations",
        covers=("google.slides.readonly",),
    ),
    Capability(
        key="google.sa",
        provider="google",
        label="Google service account",
        description="A Google service-account key you upload",
        kind=CredentialKind.SERVICE_ACCOUNT,
    ),
    # X (https://docs.x.com/resources/fundamentals/authentication/oauth-2-0/authorization-code)
    _x(
        "x.tweet.read",
        ("tweet.read", "users.read"),
        "X: read posts",
        "Read posts, including from protected accounts you follow",
        read_only=True,
    ),
    _x(
        "x.tweet.write",
        ("tweet.read", "tweet.write", "users.read"),
        "X: write posts",
        "Publish and delete posts on your behalf",
        covers=("x.tweet.read",),
    ),
    _x("x.user.read", ("users.read",), "X: read profiles", "Read account profiles", read_only=True),
    _x(
        "x.follow.read",
        ("follows.read", "users.read"),
        "X: read follows",
        "See who you follow",
        read_only=True,
    ),
    _x(
        "x.follow.write",
        ("follows.read", "follows.write", "users.read"),
        "X: follow",
        "Follow and unfollow accounts",
        covers=("x.follow.read",),
    ),
    _x(
        "x.like.read",
        ("like.read", "users.read"),
        "X: read likes",
        "See posts you liked",
        read_only=True,
    ),
    _x(
        "x.like.write",
        ("like.read", "like.write", "users.read"),
        "X: like",
        "Like and unlike posts",
        covers=("x.like.read",),
    ),
    _x(
        "x.bookmark.read",
        ("bookmark.read", "users.read"),
        "X: read bookmarks",
        "See your bookmarks",
        read_only=True,
    ),
    _x(
        "x.bookmark.write",
        ("bookmark.read", "bookmark.write", "users.read"),
        "X: bookmarks",
        "Add and remove bookmarks",
        covers=("x.bookmark.read",),
    ),
    _x(
        "x.dm.read",
        ("dm.read", "users.read"),
        "X: read messages",
        "Read your direct messages",
        read_only=True,
    ),
    _x(
        "x.dm.write",
        ("dm.read", "dm.write", "users.read"),
        "X: send messages",
        "Send direct messages",
        covers=("x.dm.read",),
    ),
    _x("x.media.write", ("media.write",), "X: upload media", "Upload images and video"),
    _gcp("gcp.vertex_ai", "Vertex AI", "Use Vertex AI in your own GCP project"),
    _gcp("gcp.bigquery", "BigQuery", "Use BigQuery in your own GCP project"),
    _gcp("gcp.storage", "Cloud Storage", "Use Cloud Storage in your own GCP project"),
    _gcp("gcp.pubsub", "Pub/Sub", "Use Pub/Sub in your own GCP project"),
    Capability(
        key="discord.bot",
        provider="discord",
        label="Discord bot",
        description="Act as your own Discord bot",
        kind=CredentialKind.BOT_TOKEN,
    ),
    # Discord OAuth2 (https://discord.com/developers/docs/topics/oauth2#shared-resources-oauth2-scopes).
    # `identify` is also the identity scope (GET /users/@me needs it), so every
    # connection has discord.identify.
    Capability(
        key="discord.identify",
        provider="discord",
        label="Discord: profile",
        description="See your Discord username, avatar and banner (not your email)",
        scopes=("identify",),
        read_only=True,
    ),
    Capability(
        key="discord.guilds",
        provider="discord",
        label="Discord: servers",
        description="See which Discord servers you are in",
        scopes=("identify", "guilds"),
        covers=("discord.identify",),
        read_only=True,
    ),
)


# Picker rows: product -> its levels, least first (None is always offered before them).
PRODUCT_LEVELS: dict[str, tuple[tuple[str, str], ...]] = {
    "Gmail": (
        ("google.gmail.readonly", "Read"),
        ("google.gmail.send", "Send only"),
        ("google.gmail.compose", "Drafts and send"),
        ("google.gmail.modify", "Read and organize"),
    ),
    "Calendar": (("google.calendar.readonly", "Read"), ("google.calendar", "Read and write")),
    "Drive": (("google.drive.readonly", "Read"), ("google.drive", "Read and write")),
    "Sheets": (("google.sheets.readonly", "Read"), ("google.sheets", "Read and write")),
    "Docs": (("google.docs.readonly", "Read"), ("google.docs", "Read and write")),
    "Slides": (("google.slides.readonly", "Read"), ("google.slides", "Read and write")),
    "Posts": (("x.tweet.read", "Read"), ("x.tweet.write", "Read and write")),
    "Profiles": (("x.user.read", "Read"),),
    "Follows": (("x.follow.read", "Read"), ("x.follow.write", "Read and follow")),
    "Likes": (("x.like.read", "Read"), ("x.like.write", "Read and like")),
    "Bookmarks": (("x.bookmark.read", "Read"), ("x.bookmark.write", "Read and write")),
    "Direct messages": (("x.dm.read", "Read"), ("x.dm.write", "Read and send")),
    "Media": (("x.media.write", "Upload"),),
    "Discord account": (("discord.identify", "Profile"), ("discord.guilds", "Profile and servers")),
}
_PLACE = {
    key: (product, level) for product, levels in PRODUCT_LEVELS.items() for key, level in levels
}
CAPABILITIES: tuple[Capability, ...] = tuple(
    replace(c, product=_PLACE[c.key][0], level=_PLACE[c.key][1]) if c.key in _PLACE else c
    for c in _CAPABILITIES
)


@dataclass(frozen=True)
class ProductRow:
    """One row of the permission picker: a product and its levels, least first."""

    name: str
    levels: tuple[Capability, ...]

    @property
    def slug(self) -> str:
        return "".join(ch if ch.isalnum() else "-" for ch in self.name.lower())


def product_rows(capabilities: Iterable[Capability]) -> list[ProductRow]:
    """The picker rows of ``capabilities``, in catalogue order: capabilities of one
    ``product`` share a row; one without a product (a staff-defined one) is a row of
    its own, named by its label."""
    rows: dict[str, list[Capability]] = {}
    for cap in capabilities:
        rows.setdefault(cap.product or cap.label, []).append(cap)
    return [ProductRow(name=name, levels=tuple(levels)) for name, levels in rows.items()]


def level_label(cap: Capability) -> str:
    """How the picker names ``cap``'s level in its row."""
    return cap.level or "Allow"


@dataclass(frozen=True)
class ProviderInfo:
    """What the catalogue knows about a provider, independent of configuration."""

    id: str
    name: str
    # Scopes that identify the account (sub, email); always asked for, never a capability.
    identity_scopes: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)


BUILTIN_PROVIDERS: tuple[ProviderInfo, ...] = (
    ProviderInfo(
        id="google",
        name="Google",
        identity_scopes=("openid", "email"),
        env={
            "access_token": "GOOGLE_OAUTH_ACCESS_TOKEN",
            "expires_at": "GOOGLE_OAUTH_TOKEN_EXPIRES_AT",
            "credentials": "GOOGLE_OAUTH_CREDENTIALS",
        },
    ),
    ProviderInfo(id="x", name="X", env={"access_token": "X_ACCESS_TOKEN"}),
    ProviderInfo(id="gcp", name="Google Cloud project"),
    ProviderInfo(
        id="discord",
        name="Discord",
        identity_scopes=("identify",),
        env={"access_token": "DISCORD_ACCESS_TOKEN"},
    ),
)


class Catalogue:
    """Capabilities, the providers they belong to, and the scope math over them.

    ``BUILTIN`` holds the capabilities and providers shipped in code; providers that
    staff define as data add theirs (``Catalogue.extended``;
    ``integrations.providers.registry.catalogue`` is that one). Coverage ("write covers
    read") is data.
    """

    def __init__(
        self, capabilities: Iterable[Capability], providers: Iterable[ProviderInfo] = ()
    ) -> None:
        self.capabilities: tuple[Capability, ...] = tuple(capabilities)
        self.by_key: dict[str, Capability] = {c.key: c for c in self.capabilities}
        self.providers: dict[str, ProviderInfo] = {p.id: p for p in providers}
        self._satisfied_by = {c.key: frozenset(self._covering(c.key)) for c in self.capabilities}
        self._covers = {c.key: frozenset(self._covered(c.key)) for c in self.capabilities}

    def extended(
        self, capabilities: Iterable[Capability], providers: Iterable[ProviderInfo] = ()
    ) -> Catalogue:
        """This catalogue plus ``capabilities`` and ``providers`` (a key or provider id
        defined again is replaced)."""
        merged = dict(self.by_key)
        merged.update({c.key: c for c in capabilities})
        infos = dict(self.providers)
        infos.update({p.id: p for p in providers})
        return Catalogue(merged.values(), infos.values())

    def _covering(self, key: str) -> set[str]:
        """Every key whose grant satisfies ``key`` (itself included), transitively."""
        result = {key}
        changed = True
        while changed:
            changed = False
            for cap in self.capabilities:
                if cap.key not in result and result.intersection(cap.covers):
                    result.add(cap.key)
                    changed = True
        return result

    def _covered(self, key: str) -> set[str]:
        """Every key that ``key`` covers, transitively."""
        result: set[str] = set()
        todo = list(self.by_key[key].covers)
        while todo:
            k = todo.pop()
            if k not in result:
                result.add(k)
                todo.extend(self.by_key[k].covers if k in self.by_key else ())
        return result

    def capability(self, key: str) -> Capability:
        """The capability named ``key``; ``KeyError`` when unknown."""
        return self.by_key[key]

    def label(self, key: str) -> str:
        """How pages name the capability ``key``: its label, or the key when unknown."""
        cap = self.by_key.get(key)
        return cap.label if cap is not None else key

    def provider_name(self, provider: str) -> str:
        """How pages name ``provider``: its name, or its id when unknown."""
        info = self.providers.get(provider)
        return info.name if info is not None else provider

    def capabilities_of(self, provider: str) -> list[Capability]:
        return [c for c in self.capabilities if c.provider == provider]

    def oauth_capabilities_of(self, provider: str) -> list[Capability]:
        return [c for c in self.capabilities_of(provider) if c.kind is CredentialKind.OAUTH]

    def scopes_for(self, keys: Iterable[str]) -> list[str]:
        """The provider scopes the capabilities ``keys`` need, de-duplicated, in order."""
        seen: dict[str, None] = {}
        for key in keys:
            for scope in self.by_key[key].scopes:
                seen.setdefault(scope, None)
        return list(seen)

    def granted_capabilities(self, provider: str, scopes: Iterable[str]) -> list[str]:
        """Keys of the ``provider``'s OAuth capabilities whose scopes are all in ``scopes``.

        ``scopes`` are the ones the provider actually granted (the token response's
        ``scope``), never the ones we asked for.
        """
        granted = set(scopes)
        # A capability without scopes (Notion's: access is per shared page) comes with
        # any connection to its provider.
        return [c.key for c in self.oauth_capabilities_of(provider) if granted.issuperset(c.scopes)]

    def is_satisfied(self, key: str, granted_keys: Iterable[str]) -> bool:
        """True when ``key`` is granted directly or covered by a granted key."""
        satisfied_by = self._satisfied_by.get(key, frozenset({key}))
        return not satisfied_by.isdisjoint(granted_keys)

    def missing_capabilities(
        self, required: Iterable[str], granted_keys: Iterable[str]
    ) -> list[str]:
        """The keys of ``required`` that ``granted_keys`` do not satisfy, in order."""
        granted = set(granted_keys)
        return [key for key in required if not self.is_satisfied(key, granted)]

    def effective_capabilities(self, granted_keys: Iterable[str]) -> list[str]:
        """Granted keys without those already covered by another granted key.

        What the page shows: "Sheets: read and write" rather than that plus "Sheets: read".
        """
        granted = list(granted_keys)
        return [
            key
            for key in granted
            if not any(other != key and key in self._covers.get(other, ()) for other in granted)
        ]

    def suggest(self, key: str) -> str | None:
        """The closest known capability key to an unknown ``key`` ("did you mean")."""
        matches = difflib.get_close_matches(key, self.by_key.keys(), n=1, cutoff=0.6)
        return matches[0] if matches else None


BUILTIN = Catalogue(CAPABILITIES, BUILTIN_PROVIDERS)
