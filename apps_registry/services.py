"""Writes of the apps registry: manifest uploads and API tokens.

Keyword-only, transactional. Who may change an app is decided in one place,
``selectors.user_can_change_app``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone
from yaml.nodes import Node

from apps_registry import app_settings, selectors
from apps_registry.errors import (
    AppOwnershipError,
    ManifestRejectedError,
    NamespaceOwnedError,
    NamespaceOwnerError,
    NamespaceReservedError,
    PlatformCredentialError,
    RunnerTokenError,
)
from apps_registry.manifest import (
    SLUG_RE,
    Claim,
    Manifest,
    ManifestError,
    ManifestProblem,
    claim_of,
    compose_manifest,
    decode_manifest_text,
    validate_manifest_tree,
)
from apps_registry.models import (
    ApiToken,
    App,
    ManifestVersion,
    Namespace,
    PlatformCredential,
    Runner,
    RunnerToken,
)
from apps_registry.serialization import manifest_as_json, problems_as_json
from apps_registry.tokens import (
    hash_api_token,
    make_api_token,
    make_platform_token,
    make_runner_token,
    platform_prefix_of,
    prefix_of,
    runner_prefix_of,
)
from integrations import selectors as integrations_selectors
from integrations.audit import audit_record
from integrations.connections import refresh
from integrations.connections.disconnect import connection_disconnect
from integrations.errors import IntegrationError
from integrations.events.emit import event_emit
from integrations.events.payloads import app_data
from integrations.models import AuditEvent, Connection
from integrations.providers import registry

# --- namespaces -------------------------------------------------------------------------

if TYPE_CHECKING:
    from django.contrib.auth.models import User


_NOT_SLUG_CHARS = re.compile(r"[^a-z0-9_-]+")


def derive_default_namespace(*, username: str, user_id: int) -> str:
    """The namespace of a manifest without ``namespace:``, for the uploader.

    The username made a slug (lowercase; runs of other characters become ``-``;
    trimmed to 64 characters, starting and ending with a letter or digit), or
    ``user-<id>`` when nothing of it is left. The first of two users whose usernames
    give the same slug claims it (``namespace_claim``); the other must name another
    namespace in the manifest.
    """
    slug = _NOT_SLUG_CHARS.sub("-", username.lower())[:64].strip("-_")
    return slug if SLUG_RE.fullmatch(slug) else f"user-{user_id}"


def default_namespace_for(user: User) -> str:
    return derive_default_namespace(username=user.get_username(), user_id=user.pk)


def namespace_claim(*, user: User, name: str) -> Namespace:
    """The namespace ``name``, locked, for an upload by ``user``; call inside the
    upload's transaction.

    A namespace nobody has yet is created and owned by ``user``; two first uploads at
    once: the unique name lets one create it, the other then finds it owned (and is
    refused unless it is the same user). Staff upload anywhere (a namespace they
    create is theirs, and reserved when its name is in ``APPS_RESERVED_NAMESPACES``).
    Refused: a reserved name, or a namespace without owners (``NamespaceReservedError``:
    ask staff), and another publisher's namespace (``NamespaceOwnedError``, naming the
    owners to ask).
    """
    staff = bool(user.is_staff)
    reserved_names = app_settings.reserved_namespaces()
    found = Namespace.objects.select_for_update().filter(name=name).first()
    if found is None:
        if name in reserved_names and not staff:
            raise NamespaceReservedError(name)
        try:
            with transaction.atomic():
                found = Namespace.objects.create(
                    name=name, created_by=user, reserved=name in reserved_names
                )
                found.owners.add(user)
                return found
        except IntegrityError:
            # Claimed by another upload meanwhile: judged as an existing one below.
            found = Namespace.objects.select_for_update().get(name=name)
    if staff:
        return found
    owners = list(found.owners.order_by("email", "pk").values_list("pk", "email"))
    if any(pk == user.pk for pk, _ in owners):
        return found
    if found.reserved or not owners:
        raise NamespaceReservedError(name)
    raise NamespaceOwnedError(
        name, owners=[email or "the owner (no email on file)" for _, email in owners]
    )


def namespace_owner_add(*, namespace: Namespace, by: User, email: str) -> User:
    """Make the user with ``email`` a co-owner of ``namespace``; ``by`` is an owner (the
    caller got the namespace through ``selectors.namespace_for_owner``). Refused
    (``NamespaceOwnerError``) when no account has the email: they sign up first."""
    user = selectors.user_by_email(email=email)
    if user is None or not user.is_active:
        raise NamespaceOwnerError(
            f"No account has the email {email.strip()}: ask them to sign up first, "
            "then add them again."
        )
    with transaction.atomic():
        if not namespace.owners.filter(pk=user.pk).exists():
            namespace.owners.add(user)
            _audit_owners(
                kind=AuditEvent.Kind.NAMESPACE_OWNER_ADDED, namespace=namespace, by=by, owner=user
            )
    return user


def namespace_owner_remove(*, namespace: Namespace, by: User, owner_id: int) -> None:
    """Remove an owner of ``namespace`` (``by`` is an owner, or staff). The last owner
    stays (``NamespaceOwnerError``): a namespace without owners is staff's to give."""
    with transaction.atomic():
        locked = Namespace.objects.select_for_update().get(pk=namespace.pk)
        owner = locked.owners.filter(pk=owner_id).first()
        if owner is None:
            raise NamespaceOwnerError("That user is not an owner of this namespace.")
        if locked.owners.count() == 1:
            raise NamespaceOwnerError(
                f"You are the last owner of {locked.name}: add another owner first, or ask "
                "the platform's staff to take the namespace over."
            )
        locked.owners.remove(owner)
        _audit_owners(
            kind=AuditEvent.Kind.NAMESPACE_OWNER_REMOVED, namespace=locked, by=by, owner=owner
        )


