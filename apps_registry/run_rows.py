"""The rows a run environment reads, in statements composed once per process.

A run reads three things, one statement each: the app with its version, the user's
connections (with the user and the user's own OAuth client each was made with), and
the declared secrets; the run API first reads the runner token of the request.
Through querysets, building and compiling those statements took more of a call than
running them (bench/run_env.py: the call was 3.65x the same statements written in SQL);
here they are written in SQL once, their columns taken from the models
(``integrations.sql_rows``), and the rows come back as model instances, as the
querysets gave them. The statements are the ones the ORM sent: the same joins, filters
and order, so the same indexes serve them.

Per-app authorization rides on them as correlated subqueries (the allowance of the
row's user for the app), written as SQL too: built by the ORM (``Subquery``,
``StringAgg``, ``Exists``) they doubled the call's time. The names come from the
models, quoted; every value (the app, the kinds, the user, the keys) is a parameter.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import cache
from typing import Any

from django.contrib.auth import get_user_model
from django.db import DEFAULT_DB_ALIAS, connections

from apps_registry.models import App, ManifestVersion, Runner, RunnerToken
from integrations.models import AppAuthorization, Connection, Secret, UserOAuthClient
from integrations.sql_rows import column, fetch, param, quote, selected


def _auth_sql(outer: type[Any], where: str, select: str) -> str:
    """A subquery over ``AppAuthorization`` rows of the ``outer`` model's row's user
    (``outer`` is the query's own table, never aliased) for one app."""
    auth = AppAuthorization
    return (
        f"SELECT {select.format(key=column(auth, 'key'))} "  # noqa: S608
        f"FROM {quote(auth._meta.db_table)} "
        f"WHERE {column(auth, 'user')} = {column(outer, 'user')} AND {column(auth, 'app')} = %s "
        f"AND {column(auth, 'kind')} = %s "
        + where.format(connection=column(auth, "connection"), key=column(auth, "key"))
    )


def _joined(expression: str) -> str:
    # STRING_AGG on PostgreSQL, GROUP_CONCAT on SQLite: both NULL over no rows.
    if connections[DEFAULT_DB_ALIAS].vendor == "postgresql":
        return f"STRING_AGG({expression}, ',')"
    return f"GROUP_CONCAT({expression}, ',')"


CAPABILITY = AppAuthorization.Kind.CAPABILITY.value
SECRET = AppAuthorization.Kind.SECRET.value


def allowed_on_connection_sql() -> str:
    """The capability keys the connection's user allowed an app on it, comma-separated
    (capability keys hold no comma), or NULL. Parameters: the app, ``CAPABILITY``."""
    return _auth_sql(
        Connection, f"AND {{connection}} = {column(Connection, 'id')}", _joined("{key}")
    )


def allowed_credentials_sql(outer: type[Any]) -> str:
    """The capability keys without a connection (``google.sa``, ``gcp.*``,
    ``discord.bot``) the ``outer`` row's user allowed an app, comma-separated, or NULL:
    folded into the secrets and service-account queries. Parameters: the app,
    ``CAPABILITY``."""
    return _auth_sql(outer, "AND {connection} IS NULL", _joined("{key}"))


def secret_allowed_sql() -> str:
    """Whether the secret row's user allowed an app that secret. Parameters: the app,
    ``SECRET``."""
    key = column(Secret, "key")
    return (
        "EXISTS(" + _auth_sql(Secret, f"AND {{connection}} IS NULL AND {{key}} = {key}", "1") + ")"
    )


def keys_of(joined: str | None) -> frozenset[str]:
    """The keys of a comma-separated allowance (NULL: none)."""
    return frozenset(joined.split(",")) if joined else frozenset()


# --- the runner token ----------------------------------------------------------------


@cache
def _runner_token_sql() -> str:
    # RunnerToken.objects.select_related("runner").filter(live, token_hash=).first()
    expires = column(RunnerToken, "expires_at")
    return (
        f"SELECT {selected(RunnerToken).sql}, {selected(Runner).sql} "  # noqa: S608
        f"FROM {quote(RunnerToken._meta.db_table)} "
        f"INNER JOIN {quote(Runner._meta.db_table)} "
        f"ON ({column(RunnerToken, 'runner')} = {column(Runner, 'id')}) "
        f"WHERE ({expires} IS NULL OR {expires} > %s) "
        f"AND {column(RunnerToken, 'revoked_at')} IS NULL "
        f"AND {column(RunnerToken, 'token_hash')} = %s "
        f"ORDER BY {column(RunnerToken, 'created_at')} DESC, {column(RunnerToken, 'id')} DESC "
        "LIMIT 1"
    )


def live_runner_token(*, token_hash: str, now: datetime) -> RunnerToken | None:
    """The runner token with ``token_hash``, not revoked nor expired at ``now``, with its
    runner (``token.runner``, no second query); ``None`` when there is none. One query."""
    rows = fetch(_runner_token_sql(), [param(RunnerToken, "expires_at", now), token_hash])
    if not rows:
        return None
    token_columns = selected(RunnerToken)
    token = token_columns.build(rows[0])
    token.runner = selected(Runner).build(rows[0], token_columns.width)
    return token


# --- the app and its version -----------------------------------------------------------


@cache
def _version_sql(*, current: bool) -> str:
    app, version = selected(App), selected(ManifestVersion)
    table = quote(App._meta.db_table)
    if current:
        # App.objects.select_related("current_version").filter(...).first()
        joined = (
            f"LEFT OUTER JOIN {quote(ManifestVersion._meta.db_table)} ON "
            f"({column(App, 'current_version')} = {column(ManifestVersion, 'id')})"
        )
        extra, order = "", f"{column(App, 'namespace')}, {column(App, 'name')}"
    else:
        # ManifestVersion.objects.select_related("app").filter(..., number=, valid=True)
        joined = (
            f"INNER JOIN {quote(ManifestVersion._meta.db_table)} ON "
            f"({column(ManifestVersion, 'app')} = {column(App, 'id')})"
        )
        extra = (
            f" AND {column(ManifestVersion, 'number')} = %s AND {column(ManifestVersion, 'valid')}"
        )
        order = f"{column(ManifestVersion, 'app')}, {column(ManifestVersion, 'number')} DESC"
    return (
        f"SELECT {app.sql}, {version.sql} FROM {table} {joined} "  # noqa: S608
        f"WHERE {column(App, 'namespace')} = %s AND {column(App, 'name')} = %s{extra} "
        f"ORDER BY {order} LIMIT 1"
    )


def version_with_app(*, namespace: str, name: str, number: int | None) -> ManifestVersion | None:
    """The app's version ``number`` if valid, or its current version (``None``), with
    its app (``version.app``, no second query); ``None`` when there is none. One query."""
    params: list[Any] = [namespace, name] if number is None else [namespace, name, number]
    rows = fetch(_version_sql(current=number is None), params)
    if not rows:
        return None
    app_columns = selected(App)
    app = app_columns.build(rows[0])
    version = selected(ManifestVersion).build(rows[0], app_columns.width)
    if version is not None:
        version.app = app
    return version


# --- the user's connections -----------------------------------------------------------


def _iexact(expression: str) -> str:
    """``expression`` equal to a parameter, ignoring case, as the ORM's ``iexact``
    writes it (``UPPER(x::text) = UPPER(%s)`` on PostgreSQL, which the index of
    migration ``apps_registry/0003`` serves; the parameter goes through
    ``ops.prep_for_iexact_query``)."""
    connection = connections[DEFAULT_DB_ALIAS]
    lhs = connection.ops.lookup_cast("iexact", "CharField") % expression
    operator: str = getattr(connection, "operators")["iexact"]  # noqa: B009 (per backend)
    return f"{lhs} {operator % '%s'}"


@cache
def _connections_sql(*, by_email: bool, per_app: bool) -> str:
    users = get_user_model()
    conn, user, client = selected(Connection), selected(users), selected(UserOAuthClient)
    extra = ""
    if by_email:
        extra += f", ({_sharing_email_sql()}) AS accounts"
    if per_app:
        extra += f", ({allowed_on_connection_sql()}) AS allowed_keys"
    user_table = quote(users._meta.db_table)
    client_table = quote(UserOAuthClient._meta.db_table)
    where = _iexact(column(users, "email")) if by_email else f"{column(Connection, 'user')} = %s"
    return (
        f"SELECT {conn.sql}, {user.sql}, {client.sql}{extra} "  # noqa: S608
        f"FROM {quote(Connection._meta.db_table)} "
        f"INNER JOIN {user_table} ON ({column(Connection, 'user')} = {column(users, 'id')}) "
        f"LEFT OUTER JOIN {client_table} "
        f"ON ({column(Connection, 'oauth_client')} = {column(UserOAuthClient, 'id')}) "
        f"WHERE {where} AND {column(users, 'is_active')} "
        f"ORDER BY {column(Connection, 'created_at')}, {column(Connection, 'id')}"
    )


def _sharing_email_sql() -> str:
    """The count of active accounts whose email is the parameter, ignoring case: an
    uncorrelated subquery of the connections query by email."""
    users = get_user_model()
    return (
        f"SELECT COUNT(*) FROM {quote(users._meta.db_table)} "  # noqa: S608
        f"WHERE UPPER({quote(str(users._meta.get_field('email').column))}) = UPPER(%s) "
        f"AND {quote(str(users._meta.get_field('is_active').column))}"
    )


def connections_of(
    *, user_id: int | None = None, email: str | None = None, app: str | None = None
) -> list[Connection]:
    """The connections of the active user ``user_id`` (or of the active accounts with
    ``email``), oldest first, each with its ``user`` and ``oauth_client``; by email each
    carries ``accounts``, the active accounts sharing that email. ``app`` (per-app
    authorization): each carries ``allowed_keys`` (:func:`allowed_on_connection_sql`).
    One query."""
    by_email = email is not None
    sql = _connections_sql(by_email=by_email, per_app=app is not None)
    params: list[Any] = []
    if by_email:
        params.append(email)
    if app is not None:
        params += [app, CAPABILITY]
    if by_email:
        params.append(connections[DEFAULT_DB_ALIAS].ops.prep_for_iexact_query(email))
    else:
        params.append(user_id)
    conn, user, client = (
        selected(Connection),
        selected(get_user_model()),
        selected(UserOAuthClient),
    )
    found = []
    extra_at = conn.width + user.width + client.width
    account = None
    for row in fetch(sql, params):
        connection = conn.build(row)
        if account is None or account.pk != row[conn.width + user.pk_index]:
            account = user.build(row, conn.width)
        connection.user = account
        connection.oauth_client = client.build(row, conn.width + user.width)
        at = extra_at
        if by_email:
            connection.accounts = row[at]
            at += 1
        if app is not None:
            connection.allowed_keys = row[at]
        found.append(connection)
    return found


# --- the declared secrets ---------------------------------------------------------------


@cache
def _secrets_sql(*, count: int, per_app: bool) -> str:
    extra = ""
    if per_app:
        extra = (
            f", {secret_allowed_sql()} AS allowed, "
            f"({allowed_credentials_sql(Secret)}) AS allowed_credentials"
        )
    keys = ", ".join(["%s"] * count)
    return (
        f"SELECT {selected(Secret).sql}{extra} FROM {quote(Secret._meta.db_table)} "  # noqa: S608
        f"WHERE {column(Secret, 'user')} = %s AND {column(Secret, 'key')} IN ({keys})"
    )


def secrets_of(*, user_id: int, keys: Sequence[str], app: str | None = None) -> dict[str, Secret]:
    """The user's secrets of ``keys``, by key; ``app`` (per-app authorization): each
    carries ``allowed`` (:func:`secret_allowed_sql`) and ``allowed_credentials``
    (:func:`allowed_credentials_sql`). One query (none for no keys)."""
    if not keys:
        return {}
    params: list[Any] = []
    if app is not None:
        params += [app, SECRET, app, CAPABILITY]
    params += [user_id, *keys]
    secret = selected(Secret)
    found = {}
    for row in fetch(_secrets_sql(count=len(keys), per_app=app is not None), params):
        item = secret.build(row)
        if app is not None:
            item.allowed = bool(row[secret.width])
            item.allowed_credentials = row[secret.width + 1]
        found[item.key] = item
    return found
