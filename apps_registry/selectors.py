"""Reads. Every view, API endpoint and service that touches an app gets it, or asks
whether the user may change it, through this module:

* ``user_can_change_app``: the one rule for writes (its owner, its namespace's owners,
  or staff);
* ``app_for_user``: an app as the user may see it (404 otherwise), or, with
  ``write=True``, only if the user may change it (``AppOwnershipError``).

An app with a current (valid) version is public: anyone may see its manifest. One
with invalid uploads only is seen by its owner and staff.
"""

from __future__ import annotations

import hmac
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Any

from django.contrib.auth import get_user_model
from django.db.models import Q, QuerySet
from django.http import Http404
from django.utils import timezone

from apps_registry import run_rows
from apps_registry.errors import (
    AppOwnershipError,
    ConnectionNotFoundError,
    RunnerScopeError,
    ScopeMissingError,
    UserNotFoundError,
    UserRequiredError,
)
from apps_registry.manifest import Requirement
from apps_registry.models import (
    ApiToken,
    App,
    ManifestVersion,
    Namespace,
    PlatformCredential,
    Runner,
    RunnerToken,
)
from apps_registry.readiness import Grant, Readiness, ToAllow, assess_readiness, items_to_allow
from apps_registry.serialization import requirements_from_json
from apps_registry.tokens import hash_api_token
from integrations import app_authorization, app_settings
from integrations import selectors as integrations_selectors
from integrations.core.catalogue import Catalogue, CredentialKind
from integrations.core.secret_rules import DISCORD_BOT_TOKEN_KEY
from integrations.models import Connection
from integrations.providers import registry as integrations_registry

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser, User


def user_can_change_app(
    *, user: User | AnonymousUser, app: App, publisher: Namespace | None = None
) -> bool:
    """Whether ``user`` may upload versions of ``app``: its owner, an owner of its
    namespace (co-owners publish together), or staff. A query only when the user is
    neither staff nor the app's owner, and ``publisher`` (``publisher_of(app=app)``,
    its owners prefetched) is not given."""
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return False
    if user.is_staff or app.owner_id == user.pk:
        return True
    if publisher is not None and publisher.name == app.namespace:
        return any(owner.pk == user.pk for owner in publisher.owners.all())
    return Namespace.objects.filter(name=app.namespace, owners=user).exists()


def publisher_of(*, app: App) -> Namespace | None:
    """The namespace of ``app`` with its owners (two queries), as the app page names the
    publisher; None for an app whose namespace has no row (none since migration 0004)."""
    return Namespace.objects.filter(name=app.namespace).prefetch_related("owners").first()


def namespace_for_owner(*, user: User | AnonymousUser, name: str) -> Namespace:
    """The namespace ``name`` if ``user`` is one of its owners, else ``Http404`` (a
    namespace's owners are not disclosed to others by this page)."""
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        raise Http404("No such namespace.")
    found = Namespace.objects.filter(name=name, owners=user).first()
    if found is None:
        raise Http404("No such namespace.")
    return found


def owners_of(*, namespace: Namespace) -> QuerySet[Any]:
    return namespace.owners.order_by("email", "pk")


def namespaces_of_owner(*, user: User) -> QuerySet[Namespace]:
    """The namespaces ``user`` owns (each one publishes under it)."""
    return Namespace.objects.filter(owners=user).order_by("name")


def apps_in_namespace(*, namespace: Namespace) -> QuerySet[App]:
    return App.objects.filter(namespace=namespace.name).order_by("name")


def app_for_user(
    *, user: User | AnonymousUser, namespace: str, name: str, write: bool = False
) -> App:
    """The app ``namespace/name`` for ``user``, with its current version and owner.

    ``Http404`` when there is no such app, or (``write`` false) when the user may not
    see it; ``AppOwnershipError`` when ``write`` is true and the user may not change it.
    """
    app = (
        App.objects.select_related("current_version", "owner")
        .filter(namespace=namespace, name=name)
        .first()
    )
    if app is None:
        raise Http404("No such app.")
    if write:
        if not user_can_change_app(user=user, app=app):
            raise AppOwnershipError(app.slug)
    elif app.current_version_id is None and not user_can_change_app(user=user, app=app):
        # Not "forbidden": an app that has never been valid is not disclosed.
        raise Http404("No such app.")
    return app


def apps_of_owner(*, user: User) -> QuerySet[App]:
    """The apps ``user`` owns, with their current versions."""
    return (
        App.objects.filter(owner=user)
        .select_related("current_version")
        .order_by("namespace", "name")
    )


def versions_of_app(*, app: App) -> QuerySet[ManifestVersion]:
    """``app``'s versions, newest first, with who uploaded them. For its owner and staff:
    the caller has checked ``user_can_change_app``."""
    return app.versions.select_related("uploaded_by").order_by("-number")


