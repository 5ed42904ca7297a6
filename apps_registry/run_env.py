"""The environment of one app run: exactly what the app's manifest declares, with
tokens valid for at least the margin, or the list of what the user must still grant.

This is the hot path of the product. For a manifest of OAuth capabilities and secrets,
with fresh tokens, a call makes at most four queries besides the runner's
authentication: the app and its version, the user's connections (with the user), the
declared secrets, and the audit record, whether the user is named by id or by email.
Tokens are refreshed only when inside the margin, one refresh per connection at a time
(``integrations.connections.refresh``).

What an app gets (DESIGN.md "Env given to apps"):

* OAuth capabilities of a provider: the provider's env names (Google:
  ``GOOGLE_OAUTH_ACCESS_TOKEN``, ``GOOGLE_OAUTH_TOKEN_EXPIRES_AT``,
  ``GOOGLE_OAUTH_CREDENTIALS``; X: ``X_ACCESS_TOKEN``; a provider defined as data: its
  ``env``), from one connection: the one the runner names, else the user's default,
  else the one that grants the most of what the app declares
  (``readiness.choose_connection``: the app page measures the same one). A token goes
  to an app only if the manifest declares a capability of that provider and the grant
  covers it.
* ``google.sa``: ``GOOGLE_SA_CREDENTIALS``; ``gcp.*``: ``GCP_ACCESS_TOKEN`` and
  ``GCP_PROJECT_NUMBER``; ``discord.bot``: ``DISCORD_BOT_TOKEN``.
* ``secrets:`` entries: their own keys, never one an integration hands out
  (``registry.reserved_env_names``), which an integration's value always holds.

Optional entries are included when available and skipped otherwise.

Per-app authorization (``INTEGRATIONS_APP_AUTHORIZATION``, docs/authorization.md): with
``per_app`` (the default) an app gets only the items its user allowed it, once readiness
is complete; a required one not allowed answers 409 (reason ``not_allowed``, action
``authorize_app``), an optional one is left out. The allowance rides on the queries
above (annotations of the connections, secrets and service-account rows), so the count
is the same as with ``declared``, which hands out everything declared.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models.expressions import RawSQL
from django.urls import reverse
from django.utils import timezone

from apps_registry import run_rows
from apps_registry.manifest import Requirement
from apps_registry.models import ManifestVersion
from apps_registry.readiness import (
    Grant,
    Outage,
    Readiness,
    Reason,
    ToAllow,
    assess_readiness,
    choose_connection,
    grant_outage,
    grant_serves,
    items_to_allow,
)
from apps_registry.selectors import grant_of, secrets_handed_out
from apps_registry.serialization import requirements_from_json
from integrations import app_settings, service_accounts
from integrations.audit import audit_record
from integrations.connections.credentials import connection_narrowed_credentials
from integrations.connections.store import Credentials
from integrations.core.catalogue import Catalogue, CredentialKind
from integrations.core.secret_rules import DISCORD_BOT_TOKEN_KEY
from integrations.errors import (
    IntegrationError,
    InvalidServiceAccountKeyError,
    ProviderUnavailableError,
    ReauthorizationRequiredError,
    UnknownProviderError,
)
from integrations.models import (
    AuditEvent,
    Connection,
    Secret,
    ServiceAccountKey,
)
from integrations.providers import registry
from integrations.secrets import secret_value


class RunEnvironmentError(IntegrationError):
    """Base of the run environment errors; messages never hold a credential. The run
    API answers each with its ``status`` and ``payload()``."""

    refused_as = None
    log_level = None


class RunTargetNotFoundError(RunEnvironmentError):
    """No such user, app or version (404)."""

    status = 404
    code = "not_found"


class RunUnavailableError(RunEnvironmentError):
    """A connection that grants a required capability has no valid token now and its
    provider cannot give one (503): the app page says the same
    (``readiness.grant_outage``)."""

    status = 503
    code = "provider_unavailable"

    def __init__(self, outages: Sequence[Outage]) -> None:
        self.outages = list(outages)
        super().__init__(
            "temporarily unavailable: " + ", ".join(f"{o.provider} {o.reason}" for o in outages)
        )

    def payload(self) -> dict[str, Any]:
        return unavailable_payload(self)

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(retry_after_seconds(self))}


class AppNotReadyError(RunEnvironmentError):
    """Something the app ``app`` (``namespace/name``) requires is missing, or a grant
    must be renewed (409)."""

    status = 409
    code = "not_ready"

    def __init__(
        self,
        readiness: Readiness,
        *,
        app: str,
        reconnect: Sequence[Connection] = (),
        refused_keys: Sequence[str] = (),
        not_allowed: Sequence[ToAllow] = (),
    ) -> None:
        self.app = app
        self.reconnect = list(reconnect)
        # Required items the user has and has not allowed this app to use (per_app).
        self.not_allowed = list(not_allowed)
        # Capability keys whose service-account key Google refused (upload a new one).
        self.refused_keys = list(refused_keys)
        keys = [i.key for i in (*readiness.required_missing, *readiness.secrets_missing)]
        keys += [c.provider for c in self.reconnect] + self.refused_keys
        keys += [i.key for i in self.not_allowed]
        super().__init__("not ready: " + ", ".join(keys))
        self.readiness = readiness

    def payload(self) -> dict[str, Any]:
        namespace, _, name = self.app.partition("/")
        app_url = reverse("apps_registry:app", kwargs={"namespace": namespace, "name": name})
        return not_ready_payload(self, app_url=app_settings.site_url() + app_url)


@dataclass(frozen=True)
class RunEnvironment:
    """The env of one run. Its repr never shows a value."""

    env: dict[str, str] = field(repr=False)
    expires_at: datetime | None
    app: str
    version: int

    @property
    def keys(self) -> list[str]:
        return sorted(self.env)


# The id of the app page's Allow form (templates/apps_registry/app.html).
ALLOW_ANCHOR = "allow"


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def run_target(*, app: str, version: int | None = None) -> ManifestVersion:
    """The app's version (the current one by default), with its app; one query.
    ``RunTargetNotFoundError`` when there is none."""
    namespace, _, name = app.partition("/")
    if not namespace or not name:
        raise RunTargetNotFoundError("app must be 'namespace/name'")
    manifest = run_rows.version_with_app(namespace=namespace, name=name, number=version)
    if manifest is None:
        raise RunTargetNotFoundError(f"no valid version of {app}")
    return manifest


def _user_and_connections(user: str, *, app: str | None = None) -> tuple[Any, list[Connection]]:
    """The named user, active, and all their connections (with the user's own OAuth
    client each was made with, which their refreshes use): one query when they have
    any, two otherwise.

    By id, or by email (case-insensitive, through the functional index of migration
    ``apps_registry/0003``). Nothing in ``auth_user`` forbids two accounts one email:
    such an email is refused (name the user by id). By email, each connection row
    carries the count of active accounts with that email (one uncorrelated subquery),
    so that the check costs no query of its own. The statement: ``run_rows``.

    ``app`` (per-app authorization): each connection also carries ``allowed_keys``, the
    capability keys its user allowed that app on it
    (:func:`run_rows.allowed_on_connection_sql`).
    """
    users = get_user_model()
    if user.isascii() and user.isdecimal():
        if int(user) > MAX_ID:
            # No row has it, and SQLite cannot even compare with it (OverflowError).
            raise RunTargetNotFoundError("no such user")
        conns = run_rows.connections_of(user_id=int(user), app=app)
        if conns:
            return conns[0].user, conns
        found = list(users.objects.filter(pk=int(user), is_active=True)[:1])
    elif "@" in user:
        conns = run_rows.connections_of(email=user, app=app)
        if conns:
            if getattr(conns[0], "accounts", 1) > 1:
                raise RunTargetNotFoundError(_SHARED_EMAIL)
            return conns[0].user, conns
        found = list(users.objects.filter(email__iexact=user, is_active=True).order_by("pk")[:2])
    else:
        raise RunTargetNotFoundError("no such user")
    if len(found) > 1:
        raise RunTargetNotFoundError(_SHARED_EMAIL)
    if not found:
        raise RunTargetNotFoundError("no such user")
    return found[0], []


# Primary keys are signed 64-bit integers (BigAutoField). A larger one reaches SQLite's
# driver unchecked through the user foreign key (OverflowError) instead of finding nothing.
MAX_ID = 2**63 - 1
_SHARED_EMAIL = "two accounts have this email: name the user by id"


def run_environment_build(
    *,
    user: str,
    manifest: ManifestVersion,
    connections: Mapping[str, int] | None = None,
    runner: str = "",
    now: datetime | None = None,
) -> RunEnvironment:
    """Build the environment of ``user`` (an id or an email) running ``manifest``; audit
    it (keys only). ``RunTargetNotFoundError`` for an unknown user.

    ``connections`` names a connection id per provider instead of the default one.
    Raises ``AppNotReadyError`` when something required is missing or a connection
    needs reconnecting, ``RunUnavailableError`` when a connection that grants a
    required capability has an expired token its provider cannot renew now (the
    outage rule of ``readiness.grant_outage``: backing off is known without a request;
    otherwise the refresh is tried first). A provider granting only optional
    capabilities that is unavailable is left out of the env.
    """
    now = now or timezone.now()
    app = manifest.app.slug if hasattr(manifest.app, "slug") else str(manifest.app)
    integrations = requirements_from_json(manifest.parsed, "integrations")
    secrets = secrets_handed_out(manifest.parsed)
    cat = registry.catalogue()
    per_app = app_settings.per_app_authorization()
    account, conns = _user_and_connections(user, app=app if per_app else None)
    declared_secrets = [r.key for r in secrets]
    wants_bot = any(r.key == "discord.bot" for r in integrations)
    wanted_secrets = declared_secrets + ([DISCORD_BOT_TOKEN_KEY] if wants_bot else [])
    # Per-app authorization rides on the queries made anyway (the module's docstring).
    secret_rows = run_rows.secrets_of(
        user_id=account.pk, keys=wanted_secrets, app=app if per_app else None
    )
    kinds = _declared_kinds(integrations, cat)
    sa_keys = (
        _service_account_keys(account, app=app if per_app else None)
        if kinds & {CredentialKind.SERVICE_ACCOUNT, CredentialKind.GCP_PROJECT}
        else {}
    )
    have: set[CredentialKind] = set()
    if DISCORD_BOT_TOKEN_KEY in secret_rows:
        have.add(CredentialKind.BOT_TOKEN)
    if "google_sa" in sa_keys:
        have.add(CredentialKind.SERVICE_ACCOUNT)
    if "gcp" in sa_keys:
        have.add(CredentialKind.GCP_PROJECT)
    grants = [grant_of(c, cat) for c in conns]
    readiness = assess_readiness(
        integrations=integrations,
        secrets=secrets,
        grants=grants,
        secret_keys=set(secret_rows),
        connectable=registry.connectable_ids(),
        credentials=have,
        cat=cat,
        now=now,
    )
    if not readiness.complete:
        raise AppNotReadyError(readiness, app=app)

    env: dict[str, str] = {}
    expiries: list[datetime] = []
    chosen = _chosen_connections(
        integrations, readiness, grants, conns, connections or {}, cat, app=app
    )
    left_out: set[str] = set()
    if per_app:
        chosen, left_out = _authorized(
            readiness,
            chosen=chosen,
            grants=grants,
            secret_rows=secret_rows,
            sa_keys=sa_keys,
            app=app,
            cat=cat,
        )
    dead: list[Connection] = []
    down: list[Outage] = []
    required = {r.key for r in integrations if not r.optional}
    for provider, (conn, keys) in chosen.items():
        needed = any(k in required for k in keys)
        known = next((o for o in readiness.outages if o.connection_id == conn.pk), None)
        if known is not None and known.retry_at is not None:
            # Backing off: the refresh service would make no request either.
            if needed:
                down.append(known)
            continue
        try:
            # Narrowed to what the app declares where the provider allows it.
            creds = connection_narrowed_credentials(
                connection=conn, scopes=cat.scopes_for(keys), now=now, verify=True
            )
        except ReauthorizationRequiredError:
            dead.append(conn)
            continue
        except (ProviderUnavailableError, UnknownProviderError) as exc:
            # UnknownProviderError: staff deleted its definition under the connection.
            if needed:
                down.append(_outage_after(conn, code=exc.code, cat=cat, now=now))
            continue
        if creds.expires_at is not None:
            expiries.append(creds.expires_at)
        env.update(_oauth_env(provider, creds, keys))
    if dead:
        # The grant ended when we tried to use it: the user must reconnect.
        readiness = assess_readiness(
            integrations=integrations,
            secrets=secrets,
            grants=[
                grant_of(c, cat)
                for c in Connection.objects.filter(user=account).order_by("created_at", "id")
            ],
            secret_keys=set(secret_rows),
            connectable=registry.connectable_ids(),
            credentials=have,
            cat=cat,
            now=now,
        )
        raise AppNotReadyError(readiness, app=app, reconnect=dead)
    if down:
        raise RunUnavailableError(down)

    if left_out:
        # Optional items the user has not allowed this app: left out of its env.
        kinds = {
            cat.by_key[r.key].kind
            for r in integrations
            if r.key in cat.by_key and r.key not in left_out
        }
        declared_secrets = [k for k in declared_secrets if k not in left_out]
    if CredentialKind.SERVICE_ACCOUNT in kinds and "google_sa" in sa_keys:
        env["GOOGLE_SA_CREDENTIALS"] = service_accounts.google_sa_credentials_json(user=account)
    if CredentialKind.GCP_PROJECT in kinds and "gcp" in sa_keys:
        try:
            gcp: service_accounts.GcpCredentials | None = service_accounts.gcp_credentials(
                user=account, now=now
            )
        except (ReauthorizationRequiredError, InvalidServiceAccountKeyError):
            # Google refused the key (deleted or disabled), or it no longer loads: the
            # user must upload a new one. Without the optional entries, the run goes on.
            gcp = None
            refused = [
                r.key
                for r in integrations
                if not r.optional
                and r.key in cat.by_key
                and cat.by_key[r.key].kind is CredentialKind.GCP_PROJECT
            ]
            if refused:
                raise AppNotReadyError(readiness, app=app, refused_keys=refused) from None
        if gcp is not None:
            env["GCP_ACCESS_TOKEN"] = gcp.access_token
            env["GCP_PROJECT_NUMBER"] = gcp.project_number
            expiries.append(gcp.expires_at)
    if CredentialKind.BOT_TOKEN in kinds and DISCORD_BOT_TOKEN_KEY in secret_rows:
        env[DISCORD_BOT_TOKEN_KEY] = secret_value(secret=secret_rows[DISCORD_BOT_TOKEN_KEY])
    # A secret never takes an integration's env name (``secrets_handed_out``): the
    # integration's value stands.
    for key in declared_secrets:
        if key in secret_rows and key not in env:
            env[key] = secret_value(secret=secret_rows[key])

    result = RunEnvironment(
        env=env,
        expires_at=min(expiries) if expiries else None,
        app=app,
        version=manifest.number,
    )
    audit_record(
        kind=AuditEvent.Kind.RUN_ENVIRONMENT,
        provider="",
        user=account,
        detail={
            "app": result.app,
            "version": result.version,
            "keys": result.keys,
            "connections": {p: c.pk for p, (c, _) in chosen.items()},
            "runner": runner,
        },
    )
    return result


def _service_account_keys(account: Any, *, app: str | None) -> dict[str, ServiceAccountKey]:
    """The user's usable service-account keys by purpose (one query: only for a manifest
    that declares ``google.sa`` or ``gcp.*``, so the queryset is not even built
    otherwise); ``app`` (per-app authorization): each carries ``allowed_credentials``."""
    rows = ServiceAccountKey.objects.filter(user=account, refused_at__isnull=True)
    if app is not None:
        allowed = run_rows.allowed_credentials_sql(ServiceAccountKey)
        rows = rows.annotate(
            allowed_credentials=RawSQL(allowed, (app, run_rows.CAPABILITY))  # noqa: S611
        )
    return {k.purpose: k for k in rows}


def _authorized(
    readiness: Readiness,
    *,
    chosen: dict[str, tuple[Connection, list[str]]],
    grants: Sequence[Grant],
    secret_rows: Mapping[str, Secret],
    sa_keys: Mapping[str, ServiceAccountKey],
    app: str,
    cat: Catalogue,
) -> tuple[dict[str, tuple[Connection, list[str]]], set[str]]:
    """Per-app authorization of a run whose readiness is complete: ``AppNotReadyError``
    (reason ``not_allowed``, action ``authorize_app``) when the user has not allowed the
    app a required item, on the connection the run takes its token from; otherwise the
    chosen connections with only the allowed capabilities (the token is narrowed to
    them; a provider with none is left out) and the keys of the optional items left out.
    The allowance comes from the rows' annotations: no query here."""
    by_id = {g.connection_id: g for g in grants}
    credentials: frozenset[str] = frozenset()
    for row in (*secret_rows.values(), *sa_keys.values()):
        credentials = run_rows.keys_of(getattr(row, "allowed_credentials", None))
        break
    pending = items_to_allow(
        readiness,
        by_connection={
            c.pk: run_rows.keys_of(getattr(c, "allowed_keys", None)) for c, _ in chosen.values()
        },
        credentials=credentials,
        secrets={k for k, row in secret_rows.items() if getattr(row, "allowed", False)},
        chosen={p: by_id[c.pk] for p, (c, _) in chosen.items()},
        cat=cat,
    )
    refused = [i for i in pending if not i.optional]
    if refused:
        raise AppNotReadyError(readiness, app=app, not_allowed=refused)
    left_out = {i.key for i in pending}
    narrowed = {
        provider: (conn, [k for k in keys if k not in left_out])
        for provider, (conn, keys) in chosen.items()
    }
    return {p: v for p, v in narrowed.items() if v[1]}, left_out