def namespace_owners_set(*, namespace: Namespace, owners: Iterable[User], by: User) -> None:
    """Staff's edit of ``namespace``'s owners (the admin): each added and removed owner
    audited. No owners at all is allowed here: the namespace is then staff's to give."""
    wanted = {u.pk: u for u in owners}
    with transaction.atomic():
        current = {u.pk: u for u in namespace.owners.all()}
        for pk in wanted.keys() - current.keys():
            namespace.owners.add(wanted[pk])
            _audit_owners(
                kind=AuditEvent.Kind.NAMESPACE_OWNER_ADDED,
                namespace=namespace,
                by=by,
                owner=wanted[pk],
            )
        for pk in current.keys() - wanted.keys():
            namespace.owners.remove(current[pk])
            _audit_owners(
                kind=AuditEvent.Kind.NAMESPACE_OWNER_REMOVED,
                namespace=namespace,
                by=by,
                owner=current[pk],
            )


def _audit_owners(*, kind: str, namespace: Namespace, by: User, owner: User) -> None:
    audit_record(
        kind=kind,
        provider="",
        user=owner,
        account=owner.email,
        detail={"namespace": namespace.name, "by": by.pk, "by_email": by.email},
    )


# --- uploads ------------------------------------------------------------------------


def manifest_upload(*, user: User, text: str | bytes, app: App | None = None) -> ManifestVersion:
    """Store ``text`` as the next version of the app it names, for ``user``.

    The app is ``app`` when given (the manifest must then name it: its ``name``, and
    its ``namespace`` unless absent), else the manifest's ``namespace/name``, the
    namespace defaulting to the uploader's (``default_namespace_for``) when absent or
    ``""``. The namespace must be ``user``'s (``namespace_claim``: a new one is claimed
    by this upload, in its transaction), else ``NamespaceOwnedError`` or
    ``NamespaceReservedError`` and nothing is stored. A new app is owned by ``user``;
    an existing one takes new versions from its owner, its namespace's owners or
    staff only, else ``AppOwnershipError`` and nothing is stored.

    A manifest that fails validation is still kept, as an invalid version with its
    ``errors``, when the app can be told (from ``app`` or its YAML); it never becomes
    current. A valid one becomes the app's current version. Refused without storing
    anything (``ManifestRejectedError`` with the problems): over 64 KiB, not UTF-8,
    a NUL character, or invalid with no app to file it under.
    """
    try:
        decoded = decode_manifest_text(text)
    except ManifestError as exc:
        raise ManifestRejectedError(exc.problems) from None
    manifest: Manifest | None = None
    errors: list[ManifestProblem] = []
    # Decoded once and composed once: the validation and the claim read the same tree.
    root: Node | None = None
    try:
        root = compose_manifest(decoded)
        manifest = validate_manifest_tree(
            root,
            reserved_env_names=registry.reserved_env_names(),
            catalogue=registry.catalogue(),
        )
    except ManifestError as exc:
        errors = list(exc.problems)
    if "\x00" in decoded:
        # YAML forbids it (so ``errors`` says where), and PostgreSQL cannot store it.
        raise ManifestRejectedError(errors)
    claim = (
        Claim(manifest.namespace, manifest.namespace is not None, manifest.name)
        if manifest is not None and app is None
        else claim_of(root)
    )
    if app is not None:
        named = claim.name is None or (
            claim.name == app.name
            and (not claim.namespace_given or claim.namespace == app.namespace)
        )
        if not named:
            shown = f"{claim.namespace or app.namespace}/{claim.name}"
            errors.append(
                ManifestProblem(
                    claim.line,
                    claim.column,
                    "name",
                    f"this manifest is for {shown}, not for {app.slug}: it cannot be a version "
                    f"of {app.slug}",
                )
            )
            errors.sort(key=lambda p: (p.line, p.column))
            manifest = None
        namespace, name = app.namespace, app.name
    else:
        if claim.name is None or (claim.namespace_given and claim.namespace is None):
            raise ManifestRejectedError(
                errors or [ManifestProblem(1, 1, "name", "the manifest does not name its app")]
            )
        namespace = claim.namespace or default_namespace_for(user)
        name = claim.name

    with transaction.atomic():
        namespace_claim(user=user, name=namespace)
        target = _app_for_upload(user=user, namespace=namespace, name=name)
        last = target.versions.aggregate(last=Max("number"))["last"] or 0
        version = ManifestVersion.objects.create(
            app=target,
            number=last + 1,
            raw_text=decoded,
            parsed=manifest_as_json(manifest) if manifest is not None else {},
            valid=manifest is not None,
            errors=problems_as_json(errors),
            warnings=problems_as_json(manifest.warnings) if manifest is not None else [],
            uploaded_by=user,
        )
        if version.valid:
            target.current_version = version
            target.save(update_fields=["current_version", "updated_at"])
            event_emit(
                type="app.version_published",
                data=app_data(
                    app=target.slug,
                    user_id=user.pk,
                    version=version.number,
                    app_id=target.pk,
                    version_id=version.pk,
                ),
                user=user,
            )
    return version