def grant_of(connection: Any, cat: Catalogue) -> Grant:
    """A connection as readiness sees it (its granted scopes as capabilities)."""
    return Grant(
        connection_id=connection.pk,
        provider=connection.provider,
        account=connection.account_email or connection.account_uid,
        capabilities=frozenset(
            cat.granted_capabilities(connection.provider, connection.scopes or [])
        ),
        status=connection.status,
        is_default=connection.is_default,
        expires_at=connection.expires_at,
        backoff_until=connection.backoff_until,
        error_code=connection.last_error_code,
    )


def grants_for_user(*, user: User, cat: Catalogue | None = None) -> list[Grant]:
    """The user's connections as readiness sees them (one query, no token columns);
    ``cat`` the catalogue (default: ``integrations.providers.registry.catalogue()``)."""
    connections = integrations_selectors.connections_for_user(user=user).only(
        "id",
        "provider",
        "account_email",
        "account_uid",
        "scopes",
        "status",
        "is_default",
        "expires_at",
        "backoff_until",
        "last_error_code",
    )
    if cat is None:
        cat = integrations_registry.catalogue()
    return [grant_of(c, cat) for c in connections]


def credentials_for_user(
    *,
    user: User,
    integrations: Sequence[Requirement],
    secret_keys: Collection[str],
    cat: Catalogue,
) -> set[CredentialKind]:
    """The kinds of non-OAuth credential the user has brought, looked up only when the
    manifest declares such a capability of ``cat`` (then one query)."""
    kinds = {
        cap.kind
        for req in integrations
        if (cap := cat.by_key.get(req.key)) is not None and cap.kind is not CredentialKind.OAUTH
    }
    have: set[CredentialKind] = set()
    if CredentialKind.BOT_TOKEN in kinds and DISCORD_BOT_TOKEN_KEY in secret_keys:
        have.add(CredentialKind.BOT_TOKEN)
    if kinds & {CredentialKind.SERVICE_ACCOUNT, CredentialKind.GCP_PROJECT}:
        purposes = integrations_selectors.service_account_purposes_for_user(user=user)
        if "google_sa" in purposes:
            have.add(CredentialKind.SERVICE_ACCOUNT)
        if "gcp" in purposes:
            have.add(CredentialKind.GCP_PROJECT)
    return have


def secrets_handed_out(parsed: dict[str, Any]) -> tuple[Requirement, ...]:
    """The ``secrets:`` entries of a stored manifest that a run can hand out: not those
    under an integration's env name (a manifest uploaded before such names were
    refused), whose value only the integration gives. The app page and the run
    environment both judge readiness by these."""
    secrets = requirements_from_json(parsed, "secrets")
    if not secrets:
        return secrets
    reserved = integrations_registry.reserved_env_names()
    return tuple(r for r in secrets if r.key not in reserved)


def readiness_for(*, user: User, app: App) -> Readiness | None:
    """What ``app``'s current version needs that ``user`` has not granted or set yet;
    ``None`` when the app has no current version. Two queries, whatever the numbers
    of connections, secrets and requirements (a third when the manifest declares a
    service account or a GCP project)."""
    version = app.current_version
    if version is None:
        return None
    integrations = requirements_from_json(version.parsed, "integrations")
    secret_keys = integrations_selectors.secret_keys_for_user(user=user)
    cat = integrations_registry.catalogue()
    return assess_readiness(
        integrations=integrations,
        secrets=secrets_handed_out(version.parsed),
        grants=grants_for_user(user=user, cat=cat),
        secret_keys=secret_keys,
        connectable=integrations_registry.connectable_ids(),
        credentials=credentials_for_user(
            user=user, integrations=integrations, secret_keys=secret_keys, cat=cat
        ),
        cat=cat,
    )


def to_allow_for(*, user: User, app: App, readiness: Readiness) -> tuple[ToAllow, ...] | None:
    """What ``app``'s current version declares that ``user`` has (``readiness``, of that
    version) and has not allowed it yet (one query); ``None`` when authorization is
    ``declared`` (running the app is the consent: nothing to allow)."""
    if not app_settings.per_app_authorization():
        return None
    allowance = app_authorization.allowance_for(user=user, app=app.slug)
    return items_to_allow(
        readiness,
        by_connection=allowance.by_connection,
        credentials=allowance.credentials,
        secrets=allowance.secrets,
        cat=integrations_registry.catalogue(),
    )


def _by_hash[T: (ApiToken, RunnerToken, PlatformCredential)](
    rows: QuerySet[T], token: str
) -> T | None:
    """The row of ``rows`` whose hash matches ``token``: looked up by hash (a token is
    never stored), then compared in constant time."""
    digest = hash_api_token(token)
    row = rows.filter(token_hash=digest).first()
    if row is None or not hmac.compare_digest(row.token_hash, digest):
        return None
    return row


def api_token_for(*, token: str) -> ApiToken | None:
    """The active user's API token that ``token`` is, or None."""
    row = _by_hash(ApiToken.objects.select_related("user"), token)
    return row if row is not None and row.user.is_active else None