def _outage_after(conn: Connection, *, code: str, cat: Catalogue, now: datetime) -> Outage:
    """The outage of ``conn`` as its refresh just left it (the row re-read: the failure
    set its status and backoff), by the same rule as the app page."""
    row = Connection.objects.filter(pk=conn.pk).first() or conn
    outage = grant_outage(grant_of(row, cat), now=now, cat=cat)
    if outage is not None:
        return outage
    # Not expired yet, only unrefreshable inside the margin: the facts of the error.
    return Outage(
        provider=conn.provider,
        provider_name=cat.provider_name(conn.provider),
        connection_id=conn.pk,
        account=conn.account_email or conn.account_uid,
        reason=code,
        retry_at=row.backoff_until if row.backoff_until and row.backoff_until > now else None,
    )


def _declared_kinds(integrations: Sequence[Requirement], cat: Catalogue) -> set[CredentialKind]:
    return {cat.by_key[r.key].kind for r in integrations if r.key in cat.by_key}


def _chosen_connections(
    integrations: Sequence[Requirement],
    readiness: Readiness,
    grants: Sequence[Grant],
    conns: Sequence[Connection],
    named: Mapping[str, int],
    cat: Catalogue,
    *,
    app: str,
) -> dict[str, tuple[Connection, list[str]]]:
    """Per provider the app declares OAuth capabilities of: the connection whose token
    it gets (``readiness.choose_connection``, the rule the app page measures with), and
    the declared capabilities that connection's grant covers. ``grants`` are ``conns``
    as readiness sees them."""
    by_id = {c.pk: c for c in conns}
    result: dict[str, tuple[Connection, list[str]]] = {}
    providers = {
        cat.by_key[r.key].provider
        for r in integrations
        if r.key in cat.by_key and cat.by_key[r.key].kind is CredentialKind.OAUTH
    }
    for provider in sorted(providers):
        # Only OAuth capabilities: ``google.sa`` is Google's too, but no grant covers it.
        reqs = [
            r
            for r in integrations
            if r.key in cat.by_key
            and cat.by_key[r.key].provider == provider
            and cat.by_key[r.key].kind is CredentialKind.OAUTH
        ]
        if provider in named:
            conn = by_id.get(named[provider])
            if conn is None or conn.provider != provider:
                raise RunTargetNotFoundError(f"no such {provider} connection for this user")
        grant = choose_connection(reqs, grants, provider, cat, named=named.get(provider))
        if grant is not None and grant_serves(grant, reqs, cat):
            covered = [r.key for r in reqs if cat.is_satisfied(r.key, grant.capabilities)]
            result[provider] = (by_id[grant.connection_id], covered)
        elif provider in named:
            raise AppNotReadyError(readiness, app=app, reconnect=[by_id[named[provider]]])
    return result