def namespace_defaulted(*, version: ManifestVersion) -> bool:
    """Whether ``version`` went to its uploader's default namespace because the manifest
    gives none (no ``namespace``, ``namespace:`` empty or ``""``)."""
    if version.valid:
        return not version.parsed.get("namespace")
    try:
        root = compose_manifest(version.raw_text)
    except ManifestError:
        return True  # names no namespace it could be filed under
    return not claim_of(root).namespace_given


def _app_for_upload(*, user: User, namespace: str, name: str) -> App:
    """The app ``namespace/name``, locked, created for ``user`` when new; refuses
    (``AppOwnershipError``) when ``user`` may not change it. Call inside a transaction."""
    target = App.objects.select_for_update().filter(namespace=namespace, name=name).first()
    if target is None:
        try:
            with transaction.atomic():
                return App.objects.create(namespace=namespace, name=name, owner=user)
        except IntegrityError:
            # Another upload created it meanwhile.
            target = App.objects.select_for_update().get(namespace=namespace, name=name)
    if not selectors.user_can_change_app(user=user, app=target):
        raise AppOwnershipError(target.slug)
    return target


# --- API tokens ---------------------------------------------------------------------

# last_used_at is written at most this often per token: reads stay reads.
_TOUCH_EVERY = timedelta(minutes=1)


def api_token_create(*, user: User, name: str) -> tuple[ApiToken, str]:
    """Make an API token for ``user``; return the row and the token.

    The token is returned once, here, and never stored: only its hash and its first
    characters (``prefix``) are.
    """
    token = make_api_token()
    row = ApiToken.objects.create(
        user=user, name=name, prefix=prefix_of(token), token_hash=hash_api_token(token)
    )
    return row, token


def _touch(row: ApiToken | RunnerToken | PlatformCredential) -> None:
    """Record that the token ``row`` was used, at most once a minute: reads stay reads."""
    now = timezone.now()
    if row.last_used_at is None or now - row.last_used_at >= _TOUCH_EVERY:
        type(row).objects.filter(pk=row.pk).update(last_used_at=now)
        row.last_used_at = now


def api_token_touch(*, api_token: ApiToken) -> None:
    _touch(api_token)


def runner_token_touch(*, runner_token: RunnerToken) -> None:
    _touch(runner_token)


# A runner holds at most this many live tokens: the current one and the one replacing it.
MAX_LIVE_RUNNER_TOKENS = 2


