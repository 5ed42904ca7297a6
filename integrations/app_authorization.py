"""Per-app authorization (docs/authorization.md): a user allows an app, once, to use
exactly the items it declares, and removes that access again.

An app is named by its slug ``namespace/name`` (integrations never imports the apps
registry). An item is a capability (on one connection for OAuth capabilities, without
one for the credentials a user brings) or a secret by its key. Services write (each
audited with the app and the items' keys and connection ids, never a value), selectors
read (one query each, for the pages and the run environment).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from django.db import transaction
from django.db.models import Q

from integrations.audit import audit_record
from integrations.core.secret_rules import DISCORD_BOT_TOKEN_KEY
from integrations.errors import InvalidAppSlugError
from integrations.events.emit import event_emit
from integrations.events.payloads import app_data
from integrations.models import AppAuthorization, AuditEvent, Connection, Secret

if TYPE_CHECKING:
    from django.contrib.auth.models import User

CAPABILITY: Final = AppAuthorization.Kind.CAPABILITY.value
SECRET: Final = AppAuthorization.Kind.SECRET.value
DISCORD_BOT: Final = "discord.bot"  # the capability whose credential is a secret

# The manifest schema's slug rule (apps_registry.manifest.schema.SLUG_RE), repeated here
# because integrations may not import the apps registry: ``namespace/name``.
_PART = r"(?!.*\.\.)[a-z0-9](?:[a-z0-9._-]{0,62}[a-z0-9])?"
APP_SLUG_RE: Final = re.compile(rf"{_PART}/{_PART}")


def check_app_slug(app: str) -> str:
    """``app`` when it is an app slug ``namespace/name``; ``InvalidAppSlugError`` otherwise.
    A slug that reaches us from a request is only ever the user's own intent: it is
    checked for its shape, never trusted for anything else."""
    if not isinstance(app, str) or not APP_SLUG_RE.fullmatch(app):
        raise InvalidAppSlugError("not an app name (namespace/name)")
    return app


@dataclass(frozen=True)
class AllowItem:
    """One item to allow: ``kind`` ``capability`` or ``secret``, its ``key``, and the
    connection it is allowed on (OAuth capabilities only)."""

    kind: str
    key: str
    connection_id: int | None = None

    def as_detail(self) -> dict[str, object]:
        return {"kind": self.kind, "key": self.key, "connection_id": self.connection_id}


@transaction.atomic
def app_authorization_allow(
    *, user: User, app: str, version: int, items: Sequence[AllowItem]
) -> list[AllowItem]:
    """Allow ``app`` (its ``version`` asked) to use ``items`` of ``user``'s; the items
    allowed already stay as they are. Connections must be ``user``'s own (an item on
    another user's connection is dropped, never allowed). Audited as ``app_allowed``
    (keys and connection ids). Returns the items allowed by this call."""
    check_app_slug(app)
    wanted = {i.connection_id for i in items if i.connection_id is not None}
    own = set(Connection.objects.filter(user=user, pk__in=wanted).values_list("pk", flat=True))
    kept = [
        i
        for i in dict.fromkeys(items)
        if i.kind in (CAPABILITY, SECRET)
        and (i.connection_id is None or i.connection_id in own)
        and (i.kind == CAPABILITY or i.connection_id is None)
    ]
    if not kept:
        return []
    had = {
        AllowItem(kind, key, connection_id)
        for kind, key, connection_id in AppAuthorization.objects.filter(
            user=user, app=app
        ).values_list("kind", "key", "connection_id")
    }
    # ON CONFLICT DO NOTHING (INSERT OR IGNORE on SQLite) against either conditional
    # unique constraint: allowing twice (two tabs) is allowing once.
    AppAuthorization.objects.bulk_create(
        [
            AppAuthorization(
                user=user,
                app=app,
                kind=i.kind,
                key=i.key,
                connection_id=i.connection_id,
                version=version,
            )
            for i in kept
        ],
        ignore_conflicts=True,
    )
    audit_record(
        kind=AuditEvent.Kind.APP_ALLOWED,
        provider="apps",
        user=user,
        account=app,
        detail={"app": app, "version": version, "items": [i.as_detail() for i in kept]},
    )
    added = [i for i in kept if i not in had]
    if added:  # allowed already: not a change, no event
        event_emit(
            type="app.authorized",
            data=app_data(
                app=app, user_id=user.pk, version=version, items=[i.as_detail() for i in added]
            ),
            user=user,
        )
    return kept


def _remove(*, user: User, app: str, rows: Iterable[AppAuthorization], **where: object) -> int:
    removed = [AllowItem(r.kind, r.key, r.connection_id) for r in rows]
    if not removed:
        return 0
    AppAuthorization.objects.filter(user=user, app=app, **where).delete()
    audit_record(
        kind=AuditEvent.Kind.APP_ACCESS_REMOVED,
        provider="apps",
        user=user,
        account=app,
        detail={"app": app, "items": [i.as_detail() for i in removed]},
    )
    event_emit(
        type="app.authorization_removed",
        data=app_data(
            app=app, user_id=user.pk, items=[i.as_detail() for i in removed], by_staff=None
        ),
        user=user,
    )
    return len(removed)


@transaction.atomic
def app_authorizations_remove_by_staff(
    *, rows: Iterable[AppAuthorization], by_staff_id: int | None
) -> int:
    """Remove allowances from the admin: audited as the users' own removals are
    (``app_access_removed``, one event per user and app), naming the staff member. The
    app's next run asks its user again."""
    groups: dict[tuple[int, str], list[AppAuthorization]] = {}
    for row in rows:
        groups.setdefault((row.user_id, row.app), []).append(row)
    for group in groups.values():
        first = group[0]
        AppAuthorization.objects.filter(pk__in=[r.pk for r in group]).delete()
        audit_record(
            kind=AuditEvent.Kind.APP_ACCESS_REMOVED,
            provider="apps",
            user=first.user,
            account=first.app,
            detail={
                "app": first.app,
                "items": [AllowItem(r.kind, r.key, r.connection_id).as_detail() for r in group],
                "by_staff": by_staff_id,
            },
        )
        event_emit(
            type="app.authorization_removed",
            data=app_data(
                app=first.app,
                user_id=first.user_id,
                items=[AllowItem(r.kind, r.key, r.connection_id).as_detail() for r in group],
                by_staff=by_staff_id,
            ),
        )
    return sum(len(g) for g in groups.values())