def _oauth_env(provider: str, creds: Credentials, keys: list[str]) -> dict[str, str]:
    config = registry.provider_config(provider)
    names = config.env
    env: dict[str, str] = {}
    if "access_token" in names:
        env[names["access_token"]] = creds.access_token
    if "expires_at" in names and creds.expires_at is not None:
        env[names["expires_at"]] = _iso(creds.expires_at)
    if "credentials" in names:
        # google-auth's authorized-user fields, without the refresh token or the client
        # secret: `Credentials(token=..., expiry=..., scopes=...)`.
        env[names["credentials"]] = json.dumps(
            {
                "token": creds.access_token,
                "expiry": _iso(creds.expires_at) if creds.expires_at else None,
                "scopes": list(creds.scopes),
                "token_type": "Bearer",
            }
        )
    return env


def _iso_or_none(moment: datetime | None) -> str | None:
    return _iso(moment) if moment is not None else None


def outage_facts(outage: Outage) -> dict[str, Any]:
    """The facts of an outage as the 409 and 503 answers carry them (the app page shows
    the same): provider, connection, the last error code, when the next attempt is due
    (ISO 8601 UTC; ``null``: due now)."""
    return {
        "provider": outage.provider,
        "connection_id": outage.connection_id,
        "reason": outage.reason,
        "retry_at": _iso_or_none(outage.retry_at),
    }