def runner_scope_names(*, namespaces: Sequence[str], all_namespaces: bool) -> list[str]:
    """A runner's namespaces, checked: exactly one of ``namespaces`` and
    ``all_namespaces`` (the scope is never implied), each a namespace's name."""
    names = sorted({n.strip().lower() for n in namespaces if n.strip()})
    if all_namespaces == bool(names):
        raise RunnerTokenError(
            "Give the runner a scope: the namespaces it may serve (e.g. acme), or all "
            "namespaces, not both and not neither."
        )
    bad = [n for n in names if not SLUG_RE.fullmatch(n)]
    if bad:
        raise RunnerTokenError(f"Not a namespace: {', '.join(bad)[:200]}.")
    return names


def runner_create(
    *,
    name: str,
    namespaces: Sequence[str] = (),
    all_namespaces: bool = False,
    created_by: User | None = None,
) -> Runner:
    """A runner allowed the apps of ``namespaces``, or of every namespace when
    ``all_namespaces``: the scope is always explicit (``RunnerTokenError`` for none, or
    a taken name)."""
    names = runner_scope_names(namespaces=namespaces, all_namespaces=all_namespaces)
    try:
        with transaction.atomic():
            return Runner.objects.create(
                name=name, namespaces=names, all_namespaces=all_namespaces, created_by=created_by
            )
    except IntegrityError:
        raise RunnerTokenError(
            f"A runner named {name} exists: issue it a new token instead (admin → Runners)."
        ) from None


def runner_token_issue(
    *, runner: Runner, expires_at: datetime | None = None, created_by: User | None = None
) -> tuple[RunnerToken, str]:
    """A new token for ``runner``; return the row and the token, shown once (only its
    hash is stored). The runner's other live token stays valid until revoked, so that
    it can be rotated; a third live one is refused (``RunnerTokenError``)."""
    now = timezone.now()
    if expires_at is not None and expires_at <= now:
        raise RunnerTokenError("The expiry is in the past: pick a later one.")
    with transaction.atomic():
        # The runner's row lock: two issues at once cannot both pass the count.
        Runner.objects.select_for_update().filter(pk=runner.pk).first()
        if selectors.live_runner_tokens(runner=runner, now=now).count() >= MAX_LIVE_RUNNER_TOKENS:
            raise RunnerTokenError(
                f"The runner {runner.name} has {MAX_LIVE_RUNNER_TOKENS} live tokens already: "
                "revoke the old one first (admin → Runner tokens)."
            )
        token = make_runner_token()
        row = RunnerToken.objects.create(
            runner=runner,
            prefix=runner_prefix_of(token),
            token_hash=hash_api_token(token),
            created_by=created_by,
            expires_at=expires_at,
        )
    return row, token


def runner_token_create(
    *,
    name: str,
    namespaces: Sequence[str] = (),
    all_namespaces: bool = False,
    expires_at: datetime | None = None,
    created_by: User | None = None,
) -> tuple[RunnerToken, str]:
    """A new runner ``name`` with its scope (``runner_create``) and its first token
    (``runner_token_issue``), in one transaction."""
    with transaction.atomic():
        runner = runner_create(
            name=name, namespaces=namespaces, all_namespaces=all_namespaces, created_by=created_by
        )
        return runner_token_issue(runner=runner, expires_at=expires_at, created_by=created_by)


def runner_scope_set(
    *, runner: Runner, namespaces: Sequence[str] = (), all_namespaces: bool = False
) -> None:
    """Change what ``runner`` may serve (staff, the admin); explicit as at creation."""
    names = runner_scope_names(namespaces=namespaces, all_namespaces=all_namespaces)
    Runner.objects.filter(pk=runner.pk).update(namespaces=names, all_namespaces=all_namespaces)
    runner.namespaces, runner.all_namespaces = names, all_namespaces


def runner_token_revoke(*, runner_token: RunnerToken) -> None:
    RunnerToken.objects.filter(pk=runner_token.pk, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )


# --- Retry now (the app page) -------------------------------------------------------

# One user-asked refresh per connection per this long. A cache key, not a column: it
# needs no migration of the connection row (whose refresh bookkeeping is the refresh
# service's), ``cache.add`` is atomic in every backend Django ships (in production
# Redis, shared by every web process), and the key expires by itself.
RETRY_NOW_INTERVAL = timedelta(minutes=1)


@dataclass(frozen=True)
class RetryOutcome:
    """What a Retry now did. ``ok``: the connection has a valid token now. Otherwise
    ``code`` is the refresh's error code and ``next_attempt_at`` when the next attempt
    is due; ``limited_until`` is set when no attempt was made (asked too recently)."""

    ok: bool
    provider: str
    code: str = ""
    next_attempt_at: datetime | None = None
    limited_until: datetime | None = None