@transaction.atomic
def app_access_remove_for_connection(*, user: User, app: str, connection: Connection) -> int:
    """Remove what ``app`` was allowed on ``connection`` (got through
    ``selectors.connection_for_user``): its next run gets no token from it. Audited as
    ``app_access_removed``. Returns how many items were removed (0: none were allowed)."""
    check_app_slug(app)
    where = {"connection": connection}
    rows = list(AppAuthorization.objects.filter(user=user, app=app, **where))
    return _remove(user=user, app=app, rows=rows, **where)


@transaction.atomic
def app_access_remove_for_secret(*, user: User, app: str, secret: Secret) -> int:
    """Remove ``app``'s access to ``secret`` (got through ``selectors.secret_for_user``):
    its next run does not get the value. Audited as ``app_access_removed``."""
    check_app_slug(app)
    if secret.key == DISCORD_BOT_TOKEN_KEY:
        # The bot token is also the credential of ``discord.bot``: removed together.
        rows = list(
            AppAuthorization.objects.filter(user=user, app=app, connection__isnull=True).filter(
                Q(kind=SECRET, key=secret.key) | Q(kind=CAPABILITY, key=DISCORD_BOT)
            )
        )
        return _remove(user=user, app=app, rows=rows, pk__in=[r.pk for r in rows])
    where = {"kind": SECRET, "key": secret.key, "connection__isnull": True}
    rows = list(AppAuthorization.objects.filter(user=user, app=app, **where))
    return _remove(user=user, app=app, rows=rows, **where)


@transaction.atomic
def app_access_remove_for_credentials(*, user: User, app: str, keys: Sequence[str]) -> int:
    """Remove ``app``'s access to the credential capabilities ``keys`` (``google.sa``;
    ``gcp.*``: those of one service-account key of ``user``'s). Audited as
    ``app_access_removed``."""
    check_app_slug(app)
    where = {"kind": CAPABILITY, "key__in": list(keys), "connection__isnull": True}
    rows = list(AppAuthorization.objects.filter(user=user, app=app, **where))
    return _remove(user=user, app=app, rows=rows, **where)