def live_runner_tokens(*, runner: Runner, now: Any = None) -> QuerySet[RunnerToken]:
    """``runner``'s tokens that work: not revoked, not expired."""
    now = now or timezone.now()
    return runner.tokens.filter(revoked_at__isnull=True).filter(
        Q(expires_at__isnull=True) | Q(expires_at__gt=now)
    )


def runner_token_for(*, token: str) -> RunnerToken | None:
    """The live (not revoked, not expired) runner token that ``token`` is, with its
    runner, or None."""
    digest = hash_api_token(token)
    # Every run asks this first: the statement is composed once (``run_rows``).
    row = run_rows.live_runner_token(token_hash=digest, now=timezone.now())
    if row is None or not hmac.compare_digest(row.token_hash, digest):
        return None
    return row


def runner_by_name(*, name: str) -> Runner | None:
    return Runner.objects.filter(name=name).first()


def runner_scope_check(*, runner_token: RunnerToken, app: str) -> None:
    """Refuse (``RunnerScopeError``, 403 ``runner_scope``) an app ``namespace/name``
    outside the scope of the token's runner. Judged on the name asked for, before the
    app is looked up: a runner learns nothing of apps outside its scope."""
    runner = runner_token.runner
    namespace = app.partition("/")[0]
    if runner.all_namespaces or namespace in runner.namespaces:
        return
    raise RunnerScopeError(namespace)


def user_by_email(*, email: str) -> User | None:
    """The one user with this email address (case-insensitive), or None."""
    users = list(get_user_model().objects.filter(email__iexact=email.strip())[:2])
    return users[0] if len(users) == 1 else None


# --- the connections API ----------------------------------------------------------------

# Primary keys are signed 64-bit integers: a larger id names no row (and PostgreSQL
# would refuse to compare with it).
_MAX_ID = 2**63 - 1
# Token columns are never read by the connections API.
_TOKEN_COLUMNS = ("access_token_encrypted", "refresh_token_encrypted")


def platform_credential_for(*, token: str) -> PlatformCredential | None:
    """The live (not revoked, not expired) platform credential that ``token`` is, or
    None."""
    now = timezone.now()
    rows = PlatformCredential.objects.filter(
        Q(expires_at__isnull=True) | Q(expires_at__gt=now), revoked_at__isnull=True
    )
    return _by_hash(rows, token)


def platform_scope_check(*, credential: PlatformCredential, scope: str) -> None:
    """Refuse (``ScopeMissingError``, 403 ``scope_missing``) a credential without
    ``scope``. A write scope does not imply the read one."""
    if scope not in credential.scopes:
        raise ScopeMissingError(scope)


def _user_named(name: str) -> Any:
    """The active user ``name`` names: by id, or by email (case-insensitive; an email
    two accounts share names none); None otherwise."""
    name = name.strip()
    if name.isascii() and name.isdecimal():
        if int(name) > _MAX_ID:
            return None
        return get_user_model().objects.filter(pk=int(name), is_active=True).first()
    if "@" in name:
        found = user_by_email(email=name)
        return found if found is not None and found.is_active else None
    return None


def _names_user(name: str, user: User) -> bool:
    """Whether ``name`` (an id or an email) names ``user``; no query."""
    name = name.strip()
    if name.isascii() and name.isdecimal():
        return int(name) == user.pk
    return bool(user.email) and name.lower() == user.email.lower()


def connections_api_user(*, owner: User | None, name: str | None) -> Any:
    """Whose connections the connections API lists. With a personal token (``owner``,
    the token's user): its own; a ``name`` naming anyone else is ``UserNotFoundError``
    (404). With a platform credential (``owner`` None): the user ``name`` names,
    required (``UserRequiredError``, 400), else ``UserNotFoundError``."""
    if owner is not None:
        if name is None or _names_user(name, owner):
            return owner
        raise UserNotFoundError
    if not name:
        raise UserRequiredError
    found = _user_named(name)
    if found is None:
        raise UserNotFoundError
    return found


def connections_api_list(*, user: User, provider: str | None = None) -> QuerySet[Connection]:
    """``user``'s connections (of ``provider`` if given), with their user, no token
    column read: one query."""
    rows = integrations_selectors.connections_for_user(user=user).select_related("user")
    if provider:
        rows = rows.filter(provider=provider)
    return rows.defer(*_TOKEN_COLUMNS)


def connection_for_api(*, owner: User | None, id: int) -> Connection:
    """The connection ``id`` with its user, no token column read: for a personal token
    (``owner``) only one of its own, for a platform credential (``owner`` None) any;
    ``ConnectionNotFoundError`` (404) otherwise, whether it exists or not."""
    if id > _MAX_ID:
        raise ConnectionNotFoundError
    rows = Connection.objects.select_related("user").defer(*_TOKEN_COLUMNS).filter(pk=id)
    if owner is not None:
        rows = rows.filter(user=owner)
    found = rows.first()
    if found is None:
        raise ConnectionNotFoundError
    return found