def unavailable_payload(error: RunUnavailableError) -> dict[str, Any]:
    """The 503 body: the first outage's facts at the top (one provider is the common
    case) and every outage under ``unavailable``."""
    first = error.outages[0]
    return {
        "error": "provider_unavailable",
        "detail": f"{first.summary}; retrying at "
        + (_iso(first.retry_at) if first.retry_at else "the next run"),
        **outage_facts(first),
        "unavailable": [outage_facts(o) for o in error.outages],
    }


def retry_after_seconds(error: RunUnavailableError, *, now: datetime | None = None) -> int:
    """``Retry-After`` (RFC 9110 §10.2.3) for a 503: seconds until the earliest next
    attempt, at least 1; 60 when an attempt is due now."""
    now = now or timezone.now()
    due = [o.retry_at for o in error.outages if o.retry_at is not None]
    if not due:
        return 60
    return max(1, int((min(due) - now).total_seconds()) + 1)


def _reconnect_action(
    *, provider: str, connection_id: int | None, capabilities: Sequence[str], url: str
) -> dict[str, Any]:
    """The one shape of a ``reconnect`` action: the connection whose grant ended and
    the capabilities to ask for again (the app page's Reconnect button asks for them)."""
    return {
        "kind": "reconnect",
        "provider": provider,
        "connection_id": connection_id,
        "capabilities": list(capabilities),
        "url": url,
    }


