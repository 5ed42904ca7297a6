"""Reads. Every view that touches a user's connection goes through ``connection_for_user``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from django.db.models import Count, Min, Q, QuerySet
from django.http import Http404

from integrations.models import (
    AuditEvent,
    Connection,
    Secret,
    ServiceAccountKey,
    UserOAuthClient,
    UserPreferences,
)

if TYPE_CHECKING:
    from django.contrib.auth.models import User


def connection_for_user(*, user: User, id: int) -> Connection:
    """The connection ``id`` if it belongs to ``user``; 404 otherwise (whether it exists
    or not, so that ids of other users' connections are not disclosed)."""
    try:
        return Connection.objects.get(pk=id, user=user)
    except Connection.DoesNotExist:
        raise Http404("No such connection.") from None


def connections_for_user(*, user: User) -> QuerySet[Connection]:
    return Connection.objects.filter(user=user).order_by("provider", "created_at", "id")


@dataclass(frozen=True)
class AppUse:
    """An app's run that was handed the connection's token (``RUN_ENVIRONMENT``)."""

    app: str
    at: datetime


# The user's latest runs read at once for the cards: past them, one more query for
# the connections not found (a user whose many runs use other connections).
APP_USE_WINDOW = 500


def last_app_use_by_connection(*, user: User, connections: list[Connection]) -> dict[int, AppUse]:
    """The latest run of an app that used each of ``connections`` (absent: none did),
    from the audit log: one query over the user's last ``APP_USE_WINDOW`` runs."""
    runs = AuditEvent.objects.filter(user=user, kind=AuditEvent.Kind.RUN_ENVIRONMENT)
    wanted = {c.pk for c in connections}
    found: dict[int, AppUse] = {}
    recent = list(
        runs.order_by("-created_at", "-id").values_list("created_at", "detail")[:APP_USE_WINDOW]
    )
    for at, detail in recent:
        for pk in (detail.get("connections") or {}).values():
            if pk in wanted and pk not in found:
                found[pk] = AppUse(app=str(detail.get("app", "")), at=at)
    if len(recent) < APP_USE_WINDOW:
        return found
    missing = [c for c in connections if c.pk not in found]
    if not missing:
        return found
    # One query for every connection not among the recent runs, newest first: each
    # takes the first row that names it.
    named = Q()
    for conn in missing:
        named |= Q(**{f"detail__connections__{conn.provider}": conn.pk})
    older = runs.filter(named).order_by("-created_at", "-id").values_list("created_at", "detail")
    left = {c.pk for c in missing}
    for at, detail in older.iterator(chunk_size=200):
        for pk in (detail.get("connections") or {}).values():
            if pk in left:
                found[pk] = AppUse(app=str(detail.get("app", "")), at=at)
                left.discard(pk)
        if not left:
            break
    return found


def time_zone_for_user(*, user: User) -> str:
    """The user's chosen IANA time zone, "" when none was chosen."""
    zone = UserPreferences.objects.filter(user=user).values_list("time_zone", flat=True).first()
    return zone or ""


def secrets_for_user(*, user: User) -> QuerySet[Secret]:
    return Secret.objects.filter(user=user).order_by("key")


def secret_keys_for_user(*, user: User) -> set[str]:
    """The keys of the secrets the user has set (no values are read)."""
    return set(Secret.objects.filter(user=user).values_list("key", flat=True))


def own_client_for_user(*, user: User, provider: str) -> UserOAuthClient:
    try:
        return UserOAuthClient.objects.get(user=user, provider=provider)
    except UserOAuthClient.DoesNotExist:
        raise Http404("No own client for this provider.") from None


def secret_for_user(*, user: User, id: int) -> Secret:
    """The secret ``id`` if it belongs to ``user``; 404 otherwise (whether it exists or
    not). Every view that touches one secret gets it here."""
    try:
        return Secret.objects.get(pk=id, user=user)
    except Secret.DoesNotExist:
        raise Http404("No such secret.") from None


# --- service-account keys ---------------------------------------------------------------


def service_account_key_for_user(*, user: User, id: int) -> ServiceAccountKey:
    """The service-account key ``id`` if it belongs to ``user``; 404 otherwise. Every
    view that touches one key gets it here."""
    try:
        return ServiceAccountKey.objects.get(pk=id, user=user)
    except ServiceAccountKey.DoesNotExist:
        raise Http404("No such service account.") from None


def service_account_keys_for_user(*, user: User) -> dict[str, ServiceAccountKey]:
    """The user's keys by purpose (``google_sa``, ``gcp``), in one query."""
    return {k.purpose: k for k in ServiceAccountKey.objects.filter(user=user)}


def service_account_purposes_for_user(*, user: User) -> set[str]:
    """Which keys the user has uploaded (``google_sa``, ``gcp``) and Google has not
    refused, no key material read: what readiness needs to tell ``google.sa`` and
    ``gcp.*`` from missing ones."""
    keys = ServiceAccountKey.objects.filter(user=user, refused_at__isnull=True)
    return set(keys.values_list("purpose", flat=True))


def own_clients_for_user(*, user: User) -> QuerySet[UserOAuthClient]:
    return UserOAuthClient.objects.filter(user=user)


@dataclass(frozen=True)
class RefreshBacklog:
    due: int
    oldest_lag_seconds: float


def refresh_backlog(*, now: datetime) -> RefreshBacklog:
    """How many connections are due for a refresh (``next_refresh_at`` passed and not
    leased by a sweep), and how late the oldest of them is: one indexed aggregate."""
    row = Connection.objects.filter(next_refresh_at__lte=now).aggregate(
        due=Count("id"), oldest=Min("next_refresh_at")
    )
    oldest = row["oldest"]
    return RefreshBacklog(
        due=row["due"], oldest_lag_seconds=(now - oldest).total_seconds() if oldest else 0.0
    )


def dead_grants_by_provider() -> list[tuple[str, int]]:
    """``(provider, count)`` of the connections that need reconnecting."""
    rows = (
        Connection.objects.filter(Q(status=Connection.Status.NEEDS_RECONNECT))
        .values_list("provider")
        .annotate(n=Count("id"))
        .order_by("provider")
    )
    return [(provider, n) for provider, n in rows]