def secret_authorizations_delete(*, user: User, key: str) -> None:
    """Forget which apps may use the secret ``key`` (it is being deleted): a value set
    again under that key must be allowed again. The bot token is the credential of
    ``discord.bot``: that capability's allowances go with it."""
    rows = AppAuthorization.objects.filter(user=user, kind=SECRET, key=key)
    if key == DISCORD_BOT_TOKEN_KEY:
        rows = rows | AppAuthorization.objects.filter(
            user=user, kind=CAPABILITY, key=DISCORD_BOT, connection__isnull=True
        )
    rows.delete()


def credential_authorizations_delete(*, user: User, keys: Sequence[str]) -> None:
    """Forget which apps may use the credential capabilities ``keys`` (``google.sa``,
    ``gcp.*``: their service-account key is being deleted)."""
    AppAuthorization.objects.filter(
        user=user, kind=CAPABILITY, key__in=list(keys), connection__isnull=True
    ).delete()


def app_authorizations_forget(*, app: str) -> None:
    """Forget every user's allowances of ``app`` (the app was deleted): an app uploaded
    later under the same name, maybe by another publisher, must be allowed anew."""
    AppAuthorization.objects.filter(app=app).delete()


# --- selectors ------------------------------------------------------------------------


@dataclass(frozen=True)
class Allowance:
    """What a user allowed one app: per connection id the capability keys, the keys of
    capabilities without a connection (``google.sa``, ``gcp.*``, ``discord.bot``), and
    the secret keys."""

    by_connection: dict[int, frozenset[str]]
    credentials: frozenset[str]
    secrets: frozenset[str]


def allowance_for(*, user: User, app: str) -> Allowance:
    """What ``user`` allowed ``app`` (one query)."""
    by_connection: dict[int, set[str]] = {}
    credentials: set[str] = set()
    secrets: set[str] = set()
    rows = AppAuthorization.objects.filter(user=user, app=app).values_list(
        "kind", "key", "connection_id"
    )
    for kind, key, connection_id in rows:
        if kind == SECRET:
            secrets.add(key)
        elif connection_id is not None:
            by_connection.setdefault(connection_id, set()).add(key)
        else:
            credentials.add(key)
    return Allowance(
        by_connection={c: frozenset(k) for c, k in by_connection.items()},
        credentials=frozenset(credentials),
        secrets=frozenset(secrets),
    )


def apps_by_connection(*, user: User) -> dict[int, list[str]]:
    """Per connection of ``user``'s, the apps allowed to use it, sorted (one query)."""
    result: dict[int, set[str]] = {}
    rows = AppAuthorization.objects.filter(user=user, connection__isnull=False).values_list(
        "connection_id", "app"
    )
    for connection_id, app in rows:
        result.setdefault(connection_id, set()).add(app)
    return {c: sorted(apps) for c, apps in result.items()}


def apps_by_secret(*, user: User) -> dict[str, list[str]]:
    """Per secret key of ``user``'s, the apps allowed to use it, sorted (one query);
    under ``DISCORD_BOT_TOKEN`` also those allowed ``discord.bot`` (its credential)."""
    result: dict[str, set[str]] = {}
    rows = (
        AppAuthorization.objects.filter(user=user, connection__isnull=True)
        .filter(Q(kind=SECRET) | Q(kind=CAPABILITY, key=DISCORD_BOT))
        .values_list("kind", "key", "app")
    )
    for kind, key, app in rows:
        shown = DISCORD_BOT_TOKEN_KEY if kind == CAPABILITY else key
        result.setdefault(shown, set()).add(app)
    return {k: sorted(apps) for k, apps in result.items()}


def apps_by_credential(*, user: User) -> dict[str, list[str]]:
    """Per credential capability key (``google.sa``, ``gcp.*``, ``discord.bot``), the
    apps ``user`` allowed it, sorted (one query)."""
    result: dict[str, set[str]] = {}
    rows = AppAuthorization.objects.filter(
        user=user, kind=CAPABILITY, connection__isnull=True
    ).values_list("key", "app")
    for key, app in rows:
        result.setdefault(key, set()).add(app)
    return {k: sorted(apps) for k, apps in result.items()}
