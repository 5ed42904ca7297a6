"""Readiness of (user, app): what the app's manifest asks for that the user has not
granted or set yet, and the actions that ask for exactly that.

Pure: no models, no database. ``apps_registry.selectors.readiness_for`` gathers the
inputs; :func:`assess_readiness` decides. The rules:

* An app runs with **one account per provider** (it gets one
  ``GOOGLE_OAUTH_ACCESS_TOKEN``), so per provider one connection is measured, by the
  rule the run environment chooses with (:func:`choose_connection`): the user's
  default one when it serves the app, else the usable one (status ``active`` or
  ``refresh_failing``) that already satisfies the most required, then optional,
  capabilities of the app; on a tie, the first given (the oldest). Every capability
  of that provider is granted or missing on it.
* Coverage is the catalogue's data: a granted ``google.sheets`` satisfies a required
  ``google.sheets.readonly`` (``Catalogue.is_satisfied``).
* A connection that ``needs_reconnect`` (or was revoked) satisfies nothing; with no
  usable connection left, the action is a **Connect** marked ``reconnect``: signing in
  again with the same account renews that connection.
* Actions, per provider that this server can connect: one that asks for exactly the
  **required** missing capabilities (Add Permissions on the measured connection, or
  Connect when there is none), and, when optional ones are missing too, a second one
  asking for the required *and* the optional missing ones, so that a user who wants
  everything consents once. Keys that another asked-for key covers are left out.
* Capabilities that OAuth cannot grant (``google.sa``, ``gcp.*``, ``discord.bot``)
  are satisfied when the user has brought that kind of credential (``credentials``),
  else missing with reason ``needs_credential`` and their credential kind; there is
  no OAuth action for them.
* A key the catalogue does not know is missing with reason ``unknown``.
* Labels and provider names are the catalogue's (``cat``: the built-in one plus the
  providers staff defined), resolved when the items, actions and outages are built.
* Secrets are satisfied by a secret of the same key.
* A connection a run would get no token from *now* is **temporarily unavailable**
  (:func:`grant_outage`, the one rule the app page and the run environment share): its
  status is usable, its access token has expired, and the provider's last answer was
  a failure (``refresh_failing``) or a backoff is running (the refresh service makes
  no request before ``backoff_until``). Its capabilities stay granted (the grant is
  alive, only the token is missing); the outage names the provider, the connection,
  the last error code and when the next attempt is due.
* The app is **ready** when nothing required is missing and no connection that
  grants a required capability is temporarily unavailable: then a run would succeed
  now (as far as the last answers of the providers tell).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Literal

from apps_registry.manifest import Requirement
from integrations.core import statuses
from integrations.core.catalogue import BUILTIN, Capability, Catalogue, CredentialKind

__all__ = [
    "Action",
    "Grant",
    "Item",
    "Outage",
    "Readiness",
    "Reason",
    "ToAllow",
    "assess_readiness",
    "choose_connection",
    "grant_outage",
    "grant_serves",
    "items_to_allow",
]


class Reason(StrEnum):
    """Why a requirement is missing."""

    NOT_GRANTED = "not_granted"  # the account is connected, without this permission
    NOT_CONNECTED = "not_connected"  # no account connected at the provider
    NEEDS_RECONNECT = "needs_reconnect"  # the connected accounts' grants have ended
    PROVIDER_UNAVAILABLE = "provider_unavailable"  # this server cannot connect it yet
    NEEDS_CREDENTIAL = "needs_credential"  # not OAuth: a key or token the user brings
    UNKNOWN = "unknown"  # the catalogue does not know the key
    SECRET_NOT_SET = "secret_not_set"
    NOT_ALLOWED = "not_allowed"  # the user has it, and has not allowed this app to use it


_CREDENTIAL_HINTS = {
    CredentialKind.SERVICE_ACCOUNT: (
        "needs a Google service-account key: upload it under Settings → Secrets → Service accounts"
    ),
    CredentialKind.GCP_PROJECT: (
        "needs your own Google Cloud project: upload a service-account key of that project "
        "and its number under Settings → Secrets → Service accounts"
    ),
    CredentialKind.BOT_TOKEN: (
        "needs your own bot token: add it as the secret DISCORD_BOT_TOKEN under Settings → Secrets"
    ),
}


@dataclass(frozen=True)
class Grant:
    """One of the user's connections, as readiness sees it.

    ``capabilities`` are the keys its *granted* scopes give
    (``Catalogue.granted_capabilities``), never the ones that were asked for.
    """

    connection_id: int
    provider: str
    account: str
    capabilities: frozenset[str]
    status: str
    # The connection runs use when the app names none (if it covers what is required).
    is_default: bool = False
    # What the refresh service knows (integrations.connections.refresh): when the access token
    # expires, no attempt before ``backoff_until``, the last error code.
    expires_at: datetime | None = None
    backoff_until: datetime | None = None
    error_code: str = ""

    @property
    def usable(self) -> bool:
        return self.status in statuses.USABLE


# Error codes that mean "the provider did not answer" (integrations.connections.refresh and
# integrations.errors.error_from_response: timeouts, refused connections, 5xx, 429).
_NO_ANSWER_CODES = frozenset(
    {"timeout", "connection_error", "bad_response", "temporarily_unavailable", "server_error"}
)


@dataclass(frozen=True)
class Outage:
    """A connection a run would get no token from now (:func:`grant_outage`).

    ``reason`` is the last error code of its refresh (RFC 6749 §5.2 or ours:
    ``timeout``, ``http_503``, ...); ``retry_at`` when the next attempt is due, ``None``
    when it is due now (the next run or the sweep makes it). ``required``: it grants
    a capability the app requires (then the app is not ready). ``provider_name`` is
    the catalogue's name of ``provider``.
    """

    provider: str
    provider_name: str
    connection_id: int
    account: str
    reason: str
    retry_at: datetime | None
    required: bool = True

    @property
    def summary(self) -> str:
        """What went wrong, in a few words (no time: pages format ``retry_at``)."""
        code = self.reason
        if code in _NO_ANSWER_CODES or code.startswith("http_5") or code == "http_429":
            return f"{self.provider_name} did not answer"
        return f"{self.provider_name} refused the refresh ({code or 'unknown error'})"


def grant_outage(grant: Grant, *, now: datetime, cat: Catalogue = BUILTIN) -> Outage | None:
    """The rule: whether a run would get no token from ``grant`` at ``now``.

    Temporarily unavailable when the status is usable (``active`` or
    ``refresh_failing``), the access token has expired (a token still valid is served
    even inside the refresh margin) and either the last refresh failed
    (``refresh_failing``) or a backoff runs (``backoff_until`` in the future: the
    refresh service makes no request before it). ``None`` otherwise: the token is
    valid, or a refresh would be attempted now. ``cat`` names the provider.
    """
    if not grant.usable or grant.expires_at is None or grant.expires_at > now:
        return None
    backing_off = grant.backoff_until is not None and grant.backoff_until > now
    if grant.status != statuses.REFRESH_FAILING and not backing_off:
        return None
    return Outage(
        provider=grant.provider,
        provider_name=cat.provider_name(grant.provider),
        connection_id=grant.connection_id,
        account=grant.account,
        reason=grant.error_code or "temporarily_unavailable",
        retry_at=grant.backoff_until if backing_off else None,
    )


@dataclass(frozen=True)
class Item:
    """One entry of the manifest's ``integrations`` or ``secrets`` and its state.

    ``description`` is the manifest's own. ``granted_by`` is the connection that
    satisfies an integration; ``account`` names the account a missing one is about
    (the measured connection's, or the one to reconnect), ``""`` when none.
    ``provider_name`` is the catalogue's name of the capability's provider (``""``
    without one); ``cat`` the catalogue the item was assessed with.
    """

    kind: Literal["integration", "secret"]
    key: str
    description: str
    optional: bool
    satisfied: bool
    reason: Reason | None = None
    capability: Capability | None = None
    granted_by: Grant | None = None
    account: str = ""
    # The outage of ``granted_by``, when a run would get no token from it now.
    outage: Outage | None = None
    provider_name: str = ""
    # Kept for the "did you mean" of an unknown key, found only when a page asks
    # (difflib over every key: the run environment never needs it).
    cat: Catalogue = field(default=BUILTIN, compare=False, repr=False)

    @property
    def label(self) -> str:
        return self.capability.label if self.capability else self.key

    @property
    def provider(self) -> str | None:
        return self.capability.provider if self.capability else None

    @property
    def credential_kind(self) -> CredentialKind | None:
        return self.capability.kind if self.capability else None

    @property
    def hint(self) -> str:
        """What the state means for the user, in a few words."""
        if self.satisfied:
            if self.outage is not None:
                return f"Granted, temporarily unavailable: {self.outage.summary}"
            if self.granted_by is not None:
                return f"Granted ({self.granted_by.account or self.provider_name})"
            return "Set"
        match self.reason:
            case Reason.NOT_GRANTED:
                return f"Not granted yet on {self.account or self.provider_name}"
            case Reason.NOT_CONNECTED:
                return f"No {self.provider_name} account connected"
            case Reason.NEEDS_RECONNECT:
                who = f" for {self.account}" if self.account else ""
                return f"The {self.provider_name} access{who} has ended: reconnect"
            case Reason.PROVIDER_UNAVAILABLE:
                return f"{self.provider_name} cannot be connected on this server yet"
            case Reason.NEEDS_CREDENTIAL:
                kind = self.credential_kind
                return "This " + (_CREDENTIAL_HINTS.get(kind, "needs a credential") if kind else "")
            case Reason.UNKNOWN:
                suggestion = self.cat.suggest(self.key)
                tip = f" (did you mean {suggestion}?)" if suggestion else ""
                return f"Unknown integration: this server does not know it{tip}"
            case Reason.SECRET_NOT_SET:
                return "Not set: add it under Settings → Secrets"
        return "Missing"


@dataclass(frozen=True)
class Action:
    """Ask ``provider`` for exactly ``capabilities``.

    ``connection_id`` set: Add Permissions on that connection (same account, earlier
    grants kept). ``None``: Connect; ``reconnect`` tells that it renews the ended grant
    of ``account``, the connection ``renews``. ``provider_name`` and ``labels`` (one per
    capability) are the catalogue's.
    """

    provider: str
    provider_name: str
    connection_id: int | None
    account: str
    capabilities: tuple[str, ...]
    labels: tuple[str, ...]
    includes_optional: bool
    reconnect: bool = False
    renews: int | None = None

    @property
    def is_connect(self) -> bool:
        return self.connection_id is None


@dataclass(frozen=True)
class Readiness:
    """Every requirement in manifest order (integrations, then secrets), and the actions."""

    items: tuple[Item, ...]
    actions: tuple[Action, ...]
    outages: tuple[Outage, ...] = ()

    def _select(self, kind: str, *, optional: bool) -> tuple[Item, ...]:
        return tuple(
            i for i in self.items if i.kind == kind and i.optional is optional and not i.satisfied
        )

    @property
    def required_missing(self) -> tuple[Item, ...]:
        """Required integrations not satisfied."""
        return self._select("integration", optional=False)

    @property
    def optional_missing(self) -> tuple[Item, ...]:
        """Optional integrations not satisfied."""
        return self._select("integration", optional=True)

    @property
    def secrets_missing(self) -> tuple[Item, ...]:
        """Required secrets not set."""
        return self._select("secret", optional=False)

    @property
    def optional_secrets_missing(self) -> tuple[Item, ...]:
        return self._select("secret", optional=True)

    @property
    def satisfied(self) -> tuple[Item, ...]:
        return tuple(i for i in self.items if i.satisfied)

    @property
    def complete(self) -> bool:
        """Nothing required is missing (granted and set; tokens aside)."""
        return not self.required_missing and not self.secrets_missing

    @property
    def required_outages(self) -> tuple[Outage, ...]:
        return tuple(o for o in self.outages if o.required)

    @property
    def ready(self) -> bool:
        """A run would succeed now: nothing required missing, no required outage."""
        return self.complete and not self.required_outages

    def outage_of(self, item: Item) -> Outage | None:
        """The outage of the connection that grants ``item``, if any."""
        if item.granted_by is None:
            return None
        cid = item.granted_by.connection_id
        return next((o for o in self.outages if o.connection_id == cid), None)

    @property
    def required_actions(self) -> tuple[Action, ...]:
        return tuple(a for a in self.actions if not a.includes_optional)

    @property
    def optional_actions(self) -> tuple[Action, ...]:
        return tuple(a for a in self.actions if a.includes_optional)


def assess_readiness(
    *,
    integrations: Sequence[Requirement],
    secrets: Sequence[Requirement],
    grants: Sequence[Grant],
    secret_keys: Collection[str],
    connectable: Collection[str],
    credentials: Collection[CredentialKind] = frozenset(),
    cat: Catalogue = BUILTIN,
    now: datetime | None = None,
) -> Readiness:
    """The readiness of an app for one user (the rules are in this module's docstring).

    ``integrations`` and ``secrets`` are the manifest's entries; ``grants`` the user's
    connections, oldest first; ``secret_keys`` the keys of the user's secrets;
    ``connectable`` the provider ids that this server can Connect; ``credentials``
    the kinds of non-OAuth credential the user has brought; ``cat`` the catalogue
    (the built-in one plus providers defined as data), which also names the providers
    and capabilities; ``now`` the moment outages are judged at (:func:`grant_outage`;
    default: the current time).
    """
    now = now or datetime.now(UTC)
    oauth: dict[str, list[Requirement]] = {}
    for req in integrations:
        cap = cat.by_key.get(req.key)
        if cap is not None and cap.kind is CredentialKind.OAUTH:
            oauth.setdefault(cap.provider, []).append(req)

    measured: dict[str, Grant | None] = {}
    ended: dict[str, Grant | None] = {}
    for provider, reqs in oauth.items():
        measured[provider] = choose_connection(reqs, grants, provider, cat)
        ended[provider] = next((g for g in grants if g.provider == provider and not g.usable), None)

    items: list[Item] = []
    for req in integrations:
        items.append(
            _integration_item(
                req,
                measured=measured,
                ended=ended,
                connectable=connectable,
                credentials=credentials,
                cat=cat,
            )
        )
    for req in secrets:
        present = req.key in secret_keys
        items.append(
            Item(
                kind="secret",
                key=req.key,
                description=req.description,
                optional=req.optional,
                satisfied=present,
                reason=None if present else Reason.SECRET_NOT_SET,
            )
        )

    actions: list[Action] = []
    for provider in oauth:
        if provider not in connectable:
            continue
        # OAuth ones only: a service-account key (``google.sa``) is no Google permission.
        missing = [
            i
            for i in items
            if i.kind == "integration"
            and i.provider == provider
            and i.credential_kind is CredentialKind.OAUTH
            and not i.satisfied
        ]
        required = [i.key for i in missing if not i.optional]
        optional = [i.key for i in missing if i.optional]
        target = measured[provider]
        dead = ended[provider]
        asks = [(required, False)] if required else []
        if optional:
            asks.append((required + optional, True))
        for keys, includes_optional in asks:
            asked = _minimal(keys, cat)
            actions.append(
                Action(
                    provider=provider,
                    provider_name=cat.provider_name(provider),
                    connection_id=target.connection_id if target else None,
                    account=target.account if target else (dead.account if dead else ""),
                    capabilities=asked,
                    labels=tuple(cat.label(k) for k in asked),
                    includes_optional=includes_optional,
                    reconnect=target is None and dead is not None,
                    renews=dead.connection_id if target is None and dead is not None else None,
                )
            )
    outages: list[Outage] = []
    for target in measured.values():
        outage = grant_outage(target, now=now, cat=cat) if target is not None else None
        granted = [i for i in items if outage is not None and i.granted_by is target]
        if outage is not None and granted:
            outage = replace(outage, required=any(not i.optional for i in granted))
            outages.append(outage)
            items = [replace(i, outage=outage) if i.granted_by is target else i for i in items]
    return Readiness(items=tuple(items), actions=tuple(actions), outages=tuple(outages))


def grant_serves(grant: Grant, reqs: Sequence[Requirement], cat: Catalogue = BUILTIN) -> bool:
    """Whether a run may take its token from ``grant`` for ``reqs`` (the app's entries
    at ``grant``'s provider): the grant is usable, satisfies every required entry and
    at least one entry."""
    return (
        grant.usable
        and all(cat.is_satisfied(r.key, grant.capabilities) for r in reqs if not r.optional)
        and any(cat.is_satisfied(r.key, grant.capabilities) for r in reqs)
    )


def choose_connection(
    reqs: Sequence[Requirement],
    grants: Sequence[Grant],
    provider: str,
    cat: Catalogue = BUILTIN,
    *,
    named: int | None = None,
) -> Grant | None:
    """The one rule that picks the connection at ``provider`` for the app's entries
    ``reqs`` there, shared by readiness (the measured connection) and the run
    environment (whose token a run gets).

    ``named``: the connection id the runner names, then that grant when it serves
    (:func:`grant_serves`), else ``None``: never another one. Otherwise the user's
    default connection at ``provider`` when it serves, else the usable one that
    satisfies the most entries (required first, then optional; the first given on a
    tie), even one that satisfies none (readiness asks for more on it); ``None`` when
    no connection at ``provider`` is usable. ``grants`` oldest first.
    """
    if named is not None:
        chosen = next((g for g in grants if g.connection_id == named), None)
        ok = chosen is not None and chosen.provider == provider and grant_serves(chosen, reqs, cat)
        return chosen if ok else None
    default = next((g for g in grants if g.provider == provider and g.is_default), None)
    if default is not None and grant_serves(default, reqs, cat):
        return default
    best: Grant | None = None
    best_score = (-1, -1)
    for grant in grants:
        if grant.provider != provider or not grant.usable:
            continue
        score = (
            sum(1 for r in reqs if not r.optional and cat.is_satisfied(r.key, grant.capabilities)),
            sum(1 for r in reqs if r.optional and cat.is_satisfied(r.key, grant.capabilities)),
        )
        if score > best_score:
            best, best_score = grant, score
    return best


def _integration_item(
    req: Requirement,
    *,
    measured: dict[str, Grant | None],
    ended: dict[str, Grant | None],
    connectable: Collection[str],
    credentials: Collection[CredentialKind],
    cat: Catalogue,
) -> Item:
    cap = cat.by_key.get(req.key)
    satisfied = False
    granted_by: Grant | None = None
    account = ""
    if cap is None:
        reason: Reason | None = Reason.UNKNOWN
    elif cap.kind is not CredentialKind.OAUTH:
        satisfied = cap.kind in credentials
        reason = None if satisfied else Reason.NEEDS_CREDENTIAL
    else:
        target = measured.get(cap.provider)
        dead = ended.get(cap.provider)
        account = target.account if target else (dead.account if dead else "")
        if target is not None and cat.is_satisfied(cap.key, target.capabilities):
            satisfied, granted_by, reason = True, target, None
        elif cap.provider not in connectable:
            reason = Reason.PROVIDER_UNAVAILABLE
        elif target is not None:
            reason = Reason.NOT_GRANTED
        elif dead is not None:
            reason = Reason.NEEDS_RECONNECT
        else:
            reason = Reason.NOT_CONNECTED
    return Item(
        kind="integration",
        key=req.key,
        description=req.description,
        optional=req.optional,
        satisfied=satisfied,
        reason=reason,
        capability=cap,
        granted_by=granted_by,
        account=account,
        provider_name=cat.provider_name(cap.provider) if cap is not None else "",
        cat=cat,
    )


def _minimal(keys: list[str], cat: Catalogue) -> tuple[str, ...]:
    """``keys`` without those another of them covers (asking for ``google.sheets`` and
    ``google.sheets.readonly`` is asking for ``google.sheets``), in order."""
    return tuple(cat.effective_capabilities(dict.fromkeys(keys)))


@dataclass(frozen=True)
class ToAllow:
    """An item the user has that the app declares and is not allowed to use yet
    (:func:`items_to_allow`): a capability (on ``connection_id`` for OAuth ones, of
    ``account``) or a secret."""

    kind: Literal["capability", "secret"]
    key: str
    optional: bool
    label: str
    description: str
    connection_id: int | None = None
    account: str = ""
    provider: str | None = None

    @property
    def text(self) -> str:
        """How the Allow form names it: ``Sheets: read (ada@example.com)``, ``the secret
        FAL_KEY``."""
        if self.kind == "secret":
            return f"the secret {self.key}"
        return f"{self.label} ({self.account})" if self.account else self.label

    @property
    def form_value(self) -> str:
        """The item in the Allow form: ``kind:key:connection id`` (empty without one)."""
        connection = "" if self.connection_id is None else str(self.connection_id)
        return f"{self.kind}:{self.key}:{connection}"


def items_to_allow(
    readiness: Readiness,
    *,
    by_connection: Mapping[int, Collection[str]],
    credentials: Collection[str],
    secrets: Collection[str],
    chosen: Mapping[str, Grant] | None = None,
    cat: Catalogue = BUILTIN,
) -> tuple[ToAllow, ...]:
    """The declared items that are there now (satisfied in ``readiness``) and that the
    user has not allowed the app to use, in manifest order: what an Allow form offers
    and what a run refuses (required) or leaves out (optional).

    The user's allowance: ``by_connection`` the capability keys allowed per connection
    id, ``credentials`` the capability keys allowed without a connection (``google.sa``,
    ``gcp.*``, ``discord.bot``), ``secrets`` the secret keys. An OAuth capability is
    judged on the connection a run takes its token from: ``chosen`` per provider (the
    run environment's, when the runner names one), else the measured one.
    """
    result: list[ToAllow] = []
    for item in readiness.items:
        if not item.satisfied:
            continue
        if item.kind == "secret":
            if item.key not in secrets:
                result.append(
                    ToAllow(
                        kind="secret",
                        key=item.key,
                        optional=item.optional,
                        label=item.key,
                        description=item.description,
                    )
                )
            continue
        cap = item.capability
        if cap is None:
            continue
        if cap.kind is not CredentialKind.OAUTH:
            allowed = item.key in credentials
            grant: Grant | None = None
        else:
            grant = (chosen or {}).get(cap.provider, item.granted_by)
            if grant is None or not cat.is_satisfied(item.key, grant.capabilities):
                continue
            allowed = item.key in by_connection.get(grant.connection_id, ())
        if not allowed:
            result.append(
                ToAllow(
                    kind="capability",
                    key=item.key,
                    optional=item.optional,
                    label=item.label,
                    description=item.description,
                    connection_id=grant.connection_id if grant is not None else None,
                    account=grant.account if grant is not None else "",
                    provider=cap.provider,
                )
            )
    return tuple(result)