def not_ready_payload(error: AppNotReadyError, *, app_url: str) -> dict[str, Any]:
    """The 409 body: what is missing, the actions that fix it, and the outages of the
    connections that grant what is there (the same facts as a 503's)."""
    readiness = error.readiness
    missing = []
    for item in (*readiness.required_missing, *readiness.secrets_missing):
        missing.append(
            {
                "kind": "capability" if item.kind == "integration" else "secret",
                "key": item.key,
                "reason": str(item.reason) if item.reason else "missing",
                "provider": item.provider,
                "description": item.description,
            }
        )
    # A grant found dead while building: its Reconnect replaces the readiness's own
    # entries for that provider, in the same shape.
    dead_by_provider = {c.provider: c for c in error.reconnect}
    listed = {m["provider"] for m in missing}
    for conn in error.reconnect:
        if conn.provider in listed:
            continue
        missing.append(
            {
                "kind": "capability",
                "key": conn.provider,
                "reason": str(Reason.NEEDS_RECONNECT),
                "provider": conn.provider,
                "description": f"the access to {conn.account_email or conn.account_uid} has ended",
            }
        )
    actions: list[dict[str, Any]] = []
    for action in readiness.required_actions:
        if action.reconnect:
            dead = dead_by_provider.pop(action.provider, None)
            actions.append(
                _reconnect_action(
                    provider=action.provider,
                    connection_id=dead.pk if dead is not None else action.renews,
                    capabilities=action.capabilities,
                    url=app_url,
                )
            )
            continue
        actions.append(
            {
                "kind": "connect" if action.is_connect else "add_permissions",
                "provider": action.provider,
                "connection_id": action.connection_id,
                "capabilities": list(action.capabilities),
                "url": app_url,
            }
        )
    for conn in dead_by_provider.values():
        required = [
            i.key
            for i in readiness.items
            if i.kind == "integration" and i.provider == conn.provider and not i.optional
        ]
        actions.append(
            _reconnect_action(
                provider=conn.provider,
                connection_id=conn.pk,
                capabilities=required,
                url=app_url,
            )
        )
    for pending in error.not_allowed:
        missing.append(
            {
                "kind": pending.kind,
                "key": pending.key,
                "reason": str(Reason.NOT_ALLOWED),
                "provider": pending.provider,
                "description": pending.description,
            }
        )
    if error.not_allowed:
        # The connection the capabilities are to be allowed on, when they are on one.
        on = {i.connection_id for i in error.not_allowed if i.connection_id is not None}
        actions.append(
            {
                "kind": "authorize_app",
                "provider": None,
                "connection_id": on.pop() if len(on) == 1 else None,
                "capabilities": [i.key for i in error.not_allowed if i.kind == "capability"],
                "secrets": [i.key for i in error.not_allowed if i.kind == "secret"],
                "url": app_url + "#" + ALLOW_ANCHOR,
            }
        )
    for key in error.refused_keys:
        missing.append(
            {
                "kind": "capability",
                "key": key,
                "reason": "key_refused",
                "provider": "gcp",
                "description": "Google refused the GCP project's service-account key",
            }
        )
    if error.refused_keys:
        actions.append(
            {
                "kind": "upload_key",
                "provider": "gcp",
                "connection_id": None,
                "capabilities": list(error.refused_keys),
                "url": app_settings.site_url() + reverse("integrations:service_accounts"),
            }
        )
    if readiness.secrets_missing:
        actions.append(
            {
                "kind": "set_secret",
                "provider": None,
                "connection_id": None,
                "capabilities": [],
                "url": app_settings.site_url() + reverse("integrations:secrets"),
            }
        )
    return {
        "error": "not_ready",
        "missing": missing,
        "actions": actions,
        "unavailable": [outage_facts(o) for o in readiness.required_outages],
    }
