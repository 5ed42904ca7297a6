"""Writes of the apps registry: manifest uploads and API tokens.

Keyword-only, transactional. Who may change an app is decided in one place,
``selectors.user_can_change_app``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone
from yaml.nodes import Node

from apps_registry import selectors
from apps_registry.errors import AppOwnershipError, ManifestRejectedError
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
from apps_registry.models import ApiToken, App, ManifestVersion, RunnerToken
from apps_registry.serialization import manifest_as_json, problems_as_json
from apps_registry.tokens import (
    hash_api_token,
    make_api_token,
    make_runner_token,
    prefix_of,
    runner_prefix_of,
)
from integrations import selectors as integrations_selectors
from integrations.connections import refresh
from integrations.errors import IntegrationError
from integrations.models import Connection
from integrations.providers import registry

# --- namespaces -------------------------------------------------------------------------

if TYPE_CHECKING:
    from django.contrib.auth.models import User


_NOT_SLUG_CHARS = re.compile(r"[^a-z0-9_-]+")


def derive_default_namespace(*, username: str, user_id: int) -> str:
    """The namespace of a manifest without ``namespace:``, for the uploader.

    The username made a slug (lowercase; runs of other characters become ``-``;
    trimmed to 64 characters, starting and ending with a letter or digit), or
    ``user-<id>`` when nothing of it is left. Namespaces are not reserved: each app
    is owned on its own, so two users whose usernames give the same slug share the
    namespace, never an app.
    """
    slug = _NOT_SLUG_CHARS.sub("-", username.lower())[:64].strip("-_")
    return slug if SLUG_RE.fullmatch(slug) else f"user-{user_id}"


def default_namespace_for(user: User) -> str:
    return derive_default_namespace(username=user.get_username(), user_id=user.pk)


# --- uploads ------------------------------------------------------------------------


def manifest_upload(*, user: User, text: str | bytes, app: App | None = None) -> ManifestVersion:
    """Store ``text`` as the next version of the app it names, for ``user``.

    The app is ``app`` when given (the manifest must then name it: its ``name``, and
    its ``namespace`` unless absent), else the manifest's ``namespace/name``, the
    namespace defaulting to the uploader's (``default_namespace_for``) when absent or
    ``""``. A new app is
    owned by ``user``; an existing one takes new versions from its owner or staff
    only, else ``AppOwnershipError`` and nothing is stored.

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


def _touch(row: ApiToken | RunnerToken) -> None:
    """Record that the token ``row`` was used, at most once a minute: reads stay reads."""
    now = timezone.now()
    if row.last_used_at is None or now - row.last_used_at >= _TOUCH_EVERY:
        type(row).objects.filter(pk=row.pk).update(last_used_at=now)
        row.last_used_at = now


def api_token_touch(*, api_token: ApiToken) -> None:
    _touch(api_token)


def runner_token_touch(*, runner_token: RunnerToken) -> None:
    _touch(runner_token)


def runner_token_create(*, name: str, created_by: Any = None) -> tuple[RunnerToken, str]:
    """Make a runner token; return the row and the token, shown once (only its hash
    is stored)."""
    token = make_runner_token()
    row = RunnerToken.objects.create(
        name=name,
        prefix=runner_prefix_of(token),
        token_hash=hash_api_token(token),
        created_by=created_by,
    )
    return row, token


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