def connection_retry_now(
    *, user: User, connection_id: int, now: datetime | None = None
) -> RetryOutcome:
    """Refresh ``user``'s connection now, once, even while it backs off after errors.

    The connection comes through ``integrations.selectors.connection_for_user`` (404
    for another user's). At most one attempt per user and connection per
    ``RETRY_NOW_INTERVAL``: the backoff (``integrations.connections.refresh``) protects the
    provider, and this override of it is bounded by the user's clicks. The daily
    attempt limit of the refresh service still holds. Refresh request: RFC 6749 §6.
    """
    now = now or timezone.now()
    conn = integrations_selectors.connection_for_user(user=user, id=connection_id)
    key = f"apps_registry:retry-now:{user.pk}:{conn.pk}"
    until = now + RETRY_NOW_INTERVAL
    if not cache.add(key, until.isoformat(), timeout=RETRY_NOW_INTERVAL.total_seconds()):
        held = cache.get(key)
        return RetryOutcome(
            ok=False,
            provider=conn.provider,
            limited_until=datetime.fromisoformat(held) if isinstance(held, str) else until,
        )
    try:
        refresh.connection_refresh(
            connection_id=conn.pk, now=now, serve_valid_on_failure=False, override_backoff=True
        )
    except Connection.DoesNotExist:  # disconnected meanwhile
        return RetryOutcome(ok=False, provider=conn.provider, code="disconnected")
    except IntegrationError as exc:  # DecryptionError included: "undecryptable"
        row = Connection.objects.filter(pk=conn.pk).only("backoff_until").first()
        return RetryOutcome(
            ok=False,
            provider=conn.provider,
            code=exc.code,
            next_attempt_at=row.backoff_until if row is not None else None,
        )
    return RetryOutcome(ok=True, provider=conn.provider)


# --- platform credentials and the connections API -----------------------------------


def platform_credential_create(
    *,
    name: str,
    scopes: Sequence[str],
    expires_at: datetime | None = None,
    created_by: User | None = None,
) -> tuple[PlatformCredential, str]:
    """A platform credential ``name`` with ``scopes`` (at least one of
    ``PlatformCredential.SCOPES``); return the row and the token, shown once (only its
    hash is stored). ``PlatformCredentialError`` for no or an unknown scope, a taken
    name or an expiry in the past."""
    name = name.strip()
    wanted = sorted(set(scopes))
    if not name:
        raise PlatformCredentialError("Name the platform credential, e.g. 'acme-backend'.")
    unknown = [s for s in wanted if s not in PlatformCredential.SCOPES]
    if unknown or not wanted:
        raise PlatformCredentialError(
            "Give the credential its scopes: "
            + " and/or ".join(PlatformCredential.SCOPES)
            + (f" (not {', '.join(unknown)[:200]})" if unknown else "")
            + "."
        )
    if expires_at is not None and expires_at <= timezone.now():
        raise PlatformCredentialError("The expiry is in the past: pick a later one.")
    token = make_platform_token()
    try:
        with transaction.atomic():
            row = PlatformCredential.objects.create(
                name=name,
                scopes=wanted,
                prefix=platform_prefix_of(token),
                token_hash=hash_api_token(token),
                created_by=created_by,
                expires_at=expires_at,
            )
    except IntegrityError:
        raise PlatformCredentialError(
            f"A platform credential named {name} exists: pick another name (or revoke it "
            "and name the new one differently)."
        ) from None
    return row, token


def platform_credential_touch(*, credential: PlatformCredential) -> None:
    _touch(credential)


def platform_credential_revoke(*, credential: PlatformCredential) -> None:
    PlatformCredential.objects.filter(pk=credential.pk, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )


def connection_api_disconnect(*, connection: Connection, actor: dict[str, str]) -> str:
    """Disconnect ``connection`` for the connections API (``connection_disconnect``:
    revoke at the provider, then delete), audited with ``actor`` (``{"by", "via"}``:
    names and ids only). Returns the revocation's outcome: ``revoked``, or the code of
    what went wrong (``no_revocation_endpoint``, ``http_503``...); the connection is
    deleted either way."""
    outcome = connection_disconnect(connection=connection)
    audit_record(
        kind=AuditEvent.Kind.API_DISCONNECT,
        provider=connection.provider,
        user=connection.user,
        connection=connection,
        ok=outcome.ok,
        error_code=outcome.error_code[:64],
        detail=dict(actor),
    )
    return "revoked" if outcome.ok else outcome.error_code
